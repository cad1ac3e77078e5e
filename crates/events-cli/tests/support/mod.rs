//! Shared helpers for the `events replicate` tests: a `nats-server -js`
//! owned by the test (a free 127.0.0.1 port, a temporary store, killed by
//! PID on drop; `events-testkit`'s `NatsServer`, re-exported as [`Server`]),
//! and an `events replicate --json` child process whose JSON lines are read
//! on a thread and awaited under a deadline.
//!
//! Invariant: every wait polls a real condition (a TCP connect) or awaits a
//! line the child prints, under a deadline; nothing sleeps for a fixed time
//! to let things settle, and every process started here is killed on drop.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub use events_testkit::nats::{NatsServer as Server, free_port};

/// How long any one step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(60);

/// The `events` binary.
pub fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

/// Waits (at most [`STEP`]) until the pipe `stdout` of `child` is full:
/// over half its size, and no line more in half a second of 10 ms looks
/// (a pipe fills page by page, leaving part of a page where a line did not
/// fit). `child` is then blocked writing to it; it must not exit first.
pub fn until_the_pipe_is_full(stdout: &impl std::os::fd::AsRawFd, child: &mut Child, what: &str) {
    // SAFETY: F_GETPIPE_SZ on a pipe this test owns.
    let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ");
    let deadline = Instant::now() + STEP;
    let (mut before, mut unchanged) = (0, 0);
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD on the read end of a pipe this test owns, into a c_int.
        assert_eq!(unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut queued) }, 0);
        unchanged = if queued == before { unchanged + 1 } else { 0 };
        before = queued;
        if queued >= size / 2 && unchanged >= 50 {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "{what} exited");
        assert!(Instant::now() < deadline, "the pipe never filled: {queued} bytes");
        std::thread::sleep(Duration::from_millis(10)); // polling the pipe
    }
}

/// An `events replicate --json` child process.
pub struct Replicate {
    child: Child,
    lines: Receiver<String>,
}

impl Replicate {
    /// Starts `events replicate DIR --server URL --stream STREAM --json
    /// --interval 100ms` plus `extra`, and returns once its `started` line
    /// is read (with that line).
    pub fn start(dir: &Path, url: &str, stream: &str, extra: &[&str]) -> (Replicate, serde_json::Value) {
        let mut child = events()
            .arg("replicate")
            .arg(dir)
            .args(["--server", url, "--stream", stream, "--json", "--interval", "100ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut replicate = Replicate { child, lines };
        let started = replicate.next_line();
        assert_eq!(started["type"], "started", "{started}");
        (replicate, started)
    }

    /// The next JSON line (fails the test after [`STEP`]).
    pub fn next_line(&mut self) -> serde_json::Value {
        match self.lines.recv_timeout(STEP) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
            Err(RecvTimeoutError::Timeout) => panic!("no line from events replicate within {STEP:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("events replicate exited: {:?}", self.child.try_wait()),
        }
    }

    /// Reads progress lines until one satisfies `done`; returns it.
    pub fn progress_until(&mut self, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let line = self.next_line();
            assert_eq!(line["type"], "progress", "{line}");
            if done(&line) {
                return line;
            }
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this test owns and has not reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// SIGTERM, then the `stopped` line and the exit status.
    pub fn terminate(mut self) -> (serde_json::Value, ExitStatus) {
        self.signal(libc::SIGTERM);
        let stopped = loop {
            let line = self.next_line();
            if line["type"] == "stopped" {
                break line;
            }
            assert_eq!(line["type"], "progress", "{line}");
        };
        (stopped, self.wait())
    }

    /// SIGKILL (a crash): nothing is finished.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The exit status (fails the test after [`STEP`]).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "events replicate did not exit");
            std::thread::sleep(Duration::from_millis(10)); // polling a child's exit
        }
    }
}

impl Drop for Replicate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
