//! The `events` command: `demo` (the main job: the whole library doing real
//! work, with a crash and a recovery, and a table of what it verified) and
//! the operator's tools `inspect`, `dump`, `verify` and `tail`.
//!
//! Exit codes: 0 success; 1 a check failed (an invariant in `demo`, a
//! problem found by `verify`); 2 usage or I/O errors. Errors print as one
//! line plus their cause chain, never a panic or a debug dump.

mod crash;
mod demo;
mod inspect;
mod model;
mod ops;
mod serve;

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
    /// resuming client, a crash and a recovery; print what was verified.
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
    /// Print one line per record: seq, time, stream, size and payload.
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
    /// Print records as another process appends them.
    ///
    /// Example: events tail ./events-demo --from 0 --follow
    Tail(ops::TailArgs),
    /// Serve a journal read-only over HTTP: a live viewer page at /,
    /// Server-Sent Events at /stream (resumable with Last-Event-ID), status
    /// JSON at /status.
    ///
    /// Example: events serve ./events-demo --addr 127.0.0.1:7878
    Serve(serve::ServeArgs),
    /// Internal: the child process of the demo's crash test.
    #[command(hide = true, name = "__crash-writer")]
    CrashWriter(crash::WriterArgs),
}

/// A command's failure: what to print and how to exit.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A check failed (exit 1); the details were already printed.
    CheckFailed,
    /// Usage or I/O error (exit 2).
    Error(Box<dyn std::error::Error + Send + Sync>),
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
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Inspect { dir } => inspect::inspect(&dir),
        Command::Dump(args) => ops::dump(&args),
        Command::Verify { dir } => ops::verify(&dir),
        Command::Tail(args) => ops::tail(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::CrashWriter(args) => crash::writer(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::CheckFailed) => ExitCode::from(1),
        Err(Failure::Error(e)) => {
            eprintln!("error: {}", events::error_chain(&*e));
            ExitCode::from(2)
        }
    }
}

/// A multi-threaded tokio runtime for the async commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
