//! `events serve DIR`: serves a journal that another process writes,
//! read-only, over HTTP with `events-http` — Server-Sent Events at
//! `/stream`, JSON at `/status`, and the live viewer page at `/`.
//!
//! Invariant: the server never writes to the journal and takes no lock: it
//! follows the files through a `FeedReader`, so it can run beside the writer
//! (or after it exited) and be stopped at any moment without harm (SIGINT
//! or SIGTERM closes the open streams and exits 0, a second one while it
//! stops exits 2 at once; a page reconnects to the next server with its
//! last id). It
//! follows the directory, not one journal: if the directory is recreated
//! (a new journal, a new epoch), connected pages get an explicit
//! `epoch_mismatch` reset and the new journal from its first event, and
//! `/status` reports the new epoch. Started before the writer, it waits for
//! the directory's first segment. A journal written with the
//! self-describing codec is served whatever its event types (each event as
//! the JSON its MessagePack holds); any other as the demo's events, and
//! refused at start when its newest record is another application's event
//! of the same layout. The codec is chosen
//! at start: a directory recreated later with a journal of the other codec
//! is not served until `serve` is started again.

use std::future::IntoFuture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::{Error, FeedReader, JournalError, MsgPack};
use events_http::FeedRouter;
use events_http::axum::serve::ListenerExt;

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
    /// How long a `/stream` client may take nothing while its stream has
    /// something for it before its response is ended (it reconnects with
    /// its last id when it reads again), 100ms..=1440m (a day). A
    /// connection whose client took nothing for twice this long is closed
    /// by the system (`TCP_USER_TIMEOUT`, on Linux 5.11 and later): it had
    /// stayed open, holding the server's buffers, as long as the client
    /// kept it.
    #[arg(long, default_value = "60s", value_parser = parse_stall_timeout)]
    stall_timeout: Duration,
}

/// A `--stall-timeout`: a duration (`crate::args::parse_duration`) within
/// what `FeedRouter::stall_timeout` takes, rather than held to it unsaid.
fn parse_stall_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::args::parse_duration(s)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(24 * 3600)).contains(&d) {
        return Err(format!("{s:?}: a stall timeout is 100ms..=1440m (a day)"));
    }
    Ok(d)
}

/// Serves until SIGINT or SIGTERM, which close the open streams and stop
/// the server (exit 0, within [`STOP_WAIT`] of the signal; at once while
/// it waits for the journal; a second signal while stopping exits 2 at
/// once); prints one line with the URL once listening, before any wait for
/// the journal.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    crate::runtime()?.block_on(async {
        // The address first: one in use is an error at once, not after the
        // wait for a writer.
        let listener = tokio::net::TcpListener::bind(args.addr.as_str())
            .await
            .map_err(|e| Failure::Error(format!("cannot listen on {}: {e}", args.addr).into()))?;
        let addr = listener.local_addr()?;
        // A client that takes nothing: its response ends after the stall
        // timeout (`FeedRouter::stall_timeout`), but hyper, which no longer
        // polls it, keeps the connection and its buffers for as long as the
        // client's system answers the zero-window probes. The system closes
        // it once nothing was taken for twice the stall timeout.
        let user_timeout = args.stall_timeout.saturating_mul(2);
        let listener = listener.tap_io(move |tcp| close_when_nothing_is_taken(tcp, user_timeout));
        let (stopped, mut stop_signal) = tokio::sync::watch::channel(None);
        let (again, mut signalled_again) = tokio::sync::oneshot::channel();
        let mut signals = StopSignals::install()?;
        tokio::spawn(async move {
            let signal = signals.next().await;
            let _ =
                writeln!(std::io::stderr(), "{signal}: closing the open streams and stopping (again to exit at once)");
            stopped.send_replace(Some(signal));
            // A second one ends the stop's wait for the connections at once
            // (the handlers stay installed: it had been ignored).
            let _ = again.send(signals.next().await);
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
            routes(FeedReader::<Generic, MsgPack>::open_with_codec(&args.dir, MsgPack)?, args.stall_timeout)
        } else {
            refuse_another_applications(&args.dir)?;
            routes(FeedReader::<DemoEvent>::open(&args.dir)?, args.stall_timeout)
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
            Ok(signal) = &mut signalled_again => {
                let what = if signal == "SIGINT" { "interrupted" } else { "terminated" };
                return Err(Failure::Error(format!("{what} again while stopping").into()));
            }
        }
        Ok(())
    })
}

/// Refuses a journal served as the demo's events whose newest record is
/// another application's event of the demo's layout (not under the demo's
/// streams, as `dump` and `tail` tell them): they had been served as demo
/// events, wrong data said nowhere. A record that does not decode at all
/// is served as such (an `undecodable` or `error` frame says so); a
/// journal with no record yet is served (a demo starting).
fn refuse_another_applications(dir: &Path) -> Result<(), Failure> {
    let reader = events::layers::journal::Reader::open(dir)?;
    let Some(last) = reader.last_record_seq().ok().filter(|&last| last > 0) else { return Ok(()) };
    let Ok(records) = reader.read_since(last - 1) else { return Ok(()) };
    let Some(Ok(record)) = records.into_iter().next() else { return Ok(()) };
    if !Payloads::another_application_s(record.payload()) {
        return Ok(());
    }
    Err(Failure::Error(
        format!(
            "{}: its record {} is not the demo's event (its stream id is not the demo's): `events serve` serves \
             the demo's journals and self-describing (MessagePack) ones",
            dir.display(),
            record.seq()
        )
        .into(),
    ))
}

/// The routes of `reader`, and the handle that closes their streams.
fn routes<E: events::Event, C: events::Codec>(
    reader: FeedReader<E, C>,
    stall_timeout: Duration,
) -> (events_http::axum::Router, events_http::StreamCloser) {
    let routes = FeedRouter::new(reader).stall_timeout(stall_timeout);
    let closer = routes.closer();
    (routes.build(), closer)
}

/// Sets `TCP_USER_TIMEOUT` on an accepted connection: the system closes
/// it once data it sent stayed unacknowledged, or its peer's window closed
/// (the client takes nothing: Linux 5.11 and later), for `timeout`. A
/// failure leaves the connection as it was, said once.
#[cfg(target_os = "linux")]
fn close_when_nothing_is_taken(tcp: &mut tokio::net::TcpStream, timeout: Duration) {
    use std::os::fd::AsRawFd;
    static TOLD: std::sync::Once = std::sync::Once::new();
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: a valid socket descriptor, borrowed for the call; the option's
    // value is a `c_uint` of the size given.
    let set = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&raw const ms).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if set != 0 {
        let e = std::io::Error::last_os_error();
        TOLD.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "cannot set TCP_USER_TIMEOUT ({e}): a client that takes nothing keeps its connection"
            );
        });
    }
}

/// Elsewhere the option is not set (said once): a client that takes nothing
/// keeps its connection, as without it.
#[cfg(not(target_os = "linux"))]
fn close_when_nothing_is_taken(_tcp: &mut tokio::net::TcpStream, _timeout: Duration) {
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "TCP_USER_TIMEOUT is set on Linux only: a client that takes nothing keeps its connection"
        );
    });
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
