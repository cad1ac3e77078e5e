//! `events demo`, the main job: a realistic feed in `./events-demo`.
//! Several sessions emit a mix of ephemeral tokens/heartbeats and durable
//! messages/tool calls/results; lossless UI subscribers (one deliberately
//! slow) follow each session; a best-effort sink counts appends; a client
//! disconnects and resumes from its cursor; then a child process appending
//! to the same journal is SIGKILLed and the feed is recovered. At the end it
//! prints what happened and every invariant it verified, and exits 1 if any
//! failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use events::{Envelope, Event, EventSink, Feed, FeedItem, Seq, SyncPolicy, Timestamp};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::Failure;
use crate::crash::{self, CrashOutcome};
use crate::model::DemoEvent;

/// Arguments of `events demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo's journal lives. It is wiped at start, so it must be
    /// missing, empty, or a journal directory.
    #[arg(long, default_value = "./events-demo")]
    dir: PathBuf,
    /// Events emitted in total across all sessions (30% of them durable).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 4)]
    sessions: u32,
    /// Lossless UI subscribers per session; the first one of session 0 is
    /// deliberately slow.
    #[arg(long, default_value_t = 2)]
    subscribers: u32,
    /// Durability: `always` (fsync before acknowledging, group commit),
    /// `never` (survives a process crash, not power loss), or an interval
    /// such as `10ms` (fsync in the background).
    #[arg(long, default_value = "always", value_parser = parse_sync)]
    sync: SyncPolicy,
    /// Print a machine-readable JSON summary instead of the table.
    #[arg(long)]
    json: bool,
    /// Skip the crash-and-reopen phase.
    #[arg(long)]
    no_crash: bool,
}

/// Parses `always`, `never` or a duration like `10ms` / `1s`.
pub(crate) fn parse_sync(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => {
            let (num, unit) = other.find(|c: char| !c.is_ascii_digit()).map_or((other, ""), |i| other.split_at(i));
            let n: u64 =
                num.parse().map_err(|_| format!("expected always, never or an interval like 10ms, got {s:?}"))?;
            match unit {
                "ms" => Ok(SyncPolicy::Interval(Duration::from_millis(n))),
                "s" => Ok(SyncPolicy::Interval(Duration::from_secs(n))),
                _ => Err(format!("unknown interval unit in {s:?}: use ms or s")),
            }
        }
    }
}

/// The inverse of [`parse_sync`], for passing the policy to the child.
pub(crate) fn sync_to_arg(policy: SyncPolicy) -> String {
    match policy {
        SyncPolicy::Always => "always".into(),
        SyncPolicy::Never => "never".into(),
        SyncPolicy::Interval(d) => format!("{}ms", d.as_millis().max(1)),
    }
}

/// Everything the demo measured and verified.
#[derive(Debug, Serialize)]
struct Summary {
    dir: String,
    sync: String,
    sessions: u32,
    subscribers_per_session: u32,
    emitted: u64,
    durable: u64,
    ephemeral: u64,
    journaled: u64,
    delivered_to_subscribers: u64,
    sink_observed: u64,
    sink_dropped: u64,
    client_reconnects: u64,
    client_received: u64,
    seconds: f64,
    events_per_second: f64,
    durable_per_second: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_max_us: f64,
    fsyncs: u64,
    batches: u64,
    crash: Option<CrashOutcome>,
    invariants: Vec<Invariant>,
}

#[derive(Debug, Serialize)]
struct Invariant {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// A best-effort sink that counts what it observes.
struct CountingSink(Arc<AtomicU64>);

#[async_trait::async_trait]
impl EventSink<Envelope<DemoEvent>> for CountingSink {
    async fn emit(&self, _event: &Envelope<DemoEvent>) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// What a UI subscriber saw.
struct UiReport {
    received: u64,
    in_order: bool,
}

/// What the resuming client saw.
#[derive(Default)]
struct ClientReport {
    received: u64,
    gaps: u64,
    duplicates: u64,
    resets: u64,
    reconnects: u64,
}

pub(crate) fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.sessions == 0 || args.events < u64::from(args.sessions) {
        return Err(Failure::Error("--events must be at least --sessions, and --sessions at least 1".into()));
    }
    prepare_dir(&args.dir)?;
    let summary = crate::runtime()?.block_on(run_async(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary);
    }
    if summary.invariants.iter().all(|i| i.ok) { Ok(()) } else { Err(Failure::CheckFailed) }
}

/// Refuses to wipe anything that is not a journal directory.
fn prepare_dir(dir: &Path) -> Result<(), Failure> {
    if dir.exists() {
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if !(name.ends_with(".seg") || name == "LOCK") {
                return Err(Failure::Error(
                    format!("{} holds {name:?}, which is not part of a journal; refusing to wipe it", dir.display())
                        .into(),
                ));
            }
        }
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

fn bar(multi: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos:>8}/{len:8} {per_sec:>14}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    multi.add(ProgressBar::new(len).with_style(style).with_prefix(label.to_owned()))
}

async fn run_async(args: &DemoArgs) -> Result<Summary, Failure> {
    let per_session = args.events / u64::from(args.sessions);
    let emitted_total = per_session * u64::from(args.sessions);
    let durable_per_session =
        (0..per_session).filter(|&n| DemoEvent::nth(0, n, per_session).durability().is_durable()).count() as u64;
    let durable_total = durable_per_session * u64::from(args.sessions);

    let sink_count = Arc::new(AtomicU64::new(0));
    let feed: Feed<DemoEvent> = Feed::builder(&args.dir)
        .sync(args.sync)
        .segment_bytes(1 << 20)
        .sink(CountingSink(Arc::clone(&sink_count)))
        .open()
        .await?;

    let multi = if args.json {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let emitted_bar = bar(&multi, emitted_total, "emitted");
    let journaled_bar = bar(&multi, durable_total, "journaled");
    let client_bar = bar(&multi, durable_total, "client");

    // Latency: a live subscriber measures emit → delivery of durable events.
    let latency = {
        let mut live = feed.subscribe();
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(durable_total as usize);
            while let Some(Ok(FeedItem::Event(env))) = live.next().await {
                if let Some(at) = env.event.emitted_at() {
                    samples.push(Timestamp::now().as_nanos().saturating_sub(at));
                }
                if env.seq.get() >= durable_total {
                    break;
                }
            }
            samples
        })
    };

    // The resuming client: reads a third, disconnects, resumes from its cursor.
    let client_pos = Arc::new(AtomicU64::new(0));
    let client = {
        let feed = feed.clone();
        let pos = Arc::clone(&client_pos);
        tokio::spawn(async move { resuming_client(feed, durable_total, pos).await })
    };

    // Lossless UI subscribers on every session.
    let mut sessions = Vec::new();
    let mut uis = Vec::new();
    for s in 0..args.sessions {
        let session = feed.session(&format!("sess-{s}"));
        for k in 0..args.subscribers {
            let mut sub = session.subscribe();
            let slow = s == 0 && k == 0;
            uis.push(tokio::spawn(async move {
                let mut report = UiReport { received: 0, in_order: true };
                while let Some(item) = sub.next().await {
                    let Ok(ev) = item else {
                        report.in_order = false;
                        break;
                    };
                    report.in_order &= ev.n() == report.received;
                    report.received += 1;
                    if slow && report.received.is_multiple_of(256) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if ev.is_terminal() {
                        break;
                    }
                }
                report
            }));
        }
        sessions.push(session);
    }

    let emitted = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (feed, emitted, pos) = (feed.clone(), Arc::clone(&emitted), Arc::clone(&client_pos));
        let (e, j, c) = (emitted_bar.clone(), journaled_bar.clone(), client_bar.clone());
        tokio::spawn(async move {
            loop {
                e.set_position(emitted.load(Relaxed));
                j.set_position(feed.latest_seq().get());
                c.set_position(pos.load(Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let started = Instant::now();
    let producers: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(s, session)| {
            let session = session.clone();
            let emitted = Arc::clone(&emitted);
            tokio::spawn(async move {
                for n in 0..per_session {
                    session.emit(DemoEvent::nth(s as u32, n, per_session)).await?;
                    emitted.fetch_add(1, Relaxed);
                }
                Ok::<(), events::Error>(())
            })
        })
        .collect();
    for p in producers {
        p.await.map_err(|e| Failure::Error(Box::new(e)))??;
    }
    drop(sessions);
    feed.sync().await?;
    let elapsed = started.elapsed().as_secs_f64();

    let mut delivered = 0;
    let mut lossless = true;
    for ui in uis {
        let report = ui.await.map_err(|e| Failure::Error(Box::new(e)))?;
        delivered += report.received;
        lossless &= report.in_order && report.received == per_session;
    }
    let client = client.await.map_err(|e| Failure::Error(Box::new(e)))??;
    let mut samples = latency.await.map_err(|e| Failure::Error(Box::new(e)))?;
    ticker.abort();
    emitted_bar.set_position(emitted.load(Relaxed));
    journaled_bar.set_position(feed.latest_seq().get());
    client_bar.set_position(client_pos.load(Relaxed));
    // Let the sink task drain: it runs behind the writer by design.
    let sink_deadline = Instant::now() + Duration::from_secs(5);
    while sink_count.load(Relaxed) + feed.stats().sink_dropped < durable_total && Instant::now() < sink_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = feed.stats();
    let journaled = feed.latest_seq().get();
    feed.close().await?;
    for b in [&emitted_bar, &journaled_bar, &client_bar] {
        b.finish();
    }

    let crash = if args.no_crash {
        None
    } else {
        let crash_bar = multi.add(ProgressBar::new_spinner().with_prefix("crash"));
        crash_bar.set_message("child appending; SIGKILL at a random moment");
        let on_ack = {
            let crash_bar = crash_bar.clone();
            Arc::new(move |seq: u64| crash_bar.set_message(format!("child acknowledged seq {seq}")))
        };
        let outcome = crash::crash_and_recover(&args.dir, args.sync, journaled, on_ack).await?;
        crash_bar.finish_with_message(format!("killed after {} acknowledged appends; recovered", outcome.acknowledged));
        Some(outcome)
    };
    let verify = events_journal::verify(&args.dir);
    multi.clear().ok();

    samples.sort_unstable();
    let pct = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() - 1) as f64 * p).round() as usize;
        samples[i] as f64 / 1000.0
    };
    let mut invariants = vec![
        Invariant {
            name: "no gap",
            ok: client.gaps == 0 && crash.as_ref().is_none_or(|c| c.gaps == 0),
            detail: format!("client saw seqs 1..={durable_total} across {} reconnect(s)", client.reconnects),
        },
        Invariant {
            name: "no duplicate",
            ok: client.duplicates == 0,
            detail: format!("{} duplicates, {} resets", client.duplicates, client.resets),
        },
        Invariant {
            name: "every durable event journaled",
            ok: journaled == durable_total,
            detail: format!("{journaled} of {durable_total}"),
        },
        Invariant {
            name: "lossless UI subscribers",
            ok: lossless,
            detail: format!("{delivered} deliveries, each subscriber every event in order"),
        },
    ];
    if let Some(c) = &crash {
        invariants.push(Invariant {
            name: "nothing acknowledged lost",
            ok: c.nothing_lost(),
            detail: format!(
                "{} acknowledged, {} lost, {} wrong payload",
                c.acknowledged,
                c.lost.len(),
                c.wrong_payload.len()
            ),
        });
        invariants.push(Invariant {
            name: "no seq reuse after crash",
            ok: c.no_reuse(),
            detail: format!("recovered up to {}, next append got {}", c.recovered_latest, c.next_seq),
        });
    }
    invariants.push(match verify {
        Ok(report) => Invariant {
            name: "journal verifies clean",
            ok: report.is_ok(),
            detail: format!(
                "{} segments, {} records, {} problems",
                report.segments,
                report.records,
                report.problems.len()
            ),
        },
        Err(e) => Invariant { name: "journal verifies clean", ok: false, detail: events::error_chain(&e) },
    });

    Ok(Summary {
        dir: args.dir.display().to_string(),
        sync: sync_to_arg(args.sync),
        sessions: args.sessions,
        subscribers_per_session: args.subscribers,
        emitted: emitted_total,
        durable: durable_total,
        ephemeral: emitted_total - durable_total,
        journaled,
        delivered_to_subscribers: delivered,
        sink_observed: sink_count.load(Relaxed),
        sink_dropped: stats.sink_dropped,
        client_reconnects: client.reconnects,
        client_received: client.received,
        seconds: elapsed,
        events_per_second: emitted_total as f64 / elapsed,
        durable_per_second: durable_total as f64 / elapsed,
        latency_p50_us: pct(0.50),
        latency_p99_us: pct(0.99),
        latency_max_us: pct(1.0),
        fsyncs: stats.fsyncs,
        batches: stats.batches,
        crash,
        invariants,
    })
}

/// Reads a third of the feed, disconnects, and resumes from its cursor
/// until it has seen `total` events, counting gaps and duplicates.
async fn resuming_client(
    feed: Feed<DemoEvent>,
    total: u64,
    pos: Arc<AtomicU64>,
) -> Result<ClientReport, events::Error> {
    let mut report = ClientReport::default();
    let mut cursor = Seq::ZERO;
    let disconnect_at = total / 3;
    loop {
        let mut stream = feed.stream_from(cursor);
        while let Some(item) = stream.next().await {
            match item? {
                FeedItem::Event(env) => {
                    report.received += 1;
                    if env.seq <= cursor {
                        report.duplicates += 1;
                        continue;
                    }
                    if env.seq != cursor.next() {
                        report.gaps += 1;
                    }
                    cursor = env.seq;
                    pos.store(cursor.get(), Relaxed);
                    if cursor.get() >= total {
                        return Ok(report);
                    }
                    if report.reconnects == 0 && cursor.get() >= disconnect_at {
                        break;
                    }
                }
                FeedItem::Reset { .. } => report.resets += 1,
            }
        }
        // Disconnected (deliberately, once): come back after a moment.
        report.reconnects += 1;
        drop(stream);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_table(s: &Summary) {
    let ms = |us: f64| us / 1000.0;
    println!();
    println!(
        "events demo — {} sessions × {} UI subscribers, sync={}, in {}",
        s.sessions, s.subscribers_per_session, s.sync, s.dir
    );
    println!("  emitted            {:>10}  ({} durable, {} ephemeral)", s.emitted, s.durable, s.ephemeral);
    println!("  journaled          {:>10}  seqs 1..={}", s.journaled, s.journaled);
    println!("  delivered to UIs   {:>10}  (lossless, in order)", s.delivered_to_subscribers);
    println!("  sink observed      {:>10}  (dropped {})", s.sink_observed, s.sink_dropped);
    println!("  resuming client    {:>10}  events over {} reconnect(s)", s.client_received, s.client_reconnects);
    println!(
        "  throughput         {:>10.0}  events/s ({:.0} durable/s) over {:.2} s",
        s.events_per_second, s.durable_per_second, s.seconds
    );
    println!(
        "  latency emit→live  p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(s.latency_p50_us),
        ms(s.latency_p99_us),
        ms(s.latency_max_us)
    );
    let per_fsync = if s.fsyncs == 0 { 0.0 } else { s.journaled as f64 / s.fsyncs as f64 };
    println!("  fsyncs             {:>10}  ({per_fsync:.1} events per fsync, {} batches)", s.fsyncs, s.batches);
    if let Some(c) = &s.crash {
        println!(
            "  crash              child SIGKILLed after {} acknowledged appends; recovered seqs up to {}",
            c.acknowledged, c.recovered_latest
        );
    }
    println!();
    println!("invariants");
    for i in &s.invariants {
        println!("  {} {:<32} {}", if i.ok { "✔" } else { "✘" }, i.name, i.detail);
    }
}
