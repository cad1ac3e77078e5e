//! `events replicate DIR --server URL --stream NAME`: the operator's
//! replication process, a sidecar that follows a journal another process
//! writes and copies it into a NATS JetStream stream with
//! `events_nats::Replicator`.
//!
//! Neighbours: `main.rs` registers the subcommand; `ops::require_journal`
//! refuses a directory without a journal; everything about what is sent,
//! exactly-once and resuming lives in `events-nats` (see its crate docs and
//! `docs/DEPLOYING.md`). Invariant: the command never writes a segment,
//! never takes the writer's lock, and writes only its durable consumer
//! checkpoint (`consumers/replicator.<subject>`, or `--consumer-name`,
//! which pins retention and shows its lag in `events consumers`, held
//! under the checkpoint's own lock while it runs, so a second replicator
//! of the same subject or an `events consumers --delete` of it is refused;
//! `--no-register` for a read-only journal or a trial run); what it
//! reports as replicated is what JetStream
//! acknowledged, so the "stopped after seq N" line it prints on SIGINT or
//! SIGTERM (after the publishes in flight are acknowledged) is exactly where
//! the next run resumes. When the server did not acknowledge them within
//! the ack timeout, the line says so instead ("publishes in flight went
//! unacknowledged", `"unacknowledged": true` in JSON): the server may still
//! store them, and the next run then resumes past that seq. It fails fast (exit 2, one line) when no server
//! answers at start, the stream's configuration conflicts, or the journal
//! is missing; once running, a lost server is retried with backoff and
//! shown in the progress. The progress lines go out on a thread of their
//! own: a stdout nobody reads skips them (and, for 2 s at most, holds the
//! last line), and never holds up a stop.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use events_nats::{ReplicationStats, Replicator, StreamSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::{Failure, Out, StopSignals};

/// Arguments of `events replicate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplicateArgs {
    /// The journal directory (written by a feed in another process, or after it exited).
    dir: PathBuf,
    /// NATS server URL; several separated by commas for a cluster (the client fails over).
    #[arg(long)]
    server: String,
    /// The JetStream stream: created when missing, checked when present.
    #[arg(long)]
    stream: String,
    /// The subject messages go to; with --shared, the prefix (the stream captures PREFIX.*,
    /// this journal publishes on `PREFIX.<feed id>`).
    #[arg(long, default_value = "events")]
    subject: String,
    /// JetStream replicas for a new stream; an existing one must have at least this many.
    /// Use 3 on a 3-node cluster: a single node acknowledges before fsync.
    #[arg(long, default_value_t = 1, value_parser = parse_replicas)]
    replicas: usize,
    /// Share the stream with other journals (one subject per feed; one publish in flight).
    #[arg(long)]
    shared: bool,
    /// The feed id in a shared stream (implies --shared). Default: the journal's epoch in decimal.
    #[arg(long)]
    feed: Option<String>,
    /// One JSON object per line on stdout (started, progress every interval, stopped).
    #[arg(long)]
    json: bool,
    /// Do not register the replicator as a durable consumer of the journal. By default it
    /// writes `consumers/replicator.<subject>` in the journal directory, which keeps
    /// retention from removing what it has not replicated and outlives the command
    /// (`events consumers --delete` removes it); use this for a read-only journal or a trial.
    #[arg(long)]
    no_register: bool,
    /// How often progress is shown.
    #[arg(long, default_value = "1s", value_parser = crate::args::parse_duration)]
    interval: Duration,
    /// Publishes in flight in an exclusive stream.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// How long JetStream remembers message ids to drop re-sends (a new stream gets it; an
    /// existing one must have at least this much).
    #[arg(long, default_value = "2m", value_parser = crate::args::parse_duration)]
    duplicate_window: Duration,
    /// How long to wait for each server at start (the servers of a list are tried one at a time,
    /// in random order, until one answers).
    #[arg(long, default_value = "5s", value_parser = crate::args::parse_duration)]
    connect_timeout: Duration,
    /// The name of the replicator's durable consumer checkpoint (default: `replicator.<subject>`):
    /// give each replicator of one journal its own when they publish on the same subject of two
    /// NATS systems, so that each pins what it has not replicated.
    #[arg(long, conflicts_with = "no_register")]
    consumer_name: Option<String>,
}

/// Why the replication loop ended.
enum Ended {
    /// SIGINT or SIGTERM: shut down gracefully.
    Signal(&'static str),
    /// The replicator stopped by itself after a fatal error (`wait_for`'s).
    Stopped(Option<events_nats::NatsError>),
}

/// Runs until SIGINT/SIGTERM or a fatal error.
pub(crate) fn replicate(args: &ReplicateArgs) -> Result<(), Failure> {
    crate::ops::require_journal(&args.dir, "replicate")?;
    crate::runtime()?.block_on(run(args))
}

async fn run(args: &ReplicateArgs) -> Result<(), Failure> {
    // Installed first: a signal during start-up must not kill the process
    // with publishes in flight.
    let mut signals = StopSignals::install()?;
    let servers: Vec<&str> = args.server.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    // As the messages show the list: without the passwords and tokens in it.
    let shown = servers.iter().map(|s| without_credentials(s)).collect::<Vec<_>>().join(",");
    if servers.is_empty() {
        return Err(Failure::Error(format!("--server {:?}: no server URL given", args.server).into()));
    }
    let options = async_nats::ConnectOptions::new()
        .name(format!("events replicate {}", args.dir.display()))
        .connection_timeout(args.connect_timeout);
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Error(format!("--server {shown}: {e}").into()))?;
    let spec = match (&args.feed, args.shared) {
        (Some(feed), _) => StreamSpec::shared(&args.stream, &args.subject).feed(feed),
        (None, true) => StreamSpec::shared(&args.stream, &args.subject),
        (None, false) => StreamSpec::new(&args.stream, &args.subject),
    }
    .replicas(args.replicas)
    .duplicate_window(args.duplicate_window);
    // Refused before connecting, naming the option (the server's refusal
    // had come back as a failed request, "is JetStream enabled?").
    spec.check().map_err(|e| {
        let option = match e {
            events_nats::NatsError::FeedId { .. } => "--feed",
            events_nats::NatsError::Subject { .. } => "--subject",
            _ => "--stream",
        };
        Failure::Error(format!("{option}: {e}").into())
    })?;
    if let Some(name) = &args.consumer_name {
        events::layers::journal::validate_consumer_name(name)
            .map_err(|e| Failure::Error(format!("--consumer-name: {e}").into()))?;
    }
    // No retry at start: an operator who mistyped the URL hears it at once.
    // Once connected, the client reconnects by itself and the replicator
    // retries with backoff. The client tries the servers one at a time (in
    // random order), each address a name resolves to for up to the connect
    // timeout, with a short backoff between servers: the whole attempt gets
    // that per server and one more (for the lookups, the backoff, a second
    // address), or a dead server tried first had taken all of it.
    let attempts = u32::try_from(addrs.len() + 1).unwrap_or(u32::MAX);
    let deadline = args.connect_timeout.saturating_mul(attempts);
    let connect = tokio::time::timeout(deadline, async_nats::connect_with_options(addrs, options));
    let connected = tokio::select! {
        connected = connect => connected,
        // Nothing was replicated yet: a signal ends the wait at once (it
        // had waited out the deadline, a second signal killing it).
        signal = signals.next() => {
            let _ = writeln!(std::io::stderr(), "{signal} before a NATS server answered: nothing replicated");
            return Ok(());
        }
    };
    let client = connected
        .map_err(|_| Failure::Error(format!("cannot reach NATS at {shown}: no answer within {deadline:?}").into()))?
        .map_err(|e| Failure::Error(format!("cannot reach NATS at {shown}: {e}").into()))?;
    let js = async_nats::jetstream::new(client);

    let mut builder = Replicator::builder(&args.dir, js, spec).window(args.window).register_consumer(!args.no_register);
    if let Some(name) = &args.consumer_name {
        builder = builder.consumer_name(name);
    }
    let replicator =
        builder.start().await.map_err(|e| Failure::Error(start_error(&args.stream, args.replicas, e).into()))?;

    let mut progress = Progress::new(args.json);
    let first = replicator.stats();
    let started = if args.json {
        started_json(&args.dir, &args.stream, replicator.subject(), replicator.epoch(), &first)
    } else {
        format!(
            "replicating {} (epoch {}) into stream {} on {}: resuming after seq {}, journal at {}",
            args.dir.display(),
            replicator.epoch(),
            args.stream,
            replicator.subject(),
            first.replicated,
            first.journal_latest
        )
    };
    // A reader of the progress lines that goes away (a log pipe whose
    // process died) ends the lines, not the replication: a supervisor would
    // read a quiet exit as a finished job, while the journal keeps growing.
    let mut lines_closed = false;
    let closed = |lines_closed: &mut bool| {
        if !std::mem::replace(lines_closed, true) {
            let _ = writeln!(std::io::stderr(), "stdout closed: no more progress lines; replication goes on");
        }
    };
    // Every line goes out through the thread, the first one too: a stdout
    // already full at the start blocks nothing either. A failure to write
    // it shows at the next line, as any line's does.
    let mut lines = Lines::spawn()?;
    lines.send(started)?;
    let mut ticker = tokio::time::interval(args.interval);
    ticker.tick().await; // the first tick is immediate
    let mut last = (Instant::now(), first.replicated, first.errors);
    let ended = loop {
        tokio::select! {
            signal = signals.next() => break Ended::Signal(signal),
            // Fails only when the task ended (a fatal error).
            ended = replicator.wait_for(u64::MAX) => break Ended::Stopped(ended.err()),
            _ = ticker.tick() => {
                let stats = replicator.stats();
                let now = Instant::now();
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
                let rate = stats.replicated.saturating_sub(last.1) as f64 / secs;
                let failing = stats.errors > last.2;
                last = (now, stats.replicated, stats.errors);
                if lines_closed {
                    continue;
                }
                let Some(line) = progress.show(&stats, rate, failing) else { continue };
                match lines.send(line) {
                    Ok(()) => {}
                    Err(Failure::OutputClosed) => closed(&mut lines_closed),
                    Err(e) => {
                        replicator.shutdown().await;
                        return Err(e);
                    }
                }
            }
        }
    };
    progress.finish();

    match ended {
        Ended::Stopped(fatal) => {
            // The replication's error, not a line's, is what the run ends
            // with: the one it stopped on (an error counted after it, a
            // final checkpoint commit's, may be the last one).
            let _ = lines.finish(None);
            let error = match fatal {
                Some(e) => e.to_string(),
                None => replicator.stats().last_error.unwrap_or_else(|| "the replication task ended".into()),
            };
            Err(Failure::Error(format!("replication into stream {} stopped: {error}", args.stream).into()))
        }
        Ended::Signal(name) => {
            if !args.json {
                let _ =
                    writeln!(std::io::stderr(), "{name}: finishing the publishes in flight (again to exit at once)");
            }
            // A second signal gives up waiting (the next run re-sends what was
            // in flight; JetStream drops what it already has).
            let stats = tokio::select! {
                stats = replicator.shutdown() => stats,
                again = signals.next() => {
                    let what = if again == "SIGINT" { "interrupted" } else { "terminated" };
                    return Err(Failure::Error(format!("{what} again while stopping").into()));
                }
            };
            // Publishes in flight that the server never acknowledged (it did
            // not answer within the ack timeout) may still be stored: the
            // next run resumes after the stream's last message, which may
            // then be past `replicated` (exactly once all the same).
            // (Not any error met while stopping: a checkpoint commit's is
            // no publish in flight.)
            let unacknowledged = stats.unacknowledged.is_some();
            let line = if args.json {
                json!({
                    "type": "stopped",
                    "signal": name,
                    "replicated": stats.replicated,
                    "journal_latest": stats.journal_latest,
                    "published": stats.published,
                    "duplicates": stats.duplicates,
                    "errors": stats.errors,
                    "unacknowledged": unacknowledged,
                })
                .to_string()
            } else if unacknowledged {
                format!(
                    "stopped with seq {} acknowledged ({} behind the journal's {}); publishes in flight went \
                     unacknowledged ({}): the next run resumes after the stream's last message, which may be past it",
                    stats.replicated,
                    stats.lag_seqs,
                    stats.journal_latest,
                    stats.unacknowledged.as_deref().unwrap_or("no answer"),
                )
            } else {
                format!(
                    "stopped after seq {} ({} behind the journal's {}); the next run resumes there",
                    stats.replicated, stats.lag_seqs, stats.journal_latest
                )
            };
            if lines_closed { Ok(()) } else { lines.finish(Some(line)) }
        }
    }
}

/// How many progress lines wait for a stdout nobody reads before the next
/// ones are skipped.
const LINES_QUEUED: usize = 16;

/// How long the run's last line waits for a stdout nobody reads.
const LAST_LINE_WAIT: Duration = Duration::from_secs(2);

/// The run's lines (started, progress, stopped), written to stdout by a
/// thread of their own. A stdout nobody reads (a pipe whose reader reads only at the
/// end) blocks that thread, never the loop that waits for a signal: that
/// loop had blocked in the write, and a SIGTERM was never seen (only a
/// SIGKILL stopped the run, with no checkpoint flushed). Lines that find
/// [`LINES_QUEUED`] still waiting are skipped: each says where the run is,
/// and the next one that goes out says it again.
struct Lines {
    tx: Option<std::sync::mpsc::SyncSender<String>>,
    thread: Option<std::thread::JoinHandle<Result<(), Failure>>>,
}

impl Lines {
    fn spawn() -> Result<Lines, Failure> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(LINES_QUEUED);
        let thread = std::thread::Builder::new().name("stdout".into()).spawn(move || {
            let mut out = Out::new();
            for line in rx {
                outln!(out, "{line}")?;
                out.flush()?;
            }
            Ok(())
        })?;
        Ok(Lines { tx: Some(tx), thread: Some(thread) })
    }

    /// Queues `line`, or skips it while the queue is full. Once the thread
    /// ended, what ended it: [`Failure::OutputClosed`] for a closed stdout.
    fn send(&mut self, line: String) -> Result<(), Failure> {
        use std::sync::mpsc::TrySendError;
        match self.tx.as_ref().map(|tx| tx.try_send(line)) {
            None | Some(Ok(()) | Err(TrySendError::Full(_))) => Ok(()),
            Some(Err(TrySendError::Disconnected(_))) => self.ended(),
        }
    }

    /// The thread's outcome, once it ended.
    fn ended(&mut self) -> Result<(), Failure> {
        self.tx = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Failure::Error("the thread writing to stdout panicked".into())),
        }
    }

    /// Queues the run's `last` line and waits for the thread to write what
    /// it holds, for [`LAST_LINE_WAIT`] at most: a stdout nobody reads
    /// keeps them, and the command ends all the same.
    fn finish(mut self, last: Option<String>) -> Result<(), Failure> {
        let deadline = Instant::now() + LAST_LINE_WAIT;
        let mut last = last;
        while let (Some(tx), Some(line)) = (&self.tx, last.take()) {
            match tx.try_send(line) {
                Err(std::sync::mpsc::TrySendError::Full(line)) if Instant::now() < deadline => {
                    last = Some(line);
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {}
            }
        }
        self.tx = None;
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            if Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match self.ended() {
            Err(Failure::OutputClosed) => Ok(()),
            ended => ended,
        }
    }
}

/// A server URL as messages show it: its user info (`user:password@`, a
/// token) as `***`, since an error line ends up in a supervisor's logs.
fn without_credentials(url: &str) -> std::borrow::Cow<'_, str> {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(scheme, rest)| (scheme, rest));
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) if scheme.is_empty() => format!("***@{}", &rest[at + 1..]).into(),
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]).into(),
        None => url.into(),
    }
}

/// The `--json` line that starts a run. The directory is a string, lossy for
/// a path that is not UTF-8, as the text line shows it: `json!` panics on
/// such a path, which serde refuses to serialize.
fn started_json(dir: &Path, stream: &str, subject: &str, epoch: u64, first: &ReplicationStats) -> String {
    json!({
        "type": "started",
        "dir": dir.to_string_lossy(),
        "stream": stream,
        "subject": subject,
        "epoch": epoch.to_string(),
        "after": first.replicated,
        "journal_latest": first.journal_latest,
    })
    .to_string()
}

/// Parses `--replicas`: 1 to 5, what JetStream takes (a stream of more is
/// refused by the server, and 0 is not a count of copies).
fn parse_replicas(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err(format!("{s:?}: JetStream keeps 1 to 5 replicas of a stream")),
    }
}

/// A start-up error in words an operator can act on.
fn start_error(stream: &str, replicas: usize, e: events_nats::NatsError) -> String {
    use events_nats::NatsError;
    match &e {
        NatsError::StreamMismatch { .. } => format!(
            "{e}; the stream exists with another configuration: use another --stream, or change or delete \
             the stream (nats stream edit / rm) if nothing else uses it"
        ),
        NatsError::EpochMismatch { .. } => {
            format!("{e}; the journal directory was recreated: replicate it into a new --stream (or purge {stream})")
        }
        // A stream of more than one replica needs a cluster: a single
        // server refuses it, which the JetStream hint alone did not say.
        NatsError::JetStream { .. } if replicas > 1 => format!(
            "{e} (is JetStream enabled, nats-server -js? And a stream of --replicas {replicas} needs a JetStream \
             cluster of at least {replicas} servers)"
        ),
        NatsError::JetStream { .. } => format!("{e} (is JetStream enabled, nats-server -js?)"),
        _ => e.to_string(),
    }
}

/// How progress is shown: a JSON line per interval, one status line
/// redrawn on a terminal, or a text line per interval otherwise.
enum Progress {
    Json,
    Terminal(ProgressBar),
    Lines,
}

impl Progress {
    fn new(json: bool) -> Self {
        if json {
            Progress::Json
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            Progress::Terminal(bar)
        } else {
            Progress::Lines
        }
    }

    /// The progress line to print now, if any (a terminal's status line is
    /// redrawn here instead).
    fn show(&mut self, stats: &ReplicationStats, rate: f64, failing: bool) -> Option<String> {
        let problem = if failing { stats.last_error.as_deref() } else { None };
        match self {
            Progress::Json => {
                let line = json!({
                    "type": "progress",
                    "replicated": stats.replicated,
                    "journal_latest": stats.journal_latest,
                    "lag_seqs": stats.lag_seqs,
                    "lag_ms": stats.lag.as_millis(),
                    "rate": rate.round(),
                    "published": stats.published,
                    "duplicates": stats.duplicates,
                    "resyncs": stats.resyncs,
                    "errors": stats.errors,
                    "stalls": stats.stalls,
                    "skipped": stats.skipped,
                    "gaps": stats.gaps,
                    "last_error": stats.last_error,
                });
                Some(line.to_string())
            }
            Progress::Terminal(bar) => {
                bar.set_message(text(stats, rate, problem));
                bar.tick();
                None
            }
            Progress::Lines => Some(text(stats, rate, problem)),
        }
    }

    fn finish(&self) {
        if let Progress::Terminal(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn text(stats: &ReplicationStats, rate: f64, problem: Option<&str>) -> String {
    let mut line = format!(
        "replicated {} of {}  lag {} seqs / {:.3} s  {:.0} events/s  resyncs {}  errors {}",
        stats.replicated,
        stats.journal_latest,
        stats.lag_seqs,
        stats.lag.as_secs_f64(),
        rate,
        stats.resyncs,
        stats.errors
    );
    if let Some(problem) = problem {
        line.push_str("  retrying: ");
        line.push_str(problem);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URLs messages show: user info hidden, the rest as given.
    #[test]
    fn server_urls_are_shown_without_credentials() {
        for (given, shown) in [
            ("nats://alice:s3cret@10.0.0.1:4222", "nats://***@10.0.0.1:4222"),
            ("tls://t0ken@nats.example.com", "tls://***@nats.example.com"),
            ("u:p@localhost:4222", "***@localhost:4222"),
            ("nats://10.0.0.1:4222", "nats://10.0.0.1:4222"),
            ("nats://host/path@x", "nats://host/path@x"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(without_credentials(given), shown);
        }
    }

    /// `json!({ "dir": args.dir, .. })` panicked on a directory whose name
    /// is not UTF-8.
    #[test]
    fn the_started_line_takes_a_directory_that_is_not_utf8() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt as _;
        let dir = Path::new(OsStr::from_bytes(b"/var/lib/j\xffournal"));
        let line: serde_json::Value =
            serde_json::from_str(&started_json(dir, "s", "events", 7, &ReplicationStats::default())).unwrap();
        assert_eq!(line["dir"], "/var/lib/j\u{fffd}ournal", "{line}");
        assert_eq!((&line["type"], &line["epoch"]), (&json!("started"), &json!("7")));
    }
}
