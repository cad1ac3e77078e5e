//! `events demo`, the main job: a realistic feed in `./events-demo`.
//! Several sessions emit a mix of ephemeral tokens/heartbeats and durable
//! messages/tool calls/results; lossless UI subscribers (one deliberately
//! slow) follow each session; a best-effort sink counts appends; a client
//! disconnects and resumes from its cursor; a chat UI following the live
//! output (tokens included) drops its connection mid-response and rebuilds
//! every response after reconnecting; then a child process appending
//! to the same journal, with a durable consumer `indexer` reading it, is
//! SIGKILLed, the feed is recovered and the indexer resumes from its
//! checkpoint. At the end it prints what happened and every invariant it
//! verified, and exits 1 if any failed.
//!
//! This file holds the arguments and runs the phases in order; each phase
//! lives in its own neighbour: `probe.rs` (emit → delivery latency),
//! `clients.rs` (the resuming client), `resume.rs` (the resuming chat UI),
//! `uis.rs` (lossless UI subscribers),
//! `producers.rs` (the sessions emitting), `verification.rs` (crash, verify,
//! invariants), `progress.rs` (the bars) and `summary.rs` (what is printed).
//! Invariant: every consumer is subscribed before the first emit, so each
//! one sees the whole run.

mod clients;
mod probe;
mod producers;
mod progress;
mod resume;
mod summary;
mod uis;
mod verification;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use events::layers::journal;
use events::{Envelope, EventSink, Feed, FeedStats, LiveOutput, SyncPolicy};

use self::clients::ClientReport;
use self::progress::Bars;
use self::resume::ResumeReport;
use self::summary::Summary;
use crate::Failure;
use crate::args::parse_sync;
use crate::model::DemoEvent;

/// Arguments of `events demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo's journal lives. It is wiped at start, so it must be
    /// missing, empty, or a journal directory.
    #[arg(long, default_value = "./events-demo")]
    dir: PathBuf,
    /// Events emitted in total across all sessions (30% of them durable;
    /// at most 100,000,000: the latency probe keeps 8 bytes per durable
    /// event).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    events: u64,
    /// Concurrent sessions (1 to 4,096).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    sessions: u32,
    /// Lossless UI subscribers per session (1 to 1,024: the demo checks
    /// what they received); the first one of session 0 is deliberately slow.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    subscribers: u32,
    /// Durability: `always` (fsync before acknowledging, group commit),
    /// `never` (survives a process crash, not power loss), or an interval
    /// such as `10ms` (fsync in the background; at most 365 days).
    #[arg(long, default_value = "always", value_parser = parse_sync)]
    sync: SyncPolicy,
    /// Print a machine-readable JSON summary instead of the table.
    #[arg(long)]
    json: bool,
    /// Skip the crash-and-reopen phase.
    #[arg(long)]
    no_crash: bool,
}

/// How many events the run emits, derived from the arguments.
#[derive(Clone, Copy)]
struct Plan {
    per_session: u64,
    emitted_total: u64,
    durable_total: u64,
}

impl Plan {
    fn new(args: &DemoArgs) -> Plan {
        let per_session = args.events / u64::from(args.sessions);
        let emitted_total = per_session * u64::from(args.sessions);
        let durable_total = durable_in_session(per_session) * u64::from(args.sessions);
        Plan { per_session, emitted_total, durable_total }
    }
}

/// How many of a session's `total` events ([`DemoEvent::nth`]) are durable:
/// the message, tool call and result of each turn of ten (`n % 10` of 7, 8
/// and 9) before the last event, and the last, `Done`.
fn durable_in_session(total: u64) -> u64 {
    let Some(before_done) = total.checked_sub(1) else { return 0 };
    before_done / 10 * 3 + (before_done % 10).saturating_sub(7) + 1
}

/// What the workload phases measured, before the crash and verification.
struct Measured {
    elapsed: f64,
    delivered: u64,
    lossless: bool,
    client: ClientReport,
    resume: ResumeReport,
    samples: Vec<u64>,
    stats: FeedStats,
    journaled: u64,
}

/// A best-effort sink that counts what it observes.
struct CountingSink(Arc<AtomicU64>);

#[async_trait::async_trait]
impl EventSink<Envelope<DemoEvent>> for CountingSink {
    async fn emit(&self, _event: &Envelope<DemoEvent>) {
        self.0.fetch_add(1, Relaxed);
    }
}

pub(crate) fn run(args: DemoArgs) -> Result<(), Failure> {
    // Each bounded on its own by the parser (`--sessions` at least 1).
    if args.events < u64::from(args.sessions) {
        return Err(Failure::Error("--events must be at least --sessions".into()));
    }
    prepare_dir(&args.dir)?;
    let summary = crate::runtime()?.block_on(run_async(&args))?;
    // Caught here, not only in `main`: a reader gone mid-table must not
    // turn a failed invariant into exit 0.
    let printed = crate::quiet_on_closed_stdout(|| {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            summary::print_table(&summary);
        }
        Ok(())
    });
    crate::verdict(printed, summary.invariants.iter().all(|i| i.ok))
}

/// Refuses to wipe anything but a journal this demo wrote, with no writer
/// running: a stranger entry (sorted as the journal's own listing sorts
/// them), a journal of another codec or event type (an application's,
/// stopped), or one whose oldest record cannot be read.
fn prepare_dir(dir: &Path) -> Result<(), Failure> {
    let refuse = |why: String| Err(Failure::Error(format!("{} {why}; refusing to wipe it", dir.display()).into()));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return refuse(format!("cannot be listed ({e})")),
    };
    let mut segments = false;
    let mut checkpoints = 0usize;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Failure::Error(format!("listing {}: {e}", dir.display()).into()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        match journal::entry_kind(&entry.file_name(), is_file) {
            journal::EntryKind::Stranger => {
                return refuse(format!("holds {:?}, which is not part of a journal", entry.file_name()));
            }
            journal::EntryKind::Segment { .. } => segments = true,
            // A journal's own names, but only as what the journal makes:
            // files, and a `consumers` directory of files.
            journal::EntryKind::Own if entry.file_name() == journal::CONSUMERS_DIR => {
                match own_checkpoints(&entry.path()) {
                    Ok(files) => checkpoints += files,
                    Err(why) => return refuse(why),
                }
            }
            journal::EntryKind::Own if !is_file => {
                return refuse(format!("holds {:?}, which is not a file as a journal's is", entry.file_name()));
            }
            _ => {}
        }
        paths.push(entry.path());
    }
    // Consumer checkpoints with no journal: an application's whose segments
    // were moved away (a wipe of the demo's own removes them before its
    // segments, so none is left behind that way).
    if !segments && checkpoints > 0 {
        return refuse(format!("holds {checkpoints} consumer checkpoint file(s) but no segment: not a journal"));
    }
    // Another process may be writing this journal: wiping it would lose
    // what it acknowledged, and its next segment would land in ours.
    match journal::Reader::open(dir).ok().and_then(|r| r.writer_running()) {
        Some(false) => {}
        Some(true) => return refuse("is in use: a running writer holds its LOCK".into()),
        None => return refuse("may be in use (cannot test its LOCK)".into()),
    }
    if segments && let Err(why) = written_by_the_demo(dir) {
        return refuse(format!("holds a journal the demo did not write ({why})"));
    }
    // The entries checked above, every one the journal's own, not the
    // directory: it may be the working directory (`--dir .`), a mount
    // point or a symlink, or sit in a directory the user cannot write. The
    // watermark first and the lock last: a wipe cut short leaves no
    // watermark naming a segment already gone (which no reader gets past,
    // so the next run would refuse the directory), and the lock the run
    // checked stays while the rest goes.
    let removing = |path: &Path, e: std::io::Error| Failure::Error(format!("removing {}: {e}", path.display()).into());
    let order = |path: &PathBuf| match path.file_name().and_then(|n| n.to_str()) {
        Some(journal::WATERMARK_FILE) => 0,
        Some(journal::CONSUMERS_DIR) => 1,
        Some("LOCK") => 3,
        _ => 2,
    };
    paths.sort_by_key(order);
    for path in paths {
        let removed = match std::fs::symlink_metadata(&path) {
            // `consumers`, checked to hold files only: those, then it (a
            // file put there since makes this fail, and nothing of it goes).
            Ok(meta) if meta.is_dir() => std::fs::read_dir(&path)
                .and_then(|mut entries| entries.try_for_each(|e| std::fs::remove_file(e?.path())))
                .and_then(|()| std::fs::remove_dir(&path)),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(removing(&path, e)),
        }
    }
    Ok(())
}

/// How many files the `consumers` directory at `path` holds; why it is not
/// the journal's when it is no directory, or holds anything but files.
fn own_checkpoints(path: &Path) -> Result<usize, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot look at {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("holds {:?}, which is not a directory as a journal's is", journal::CONSUMERS_DIR));
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
    let mut files = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", path.display()))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            return Err(format!("holds {}, which is not a consumer checkpoint file", entry.path().display()));
        }
        if held(&entry.path())? {
            return Err(format!("is in use: a running consumer holds {}", entry.path().display()));
        }
        files += 1;
    }
    Ok(files)
}

/// Whether a running consumer holds the checkpoint file at `path` (its
/// lock, as `events consumers --delete` tests it): wiped under it, its next
/// commit failed, or it went on from an unpinned position.
fn held(path: &Path) -> Result<bool, String> {
    // Writable: an exclusive lock needs it where flock is emulated (NFS).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot test the lock of {}: {e}", path.display())),
    }
}

/// Whether the oldest record of the journal in `dir`, and the newest when
/// it can be read, are demo events (bincode, `DemoEvent`) under the stream
/// the demo gives them ([`DemoEvent::demo_stream`]); a journal with no
/// record is anyone's. The newest record of a
/// journal whose newest segment is damaged (a power loss under `--sync
/// never`) cannot be read: the oldest decides.
fn written_by_the_demo(dir: &Path) -> Result<(), String> {
    let reader = journal::Reader::open(dir).map_err(|e| e.to_string())?;
    let oldest = reader.segments().map_err(|e| e.to_string())?.first().map_or(1, |(first, _)| *first);
    let mut records = reader.read_since(oldest.saturating_sub(1)).map_err(|e| e.to_string())?;
    let Some(first) = records.next() else { return Ok(()) };
    let first = first.map_err(|e| format!("its first record cannot be read: {e}"))?;
    if crate::render::Payloads::of(dir) != crate::render::Payloads::Demo {
        return Err("it is not bincode".into());
    }
    let newest = reader.last_seq().ok().filter(|&last| last > first.seq()).and_then(|last| {
        let mut records = reader.read_since(last - 1).ok()?;
        records.next()?.ok()
    });
    for record in std::iter::once(first).chain(newest) {
        let seq = record.seq();
        let env = events::payload::decode::<DemoEvent, events::Bincode>(&events::Bincode, 0, 0, record.payload())
            .map_err(|_| format!("its record {seq} is not a demo event"))?;
        if env.stream_str() != Some(env.event.demo_stream().as_str()) {
            return Err(format!("its record {seq} is not a demo event (stream {:?})", env.stream_str().unwrap_or("")));
        }
    }
    Ok(())
}

/// Turns a failed spawned task into a `Failure`.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, Failure> {
    result.map_err(|e| Failure::Error(Box::new(e)))
}

async fn run_async(args: &DemoArgs) -> Result<Summary, Failure> {
    let plan = Plan::new(args);
    let sink_count = Arc::new(AtomicU64::new(0));
    let feed: Feed<DemoEvent> = Feed::builder(&args.dir)
        .sync(args.sync)
        .segment_bytes(1 << 20)
        .sink(CountingSink(Arc::clone(&sink_count)))
        // Tokens are kept in a bounded ring (default limits) for the
        // resuming UI; they are still never journaled.
        .live_output(LiveOutput::new())
        .open()
        .await?;
    let bars = Bars::new(args.json, &plan);
    let measured = workload(args, &plan, &feed, &bars, &sink_count).await?;
    feed.close().await?;
    bars.finish();

    let crash = if args.no_crash { None } else { Some(verification::crash(&bars, args, measured.journaled).await?) };
    let verify = journal::verify(&args.dir);
    bars.clear();
    let invariants = verification::invariants(&plan, &measured, crash.as_ref(), verify);
    Ok(Summary::new(args, &plan, measured, sink_count.load(Relaxed), crash, invariants))
}

/// The phases that run against the open feed: consumers subscribe, the
/// producers emit, then every consumer is joined and measured.
async fn workload(
    args: &DemoArgs,
    plan: &Plan,
    feed: &Feed<DemoEvent>,
    bars: &Bars,
    sink_count: &AtomicU64,
) -> Result<Measured, Failure> {
    let latency = probe::spawn(feed, plan.durable_total);
    let client_pos = Arc::new(AtomicU64::new(0));
    let client = clients::spawn(feed, plan.durable_total, Arc::clone(&client_pos));
    let resuming = resume::spawn(feed, args.sessions, plan.per_session)?;
    let (sessions, uis) = uis::spawn(feed, args.sessions, args.subscribers);
    let emitted = Arc::new(AtomicU64::new(0));
    let ticker = bars.spawn_ticker(feed, &emitted, &client_pos);

    let started = Instant::now();
    producers::run(sessions, plan.per_session, &emitted).await?;
    feed.sync().await?;
    let elapsed = started.elapsed().as_secs_f64();

    let (delivered, lossless) = uis::join(uis, plan.per_session).await?;
    let client = joined(client.await)??;
    let resume = resume::join(resuming, feed.stats().live_evicted).await?;
    let samples = joined(latency.await)?;
    ticker.abort();
    bars.set(emitted.load(Relaxed), feed.latest_seq().get(), client_pos.load(Relaxed));
    producers::drain_sink(feed, sink_count, plan.durable_total).await;
    let stats = feed.stats();
    let journaled = feed.latest_seq().get();
    Ok(Measured { elapsed, delivered, lossless, client, resume, samples, stats, journaled })
}

#[cfg(test)]
mod tests {
    use events::Event;

    use super::*;

    /// The count is the events' own: each session event asked for its
    /// durability (as the plan counted before, event by event, which took
    /// minutes, silent, for a large `--events`).
    #[test]
    fn durable_in_session_counts_the_durable_events() {
        for total in 0..200 {
            let counted = (0..total).filter(|&n| DemoEvent::nth(0, n, total).durability().is_durable()).count() as u64;
            assert_eq!(durable_in_session(total), counted, "total {total}");
        }
    }
}
