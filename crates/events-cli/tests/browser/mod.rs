//! Shared helpers for the real-browser tests of the viewer
//! (`serve_browser.rs`, `serve_browser_live.rs`): child processes killed on
//! drop, started once they print a ready line, and a WebDriver session on a
//! local chromedriver driving headless Chromium.
//!
//! Invariant: every process started here is killed when its guard drops,
//! pass or fail, and every wait has a deadline ([`WAIT`]).
//!
//! The WebDriver calls are a handful of JSON requests, spoken directly over
//! reqwest rather than through a WebDriver client crate: that is all these
//! tests need, and it keeps the build small.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different subset of the helpers")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use events_testkit::nats::free_port;
use serde_json::{Value, json};

/// The longest any step may take (a cold Chromium start on a busy machine
/// included).
pub const WAIT: Duration = Duration::from_secs(60);

/// A child process killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

/// Starts `command` with piped stdout and returns it once a line satisfying
/// `ready` was printed (with that line); the rest of stdout is drained on a
/// thread so the child never blocks on a full pipe.
pub fn start(command: Command, what: &str, ready: impl Fn(&str) -> bool) -> (Killed, String) {
    let (guard, line, lines) = start_with_lines(command, what, ready);
    // Drop the receiver: the thread goes on draining without sending.
    drop(lines);
    (guard, line)
}

/// [`start`], also returning the lines the child prints after the ready
/// line, as they come (read them with a deadline: `recv_timeout`).
pub fn start_with_lines(
    mut command: Command,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> (Killed, String, Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e} (is it installed? `cargo xtask ci` installs it)"));
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                break;
            }
        }
        lines.for_each(drop);
    });
    loop {
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|e| panic!("{what} did not get ready: {e}"));
        if ready(&line) {
            return (guard, line, rx);
        }
    }
}

/// A WebDriver session on a local chromedriver.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    pub session: String,
}

impl Browser {
    pub async fn start(driver_port: u16, profile: &Path) -> Browser {
        let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
        let base = format!("http://127.0.0.1:{driver_port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium(), "args": args },
        }}});
        let mut browser = Browser { http, base, session: String::new() };
        let created = browser.call(reqwest::Method::POST, "/session", capabilities).await;
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .request(method, &url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "WebDriver {url}: {status}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &format!("/session/{}/url", self.session), json!({ "url": url })).await;
    }

    /// Runs an async script in the page: it gets `done` as its last argument.
    pub async fn run_async(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/async", self.session);
        self.call(reqwest::Method::POST, &path, json!({ "script": script, "args": [] })).await
    }

    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, &format!("/session/{}", self.session), json!({})).await;
    }
}

/// The browser binary: `chromium` (or `chromium-browser`), where
/// `cargo xtask ci` looks for it before it installs one.
pub fn chromium() -> String {
    events_testkit::program::find(&["chromium", "chromium-browser"])
        .map(|found| found.display().to_string())
        .expect("chromium is not installed (`cargo xtask ci` installs it)")
}

/// Waits, in the page, until `condition` (a JS expression) holds.
pub fn wait_script(condition: &str) -> String {
    format!(
        "const done = arguments[arguments.length - 1];
         const check = () => {{ if ({condition}) done(true); else setTimeout(check, 25); }};
         check();"
    )
}

/// Starts chromedriver and a browser session on it whose async scripts may
/// run for [`WAIT`]; the driver is killed when the guard is dropped.
pub async fn open_browser(profile: &Path) -> (Killed, Browser) {
    let driver_port = free_port();
    let mut driver = Command::new(events_testkit::program::program("chromedriver"));
    driver.arg(format!("--port={driver_port}"));
    let (driver, _) = start(driver, "chromedriver", |line| line.contains("started successfully"));
    let browser = Browser::start(driver_port, profile).await;
    let timeouts = json!({ "script": WAIT.as_millis() as u64 });
    browser.call(reqwest::Method::POST, &format!("/session/{}/timeouts", browser.session), timeouts).await;
    (driver, browser)
}
