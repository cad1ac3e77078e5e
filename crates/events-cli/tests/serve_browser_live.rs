//! The viewer's live output seen by a real browser across dropped
//! connections: a writer that serves its own live output (`events
//! __live-writer`) streams responses token by token; headless Chromium opens
//! the viewer with `?live_output=1` through a TCP proxy owned by the test.
//! Twice, while the page shows some but not all tokens of a response, the
//! proxy closes every connection it carries (a server-side abort); the
//! browser's `EventSource` reconnects by itself with its `Last-Event-ID`.
//! At the end every response's streamed text on the page must equal the
//! tokens the writer sent, exactly: a duplicated or a missing token fails
//! the string comparison (a unit test below shows it does). Another test
//! keeps the writer's ring tiny, so that what was streamed during the
//! reconnection delay is gone: the page gets one `live_output_expired`
//! reset, marks the response's streamed text incomplete, and still shows
//! the whole durable message.
//!
//! Invariant: every process this test starts is killed when it ends, pass
//! or fail (the guards of `browser/mod.rs`, and the proxy's tasks are
//! aborted on drop), and every wait has a deadline.

mod browser;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use browser::{Browser, Killed, WAIT, events, open_browser, start_with_lines, wait_script};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Responses the writer streams, tokens in each, and the pause after each
/// token: four seconds a response, longer than the browser's reconnection
/// delay (3 s in Chromium), so a reconnect usually lands mid-response and
/// gets the rest of it from the writer's ring.
const RESPONSES: usize = 4;
const TOKENS: u64 = 40;
const INTERVAL_MS: u64 = 100;

/// A TCP proxy in front of the server that can drop every connection it
/// carries, as a server going away would; it keeps accepting, and can be
/// pointed at another server (a writer restarted on another port).
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::clone(&connections);
        let target = Arc::new(Mutex::new(target));
        let current = Arc::clone(&target);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = *current.lock().unwrap();
                let relay = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                held.lock().unwrap().push(relay.abort_handle());
            }
        });
        Proxy { addr, target, connections, accept }
    }

    /// New connections go to `target` from now on.
    fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// Closes every open connection (both sockets of each, by dropping
    /// its relay task); returns how many were still open.
    fn drop_connections(&self) -> usize {
        let connections = std::mem::take(&mut *self.connections.lock().unwrap());
        connections.into_iter().filter(|relay| !relay.is_finished()).map(|relay| relay.abort()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

/// Whether the page's streamed text of a response is exactly what was sent:
/// the same tokens, each once, in order.
fn check_response(n: usize, sent: &str, streamed: &str) -> Result<(), String> {
    if streamed == sent {
        Ok(())
    } else {
        Err(format!("response {n}: the page streamed\n  {streamed}\nbut the writer sent\n  {sent}"))
    }
}

/// The page in live mode: its counters, its in-progress rows and its
/// durable rows with what each concluded.
const LIVE_STATE: &str = r##"
const done = arguments[arguments.length - 1];
const text = (tr) => { const td = tr.querySelector("td.text"); return td === null ? null : td.textContent; };
done({
  state: document.getElementById("state").dataset.state,
  reconnects: Number(document.getElementById("reconnects").textContent),
  resets: Number(document.getElementById("resets").textContent),
  live: Array.from(document.querySelectorAll("#rows tr.live"), (tr) => ({ tokens: Number(tr.dataset.tokens), text: text(tr) })),
  durable: Array.from(document.querySelectorAll("#rows tr[data-seq]"), (tr) => ({
    seq: Number(tr.dataset.seq),
    text: text(tr),
    streamed: tr.dataset.streamed ?? null,
    tokens: tr.dataset.tokens === undefined ? null : Number(tr.dataset.tokens),
    incomplete: tr.dataset.incomplete !== undefined,
  })),
  other: Array.from(document.querySelectorAll("#rows tr:not(.live):not([data-seq])"), (tr) => tr.textContent),
});
"##;

/// Waits in the page until response `n`'s in-progress row shows some but
/// not all of its tokens (at most `max`, so most of it is still to come),
/// and returns the number of tokens shown then.
fn mid_response_script(n: usize, max: u64) -> String {
    format!(
        r##"const done = arguments[arguments.length - 1];
        const check = () => {{
          for (const tr of document.querySelectorAll("#rows tr.live")) {{
            const tokens = Number(tr.dataset.tokens);
            if (tr.querySelector("td.text").textContent.startsWith("[{n}.") && tokens > 0 && tokens <= {max}) {{
              done(tokens);
              return;
            }}
          }}
          setTimeout(check, 10);
        }};
        check();"##
    )
}

/// Starts `events __live-writer` with `args`, the proxy in front of it, and
/// a browser on the viewer with live output through the proxy; once the
/// page is connected, tells the writer to start streaming. Returns the
/// writer (with the lines it prints after its ready line), the proxy, the
/// chromedriver guard and the browser.
async fn open_live(tmp: &Path, args: &[String]) -> (Killed, Receiver<String>, Proxy, Killed, Browser) {
    open_live_as(tmp, args, "1").await
}

/// [`open_live`] with the page's `live_output` parameter `value`.
async fn open_live_as(tmp: &Path, args: &[String], value: &str) -> (Killed, Receiver<String>, Proxy, Killed, Browser) {
    let (mut writer, lines, server) = start_writer(tmp, args);
    let proxy = Proxy::start(server).await;

    let (driver, browser) = open_browser(&tmp.join("chromium-profile")).await;
    browser.goto(&format!("http://{}/?live_output={value}&rows=100000", proxy.addr)).await;
    browser.run_async(&wait_script(r##"document.getElementById("state").dataset.state === "live""##)).await;
    writeln!(writer.0.stdin.as_mut().unwrap(), "go").unwrap();
    (writer, lines, proxy, driver, browser)
}

/// Starts `events __live-writer` on the journal in `tmp` with `args`;
/// returns it (with the lines it prints after its ready line) and the
/// address it serves on.
fn start_writer(tmp: &Path, args: &[String]) -> (Killed, Receiver<String>, SocketAddr) {
    let mut writer = events();
    writer.arg("__live-writer").arg(tmp.join("journal")).args(args).stdin(Stdio::piped());
    let (writer, line, lines) = start_with_lines(writer, "events __live-writer", |l| l.starts_with("serving"));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL");
    (writer, lines, url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap())
}

/// The full text of each of the first `count` responses, as the writer
/// prints them once sent.
fn sent_responses(lines: &Receiver<String>, count: usize) -> Vec<String> {
    let mut sent = Vec::new();
    while sent.len() < count {
        let line = lines.recv_timeout(WAIT).expect("the writer's responses");
        if let Some(rest) = line.strip_prefix("response ") {
            let (n, text) = rest.split_once(' ').unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), sent.len() + 1, "{line}");
            sent.push(text.to_owned());
        }
    }
    sent
}

/// The token numbers of response `n` in `text` (`[n.1][n.2]…` gives 1, 2, …).
fn token_numbers(n: usize, text: &str) -> Vec<u64> {
    let prefix = format!("[{n}.");
    text.split_terminator(']')
        .map(|token| token.strip_prefix(&prefix).and_then(|i| i.parse().ok()).unwrap_or_else(|| panic!("{text}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_rebuilds_every_response_token_for_token_across_dropped_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let args = format!("--responses {RESPONSES} --tokens {TOKENS} --interval-ms {INTERVAL_MS}");
    let args: Vec<String> = args.split(' ').map(str::to_owned).collect();
    // ` 1` (a `+` in a query is a space): the page reads it trimmed, as the
    // server does. It had read it as off and passed it on, and the server's
    // tokens then made rows of their own that nothing concluded.
    let (_writer, lines, proxy, _driver, browser) = open_live_as(tmp.path(), &args, "+1").await;

    // Drop every connection while the page shows part of responses 1 and 3.
    let mut aborts = Vec::new();
    for n in [1, 3] {
        let shown = browser.run_async(&mid_response_script(n, TOKENS / 4)).await.as_u64().unwrap();
        let dropped = proxy.drop_connections();
        assert!(dropped >= 1, "the page's event stream was not open through the proxy");
        aborts.push((n, shown, dropped));
    }

    let sent = sent_responses(&lines, RESPONSES);
    browser
        .run_async(&wait_script(&format!(r##"document.querySelectorAll("#rows tr[data-seq]").length >= {RESPONSES}"##)))
        .await;
    let page: Value = browser.run_async(LIVE_STATE).await;
    browser.quit().await;

    for (n, shown, _) in &aborts {
        assert!(*shown > 0 && *shown < TOKENS, "abort in response {n} after {shown} tokens is not mid-response");
    }
    assert!(page["reconnects"].as_u64().unwrap() >= 2, "the browser did not reconnect after each abort: {page}");
    assert_eq!(page["resets"], 0, "{page}");
    assert_eq!(page["live"], serde_json::json!([]), "a response was left in progress: {page}");
    assert_eq!(page["other"], serde_json::json!([]), "an unexpected row: {page}");
    let durable = page["durable"].as_array().unwrap();
    assert_eq!(durable.len(), RESPONSES, "one row per response: {page}");
    for (i, (row, sent)) in durable.iter().zip(&sent).enumerate() {
        let n = i + 1;
        assert_eq!(row["seq"], n, "{row}");
        assert_eq!(row["text"], sent.as_str(), "response {n}'s durable message: {row}");
        check_response(n, sent, row["streamed"].as_str().expect("the row concluded streamed output"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row["tokens"], TOKENS, "{row}");
        assert_eq!(row["incomplete"], false, "{row}");
    }
    assert_eq!(page["state"], "live", "{page}");
    eprintln!("aborts (response, tokens shown, connections dropped): {aborts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_marks_a_response_incomplete_when_the_ring_lost_its_tokens() {
    // One 60-token response; the ring keeps only the session's last 5
    // tokens, so the ~30 tokens streamed during the browser's reconnection
    // delay are gone when it comes back.
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--responses", "1", "--tokens", "60", "--interval-ms", "100", "--ring-per-stream", "5"];
    let (_writer, lines, proxy, _driver, browser) = open_live(tmp.path(), &args.map(str::to_owned)).await;
    let shown = browser.run_async(&mid_response_script(1, 10)).await.as_u64().unwrap();
    assert!(proxy.drop_connections() >= 1, "the page's event stream was not open through the proxy");

    let sent = sent_responses(&lines, 1);
    browser.run_async(&wait_script(r##"document.querySelectorAll("#rows tr[data-seq]").length >= 1"##)).await;
    let page: Value = browser.run_async(LIVE_STATE).await;
    browser.quit().await;

    assert_eq!(page["resets"], 1, "{page}");
    let other = page["other"].as_array().unwrap();
    assert!(
        other.len() == 1 && other[0].as_str().unwrap().contains("live_output_expired: streamed output was lost"),
        "one reset row says why: {page}"
    );
    assert_eq!(page["live"], serde_json::json!([]), "{page}");
    let [row] = page["durable"].as_array().unwrap().as_slice() else { panic!("one response row: {page}") };
    assert_eq!(row["text"], sent[0].as_str(), "the durable message is whole: {row}");
    assert_eq!(row["incomplete"], true, "the streamed text is marked incomplete: {row}");
    // What was streamed: the tokens before the drop, then (once the stream
    // went on) possibly later ones, in order, none twice, some missing.
    let streamed = token_numbers(1, row["streamed"].as_str().expect("the row concluded streamed output"));
    assert!(streamed.len() < 60, "{row}");
    assert!(streamed.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {streamed:?}");
    assert!(streamed.starts_with(&(1..=shown).collect::<Vec<_>>()), "{streamed:?}");
}

/// The comparison above catches what resuming could get wrong.
#[test]
fn the_check_rejects_a_duplicated_or_missing_token() {
    let sent = "[1.1][1.2][1.3][1.4]";
    check_response(1, sent, sent).unwrap();
    for wrong in ["[1.1][1.2][1.2][1.3][1.4]", "[1.1][1.3][1.4]", "[1.1][1.2][1.3]", "[1.2][1.1][1.3][1.4]"] {
        assert!(check_response(1, sent, wrong).is_err(), "{wrong}");
    }
}

/// A fresh page (no `since`: the latest 100 events) on a writer restarted
/// over a journal whose responses an earlier process streamed: their tokens
/// are gone with that process, and the stream says so with a
/// `live_output_expired` reset before the first of them. The page has
/// nothing in progress, so nothing it shows was lost: no reset row, none
/// counted, and the earlier response's durable message is whole; then the
/// restarted writer's response, token by token. The page had opened with
/// "streamed output was lost" and one reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_page_on_a_restarted_writer_shows_no_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--responses", "1", "--tokens", "3", "--interval-ms", "10"].map(str::to_owned);
    let mut earlier = events();
    earlier.arg("__live-writer").arg(tmp.path().join("journal")).args(&args).stdin(Stdio::piped());
    let (mut earlier, _, lines) = start_with_lines(earlier, "events __live-writer", |l| l.starts_with("serving"));
    writeln!(earlier.0.stdin.as_mut().unwrap(), "go").unwrap();
    let earlier_text = sent_responses(&lines, 1).remove(0);
    while lines.recv_timeout(WAIT).expect("the writer's done line") != "done" {}
    // `emit` returns once the message is queued for the journal: killed
    // before the writer wrote it, the earlier response would not be there.
    let deadline = std::time::Instant::now() + WAIT;
    let journal = tmp.path().join("journal");
    let written = || events::layers::journal::Reader::open(&journal).ok().and_then(|r| r.last_seq().ok()) == Some(1);
    while !written() {
        assert!(std::time::Instant::now() < deadline, "the earlier writer never wrote its message");
        std::thread::sleep(std::time::Duration::from_millis(10)); // polling another process's journal
    }
    drop(earlier);

    let (_writer, lines, proxy, _driver, browser) = open_live(tmp.path(), &args).await;
    // What the page was sent first: the reset for the earlier process's output.
    let status = reqwest::get(format!("http://{}/status", proxy.addr)).await.unwrap().text().await.unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    let epoch = status["epoch"].as_str().expect("the epoch");
    let url = format!("http://{}/stream?since={epoch}-0&live_output=1", proxy.addr);
    let mut stream = reqwest::get(url).await.unwrap();
    let mut first = String::new();
    // The frame that sets the reconnect delay, then the first one with data.
    while first.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(WAIT, stream.chunk()).await.expect("a first frame in time").unwrap();
        first.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
    }
    let reset = first.strip_prefix("retry: 3000\n\n").unwrap_or_else(|| panic!("the reconnect delay first: {first}"));
    assert!(reset.starts_with("event: reset") && reset.contains("live_output_expired"), "{first}");
    drop(stream);
    let second = sent_responses(&lines, 1).remove(0);
    // Polled, so that a page that never gets there shows what it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let page: Value = loop {
        let page: Value = browser.run_async(LIVE_STATE).await;
        if page["durable"].as_array().is_some_and(|rows| rows.len() >= 2) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "two response rows within 30 s: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    browser.quit().await;

    assert_eq!((&page["resets"], &page["other"]), (&serde_json::json!(0), &serde_json::json!([])), "{page}");
    let [earlier_row, row] = page["durable"].as_array().unwrap().as_slice() else {
        panic!("two response rows: {page}")
    };
    assert_eq!(
        (&earlier_row["seq"], &earlier_row["text"]),
        (&serde_json::json!(1), &serde_json::json!(earlier_text)),
        "{page}"
    );
    assert_eq!((&row["text"], &row["incomplete"]), (&serde_json::json!(second), &serde_json::json!(false)), "{page}");
    // The restarted writer's own tokens, which have positions of their own.
    assert_eq!(row["streamed"], serde_json::json!(second), "{page}");
}

/// A writer killed mid-response and restarted on the same journal, the page
/// reconnecting to the new one (the proxy now points there) with the old
/// run's last token id: after the `live_output_expired` reset, the new
/// writer's response starts a row of its own, whose streamed text is
/// exactly its tokens, complete; the old partial response stays as its own
/// row, marked interrupted and incomplete. The new tokens had been added to
/// the old row: one response reading `[1.1]…[1.k][1.1][1.2][1.3]`, marked
/// incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_writers_response_gets_its_own_row() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--responses", "1", "--tokens", "60", "--interval-ms", "100"].map(str::to_owned);
    let (first, _lines, proxy, _driver, browser) = open_live(tmp.path(), &args).await;
    let shown = browser.run_async(&mid_response_script(1, 10)).await.as_u64().unwrap();
    drop(first); // SIGKILL mid-response: its message never reaches the journal

    let args = ["--responses", "1", "--tokens", "3", "--interval-ms", "10"].map(str::to_owned);
    let (mut second, lines, server) = start_writer(tmp.path(), &args);
    proxy.retarget(server);
    proxy.drop_connections();
    // The page reconnects to the new writer by itself, then it streams.
    browser
        .run_async(&wait_script(
            r##"document.getElementById("state").dataset.state === "live"
                && Number(document.getElementById("reconnects").textContent) >= 1"##,
        ))
        .await;
    writeln!(second.0.stdin.as_mut().unwrap(), "go").unwrap();
    let sent = sent_responses(&lines, 1).remove(0);
    browser.run_async(&wait_script(r##"document.querySelectorAll("#rows tr[data-seq]").length >= 1"##)).await;
    let page: Value = browser.run_async(LIVE_STATE).await;
    let interrupted: Value = browser
        .run_async(
            r##"const done = arguments[arguments.length - 1];
            done(Array.from(document.querySelectorAll("#rows tr.interrupted"), (tr) => ({
              text: tr.querySelector("td.text").textContent,
              incomplete: tr.dataset.incomplete !== undefined,
            })));"##,
        )
        .await;
    browser.quit().await;

    let [row] = page["durable"].as_array().unwrap().as_slice() else { panic!("one response row: {page}") };
    assert_eq!(row["text"], sent.as_str(), "{row}");
    assert_eq!(row["streamed"], sent.as_str(), "the new response's own tokens, only: {page}");
    assert_eq!(row["incomplete"], false, "{row}");
    assert_eq!(page["live"], serde_json::json!([]), "{page}");
    let [old] = interrupted.as_array().unwrap().as_slice() else { panic!("one interrupted row: {interrupted} {page}") };
    assert_eq!(old["incomplete"], true, "{old}");
    let tokens = token_numbers(1, old["text"].as_str().unwrap());
    assert!(tokens.len() as u64 >= shown && tokens.windows(2).all(|w| w[1] == w[0] + 1), "{old}");
}

/// Responses that never end (tokens with no durable message) cannot grow
/// the page: a row keeps the last 64 Ki characters of its response
/// (`data-truncated`), a row trimmed off the table (`rows=3`) comes back
/// at its end when its stream streams again, and at most `rows` such
/// trimmed rows are remembered (those that streamed last); a stream let go
/// starts its next row marked incomplete, as does a response whose first
/// token was skipped as undecodable. The frames are fed to the page's own
/// handler, so what each one holds is exact. A response's text had grown
/// without bound, rewritten whole at each token, and a trimmed row went on
/// streaming where nobody could see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_never_end_cannot_grow_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--responses", "0"].map(str::to_owned);
    let (mut writer, line, _lines) = {
        let mut writer = events();
        writer.arg("__live-writer").arg(tmp.path().join("journal")).args(&args).stdin(Stdio::piped());
        start_with_lines(writer, "events __live-writer", |l| l.starts_with("serving"))
    };
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();
    let (_driver, browser) = open_browser(&tmp.path().join("chromium-profile")).await;
    browser.goto(&format!("{url}?live_output=1&rows=3")).await;
    browser.run_async(&wait_script(r##"document.getElementById("state").dataset.state === "live""##)).await;
    writeln!(writer.0.stdin.as_mut().unwrap(), "go").unwrap();
    let page: Value = browser
        .run_async(
            r##"const done = arguments[arguments.length - 1];
            const token = (stream, index, text) => onEphemeral({
              data: JSON.stringify({ seq: 0, index, ts: 0, stream, event: { Token: { text } } }),
              lastEventId: `1-0.${index}`,
            });
            const row = (stream) => document.querySelector(`#rows tr[data-stream="${stream}"]`);
            // The page renders in batches (`flush`, every 50 ms): rendered
            // here at once, so each look below sees what the frames did.
            token("a", 1, "x".repeat(40000));
            token("a", 2, "y".repeat(40000));
            for (let i = 0; i < 5; i++) token(`s${i}`, 1, "t");
            flush();
            const trimmed = row("a") === null;
            token("a", 3, "z");
            flush();
            const a = row("a");
            const back = a !== null && a === document.querySelector("#rows").lastElementChild;
            const text = a === null ? "" : a.querySelector("td.text").textContent;
            for (let i = 5; i < 15; i++) token(`s${i}`, 1, "t");
            flush();
            const remembered = inProgress.size;
            // "a" was let go (7 rows streamed after it): its next token
            // starts a row marked incomplete.
            token("a", 4, "w");
            // A response whose first token was skipped as undecodable.
            onUndecodable({
              data: JSON.stringify({ seq: 0, index: 1, stream: "u", error: "not JSON" }),
              lastEventId: "1-0.1",
            });
            token("u", 2, "v");
            flush();
            done({
              trimmed, back, length: text.length, tail: text.endsWith("y".repeat(100) + "z"),
              truncated: a?.dataset.truncated ?? null, remembered,
              forgottenIncomplete: row("a")?.classList.contains("incomplete") ?? null,
              undecodableIncomplete: row("u")?.classList.contains("incomplete") ?? null,
            });"##,
        )
        .await;
    browser.quit().await;
    assert_eq!(page["trimmed"], true, "the response's row went off the table: {page}");
    assert_eq!(page["back"], true, "its next token brought it back at the end: {page}");
    assert_eq!((&page["length"], &page["tail"]), (&serde_json::json!(65536), &serde_json::json!(true)), "{page}");
    assert_eq!(page["truncated"], "1", "{page}");
    // 16 streams in progress: the 3 rows on the table and the 3 trimmed
    // ones that streamed last.
    assert_eq!(page["remembered"], 6, "{page}");
    assert_eq!(page["forgottenIncomplete"], true, "a let-go response's next row lacks its start: {page}");
    assert_eq!(page["undecodableIncomplete"], true, "a response whose first token was skipped: {page}");
}
