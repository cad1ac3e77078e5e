//! The `events` command: `demo` (the main job: the whole library doing real
//! work, with a crash and a recovery, and a table of what it verified) and
//! the operator's tools `inspect`, `consumers`, `dump`, `verify`, `tail`,
//! `serve` and `replicate`.
//!
//! Exit codes: 0 success; 1 a check failed (an invariant in `demo`, a
//! problem found by `verify`); 2 usage or I/O errors. Errors print as one
//! line plus their cause chain, never a panic or a debug dump.
//!
//! Output: the reports go to stdout through [`Out`] (the `outln!` macro), for
//! which a closed pipe (`events inspect DIR | head -1`) is a quiet end: the
//! command stops writing and exits as if it had finished (0, or 1 when
//! `verify` already found a problem), with nothing on stderr. Lines still
//! printed with `println!` (the demo's table) get the same treatment from
//! [`quiet_on_closed_stdout`]. `serve` and `replicate` keep running when
//! their stdout closes: a supervisor would read an exit 0 as done.

/// Writes one line to an [`Out`], returning `Err(Failure::OutputClosed)` once the reader has
/// gone: `outln!(out, "{x}")?`.
macro_rules! outln {
    ($out:expr) => {
        $out.line(format_args!(""))
    };
    ($out:expr, $($arg:tt)+) => {
        $out.line(format_args!($($arg)+))
    };
}

mod args;
mod consumers;
mod crash;
mod crash_consumer;
mod demo;
mod generic;
mod inspect;
mod live_writer;
mod model;
mod ops;
mod render;
mod replicate;
mod segments;
mod serve;

use std::fmt;
use std::io::{self, Write as _};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Event pipelines with a durable, crash-safe change feed.
#[derive(Debug, Parser)]
#[command(name = "events", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a realistic feed: sessions, lossless UI subscribers, a sink, a
    /// resuming client, a chat UI that reconnects mid-response, a crash and
    /// a recovery; print what was verified.
    ///
    /// Example: events demo --events 200000 --sessions 8 --sync always
    Demo(demo::DemoArgs),
    /// Show a journal's epoch, format, segments and lock holder.
    ///
    /// Example: events inspect ./events-demo
    Inspect {
        /// The journal directory.
        dir: PathBuf,
    },
    /// List the durable consumers: name, checkpoint, lag (events), pinned
    /// (retention keeps what they need), and any problem reading one; or
    /// delete one with --delete NAME (refused while that consumer runs). Works beside a running writer.
    ///
    /// Example: events consumers ./events-demo --json
    Consumers(consumers::ConsumersArgs),
    /// Print one line per record: seq, time, stream, size and payload. A
    /// --json line's `cursor` (`<epoch>-<seq>`) is what --from takes to go
    /// on after it, in that journal only.
    ///
    /// Example: events dump ./events-demo --from 100 --limit 20 --json
    Dump(ops::DumpArgs),
    /// Check every frame of every segment (CRC, seq contiguity, headers).
    /// Exits 0 when clean, 1 listing every problem, 2 on usage or I/O errors.
    ///
    /// Example: events verify ./events-demo
    Verify {
        /// The journal directory.
        dir: PathBuf,
    },
    /// Print records as another process appends them. A --json line's
    /// `cursor` (`<epoch>-<seq>`), given to --from after a restart, resumes
    /// after it, or says with a reset that the directory holds another journal.
    ///
    /// Example: events tail ./events-demo --from 0 --follow
    Tail(ops::TailArgs),
    /// Serve a journal read-only over HTTP: a live viewer page at /,
    /// Server-Sent Events at /stream (resumable with Last-Event-ID), status
    /// JSON at /status. SIGINT/SIGTERM closes the open streams and stops it
    /// (again to exit at once).
    ///
    /// Example: events serve ./events-demo --addr 127.0.0.1:7878
    Serve(serve::ServeArgs),
    /// Replicate a journal into a NATS JetStream stream, exactly once, resuming where it
    /// stopped; progress on a terminal (or JSON lines with --json); SIGINT/SIGTERM stops
    /// after the publishes in flight.
    ///
    /// Example: events replicate ./events-demo --server 127.0.0.1:4222 --stream EVENTS --replicas 3
    Replicate(replicate::ReplicateArgs),
    /// Internal: the child process of the demo's crash test.
    #[command(hide = true, name = "__crash-writer")]
    CrashWriter(crash::WriterArgs),
    /// Internal: a writer serving its own live output, for the viewer's browser test.
    #[command(hide = true, name = "__live-writer")]
    LiveWriter(live_writer::LiveWriterArgs),
}

/// A command's failure: what to print and how to exit.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A check failed (exit 1); the details were already printed.
    CheckFailed,
    /// Usage or I/O error (exit 2).
    Error(Box<dyn std::error::Error + Send + Sync>),
    /// Whoever read stdout closed it (`| head`): stop quietly, exit 0.
    OutputClosed,
}

/// The commands' standard output. Every line goes through [`Out::line`] (or `outln!`), so a
/// reader that stops early ends the command quietly instead of panicking in `println!`:
/// `BrokenPipe` becomes [`Failure::OutputClosed`]; any other write error (a full disk behind a
/// redirection) is a [`Failure::Error`].
pub(crate) struct Out {
    stdout: io::StdoutLock<'static>,
}

impl Out {
    /// Locks stdout for the command's lifetime.
    pub(crate) fn new() -> Self {
        Self { stdout: io::stdout().lock() }
    }

    /// Writes `line` and a newline (stdout is line-buffered, so it leaves at once).
    pub(crate) fn line(&mut self, line: fmt::Arguments<'_>) -> Result<(), Failure> {
        writeln!(self.stdout, "{line}").map_err(output_failure)
    }

    /// Flushes what was written (for output that must be seen before the command waits).
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        self.stdout.flush().map_err(output_failure)
    }

    /// [`Failure::OutputClosed`] once whoever read stdout closed it,
    /// without writing: for a command that waits with nothing to print
    /// (`tail --follow` on a quiet journal), which a write would otherwise
    /// tell only at the next line (`| grep -m1` had it wait for one).
    /// What `poll` reports for a pipe's write end with no reader left.
    pub(crate) fn check_open() -> Result<(), Failure> {
        let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
        // SAFETY: one valid `pollfd`, for the one entry `poll` is told of;
        // a zero timeout does not block.
        let ready = unsafe { libc::poll(&raw mut fd, 1, 0) };
        if ready == 1 && fd.revents & libc::POLLERR != 0 {
            return Err(Failure::OutputClosed);
        }
        Ok(())
    }
}

/// A failed write to stdout: a closed pipe ends the command quietly; any
/// other failure (a full disk under a redirection) is an error naming
/// stdout, as the demo's (`failed printing to stdout: …`).
fn output_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::OutputClosed
    } else {
        Failure::Error(format!("failed printing to stdout: {e}").into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(Box::new(e))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("EVENTS_LOG"))
        .with_writer(std::io::stderr)
        // A failed write of a log line (stderr's reader gone) is dropped:
        // tracing-subscriber reports it with `eprintln!`, which then
        // panics, ending the command (exit 101) or the task that logged.
        .log_internal_errors(false)
        .init();
    let result = quiet_on_closed_stdout(|| match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Inspect { dir } => inspect::inspect(&dir),
        Command::Consumers(args) => consumers::consumers(&args),
        Command::Dump(args) => ops::dump(&args),
        Command::Verify { dir } => ops::verify(&dir),
        Command::Tail(args) => ops::tail(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Replicate(args) => replicate::replicate(&args),
        Command::CrashWriter(args) => crash::writer(&args),
        Command::LiveWriter(args) => live_writer::live_writer(&args),
    });
    match result {
        Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(Failure::CheckFailed) => ExitCode::from(1),
        Err(Failure::Error(e)) => {
            // Not `eprintln!`: it panics (exit 101) when stderr's reader is gone.
            let _ = writeln!(io::stderr(), "error: {}", events::error_chain(&*e));
            ExitCode::from(2)
        }
    }
}

/// Runs a command so that a `println!` hitting a closed stdout ends it like [`Out`] does
/// (`Failure::OutputClosed`, exit 0, nothing on stderr) instead of with a panic message and
/// exit 101, and one failing otherwise (a full disk: `> /dev/full`) ends it with that error
/// (exit 2, one line). `println!` panics with std's fixed "failed printing to stdout: …";
/// that panic is silenced and caught here, every other panic is reported and propagated as
/// before. The commands that write through [`Out`] never get here; this covers the lines
/// still printed with `println!` (the demo's table and JSON, `serve`'s banner).
pub(crate) fn quiet_on_closed_stdout(command: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !is_stdout_panic(info.payload_as_str()) {
            report(info);
        }
    }));
    match panic::catch_unwind(AssertUnwindSafe(command)) {
        Ok(result) => result,
        Err(payload) => {
            let message = events::panic_message(&*payload);
            if !is_stdout_panic(Some(&message)) {
                panic::resume_unwind(payload)
            } else if message.contains("Broken pipe") {
                Err(Failure::OutputClosed)
            } else {
                Err(Failure::Error(message.into()))
            }
        }
    }
}

/// A command's result once its report was printed (`printed`), for a check
/// that passed (`ok`) or failed: a failed check stays failed (exit 1) when
/// the reader went away mid-report, as `verify | head -1` must not read as
/// a pass.
pub(crate) fn verdict(printed: Result<(), Failure>, ok: bool) -> Result<(), Failure> {
    match printed {
        Ok(()) | Err(Failure::OutputClosed) if !ok => Err(Failure::CheckFailed),
        printed => printed,
    }
}

/// Whether a panic message is `println!`'s on a stdout it could not write
/// (a closed pipe, EPIPE, or any other error).
fn is_stdout_panic(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.starts_with("failed printing to stdout"))
}

/// A multi-threaded tokio runtime for the async commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// SIGINT and SIGTERM for the commands that stop gracefully (`serve`,
/// `replicate`): once installed, neither kills the process.
pub(crate) struct StopSignals {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (inside a runtime).
    pub(crate) fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals { sigint: signal(SignalKind::interrupt())?, sigterm: signal(SignalKind::terminate())? })
    }

    /// The name of the next SIGINT or SIGTERM.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.sigint.recv() => "SIGINT",
            _ = self.sigterm.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed check whose report the reader stopped reading is still a
    /// failure; the demo's verdict read as a pass (exit 0) then.
    #[test]
    fn a_failed_check_stays_failed_when_its_report_is_cut_short() {
        let code = |r: Result<(), Failure>| match r {
            Ok(()) => 0,
            Err(Failure::OutputClosed) => 10,
            Err(Failure::CheckFailed) => 1,
            Err(Failure::Error(_)) => 2,
        };
        assert_eq!(code(verdict(Err(Failure::OutputClosed), false)), 1);
        assert_eq!(code(verdict(Ok(()), false)), 1);
        assert_eq!(code(verdict(Err(Failure::OutputClosed), true)), 10);
        assert_eq!(code(verdict(Ok(()), true)), 0);
        assert_eq!(code(verdict(Err(Failure::Error("disk full".into())), false)), 2);
    }
}
