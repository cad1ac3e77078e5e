//! `events serve` seen by a real browser: headless Chromium, driven over
//! WebDriver by `chromedriver`, opens the viewer page of an `events serve`
//! process while another process (`events __crash-writer`) appends. One
//! test reads the rendered rows and checks they are contiguous, in order,
//! and end at the journal's last seq once the writer is stopped. Another
//! shows the page a salvaged journal (a `gap` reset: one row, and the table
//! goes on after the hole with no false gap) and then the journal directory
//! recreated under the server (an `epoch_mismatch` reset: the table starts
//! again with the new journal's first event, in the new epoch). A third
//! shows an event the server cannot decode: one error row, and the page
//! waits 30 s before it retries instead of reconnecting into the same error
//! every few seconds. A fourth asks for what the server refuses (a 400):
//! one error row with the reason, and no retry. A fifth shows events a
//! server skips (`OnUndecodable::Skip`) as rows, with no false gap. A sixth
//! opens the page at `?since=latest`, makes its browser give up (a 503
//! while the server is away) and checks that the page's own reconnect
//! shows what was appended meanwhile. A seventh mounts the viewer and the
//! stream under a prefix (`Router::nest("/feed", …)`) and checks the page
//! served there reads the routes beside it.
//!
//! Invariant: every process this test starts is killed when it ends, pass or
//! fail (the guards of `browser/mod.rs`), and every wait has a deadline.

mod browser;

use std::path::Path;
use std::process::Command;

use browser::{Browser, Killed, WAIT, events, open_browser, start, wait_script};
use events_testkit::nats::free_port;
use serde_json::{Value, json};

/// What the page shows: its indicator, its counters, the seqs of its rows,
/// and its reset rows (their text, and whether the table starts with one).
const PAGE_STATE: &str = r##"
const done = arguments[arguments.length - 1];
const first = document.querySelector("#rows tr");
done({
  state: document.getElementById("state").dataset.state,
  received: Number(document.getElementById("received").textContent),
  gaps: Number(document.getElementById("gaps").textContent),
  resets: Number(document.getElementById("resets").textContent),
  lastSeq: document.getElementById("last-seq").textContent,
  epoch: document.getElementById("epoch").textContent,
  seqs: Array.from(document.querySelectorAll("#rows tr[data-seq]"), (tr) => Number(tr.dataset.seq)),
  kinds: Array.from(document.querySelectorAll("#rows tr[data-seq] td:nth-child(4)"), (td) => td.textContent),
  resetRows: Array.from(document.querySelectorAll("#rows tr.reset td:nth-child(4)"), (td) => td.textContent),
  startsWithReset: first !== null && first.classList.contains("reset"),
});
"##;

/// Starts `events serve` on `dir` (port 0) and returns it with its URL.
fn serve(dir: &Path) -> (Killed, String) {
    serve_on(dir, "127.0.0.1:0")
}

/// Starts `events serve` on `dir` listening on `addr` and returns it with its URL.
fn serve_on(dir: &Path, addr: &str) -> (Killed, String) {
    let mut server = events();
    server.arg("serve").arg(dir).args(["--addr", addr]);
    let (server, line) = start(server, "events serve", |line| line.starts_with("serving"));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();
    (server, url)
}

/// The server's `/status`.
async fn status(url: &str) -> Value {
    serde_json::from_str(&reqwest::get(format!("{url}status")).await.unwrap().text().await.unwrap()).unwrap()
}

/// Runs `events __crash-writer` (one appender) on `dir` until it has
/// acknowledged seq `until`, then kills it.
fn write_until(dir: &Path, until: u64) {
    let mut writer = events();
    writer.args(["__crash-writer", "--sync", "always", "--appenders", "1", "--dir"]).arg(dir);
    let acked = |line: &str| line.strip_prefix("ack ")?.split_whitespace().next()?.parse::<u64>().ok();
    let (writer, _) = start(writer, "events __crash-writer", |line| acked(line).is_some_and(|seq| seq >= until));
    drop(writer);
}

/// Flips the first payload byte of record `seq`, walking the frames of the
/// journal's one segment (DESIGN §5: a 64-byte header, then frames of
/// `N` (u32 LE), crc, seq (u64 LE), timestamp and `N` payload bytes).
fn corrupt_record(dir: &Path, seq: u64) {
    let segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    let [segment] = segments.as_slice() else { panic!("expected one segment: {segments:?}") };
    let mut bytes = std::fs::read(segment).unwrap();
    let mut at = 64;
    while at + 24 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) == seq {
            bytes[at + 24] ^= 0x01;
            std::fs::write(segment, &bytes).unwrap();
            return;
        }
        at += 24 + len;
    }
    panic!("record {seq} not found in {}", segment.display());
}

/// An event type for opening the journal in salvage mode: recovery checks
/// frames, it never decodes a payload.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Opaque;

impl events::Event for Opaque {}

/// What an operator does with a journal corrupt in the middle: open it
/// with `RecoveryMode::SkipCorrupt`, leaving a hole, and close it.
async fn salvage(dir: &Path) {
    let feed: events::Feed<Opaque> =
        events::Feed::builder(dir).recovery(events::RecoveryMode::SkipCorrupt).open().await.expect("salvage");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_a_gap_then_starts_over_on_a_recreated_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    // A journal whose record 10 an operator had to salvage away.
    write_until(&dir, 30);
    corrupt_record(&dir, 10);
    salvage(&dir).await;

    let (_server, url) = serve(&dir);
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    let before = status(&url).await;
    let (old_epoch, old_latest) =
        (before["epoch"].as_str().unwrap().to_owned(), before["latest_seq"].as_u64().unwrap());
    // All rows kept: the table must show every event.
    browser.goto(&format!("{url}?rows=100000")).await;
    browser
        .run_async(&wait_script(&format!(r##"document.getElementById("last-seq").textContent === "{old_latest}""##)))
        .await;
    let page = browser.run_async(PAGE_STATE).await;
    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=9).chain(11..=old_latest).collect::<Vec<_>>(), "the rows around the hole: {page}");
    assert_eq!(page["gaps"], 0, "the announced gap is not a false gap: {page}");
    assert_eq!(page["resets"], 1, "{page}");
    assert_eq!(page["resetRows"], json!(["gap: events 10..10 were lost; continuing after 10"]), "{page}");
    assert_eq!(page["epoch"], old_epoch, "{page}");

    // The directory is recreated under the server, and the new journal
    // grows past the page's last seq: the page must not take it up from
    // the middle, but start over with its first event.
    std::fs::remove_dir_all(&dir).unwrap();
    write_until(&dir, old_latest + 20);
    let after = status(&url).await;
    let (new_epoch, new_latest) = (after["epoch"].as_str().unwrap().to_owned(), after["latest_seq"].as_u64().unwrap());
    assert_ne!(new_epoch, old_epoch, "{after}");
    assert!(new_latest >= old_latest + 20, "{after}");
    browser
        .run_async(&wait_script(&format!(
            r##"document.getElementById("epoch").textContent === "{new_epoch}"
               && document.getElementById("last-seq").textContent === "{new_latest}""##
        )))
        .await;
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;

    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=new_latest).collect::<Vec<_>>(), "the new journal from its first event: {page}");
    assert_eq!(page["gaps"], 0, "{page}");
    assert!(page["resets"].as_u64().unwrap() >= 2, "{page}");
    assert_eq!(page["startsWithReset"], true, "the table says why it starts over: {page}");
    let reset_rows = page["resetRows"].as_array().unwrap();
    assert_eq!(reset_rows.len(), 1, "the old rows, gap included, are gone: {page}");
    let text = reset_rows[0].as_str().unwrap();
    assert!(
        text.starts_with("epoch_mismatch: the journal was recreated")
            && text.contains(&format!("epoch {old_epoch} -> {new_epoch}")),
        "{text}"
    );
    assert_eq!(page["state"], "live", "{page}");
}

/// A reset that restarts the history far behind the latest event (here
/// `ahead`: a cursor past the journal's end, as a page whose journal was
/// replaced by a shorter one holds; `expired`, for a laptop woken after
/// retention pruned past its cursor, takes the same path): the page starts
/// again after the latest 100 events, as a fresh page does. It had taken
/// in every retained event from the oldest (up to a journal's 64 segments)
/// only to show the last rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_far_behind_restarts_the_viewer_at_the_latest_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_until(&dir, 300);
    let (_server, url) = serve(&dir);
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    let now = status(&url).await;
    let (epoch, latest) = (now["epoch"].as_str().unwrap().to_owned(), now["latest_seq"].as_u64().unwrap());
    // All rows kept: the table shows every event the page took in.
    browser.goto(&format!("{url}?rows=100000&since={epoch}-{}", latest + 1000)).await;
    browser
        .run_async(&wait_script(&format!(r##"document.getElementById("last-seq").textContent === "{latest}""##)))
        .await;
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;

    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seqs, (latest - 99..=latest).collect::<Vec<_>>(), "the latest 100 events: {page}");
    assert_eq!(page["received"], 100, "nothing before them was taken in: {page}");
    assert_eq!((page["resets"].as_u64(), page["gaps"].as_u64()), (Some(1), Some(0)), "{page}");
    assert_eq!(page["startsWithReset"], true, "{page}");
    let text = page["resetRows"][0].as_str().unwrap();
    assert!(
        text.starts_with("ahead: ")
            && text.contains(&format!("view restarted at the latest events, after event {}", latest - 100)),
        "{text}"
    );
    assert_eq!(page["state"], "live", "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_every_appended_event_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");

    // Another process appends until it is killed.
    let mut writer = events();
    writer.args(["__crash-writer", "--sync", "never", "--appenders", "1", "--dir"]).arg(&dir);
    let (writer, _) = start(writer, "events __crash-writer", |line| line.starts_with("ready"));

    let mut server = events();
    server.arg("serve").arg(&dir).args(["--addr", "127.0.0.1:0"]);
    let (_server, line) = start(server, "events serve", |line| line.starts_with("serving"));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();

    let driver_port = free_port();
    let mut driver = Command::new(events_testkit::program::program("chromedriver"));
    driver.arg(format!("--port={driver_port}"));
    let (_driver, _) = start(driver, "chromedriver", |line| line.contains("started successfully"));

    let browser = Browser::start(driver_port, &tmp.path().join("chromium-profile")).await;
    let timeouts = json!({ "script": WAIT.as_millis() as u64 });
    browser.call(reqwest::Method::POST, &format!("/session/{}/timeouts", browser.session), timeouts).await;
    browser.goto(&url).await;

    // Live rows arrive while the writer runs.
    browser
        .run_async(&wait_script(
            r##"document.getElementById("state").dataset.state === "live"
               && document.querySelectorAll("#rows tr[data-seq]").length >= 50"##,
        ))
        .await;

    // Stop the writer; the page must catch up with exactly what it wrote.
    drop(writer);
    let status: Value =
        serde_json::from_str(&reqwest::get(format!("{url}status")).await.unwrap().text().await.unwrap()).unwrap();
    let latest = status["latest_seq"].as_u64().expect("latest_seq");
    browser
        .run_async(&wait_script(&format!(r##"document.getElementById("last-seq").textContent === "{latest}""##)))
        .await;
    // The page updates its counters and rows in the same render pass, so
    // the rows are complete once the counter shows the last seq.
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;

    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(seqs.len() >= 50, "rows rendered: {}", seqs.len());
    assert_eq!(seqs.last(), Some(&latest), "the last row is the journal's last event");
    let first = seqs[0];
    assert_eq!(seqs, (first..=latest).collect::<Vec<_>>(), "rows are contiguous and in order");
    assert_eq!(page["gaps"], 0, "{page}");
    assert!(page["received"].as_u64().unwrap() >= seqs.len() as u64, "{page}");
    assert_eq!(page["state"], "live", "{page}");
    assert!(page["kinds"].as_array().unwrap().iter().all(|k| k == "CrashProbe"), "{}", page["kinds"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_stops_at_a_server_error_instead_of_reconnecting_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    // A journal whose records are not events of any codec: the server's
    // stream fails at the first one (`event: error`, then the response ends).
    let (mut journal, _) = events::layers::journal::Journal::open(&dir, Default::default()).unwrap();
    journal.append(1, b"\xff\xfe not an encoded event").unwrap();
    journal.close().unwrap();

    let (_server, url) = serve(&dir);
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("{url}?since=0")).await;
    let errors = r##"document.querySelectorAll("#rows tr.error").length"##;
    // Requests for the stream: a reconnect into the same error adds one,
    // though the page shows each distinct error once.
    let asked = r##"performance.getEntriesByType("resource").filter((e) => e.name.includes("/stream?")).length"##;
    let look = format!(
        "arguments[arguments.length - 1]({{ errors: {errors}, asked: {asked}, \
         state: document.getElementById(\"state\").dataset.state }})"
    );
    browser.run_async(&wait_script(&format!("{errors} >= 1"))).await;
    let first = browser.run_async(&look).await;
    // A browser reconnects about every 3 s: give it two chances to.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let page = browser.run_async(&look).await;
    browser.quit().await;
    assert_eq!(page["errors"], 1, "one error row, no reconnect into the same error: {page}");
    assert_eq!(page["state"], "closed", "{page}");
    assert_eq!(page["asked"], first["asked"], "the page asked again: {first} then {page}");
}

/// The viewer asks a server for what it refuses (`live_output=1` of `events
/// serve`, which reads another process's journal; a malformed `since`):
/// one error row with the server's reason, the state `closed`, and no
/// retry of the same address. It had shown "disconnected, retrying…" and
/// asked again every 3 s, for ever, never saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_a_refused_address_once_and_does_not_retry_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_until(&dir, 3);
    let (_server, url) = serve(&dir);
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    let errors = r##"Array.from(document.querySelectorAll("#rows tr.error td:nth-child(4)"), (td) => td.textContent)"##;
    // Requests for the stream, by the `EventSource` and by the page's look at why it closed.
    let asked = r##"performance.getEntriesByType("resource").filter((e) => e.name.includes("/stream?")).length"##;
    let page = format!(
        "arguments[arguments.length - 1]({{ errors: {errors}, asked: {asked}, \
         state: document.getElementById(\"state\").dataset.state }})"
    );
    // A bare `?live_output` too: the page passes it on, and shows the refusal
    // (it had read it as off, with no word).
    let refused = [
        ("?live_output=1", "live_output=1"),
        ("?since=yesterday", "invalid since"),
        ("?live_output", "invalid live_output"),
    ];
    for (query, reason) in refused {
        browser.goto(&format!("{url}{query}")).await;
        browser.run_async(&wait_script(&format!("{errors}.length >= 1"))).await;
        let first = browser.run_async(&page).await;
        // Past the 3 s after which the page used to ask again.
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        let later = browser.run_async(&page).await;
        let text = later["errors"][0].as_str().unwrap_or_default();
        assert!(text.starts_with("400: ") && text.contains(reason), "{query}: {later}");
        assert_eq!(later["errors"].as_array().map(Vec::len), Some(1), "{query}: {later}");
        assert_eq!(later["state"], "closed", "{query}: {later}");
        assert_eq!(later["asked"], first["asked"], "{query}: the page asked again: {first} then {later}");
    }
    browser.quit().await;
}

/// A page opened at `?since=latest` whose browser gave up on its stream (a
/// proxy answered 503 while the server was away) reconnects by itself from
/// the position its stream started at, the `checkpoint` frame's: it shows
/// the events appended meanwhile. The frame had been an id alone, which the
/// page never saw: it asked for `since=latest` again, a later "now", and
/// skipped those events with no reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_opened_at_latest_resumes_from_its_start_after_its_browser_gave_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_until(&dir, 3);
    let addr = format!("127.0.0.1:{}", free_port());
    let (server, url) = serve_on(&dir, &addr);
    let started_at = status(&url).await["latest_seq"].as_u64().unwrap();
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("{url}?since=latest")).await;
    // The page's cursor (the id of the last frame it got) is the start's.
    browser.run_async(&wait_script("cursor !== null")).await;

    drop(server);
    let proxy = Unavailable::start(&addr);
    let state = r##"document.getElementById("state").dataset.state"##;
    browser.run_async(&wait_script(&format!(r##"{state} === "closed""##))).await;
    write_until(&dir, started_at + 2);
    drop(proxy);
    let _server = serve_on(&dir, &addr);
    let latest = status(&url).await["latest_seq"].as_u64().unwrap();
    browser
        .run_async(&wait_script(&format!(r##"document.getElementById("last-seq").textContent === "{latest}""##)))
        .await;
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;
    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seqs, (started_at + 1..=latest).collect::<Vec<_>>(), "{page}");
    assert_eq!((&page["gaps"], &page["resets"], &page["state"]), (&json!(0), &json!(0), &json!("live")), "{page}");
}

/// A stand-in for a proxy whose server is away: every request on `addr`
/// gets `503 Service Unavailable` and the connection is closed. Stopped
/// (and its port released) when dropped.
struct Unavailable {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Unavailable {
    fn start(addr: &str) -> Unavailable {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.read(&mut [0; 4096]);
                let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        Unavailable { stop, addr: addr.to_owned(), thread: Some(thread) }
    }
}

impl Drop for Unavailable {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept so the thread sees the flag and drops the listener.
        let _ = std::net::TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Events the server skips under `OnUndecodable::Skip` (an `undecodable`
/// frame): one that does not decode, and one JSON cannot carry (a map with
/// tuple keys; its frame names index 0). Each is one row saying so, and the
/// next event is no gap. The page had no listener for the frame: the events
/// vanished and the counter of gaps rose at the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_skipped_undecodable_events_as_rows_and_no_gap() {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, Feed, FeedReader, OnUndecodable};
    use std::collections::BTreeMap;
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    enum Cell {
        Plain,
        Grid(BTreeMap<(u8, u8), u8>),
    }
    impl events::Event for Cell {}
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed: Feed<Cell> = Feed::builder(&dir).open().await.unwrap();
    feed.append(None, Cell::Plain).await.unwrap();
    feed.close().await.unwrap();
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([0x02, 0x99]).unwrap(); // seq 2: not an encoded event
    journal.close().unwrap();
    let feed: Feed<Cell> = Feed::builder(&dir).open().await.unwrap();
    feed.append(None, Cell::Grid([((1, 2), 3)].into())).await.unwrap(); // seq 3: no JSON form
    feed.append(None, Cell::Plain).await.unwrap();
    feed.close().await.unwrap();

    let reader = FeedReader::<Cell>::open(&dir).unwrap().on_undecodable(OnUndecodable::Skip);
    let app = events_http::router(reader).merge(events_http::viewer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { events_http::axum::serve(listener, app).await });
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("http://{addr}/?since=0")).await;
    browser.run_async(&wait_script(r##"document.getElementById("last-seq").textContent === "4""##)).await;
    let page = browser.run_async(PAGE_STATE).await;
    let skipped = browser
        .run_async(
            r##"arguments[arguments.length - 1](Array.from(document.querySelectorAll("#rows tr.undecodable"), (tr) => tr.textContent))"##,
        )
        .await;
    browser.quit().await;
    server.abort();
    assert_eq!(page["seqs"], json!([1, 4]), "{page}");
    assert_eq!(page["gaps"], 0, "{page}");
    let [two, three] = skipped.as_array().unwrap().as_slice() else { panic!("two undecodable rows: {skipped}") };
    assert!(two.as_str().unwrap().contains("event 2 skipped"), "{two}");
    assert!(three.as_str().unwrap().contains("event 3 skipped"), "{three}");
}

/// The viewer nested under a prefix, as the crate's docs show
/// (`Router::nest("/feed", router.merge(viewer()))`): axum serves the page
/// at `/feed` (never `/feed/`), where the page's relative `status` and
/// `stream` had named `/status` and `/stream`, two 404s, and the page sat
/// refused with no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_nested_under_a_prefix_reads_the_routes_beside_it() {
    use events::Feed;
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Ping(u32);
    impl events::Event for Ping {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ping> = Feed::builder(tmp.path().join("journal")).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, Ping(n)).await.unwrap();
    }
    let routes = events_http::router(feed.reader()).merge(events_http::viewer());
    let app = events_http::axum::Router::new().nest("/feed", routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { events_http::axum::serve(listener, app).await });
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("http://{addr}/feed")).await;
    browser
        .run_async(&wait_script(
            r##"document.getElementById("state").dataset.state === "live"
               && document.getElementById("last-seq").textContent === "3""##,
        ))
        .await;
    // A live event reaches the page too.
    feed.append(None, Ping(4)).await.unwrap();
    browser.run_async(&wait_script(r##"document.getElementById("last-seq").textContent === "4""##)).await;
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;
    server.abort();
    feed.close().await.unwrap();
    assert_eq!(page["seqs"], json!([1, 2, 3, 4]), "{page}");
    assert_eq!((&page["resets"], &page["state"]), (&json!(0), &json!("live")), "{page}");
}

/// `/?since=` with an empty value starts as a page without one: the latest
/// 100 events. It had sent `since=` on, which the server reads as
/// everything retained, and shown the journal from its first event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_since_shows_the_latest_100_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    write_until(&dir, 150);
    let (_server, url) = serve(&dir);
    let latest = status(&url).await["latest_seq"].as_u64().expect("latest_seq");
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("{url}?since=")).await;
    let caught_up = format!(r##"document.getElementById("last-seq").textContent === "{latest}""##);
    browser.run_async(&wait_script(&caught_up)).await;
    let page = browser.run_async(PAGE_STATE).await;
    browser.quit().await;
    let seqs: Vec<u64> = page["seqs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seqs, (latest - 99..=latest).collect::<Vec<_>>(), "{page}");
}
