//! `events serve` started before its writer, as an operator starts services
//! in any order: on a directory that does not exist yet it says it waits
//! (instead of exiting 2), and once a writer has created the journal it
//! serves it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

#[test]
fn serve_waits_for_the_writers_first_segment_then_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let mut serve = events()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("waiting") && line.contains("does not exist yet"), "{line}");
    assert!(serve.try_wait().unwrap().is_none(), "serve exited instead of waiting");

    let demo = events()
        .args(["demo", "--events", "2000", "--sessions", "2", "--no-crash", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(demo.status.success());

    let mut out = BufReader::new(serve.stdout.take().unwrap());
    let mut serving = String::new();
    out.read_line(&mut serving).unwrap();
    let addr = serving.split("http://").nth(1).and_then(|s| s.split('/').next()).expect("a URL").to_owned();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"latest_seq\""), "{response}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}
