//! `events dump`, `tail` and `serve` without the application's types: a
//! journal written with the self-describing codec is rendered as JSON with
//! every field of its events; a bincode journal of a type the CLI does not
//! know shows each record's seq, size and bytes, and says why it is not
//! decoded. The codec comes from the oldest segment file, whatever else
//! the directory holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use events::{Event, Feed, MsgPack};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Job {
    Started { id: u32, tags: Vec<String> },
    Finished { id: u32, ok: bool },
}

impl Event for Job {}

fn dump_json(dir: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_events")).arg("dump").arg(dir).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_describing_journal_dumps_as_json_with_its_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).open().await.unwrap();
    feed.append(Some("jobs"), Job::Started { id: 7, tags: vec!["gpu".into()] }).await.unwrap();
    feed.append(None, Job::Finished { id: 7, ok: true }).await.unwrap();
    feed.close().await.unwrap();

    let lines = dump_json(tmp.path());
    assert_eq!(lines.len(), 2);
    assert_eq!((&lines[0]["seq"], &lines[0]["stream"]), (&json!(1), &json!("jobs")));
    assert_eq!(lines[0]["event"], json!({ "Started": { "id": 7, "tags": ["gpu"] } }));
    assert_eq!(lines[1]["event"], json!({ "Finished": { "id": 7, "ok": true } }));
    assert_eq!(lines[1]["stream"], Value::Null);

    let inspect = Command::new(env!("CARGO_BIN_EXE_events")).arg("inspect").arg(tmp.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("3 (msgpack)"));
    // Listing consumers opens a reader with the journal's own codec.
    let consumers = Command::new(env!("CARGO_BIN_EXE_events")).arg("consumers").arg(tmp.path()).output().unwrap();
    assert!(consumers.status.success(), "{}", String::from_utf8_lossy(&consumers.stderr));

    let tail = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["tail", "--from", "1", "--json"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let line: Value = serde_json::from_str(String::from_utf8_lossy(&tail.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["event"], lines[1]["event"], "tail renders like dump");

    // `serve` streams the same JSON over SSE.
    let frames = served(tmp.path(), "\"Finished\"");
    assert_eq!(frames[0]["event"], json!({ "Started": { "id": 7, "tags": ["gpu"] } }), "{frames:?}");
}

/// A self-describing journal whose oldest segment's header is damaged (a
/// flipped byte in its CRC: what `Journal::repair` fixes): `dump --from`
/// past that segment renders its events as JSON, the codec read from the
/// next header. Every record had been shown as bytes ("an unreadable
/// segment header"), though the read never touched the damaged segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_oldest_header_leaves_the_codec_to_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).segment_bytes(4096).open().await.unwrap();
    let tags: Vec<String> = (0..100).map(|i| format!("tag {i}")).collect();
    for id in 0..40 {
        feed.append(None, Job::Started { id, tags: tags.clone() }).await.unwrap();
    }
    feed.close().await.unwrap();
    let mut segments: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let second: u64 = segments[1].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut oldest = std::fs::read(&segments[0]).unwrap();
    oldest[60] ^= 0xff; // the header's CRC
    std::fs::write(&segments[0], &oldest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["dump", "--json", "--from", &(second - 1).to_string()])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first: Value = serde_json::from_str(stdout.lines().next().expect("a line")).unwrap();
    assert_eq!(first["seq"], json!(second), "{stdout}");
    assert_eq!(first["event"]["Started"]["id"], json!(second - 1), "{first}");
    assert!(first.get("undecoded").is_none(), "{first}");
}

/// The `data:` of every event frame `events serve` on `dir` sends from the
/// start until one holds `until`.
fn served(dir: &Path, until: &str) -> Vec<Value> {
    /// Killed when the test ends, passed or failed.
    struct Serve(std::process::Child);
    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_events"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut serving = String::new();
    BufReader::new(serve.0.stdout.take().unwrap()).read_line(&mut serving).unwrap();
    let addr = serving.split("http://").nth(1).and_then(|s| s.split('/').next()).expect("a URL").to_owned();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    let mut buf = [0u8; 4096];
    while !body.contains(until) {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {body}");
        body.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(serve);
    assert!(!body.contains("event: error"), "{body}");
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

/// A journal whose application raised its event type's version (the
/// README's advice for a changed schema): `serve` streams its records of
/// every version as JSON, as `dump` renders them. It had ended the stream
/// with an `error` frame at the first record of version 2 ("newer than
/// 1"): its generic event type took every record for version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_streams_every_schema_version_of_a_self_describing_journal() {
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Note {
        text: String,
        pinned: bool,
    }
    impl Event for Note {
        const VERSION: u32 = 2;
    }
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).open().await.unwrap();
    feed.append(None, Job::Finished { id: 1, ok: true }).await.unwrap();
    feed.close().await.unwrap();
    let feed: Feed<Note, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).open().await.unwrap();
    feed.append(Some("notes"), Note { text: "v2".into(), pinned: true }).await.unwrap();
    feed.close().await.unwrap();

    let frames = served(tmp.path(), "\"pinned\"");
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0]["event"], json!({ "Finished": { "id": 1, "ok": true } }));
    assert_eq!(frames[1]["event"], json!({ "text": "v2", "pinned": true }));
    assert_eq!(frames[1]["stream"], json!("notes"));
    assert_eq!(dump_json(tmp.path())[1]["event"], frames[1]["event"], "serve renders like dump");
}

/// Bincode carries no type information: a payload of another type can even
/// parse as the demo's event by accident (that is why the self-describing
/// codec exists). This one cannot: its variant index is past the demo's.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Other {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H(String),
}

impl Event for Other {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bincode_journal_of_unknown_types_shows_bytes_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Other> = Feed::builder(tmp.path()).open().await.unwrap();
    feed.append(Some("jobs"), Other::H("x".into())).await.unwrap();
    feed.close().await.unwrap();

    let lines = dump_json(tmp.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["seq"], 1);
    assert!(lines[0]["size"].as_u64().is_some_and(|n| n > 0));
    assert!(lines[0]["hex"].as_str().is_some_and(|h| !h.is_empty()));
    let why = lines[0]["undecoded"].as_str().unwrap_or_default();
    assert!(why.contains("not self-describing"), "{why}");
}

/// An application's bincode event of the demo's layout (`Finished { id: 7,
/// ok: true }` reads as the demo's `Heartbeat { session: 7, n: 1 }`), not
/// under the demo's stream: shown as bytes with the reason, as any event
/// of a type the CLI does not know. It was shown as a demo heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bincode_event_of_the_demos_layout_under_another_stream_is_not_shown_as_a_demo_event() {
    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum Lookalike {
        Created { id: u64 },
        Finished { id: u64, ok: bool },
    }
    impl Event for Lookalike {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Lookalike> = Feed::builder(tmp.path()).open().await.unwrap();
    feed.append(Some("jobs"), Lookalike::Finished { id: 7, ok: true }).await.unwrap();
    feed.append(Some("sess-7"), Lookalike::Finished { id: 7, ok: true }).await.unwrap();
    feed.close().await.unwrap();

    let lines = dump_json(tmp.path());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].get("kind"), None, "{}", lines[0]);
    let why = lines[0]["undecoded"].as_str().unwrap_or_default();
    assert!(why.contains("stream id is not the demo's"), "{why}");
    // Under the demo's stream for it, nothing tells it from a demo event.
    assert_eq!(lines[1]["kind"], "heartbeat", "{}", lines[1]);
}

/// A directory named like a segment older than the journal's oldest (which
/// retention removed), which the journal ignores: the codec still comes
/// from the oldest segment file. It came from that directory, whose
/// "header" could not be read, and every record was shown as bytes "(an
/// unreadable segment header is not self-describing)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_named_like_a_segment_does_not_hide_the_codec() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job, MsgPack> = Feed::builder(tmp.path())
        .codec(MsgPack)
        .segment_bytes(1024)
        .retention(events::Retention::segments(2))
        .open()
        .await
        .unwrap();
    for id in 0..100 {
        feed.append(Some("jobs"), Job::Finished { id, ok: true }).await.unwrap();
    }
    feed.close().await.unwrap();
    let removed = tmp.path().join("00000000000000000001.seg");
    assert!(!removed.exists(), "retention removed the first segment");
    std::fs::create_dir(&removed).unwrap();

    let lines = dump_json(tmp.path());
    assert!(lines.len() > 1, "{lines:?}");
    for line in &lines {
        assert_eq!(line["event"]["Finished"]["ok"], json!(true), "{line}");
    }
}
