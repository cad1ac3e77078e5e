//! `events serve DIR`: serves a journal that another process writes,
//! read-only, over HTTP with `events-http` — Server-Sent Events at
//! `/stream`, JSON at `/status`, and the live viewer page at `/`.
//!
//! Invariant: the server never writes to the journal and takes no lock: it
//! follows the files through a `FeedReader`, so it can run beside the writer
//! (or after it exited) and be stopped at any moment without harm (SIGINT
//! or SIGTERM closes the open streams and exits 0; a page reconnects to the
//! next server with its last id). It
//! follows the directory, not one journal: if the directory is recreated
//! (a new journal, a new epoch), connected pages get an explicit
//! `epoch_mismatch` reset and the new journal from its first event, and
//! `/status` reports the new epoch. Started before the writer, it waits for
//! the directory's first segment. A journal written with the
//! self-describing codec is served whatever its event types (each event as
//! the JSON its MessagePack holds); any other as the demo's events.

use std::future::IntoFuture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::{Error, FeedReader, JournalError, MsgPack};
use events_http::FeedRouter;

use crate::model::DemoEvent;
use crate::render::{Generic, Payloads};
use crate::{Failure, StopSignals};

/// Arguments of `events serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The journal directory (written by `events demo` or any feed of demo events).
    dir: PathBuf,
    /// The address to listen on, HOST:PORT (a host name is resolved, and
    /// the first of its addresses that can be bound is); port 0 picks a
    /// free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
}

/// Serves until SIGINT or SIGTERM, which close the open streams and stop
/// the server (exit 0, within [`STOP_WAIT`] of the signal; at once while
/// it waits for the journal); prints one line with the URL once listening,
/// before any wait for the journal.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    crate::runtime()?.block_on(async {
        // The address first: one in use is an error at once, not after the
        // wait for a writer.
        let listener = tokio::net::TcpListener::bind(args.addr.as_str())
            .await
            .map_err(|e| Failure::Error(format!("cannot listen on {}: {e}", args.addr).into()))?;
        let addr = listener.local_addr()?;
        let (stopped, mut stop_signal) = tokio::sync::watch::channel(None);
        let mut signals = StopSignals::install()?;
        tokio::spawn(async move {
            let signal = signals.next().await;
            let _ = writeln!(std::io::stderr(), "{signal}: closing the open streams and stopping");
            stopped.send_replace(Some(signal));
        });
        // The URL at once (a port 0 picks one; a supervisor may wait for
        // it), also while a journal is awaited: connections made before it
        // appears are answered once it does. A closed stdout (its reader
        // gone) is no reason to stop serving.
        let _ = writeln!(
            std::io::stdout(),
            "serving {} at http://{addr}/ (SSE at /stream, JSON at /status)",
            args.dir.display()
        );
        // A signal while waiting for the journal stops at once: nothing is open.
        tokio::select! {
            waited = wait_for_journal(&args.dir) => waited?,
            _ = stop_signal.wait_for(Option::is_some) => return Ok(()),
        }
        // A self-describing journal is served whatever its event types;
        // any other is served as the demo's events (a journal of another
        // codec is refused, naming it).
        let (router, closer) = if Payloads::of(&args.dir) == Payloads::SelfDescribing {
            routes(FeedReader::<Generic, MsgPack>::open_with_codec(&args.dir, MsgPack)?)
        } else {
            routes(FeedReader::<DemoEvent>::open(&args.dir)?)
        };
        let app = router.merge(events_http::viewer());
        // SIGINT or SIGTERM: the open streams end (a page's `EventSource`
        // reconnects to the next server with its last id), then the server;
        // within a bound, since a client that stopped reading keeps its
        // connection (its response is not polled, so it never sees the end).
        let mut signalled = stop_signal.clone();
        let shutdown = async move {
            let _ = signalled.wait_for(Option::is_some).await;
            closer.close();
        };
        let serving = events_http::axum::serve(listener, app).with_graceful_shutdown(shutdown).into_future();
        let bounded = async {
            let _ = stop_signal.wait_for(Option::is_some).await;
            tokio::time::sleep(STOP_WAIT).await;
        };
        tokio::select! {
            served = serving => served?,
            () = bounded => {
                let _ = writeln!(std::io::stderr(), "a client still held its connection after {STOP_WAIT:?}; stopped");
            }
        }
        Ok(())
    })
}

/// The routes of `reader`, and the handle that closes their streams.
fn routes<E: events::Event, C: events::Codec>(
    reader: FeedReader<E, C>,
) -> (events_http::axum::Router, events_http::StreamCloser) {
    let routes = FeedRouter::new(reader);
    let closer = routes.closer();
    (routes.build(), closer)
}

/// How long a graceful stop waits for the connections to close.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Waits (with one message on stderr) while `dir` does not exist yet or
/// holds no segment yet, so an operator can start the server before the
/// writer. Any other error ends the command.
async fn wait_for_journal(dir: &Path) -> Result<(), Failure> {
    let mut told = false;
    loop {
        let found = events::layers::journal::Reader::open(dir).and_then(|reader| reader.newest_header());
        let missing = match found.map_err(Error::Journal) {
            Ok(_) => return Ok(()),
            Err(Error::Journal(JournalError::NoSegments { .. })) => "holds no journal segment yet",
            Err(Error::Journal(JournalError::Io { source, .. })) if source.kind() == std::io::ErrorKind::NotFound => {
                "does not exist yet"
            }
            Err(e) => return Err(e.into()),
        };
        if !told {
            // A closed stderr is no reason to stop waiting (`eprintln!` panics on it).
            let _ = writeln!(
                std::io::stderr(),
                "waiting: {} {missing}; start the writer (e.g. `events demo --dir {0}`)",
                dir.display()
            );
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
