//! The report: resolves every comparison of `goals.rs` against the figures
//! of `results.rs` (criterion's medians and the benches' printout), and
//! writes the Markdown table with each ratio, its spread and the ✔/✘
//! verdict, the page around it (`REPORT.md`) and the data of the charts
//! that `chart.rs` draws. `mod.rs` writes what this file returns to disk.
//!
//! Invariant: the ratio's spread combines the two 95% confidence intervals
//! (ours at its worst against the peer at its best, and the reverse), and a
//! row is judged only when both figures exist and are of the same kind
//! (both rates or both times); otherwise it shows as "not run".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use super::chart::chart;
use super::goals::{Cmp, FANOUT_COUNTS, Goal, Impl, Src, fanout_measure, rows};
use super::results::{Measure, Printed, Results, printed_field, printed_rate, unpaced_loss};

/// A resolved figure: throughput (low, median, high), time in ns (low,
/// median, high) or a size in bytes (printed, so one value).
#[derive(Clone, Copy, Debug)]
enum Fig {
    Rate(f64, f64, f64),
    Time(f64, f64, f64),
    Bytes(f64),
}

struct Line {
    cmp: Cmp,
    ours: Option<Fig>,
    peer: Option<Fig>,
}

pub(super) struct Report {
    lines: Vec<Line>,
    results: Results,
    printed: Vec<String>,
    /// Unpaced tokio broadcast's loss at each subscriber count, as the fan-out bench printed it.
    losses: BTreeMap<&'static str, String>,
}

impl Report {
    pub(super) fn new(results: &Results, log: &str) -> Report {
        let resolve = |src: Src| -> Option<Fig> {
            let fig = |m: &Measure| match m.rate() {
                Some((lo, med, hi)) => Fig::Rate(lo, med, hi),
                None => Fig::Time(m.ns.0, m.ns.1, m.ns.2),
            };
            match src {
                Src::Bench(id) => results.get(id).map(fig),
                Src::Times(k, id) => match results.get(id).map(fig)? {
                    Fig::Rate(lo, med, hi) => Some(Fig::Rate(k * lo, k * med, k * hi)),
                    Fig::Time(..) | Fig::Bytes(_) => None,
                },
                // Judged against every peer listed or none: a peer that did
                // not run would leave the row judged against the others.
                Src::Best(ids) => ids
                    .iter()
                    .map(|id| results.get(*id).and_then(Measure::rate))
                    .collect::<Option<Vec<_>>>()?
                    .into_iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(lo, med, hi)| Fig::Rate(lo, med, hi)),
                Src::Printed(prefix) => printed_rate(log, prefix).map(|r| Fig::Rate(r, r, r)),
                Src::PrintedField(prefix, key) => printed_field(log, prefix, key).map(|p| match p {
                    Printed::Nanos(t) => Fig::Time(t, t, t),
                    Printed::Bytes(b) => Fig::Bytes(b),
                }),
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
            let summary = ["summary", "feed/latency", "nats/", "memory/"];
            if in_fanout || summary.iter().any(|p| l.starts_with(p)) {
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
            (Fig::Bytes(o), Fig::Bytes(p)) => Some((o / p, o / p, o / p)),
            _ => None,
        }
    }

    fn verdict(line: &Line) -> &'static str {
        let Some((_, r, _)) = Self::ratio(line) else { return "" };
        match line.cmp.goal {
            Goal::AtLeast(g) if r >= g => "✔",
            Goal::TimeAtMost(g) | Goal::SizeAtMost(g) if r <= g => "✔",
            Goal::Context => "",
            _ => "✘",
        }
    }

    /// The comparison table, in Markdown.
    pub(super) fn table(&self) -> String {
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
                Goal::SizeAtMost(g) => format!("size ≤ {g}×"),
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

    /// The report as markdown; `rebuilt` for `--report-only`, which runs
    /// nothing and reads whatever results are on disk.
    pub(super) fn markdown(&self, mode: &str, filter: Option<&str>, rebuilt: bool) -> String {
        let mut md = String::from("# Benchmark report\n\n");
        let _ = writeln!(
            md,
            "Generated by `cargo xtask bench` ({mode} run{}), on {} ({} cores). {} Figures are criterion medians, \
             the spread is the ratio's worst and best case over the two 95% confidence intervals. Rates are records \
             (events, messages) per second.\n",
            filter.map(|f| format!(", filter `{f}`")).unwrap_or_default(),
            today(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            same_run(filter, rebuilt),
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
            "## Every criterion result the report read\n\n| id | median time / iteration | throughput |\n|---|---:|---:|\n",
        );
        for (id, m) in &self.results {
            let thr = m.rate().map(|r| rate(r.1)).unwrap_or_default();
            let _ = writeln!(md, "| `{id}` | {} | {thr} |", time(m.ns.1));
        }
        md
    }

    pub(super) fn charts(&self) -> Vec<(&'static str, String)> {
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
        Some(Fig::Bytes(b)) if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        Some(Fig::Bytes(b)) => format!("{b:.0} B"),
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

/// Whether `log` holds a figure that a bench printed (latency, memory,
/// NATS rates): such a bench ran, though it is not a criterion bench.
pub(super) fn has_printed_figures(log: &str) -> bool {
    log.lines().any(|l| ["feed/latency", "nats/", "memory/"].iter().any(|p| l.starts_with(p)))
}

/// What the report says of where its figures come from.
fn same_run(filter: Option<&str>, rebuilt: bool) -> String {
    match filter {
        _ if rebuilt => "Rebuilt from the criterion results and the last run's printout left on disk: they may \
                         come from different runs (filtered, quick or full), so a ratio may compare two runs."
            .into(),
        None => "Ours and every peer ran in the same run on the same file system.".into(),
        Some(f) => format!(
            "Only the criterion ids matching `{f}` ran now: every other criterion figure, and any ratio with \
             one side outside the filter, comes from the results earlier runs left (a ratio may then compare two \
             runs). The figures benches print (latency, memory, NATS) come from this run alone: a row whose \
             bench the filter left out reads \"not run\"."
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A filtered run's report says its figures may come from two runs: it had said that
    /// ours and every peer ran in the same run, beside a peer's figure left by an earlier
    /// (perhaps `--quick`) run.
    #[test]
    fn a_filtered_report_does_not_claim_one_run() {
        assert!(same_run(None, false).contains("same run"));
        assert!(same_run(None, true).contains("different runs"), "--report-only");
        let filtered = same_run(Some("durable"), false);
        assert!(filtered.contains("`durable`") && filtered.contains("earlier runs"), "{filtered}");
        assert!(!filtered.contains("same run"), "{filtered}");
    }

    #[test]
    fn ratio_and_verdict() {
        let mut results = Results::new();
        results
            .insert("durable/1_appender/ours_feed".into(), Measure { ns: (90.0, 100.0, 110.0), elements: Some(1.0) });
        results.insert(
            "durable/1_appender/raw_write_fdatasync_reserved".into(),
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
    fn printed_latency_and_memory_rows() {
        let row = |r: &Report, name: &str| {
            let lines: Vec<_> = r.lines.iter().filter(|l| l.cmp.row.starts_with(name)).map(Report::ratio).collect();
            assert!(!lines.is_empty(), "no row {name}");
            lines
        };
        let log = "feed/latency record->stream_from (paced 50k/s): p50 6.0 us, p99 1200.0 us, n=20000 (dropped 0)\n\
                   feed/latency tokio mpsc hop (paced 50k/s): p50 3.0 us, p99 400.0 us, n=20000 (dropped 0)\n\
                   memory/stream_from idle client: mean 600.0 B, n=1000\n\
                   memory/session subscriber: mean 300.0 B, n=1000\n\
                   memory/tokio broadcast receiver: mean 16.0 B, n=1000\n\
                   memory/tokio broadcast receiver waiting: mean 150.0 B, n=1000\n";
        let report = Report::new(&Results::new(), log);
        let latency = report.lines.iter().find(|l| l.cmp.row.starts_with("latency p99")).unwrap();
        assert!((Report::ratio(latency).unwrap().1 - 3.0).abs() < 1e-9);
        assert_eq!(Report::verdict(latency), "✔");
        let memory: Vec<f64> = row(&report, "memory per idle client").into_iter().map(|r| r.unwrap().1).collect();
        // Against the waiting receiver (the goal), then the bare one (context).
        assert_eq!(memory, [4.0, 2.0, 37.5]);
        let table = report.table();
        assert!(table.contains("| 1.20 ms | 400.00 µs | 3.00× | time ≤ 5× | ✔ |"), "{table}");
        // DESIGN's memory goal: at most twice a broadcast receiver.
        assert!(table.contains("| 600 B | 150 B | 4.00× | size ≤ 2× | ✘ |"), "{table}");
        assert!(table.contains("| 300 B | 150 B | 2.00× | size ≤ 2× | ✔ |"), "{table}");
        assert!(table.contains("| 600 B | 16 B | 37.50× | context |  |"), "{table}");
        assert!(report.markdown("quick", None, false).contains("memory/session subscriber: mean 300.0 B"));
        // Without the printed lines, the rows show as not run.
        let empty = Report::new(&Results::new(), "");
        assert!(row(&empty, "latency p99").iter().chain(&row(&empty, "memory per idle client")).all(Option::is_none));
        assert!(
            empty.table().contains("| record → stream_from | one tokio mpsc hop | — | — | not run | time ≤ 5× |  |")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(today().len(), 10);
    }
}
