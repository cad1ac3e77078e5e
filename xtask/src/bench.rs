//! `cargo xtask bench`: runs every bench target of `events-benches`, then
//! turns the results into `target/bench-report/REPORT.md` (one line per
//! comparison of DESIGN.md section 8: ours, the peer, the ratio with its
//! spread, the goal and ✔/✘) plus SVG charts, and prints the table.
//!
//! Where the figures come from: criterion writes, for every bench function,
//! `target/criterion/<group>/<function>/new/benchmark.json` (its ids and
//! throughput per iteration) and `estimates.json` (the median time per
//! iteration with its 95% confidence interval). The report reads both; the
//! ratio's spread combines the two confidence intervals (the ratio's worst
//! and best case). Benches that are not criterion benches (JetStream
//! replication) print their figures on lines the report recognises, and the
//! report also quotes every bench line that starts with `summary` (the
//! benches' own side-by-side printouts, such as latency percentiles).
//!
//! Like the rest of xtask it uses std only: the JSON reader and the SVG
//! writer below are deliberately minimal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use crate::{cargo, workspace_root};

pub(crate) const USAGE: &str = "\
  bench   run every bench of events-benches with its peers, write
          target/bench-report/REPORT.md and SVG charts, print the table
            --quick        short criterion times and reduced sizes (~10 min)
            --filter RE    only the criterion ids matching RE (e.g. durable)
            --report-only  rebuild the report from the last results
";

/// Options of one `cargo xtask bench`.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    filter: Option<String>,
    report_only: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--report-only" => opts.report_only = true,
            "--filter" => opts.filter = Some(args.next().ok_or("--filter needs a pattern")?.clone()),
            other => return Err(format!("bench: unknown option {other:?}\n\n{USAGE}")),
        }
    }
    Ok(opts)
}

/// Entry point: `args` are the words after `bench`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let target = target_dir();
    let out_dir = target.join("bench-report");
    fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let log_path = out_dir.join("bench-output.txt");
    let started = SystemTime::now();
    let mut failed = None;
    if !opts.report_only {
        if opts.filter.is_none() {
            // A full run starts from a clean slate, so the report never mixes in a stale figure.
            let _ = fs::remove_dir_all(target.join("criterion"));
        }
        if let Err(e) = run_benches(&opts, &log_path) {
            // Still write the report for what did run, then fail.
            failed = Some(e);
        }
    }
    let since = if opts.report_only || opts.filter.is_some() { None } else { Some(started) };
    let results = collect(&target.join("criterion"), since)?;
    let printed = fs::read_to_string(&log_path).unwrap_or_default();
    let report = Report::new(&results, &printed);
    let mode = if opts.quick { "quick (`--quick`)" } else { "full" };
    let md = report.markdown(mode, opts.filter.as_deref());
    fs::write(out_dir.join("REPORT.md"), &md).map_err(|e| format!("cannot write REPORT.md: {e}"))?;
    for (name, svg) in report.charts() {
        fs::write(out_dir.join(name), svg).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    println!("\n{}", report.table());
    println!("report: {}", out_dir.join("REPORT.md").display());
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs `cargo bench -p events-benches`, echoing its output and keeping a copy in `log`.
fn run_benches(opts: &Options, log: &Path) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "events-benches", "--no-fail-fast", "--"]);
    if let Some(filter) = &opts.filter {
        cmd.arg(filter);
    }
    if opts.quick {
        cmd.args(["--warm-up-time", "0.5", "--measurement-time", "1"]);
        cmd.env("EVENTS_BENCH_QUICK", "1")
            .env("EVENTS_BENCH_RECORDS", "200000")
            .env("EVENTS_BENCH_OPEN_SEGMENT_BYTES", (1u64 << 20).to_string())
            .env("EVENTS_NATS_BENCH_N", "20000");
    }
    println!("\n==> cargo bench -p events-benches{}", if opts.quick { " (quick)" } else { "" });
    let mut child = cmd
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start cargo bench: {e}"))?;
    let mut kept = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    let status = child.wait().map_err(|e| format!("cargo bench: {e}"))?;
    fs::write(log, kept).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    if status.success() { Ok(()) } else { Err(format!("cargo bench failed ({status}); the report shows what ran")) }
}

// ---------------------------------------------------------------------------
// Results

/// One criterion bench function's result.
#[derive(Clone, Copy, Debug)]
struct Measure {
    /// Median time per iteration and its 95% confidence interval, in ns: (low, median, high).
    ns: (f64, f64, f64),
    /// Elements (records, events, messages) per iteration, when the bench declared a throughput.
    elements: Option<f64>,
}

impl Measure {
    /// Throughput (low, median, high) in elements per second.
    fn rate(&self) -> Option<(f64, f64, f64)> {
        let e = self.elements?;
        Some((e * 1e9 / self.ns.2, e * 1e9 / self.ns.1, e * 1e9 / self.ns.0))
    }
}

/// Results keyed by criterion's full id: `group/function[/parameter]`.
type Results = BTreeMap<String, Measure>;

/// Reads every `new/benchmark.json` + `new/estimates.json` under `dir`,
/// keeping those written after `since` (all when `None`).
fn collect(dir: &Path, since: Option<SystemTime>) -> Result<Results, String> {
    let mut files = Vec::new();
    find_benchmarks(dir, &mut files);
    let mut out = Results::new();
    for bench in files {
        let fresh = fs::metadata(&bench).and_then(|m| m.modified()).is_ok_and(|t| since.is_none_or(|s| t >= s));
        if !fresh {
            continue;
        }
        let Some(estimates) = bench.parent().map(|p| p.join("estimates.json")) else { continue };
        let (Ok(b), Ok(e)) = (fs::read_to_string(&bench), fs::read_to_string(&estimates)) else { continue };
        let (b, e) = (Json::parse(&b)?, Json::parse(&e)?);
        let Some(id) = b.get("full_id").and_then(Json::str) else { continue };
        let median = e.get("median").ok_or_else(|| format!("{}: no median", estimates.display()))?;
        let ci = median.get("confidence_interval");
        let num = |j: Option<&Json>| j.and_then(Json::num).unwrap_or(f64::NAN);
        let point = num(median.get("point_estimate"));
        let lo = num(ci.and_then(|c| c.get("lower_bound")));
        let hi = num(ci.and_then(|c| c.get("upper_bound")));
        let elements =
            b.get("throughput").and_then(|t| t.get("Elements").or_else(|| t.get("Bytes"))).and_then(Json::num);
        out.insert(id.to_string(), Measure { ns: (lo, point, hi), elements });
    }
    Ok(out)
}

fn find_benchmarks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_benchmarks(&path, out);
        } else if path.ends_with("new/benchmark.json") {
            out.push(path);
        }
    }
}

/// A figure printed by a non-criterion bench: the number after the last `:`
/// on the first line starting with `prefix` (e.g. `nats/replicator`).
fn printed_rate(log: &str, prefix: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.starts_with(prefix))?;
    line.rsplit(':').next()?.split_whitespace().next()?.parse().ok()
}

/// The unpaced tokio broadcast's loss at `subscribers` from the fan-out
/// bench's summary block (`  16 subscribers:` then
/// `    tokio_broadcast_unpaced  ... lost N (P%)`), as `lost N (P%)`.
fn unpaced_loss(log: &str, subscribers: &str) -> Option<String> {
    let header = format!("{subscribers} subscribers:");
    let mut lines = log.lines().skip_while(|l| l.trim() != header).skip(1);
    let line = lines
        .by_ref()
        .take_while(|l| !l.trim().ends_with("subscribers:"))
        .find(|l| l.trim().starts_with("tokio_broadcast_unpaced"))?;
    line.find("lost ").map(|at| line[at..].trim().to_string())
}

// ---------------------------------------------------------------------------
// The rows of DESIGN.md section 8

/// Where a figure comes from.
#[derive(Clone, Copy, Debug)]
enum Src {
    /// A criterion id.
    Bench(&'static str),
    /// `factor` × a criterion id's throughput (a derived limit).
    Times(f64, &'static str),
    /// The fastest of several criterion ids.
    Best(&'static [&'static str]),
    /// A rate printed by a non-criterion bench (see [`printed_rate`]).
    Printed(&'static str),
    /// The fan-out bench's implementation at a subscriber count (see [`fanout_matches`]).
    Fanout(Impl, &'static str),
}

/// What the ratio ours/peer should be.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// Throughput ratio at least this.
    AtLeast(f64),
    /// Time ratio at most this (rows without a throughput).
    TimeAtMost(f64),
    /// Shown for context, no goal.
    Context,
}

/// One comparison: a line of the report.
#[derive(Clone, Copy, Debug)]
struct Cmp {
    row: &'static str,
    ours: (&'static str, Src),
    peer: (&'static str, Src),
    goal: Goal,
}

const fn cmp(row: &'static str, ours: (&'static str, Src), peer: (&'static str, Src), goal: Goal) -> Cmp {
    Cmp { row, ours, peer, goal }
}

const OURS_APPEND: (&str, Src) =
    ("journal append_batch 64 KiB", Src::Bench("journal/append_no_fsync_256B/journal_append_batch_64KiB"));
const OURS_READ: (&str, Src) = ("journal read_since(0)", Src::Bench("journal/read_crc_256B/journal_read_since_0"));
const OURS_D1: (&str, Src) = ("Feed::append", Src::Bench("durable/1_appender/ours_feed"));
const OURS_D16: (&str, Src) = ("Feed::append ×16 tasks", Src::Bench("durable/16_appenders/ours_feed"));
const D16_PEERS: &[&str] = &["durable/16_appenders/raft_engine", "durable/16_appenders/okaywal"];

/// The subscriber counts of the fan-out rows.
const FANOUT_COUNTS: [&str; 3] = ["1", "4", "16"];

/// Every comparison the report makes, in DESIGN.md section 8's order (fan-out first, added by [`fanout_rows`]).
fn rows() -> Vec<Cmp> {
    use Goal::*;
    use Src::*;
    let mut v = fanout_rows();
    v.extend([
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            // DESIGN §8's limit: "raw 280 B frames + CRC in 64 KiB writes".
            (
                "raw frames + CRC in 64 KiB writes (limit)",
                Bench("journal/append_no_fsync_256B/raw_frame_crc_write_64KiB"),
            ),
            AtLeast(0.8),
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            (
                "raw write(2) of prebuilt frames (no CRC work)",
                Bench("journal/append_no_fsync_256B/raw_write_prebuilt_64KiB"),
            ),
            Context,
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            ("raft-engine, batches of 100", Bench("journal/append_no_fsync_256B/raft_engine_batch_100")),
            Context,
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            ("commitlog, batches of 234", Bench("journal/append_no_fsync_256B/commitlog_batch_234")),
            Context,
        ),
        cmp(
            "durable append, 1 appender",
            OURS_D1,
            ("raw write + fdatasync per record", Bench("durable/1_appender/raw_write_fdatasync")),
            AtLeast(1.0),
        ),
        cmp(
            "durable append, 1 appender",
            ("Journal::append, Always", Bench("durable/1_appender/ours_journal")),
            ("raw write + fdatasync per record", Bench("durable/1_appender/raw_write_fdatasync")),
            AtLeast(1.0),
        ),
        cmp("durable append, 1 appender", OURS_D1, ("raft-engine", Bench("durable/1_appender/raft_engine")), Context),
        cmp("durable append, 1 appender", OURS_D1, ("okaywal", Bench("durable/1_appender/okaywal")), Context),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("best peer (raft-engine, okaywal)", Best(D16_PEERS)),
            AtLeast(1.5),
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("limit: 16 × this run's fdatasync rate", Times(16.0, "durable/1_appender/raw_write_fdatasync")),
            AtLeast(0.7),
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("raw, 16 threads, no batching", Bench("durable/16_appenders/raw_16_threads_fdatasync")),
            Context,
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("raft-engine", Bench("durable/16_appenders/raft_engine")),
            Context,
        ),
        cmp("durable append, 16 appenders", OURS_D16, ("okaywal", Bench("durable/16_appenders/okaywal")), Context),
        cmp(
            "durable append, 1,024 appenders",
            ("Feed::append ×1,024 tasks", Bench("durable/1024_appenders/ours_feed")),
            ("ours, same, no fsync", Bench("durable/1024_appenders/ours_feed_no_fsync")),
            AtLeast(0.25),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("crc32fast over the same bytes (limit)", Bench("journal/read_crc_256B/crc32fast_same_bytes")),
            AtLeast(0.7),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("commitlog", Bench("journal/read_crc_256B/commitlog")),
            AtLeast(1.5),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("per-frame CRC walk", Bench("journal/read_crc_256B/per_frame_crc_same_bytes")),
            Context,
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("raft-engine", Bench("journal/read_crc_256B/raft_engine")),
            Context,
        ),
        cmp(
            "open a 64-segment journal",
            ("Journal::open", Bench("journal/open_64_segments/journal_open")),
            ("full scan (verify)", Bench("journal/open_64_segments/full_scan_verify")),
            TimeAtMost(0.05),
        ),
        cmp(
            "feed end to end",
            ("record → stream_from", Bench("feed/e2e/ours")),
            ("raw journal append", Bench("feed/e2e/raw_journal_append")),
            AtLeast(0.5),
        ),
        cmp(
            "catch-up stream_from(0)",
            ("stream_from(0)", Bench("feed/catch_up/ours")),
            ("raw journal read", Bench("feed/catch_up/raw_journal_read")),
            AtLeast(0.5),
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("raw pipelined async-nats", Printed("nats/raw_pipelined")),
            AtLeast(0.8),
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("one-by-one publish", Printed("nats/one_by_one")),
            Context,
        ),
    ]);
    v
}

/// The fan-out rows: at each subscriber count, ours against paced tokio
/// broadcast (the goal) and the other peers (context). The fan-out bench's
/// ids are matched by [`fanout_matches`].
fn fanout_rows() -> Vec<Cmp> {
    let mut v = Vec::new();
    for (row, n) in [
        ("lossless fan-out, 1 subscriber", "1"),
        ("lossless fan-out, 4 subscribers", "4"),
        ("lossless fan-out, 16 subscribers", "16"),
    ] {
        let ours = ("events-fanout", Src::Fanout(Impl::Ours, n));
        v.push(cmp(
            row,
            ours,
            ("tokio broadcast, paced (no loss)", Src::Fanout(Impl::TokioPaced, n)),
            Goal::AtLeast(1.0),
        ));
        v.push(cmp(row, ours, ("async-broadcast", Src::Fanout(Impl::AsyncBroadcast, n)), Goal::Context));
        v.push(cmp(row, ours, ("serial queue per subscriber", Src::Fanout(Impl::Serial, n)), Goal::Context));
        v.push(cmp(row, ours, ("tokio broadcast, unpaced (lossy)", Src::Fanout(Impl::TokioUnpaced, n)), Goal::Context));
    }
    v
}

/// The implementations the fan-out bench compares.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Ours,
    TokioPaced,
    TokioUnpaced,
    AsyncBroadcast,
    Serial,
}

impl Impl {
    const ALL: [(Impl, &'static str); 5] = [
        (Impl::Ours, "ours: events-fanout"),
        (Impl::TokioPaced, "tokio broadcast, paced"),
        (Impl::AsyncBroadcast, "async-broadcast"),
        (Impl::Serial, "serial queues"),
        (Impl::TokioUnpaced, "tokio broadcast, unpaced (lossy)"),
    ];
}

/// Whether criterion id `id` is the fan-out bench's `imp` at `subscribers`.
/// The fan-out bench names its ids `fanout/...`; the subscriber count is one
/// `/`-separated part that is the number alone or joined to a word by `_`
/// (`16`, `16_subscribers`, `subscribers_16`), and the implementation is
/// told by the words in the id (`ours`/`events`, `tokio` + `paced` or
/// `unpaced`, `async_broadcast`, `serial`).
fn fanout_matches(id: &str, imp: Impl, subscribers: &str) -> bool {
    if !id.starts_with("fanout") {
        return false;
    }
    let count = id.split('/').skip(1).any(|part| {
        part == subscribers
            || part.split('_').next() == Some(subscribers)
            || part.rsplit('_').next() == Some(subscribers)
    });
    let id = id.to_ascii_lowercase().replace('-', "_");
    let unpaced = id.contains("unpaced") || id.contains("lossy");
    count
        && match imp {
            Impl::Ours => id.contains("ours") || id.contains("events_fanout"),
            Impl::TokioPaced => id.contains("tokio") && !unpaced,
            Impl::TokioUnpaced => id.contains("tokio") && unpaced,
            Impl::AsyncBroadcast => id.contains("async_broadcast"),
            Impl::Serial => id.contains("serial"),
        }
}

fn fanout_measure(results: &Results, imp: Impl, subscribers: &str) -> Option<Measure> {
    results.iter().find(|(id, _)| fanout_matches(id, imp, subscribers)).map(|(_, m)| *m)
}

/// A resolved figure: throughput (low, median, high) or time in ns (low, median, high).
#[derive(Clone, Copy, Debug)]
enum Fig {
    Rate(f64, f64, f64),
    Time(f64, f64, f64),
}

struct Line {
    cmp: Cmp,
    ours: Option<Fig>,
    peer: Option<Fig>,
}

struct Report {
    lines: Vec<Line>,
    results: Results,
    printed: Vec<String>,
    /// Unpaced tokio broadcast's loss at each subscriber count, as the fan-out bench printed it.
    losses: BTreeMap<&'static str, String>,
}

impl Report {
    fn new(results: &Results, log: &str) -> Report {
        let resolve = |src: Src| -> Option<Fig> {
            let fig = |m: &Measure| match m.rate() {
                Some((lo, med, hi)) => Fig::Rate(lo, med, hi),
                None => Fig::Time(m.ns.0, m.ns.1, m.ns.2),
            };
            match src {
                Src::Bench(id) => results.get(id).map(fig),
                Src::Times(k, id) => match results.get(id).map(fig)? {
                    Fig::Rate(lo, med, hi) => Some(Fig::Rate(k * lo, k * med, k * hi)),
                    Fig::Time(..) => None,
                },
                Src::Best(ids) => ids
                    .iter()
                    .filter_map(|id| results.get(*id).and_then(Measure::rate))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(lo, med, hi)| Fig::Rate(lo, med, hi)),
                Src::Printed(prefix) => printed_rate(log, prefix).map(|r| Fig::Rate(r, r, r)),
                Src::Fanout(imp, n) => fanout_measure(results, imp, n).as_ref().map(fig),
            }
        };
        let lines =
            rows().into_iter().map(|cmp| Line { cmp, ours: resolve(cmp.ours.1), peer: resolve(cmp.peer.1) }).collect();
        // Summary lines, plus the fan-out bench's indented summary block.
        let mut printed = Vec::new();
        let mut in_fanout = false;
        for l in log.lines() {
            in_fanout = l.starts_with("fan-out summary") || (in_fanout && l.starts_with(' '));
            if in_fanout || l.starts_with("summary") || l.starts_with("feed/latency") || l.starts_with("nats/") {
                printed.push(l.to_string());
            }
        }
        let losses = FANOUT_COUNTS.iter().filter_map(|n| unpaced_loss(log, n).map(|l| (*n, l))).collect();
        Report { lines, results: results.clone(), printed, losses }
    }

    /// The ratio ours/peer (time ratio for time figures) as (worst, median, best).
    fn ratio(line: &Line) -> Option<(f64, f64, f64)> {
        match (line.ours?, line.peer?) {
            (Fig::Rate(ol, om, oh), Fig::Rate(pl, pm, ph)) => Some((ol / ph, om / pm, oh / pl)),
            (Fig::Time(ol, om, oh), Fig::Time(pl, pm, ph)) => Some((ol / ph, om / pm, oh / pl)),
            _ => None,
        }
    }

    fn verdict(line: &Line) -> &'static str {
        let Some((_, r, _)) = Self::ratio(line) else { return "" };
        match line.cmp.goal {
            Goal::AtLeast(g) if r >= g => "✔",
            Goal::TimeAtMost(g) if r <= g => "✔",
            Goal::Context => "",
            _ => "✘",
        }
    }

    /// The comparison table, in Markdown.
    fn table(&self) -> String {
        let mut t = String::from(
            "| row | ours | vs | ours | peer | ours/peer (95% CI) | goal | |\n|---|---|---|---:|---:|---|---|---|\n",
        );
        let mut last_row = "";
        for line in &self.lines {
            let row = if line.cmp.row == last_row { "" } else { line.cmp.row };
            last_row = line.cmp.row;
            let ratio = match Self::ratio(line) {
                Some((lo, med, hi)) if (hi - lo).abs() > 1e-9 * med.abs() => format!("{med:.2}× ({lo:.2}–{hi:.2})"),
                Some((_, med, _)) => format!("{med:.2}×"),
                None => "not run".to_string(),
            };
            let goal = match line.cmp.goal {
                Goal::AtLeast(g) => format!("≥ {g}×"),
                Goal::TimeAtMost(g) => format!("time ≤ {g}×"),
                Goal::Context => "context".to_string(),
            };
            let peer = match (line.cmp.peer.1, line.peer) {
                (Src::Fanout(Impl::TokioUnpaced, n), Some(_)) => match self.losses.get(n) {
                    Some(loss) => format!("{} ({loss})", line.cmp.peer.0),
                    None => line.cmp.peer.0.to_string(),
                },
                _ => line.cmp.peer.0.to_string(),
            };
            let _ = writeln!(
                t,
                "| {row} | {} | {peer} | {} | {} | {ratio} | {goal} | {} |",
                line.cmp.ours.0,
                show(line.ours),
                show(line.peer),
                Self::verdict(line)
            );
        }
        t
    }

    fn markdown(&self, mode: &str, filter: Option<&str>) -> String {
        let mut md = String::from("# Benchmark report\n\n");
        let _ = writeln!(
            md,
            "Generated by `cargo xtask bench` ({mode} run{}), on {} ({} cores). Ours and every peer ran in the same \
             run on the same file system; figures are criterion medians, the spread is the ratio's worst and best \
             case over the two 95% confidence intervals. Rates are records (events, messages) per second.\n",
            filter.map(|f| format!(", filter `{f}`")).unwrap_or_default(),
            today(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        md.push_str(&self.table());
        let passed = self.lines.iter().filter(|l| Self::verdict(l) == "✔").count();
        let failed = self.lines.iter().filter(|l| Self::verdict(l) == "✘").count();
        let missing = self.lines.iter().filter(|l| Self::ratio(l).is_none()).count();
        let _ = writeln!(md, "\nGoals met: {passed}, missed: {failed}; comparisons without figures: {missing}.\n");
        md.push_str("## Charts\n\n![fan-out](fanout.svg)\n\n![durable appends](durable.svg)\n\n");
        if !self.printed.is_empty() {
            md.push_str("## The benches' own printouts\n\n```text\n");
            for l in &self.printed {
                md.push_str(l);
                md.push('\n');
            }
            md.push_str("```\n\n");
        }
        md.push_str(
            "## Every criterion result of this run\n\n| id | median time / iteration | throughput |\n|---|---:|---:|\n",
        );
        for (id, m) in &self.results {
            let thr = m.rate().map(|r| rate(r.1)).unwrap_or_default();
            let _ = writeln!(md, "| `{id}` | {} | {thr} |", time(m.ns.1));
        }
        md
    }

    fn charts(&self) -> Vec<(&'static str, String)> {
        let series = |ids: &[(&str, &[&str])]| -> Vec<(String, Vec<Option<f64>>)> {
            ids.iter()
                .map(|(name, ids)| {
                    let pts = ids.iter().map(|id| self.results.get(*id).and_then(Measure::rate).map(|r| r.1)).collect();
                    (name.to_string(), pts)
                })
                .collect()
        };
        let durable = series(&[
            (
                "ours: Feed::append",
                &["durable/1_appender/ours_feed", "durable/16_appenders/ours_feed", "durable/1024_appenders/ours_feed"],
            ),
            (
                "raw fdatasync per record",
                &["durable/1_appender/raw_write_fdatasync", "durable/16_appenders/raw_16_threads_fdatasync", ""],
            ),
            ("raft-engine", &["durable/1_appender/raft_engine", "durable/16_appenders/raft_engine", ""]),
            ("okaywal", &["durable/1_appender/okaywal", "durable/16_appenders/okaywal", ""]),
        ]);
        let fanout = fanout_series(&self.results);
        vec![
            (
                "durable.svg",
                chart(
                    "Durable appends: records/s vs concurrent appenders",
                    "concurrent appenders",
                    &["1", "16", "1024"],
                    &durable,
                ),
            ),
            ("fanout.svg", chart("Lossless fan-out: events/s vs subscribers", "subscribers", &FANOUT_COUNTS, &fanout)),
        ]
    }
}

fn fanout_series(results: &Results) -> Vec<(String, Vec<Option<f64>>)> {
    Impl::ALL
        .iter()
        .map(|(imp, name)| {
            let pts =
                FANOUT_COUNTS.iter().map(|n| fanout_measure(results, *imp, n).and_then(|m| m.rate()).map(|r| r.1));
            (name.to_string(), pts.collect())
        })
        .collect()
}

fn show(fig: Option<Fig>) -> String {
    match fig {
        Some(Fig::Rate(_, med, _)) => rate(med),
        Some(Fig::Time(_, med, _)) => time(med),
        None => "—".to_string(),
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Howard Hinnant's days-to-civil algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------
// SVG

const COLORS: [&str; 6] = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// A line chart with categorical x positions and a log-scaled y axis
/// (the figures span three orders of magnitude). Missing points are skipped.
fn chart(title: &str, x_title: &str, xs: &[&str], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 80.0, 220.0, 40.0, 50.0);
    let values: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).filter(|v| *v > 0.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo_exp, hi_exp) = if values.is_empty() {
        (3.0, 7.0)
    } else {
        (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0))
    };
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let x_at = |i: usize| left + plot_w * (i as f64 + 0.5) / xs.len() as f64;
    let y_at = |v: f64| top + plot_h * (1.0 - (v.log10() - lo_exp) / (hi_exp - lo_exp));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        left + plot_w / 2.0,
        escape(title)
    );
    let mut e = lo_exp;
    while e <= hi_exp {
        let y = y_at(10f64.powf(e));
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            tick(10f64.powf(e))
        );
        e += 1.0;
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x_at(i),
            top + plot_h + 18.0,
            escape(x)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>\n\
         <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">per second (log scale)</text>",
        left + plot_w / 2.0,
        h - 10.0,
        escape(x_title),
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let coords: Vec<(f64, f64)> =
            pts.iter().enumerate().filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (x_at(i), y_at(v)))).collect();
        if coords.len() > 1 {
            let path: Vec<String> = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
        }
        for (x, y) in &coords {
            let _ = writeln!(s, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\"/>");
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let lx = left + plot_w + 12.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(name)
        );
    }
    if values.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no results in this run</text>",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// An axis label for a power of ten: `100`, `1k`, `10k`, `1M`.
fn tick(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{}G", v / 1e9),
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

// ---------------------------------------------------------------------------
// JSON: just enough to read criterion's two small files.

#[derive(Debug)]
enum Json {
    Null,
    Bool(#[allow(dead_code, reason = "parsed for completeness, never read")] bool),
    Num(f64),
    Str(String),
    Arr(#[allow(dead_code, reason = "parsed for completeness, never read")] Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i == p.s.len() { Ok(v) } else { Err(format!("trailing bytes in JSON at {}", p.i)) }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        if let Json::Num(n) = self { Some(*n) } else { None }
    }

    fn str(&self) -> Option<&str> {
        if let Json::Str(s) = self { Some(s) } else { None }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("JSON: expected `{}` at {}", b as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let Json::Str(key) = self.value()? else { return Err(format!("JSON: key expected at {}", self.i)) };
                    self.eat(b':')?;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("JSON: `,` or `}}` expected at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("JSON: `,` or `]` expected at {}", self.i)),
                    }
                }
            }
            Some(b'"') => {
                self.i += 1;
                let mut out = String::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err("JSON: unterminated string".into()),
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Json::Str(out));
                        }
                        Some(b'\\') => {
                            let c = *self.s.get(self.i + 1).ok_or("JSON: bad escape")?;
                            self.i += 2;
                            match c {
                                b'n' => out.push('\n'),
                                b't' => out.push('\t'),
                                b'r' => out.push('\r'),
                                b'b' => out.push('\u{8}'),
                                b'f' => out.push('\u{c}'),
                                b'u' => {
                                    let hex = self.s.get(self.i..self.i + 4).ok_or("JSON: bad \\u escape")?;
                                    let code = u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("?"), 16)
                                        .map_err(|_| "JSON: bad \\u escape")?;
                                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                                    self.i += 4;
                                }
                                other => out.push(other as char),
                            }
                        }
                        Some(_) => {
                            // Copy a run of plain bytes at once; the input is UTF-8 (it came from a &str).
                            let start = self.i;
                            while self.s.get(self.i).is_some_and(|b| *b != b'"' && *b != b'\\') {
                                self.i += 1;
                            }
                            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
                        }
                    }
                }
            }
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(_) => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse().map(Json::Num).map_err(|_| format!("JSON: bad value at {start}"))
            }
            None => Err("JSON: unexpected end".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_files() {
        let b = Json::parse(
            r#"{"group_id":"durable/1_appender","function_id":"ours_feed","value_str":null,"throughput":{"Elements":16},"full_id":"durable/1_appender/ours_feed","title":"a \"b\""}"#,
        )
        .unwrap();
        assert_eq!(b.get("full_id").and_then(Json::str), Some("durable/1_appender/ours_feed"));
        assert_eq!(b.get("throughput").and_then(|t| t.get("Elements")).and_then(Json::num), Some(16.0));
        assert_eq!(b.get("title").and_then(Json::str), Some("a \"b\""));
        let e = Json::parse(r#"{"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.5e3,"upper_bound":2000.0},"point_estimate":1750.25,"standard_error":[1,2]}}"#).unwrap();
        let m = e.get("median").unwrap();
        assert_eq!(m.get("point_estimate").and_then(Json::num), Some(1750.25));
        assert_eq!(m.get("confidence_interval").and_then(|c| c.get("lower_bound")).and_then(Json::num), Some(1500.0));
    }

    #[test]
    fn ratio_and_verdict() {
        let mut results = Results::new();
        results
            .insert("durable/1_appender/ours_feed".into(), Measure { ns: (90.0, 100.0, 110.0), elements: Some(1.0) });
        results.insert(
            "durable/1_appender/raw_write_fdatasync".into(),
            Measure { ns: (190.0, 200.0, 210.0), elements: Some(1.0) },
        );
        let report =
            Report::new(&results, "nats/replicator  100 x 200 B: 80000 msg/s\nnats/raw_pipelined  x: 100000 msg/s\n");
        let line = report.lines.iter().find(|l| l.cmp.row == "durable append, 1 appender").unwrap();
        let (lo, med, hi) = Report::ratio(line).unwrap();
        assert!((med - 2.0).abs() < 1e-9 && lo < med && med < hi);
        assert_eq!(Report::verdict(line), "✔");
        let nats = report.lines.iter().find(|l| l.cmp.row == "JetStream replication").unwrap();
        assert!((Report::ratio(nats).unwrap().1 - 0.8).abs() < 1e-9);
        assert!(report.table().contains("not run"));
    }

    #[test]
    fn fanout_ids() {
        assert!(fanout_matches("fanout/lossless/ours/16", Impl::Ours, "16"));
        assert!(!fanout_matches("fanout/lossless/ours/16", Impl::Ours, "1"));
        assert!(fanout_matches("fanout/4_subscribers/tokio_broadcast_paced", Impl::TokioPaced, "4"));
        assert!(!fanout_matches("fanout/4_subscribers/tokio_broadcast_unpaced", Impl::TokioPaced, "4"));
        assert!(fanout_matches("fanout/4_subscribers/tokio_broadcast_unpaced", Impl::TokioUnpaced, "4"));
        assert!(fanout_matches("fanout/subs_1/async-broadcast", Impl::AsyncBroadcast, "1"));
        assert!(fanout_matches("fanout/arc/serial_queues/1", Impl::Serial, "1"));
    }

    #[test]
    fn unpaced_losses() {
        let log = "fan-out summary (x)\n   1 subscribers:\n    tokio_broadcast_unpaced     7.00M events/s   lost 5 (0.1%)\n  16 subscribers:\n    ours  1M events/s   lost 0 (0.0%)\n    tokio_broadcast_unpaced  2M events/s   lost 900 (90.0%)\n";
        assert_eq!(unpaced_loss(log, "1").as_deref(), Some("lost 5 (0.1%)"));
        assert_eq!(unpaced_loss(log, "16").as_deref(), Some("lost 900 (90.0%)"));
        assert_eq!(unpaced_loss(log, "4"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(today().len(), 10);
    }
}
