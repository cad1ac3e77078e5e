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

/// A small journal in `dir`, written by the demo.
fn write_demo_journal(dir: &std::path::Path) {
    let demo = events()
        .args(["demo", "--events", "2000", "--sessions", "2", "--no-crash", "--json", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
}

/// `GET /status` on `addr`: the whole response, or `None` if nothing listens.
fn get_status(addr: &str) -> Option<String> {
    let mut conn = TcpStream::connect(addr).ok()?;
    conn.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    Some(response)
}

/// The first `/status` answer naming a `latest_seq` from `serve` on `addr`,
/// failing if it exits first (`after` says what it had to survive) or none
/// comes within 20 s.
fn status_while_running(serve: &mut std::process::Child, addr: &str, after: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = serve.try_wait().unwrap() {
            panic!("serve exited ({status}) when {after}");
        }
        if let Some(response) = get_status(addr).filter(|r| r.contains("\"latest_seq\"")) {
            return response;
        }
        assert!(std::time::Instant::now() < deadline, "serve never served the journal");
        std::thread::sleep(std::time::Duration::from_millis(20)); // polling until it serves
    }
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
    // The port it picked is printed before the journal is there (it had
    // been printed only after: nobody could learn it while serve waited).
    let mut out = BufReader::new(serve.stdout.take().unwrap());
    let mut serving = String::new();
    out.read_line(&mut serving).unwrap();
    let addr = serving.split("http://").nth(1).and_then(|s| s.split('/').next()).expect("a URL").to_owned();

    write_demo_journal(&dir);

    let response = get_status(&addr).expect("serve listens");
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"latest_seq\""), "{response}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// `--addr` takes a host name (`localhost:0`), resolved, as `--server`
/// does: it had been refused by the argument parser ("invalid socket
/// address syntax"), only IP addresses taken.
#[test]
fn serve_listens_on_a_host_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("named");
    write_demo_journal(&dir);
    let mut serve = events()
        .args(["serve", "--addr", "localhost:0"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(serve.stdout.take().unwrap());
    let mut serving = String::new();
    out.read_line(&mut serving).unwrap();
    let addr = serving.split("http://").nth(1).and_then(|s| s.split('/').next()).expect("a URL").to_owned();
    let response = get_status(&addr).expect("serve listens");
    assert!(response.contains("\"latest_seq\""), "{response}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// Waits (bounded) for `child` to exit; kills it and fails after 20 s.
/// `events serve DIR` on a free port of 127.0.0.1, and that address.
fn serve_on_a_free_port(dir: &std::path::Path, stdout: Stdio, stderr: Stdio) -> (std::process::Child, String) {
    let addr = format!("127.0.0.1:{}", events_testkit::nats::free_port());
    let serve = events().args(["serve", "--addr", &addr]).arg(dir).stdout(stdout).stderr(stderr).spawn().unwrap();
    (serve, addr)
}

fn exit_within(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what}: still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20)); // polling a child's exit
    }
}

/// An address already in use is an error naming it at once, before any
/// wait for a writer (serve bound only after the journal appeared, so it
/// waited first, then failed with a bare "Address already in use").
#[test]
fn serve_refuses_an_address_in_use_at_once_even_before_a_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut serve = events()
        .args(["serve", "--addr", &addr])
        .arg(tmp.path().join("not-yet"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut serve, "serve on a taken address");
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    serve.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

/// `serve` whose stdout reader is gone before the banner (a supervisor that
/// does not read it) keeps serving: it had exited 0, which reads as done.
#[test]
fn serve_keeps_serving_when_its_stdout_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_demo_journal(&dir);
    let (mut serve, addr) = serve_on_a_free_port(&dir, Stdio::piped(), Stdio::null());
    drop(serve.stdout.take()); // the reader is gone
    let response = status_while_running(&mut serve, &addr, "its stdout closed");
    assert!(response.contains("\"latest_seq\""), "{response}");
    assert!(serve.try_wait().unwrap().is_none(), "serve exited after answering");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// `serve` waiting for a journal with its stderr reader gone (a supervisor
/// that discards it): it keeps waiting, then serves (the waiting line
/// panicked on the closed pipe and the command exited). Its stderr is a
/// pipe whose reading end is closed before it starts, so the waiting line
/// meets a closed pipe for certain; the journal is written once the banner
/// is out, which the waiting line follows with no wait between.
#[test]
fn serve_keeps_waiting_when_its_stderr_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // the reader is gone before the command starts
    let (mut serve, addr) = serve_on_a_free_port(&dir, Stdio::piped(), Stdio::from(writer));
    let mut banner = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    assert!(banner.starts_with("serving "), "{banner}");
    write_demo_journal(&dir);
    let response = status_while_running(&mut serve, &addr, "its stderr closed");
    assert!(response.contains("200") && response.contains("\"latest_seq\""), "{response}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// SIGTERM (or SIGINT) with a client on `/stream`: the open response ends
/// (its last chunk sent) and `serve` exits 0, saying why on stderr. It had
/// been killed by the signal, and a graceful stop would have waited for the
/// client for ever (a follower's stream never ends by itself); without the
/// streams closed, the stop's time bound cuts the connection instead.
#[test]
fn sigterm_closes_the_open_streams_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_demo_journal(&dir);
    let (mut serve, addr) = serve_on_a_free_port(&dir, Stdio::null(), Stdio::piped());
    status_while_running(&mut serve, &addr, "started");
    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    client.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\n\n") {
        let n = client.read(&mut buf).expect("the stream's first frame");
        assert!(n > 0, "the stream ended before its first frame");
        seen.extend_from_slice(&buf[..n]);
    }
    sigterm(&serve);
    let status = exit_within(&mut serve, "serve after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("the response ended, not timed out");
    seen.extend_from_slice(&rest);
    // Ended by the server (the chunked body's last chunk), not cut by the
    // process's exit after its stop's time bound.
    assert!(seen.ends_with(b"0\r\n\r\n"), "{}", String::from_utf8_lossy(&seen));
    let mut stderr = String::new();
    serve.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("SIGTERM: closing the open streams"), "{stderr}");
    assert!(!stderr.contains("still held its connection"), "{stderr}");
}

/// SIGTERM while `serve` waits for a journal: it stops at once, exit 0
/// (nothing is open yet). It had been killed by the signal.
#[test]
fn sigterm_while_waiting_for_the_journal_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut serve, _) = serve_on_a_free_port(&tmp.path().join("later"), Stdio::null(), Stdio::piped());
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("waiting"), "{line}");
    sigterm(&serve);
    let status = exit_within(&mut serve, "serve waiting, after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Sends SIGTERM to `child`, which this test started and has not reaped.
fn sigterm(child: &std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a signal to a child process not reaped yet: its pid is its own.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// The bytes waiting in the send queue of the established TCP connection
/// from local port `local` to remote port `remote` on 127.0.0.1, if the
/// system holds one (`/proc/net/tcp`: state 01, `tx_queue`).
fn established_queue(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (local, remote) = (format!("0100007F:{local:04X}"), format!("0100007F:{remote:04X}"));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let tx_queue = fields.get(4)?.split(':').next()?;
        (fields.len() > 4 && fields[1] == local && fields[2] == remote && fields[3] == "01")
            .then(|| u64::from_str_radix(tx_queue, 16).unwrap())
    })
}

/// Whether the system holds an established TCP connection from local port
/// `local` to remote port `remote` on 127.0.0.1.
fn established(local: u16, remote: u16) -> bool {
    established_queue(local, remote).is_some()
}

/// `events serve --stall-timeout stall` of a demo journal in `tmp` of
/// about 10 MB of frames (far more than the socket buffers hold), and a
/// `/stream` client from its start that takes nothing; serve's port.
fn serving_a_client_that_takes_nothing(
    tmp: &std::path::Path,
    stall: &str,
    stderr: Stdio,
) -> (std::process::Child, u16, TcpStream) {
    let dir = tmp.join("journal");
    let demo = events()
        .args(["demo", "--events", "150000", "--sessions", "2", "--no-crash", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let port = events_testkit::nats::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = events()
        .args(["serve", "--addr", &addr, "--stall-timeout", stall])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    status_while_running(&mut serve, &addr, "started");
    let mut client = TcpStream::connect(&addr).unwrap();
    client.write_all(b"GET /stream?since=0 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    (serve, port, client)
}

/// A `/stream` client that takes nothing of a journal far larger than the
/// socket buffers: once it took nothing for twice `--stall-timeout`, the
/// system closes the server's end of its connection (`TCP_USER_TIMEOUT`;
/// without a reset sent, as for a peer gone), and others are served as
/// before. The connection had stayed open for as long as the client kept
/// it: its stream ended after the stall timeout (and its place in
/// `max_clients` went), but hyper, which no longer polled it, held the
/// connection and its buffers (found by audit).
#[test]
fn a_client_that_takes_nothing_has_its_connection_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut serve, port, client) = serving_a_client_that_takes_nothing(tmp.path(), "2s", Stdio::null());
    let addr = format!("127.0.0.1:{port}");
    let client_port = client.local_addr().unwrap().port();
    assert!(established(port, client_port), "the server's end is open at first");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while established(port, client_port) {
        assert!(std::time::Instant::now() < deadline, "the server still holds the connection after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50)); // polling the system's table
    }
    let status = get_status(&addr).expect("serve still listens");
    assert!(status.contains("200") && status.contains("\"latest_seq\""), "{status}");
    serve.kill().unwrap();
    serve.wait().unwrap();
    drop(client);
}

/// A `--stall-timeout` outside 100ms..=1440m is a usage error naming the
/// range (exit 2), not a value held to it unsaid. (A value taken would
/// serve, waiting for a journal: still running after 20 s.)
#[test]
fn a_stall_timeout_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["99ms", "1441m"] {
        let (mut serve, _) = {
            let addr = format!("127.0.0.1:{}", events_testkit::nats::free_port());
            let child = events()
                .args(["serve", "--addr", &addr, "--stall-timeout", bad])
                .arg(tmp.path().join("later"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, addr)
        };
        let status = exit_within(&mut serve, bad);
        let mut stderr = String::new();
        serve.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--stall-timeout") && stderr.contains("100ms..=1440m"), "{bad}: {stderr}");
    }
}

/// A second SIGTERM while `serve` stops, waiting for a client that takes
/// nothing to let go of its connection: it exits at once, 2, saying so.
/// The second signal had been ignored (the handlers stay installed), so
/// the stop waited its 5 s bound and exited 0 (found by audit).
#[test]
fn a_second_sigterm_while_stopping_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut serve, port, client) = serving_a_client_that_takes_nothing(tmp.path(), "60s", Stdio::piped());
    // Its buffers full (the server's end holds bytes it cannot send, the
    // same for 200 ms): its response is not polled, so the stop waits for it.
    let client_port = client.local_addr().unwrap().port();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut queued = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200)); // polling the system's table
        let now = established_queue(port, client_port).unwrap_or(0);
        if now > 0 && now == queued {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the client's buffers did not fill in 20 s");
        queued = now;
    }
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let mut banner = String::new();
    sigterm(&serve);
    while !banner.contains("closing the open streams") {
        assert!(err.read_line(&mut banner).unwrap() > 0, "stderr ended: {banner}");
    }
    let signalled = std::time::Instant::now();
    sigterm(&serve);
    let status = exit_within(&mut serve, "serve after a second SIGTERM");
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(2), "{status}: {banner}{rest}");
    assert!(rest.contains("terminated again while stopping"), "{rest}");
    assert!(signalled.elapsed() < std::time::Duration::from_secs(4), "{:?}", signalled.elapsed());
    drop(client);
}

/// `events serve` on another application's bincode journal whose newest
/// record has the demo's layout but not under the demo's streams
/// (`Finished { id: 7, ok: true }` reads as the demo's `Heartbeat`): refused
/// at once, exit 2, naming the record and why, as `dump` tells it. It had
/// been served to the viewer as demo heartbeats (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_another_applications_bincode_journal() {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    enum Lookalike {
        Created { id: u64 },
        Finished { id: u64, ok: bool },
    }
    impl events::Event for Lookalike {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: events::Feed<Lookalike> = events::Feed::builder(tmp.path()).open().await.unwrap();
    feed.append(Some("jobs"), Lookalike::Created { id: 6 }).await.unwrap();
    feed.append(Some("jobs"), Lookalike::Finished { id: 7, ok: true }).await.unwrap();
    feed.close().await.unwrap();
    let (mut serve, _) = serve_on_a_free_port(tmp.path(), Stdio::null(), Stdio::piped());
    let status = exit_within(&mut serve, "serve of another application's journal");
    let mut stderr = String::new();
    serve.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{status}: {stderr}");
    assert!(stderr.contains("record 2 is not the demo's event (its stream id is not the demo's)"), "{stderr}");
}
