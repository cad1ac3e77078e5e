//! What the benches measured, read back from disk: criterion's two files per
//! bench function, and the figures the non-criterion benches print.
//!
//! Criterion writes, for every bench function,
//! `target/criterion/<group>/<function>/new/benchmark.json` (its ids and
//! throughput per iteration) and `estimates.json` (the median time per
//! iteration with its 95% confidence interval); [`collect`] reads both with
//! `serde_json`, declaring only the fields the report uses so criterion's
//! other fields may come and go. Benches that are not criterion benches
//! (JetStream replication, latency percentiles, memory per client) print
//! their figures on lines [`printed_rate`] and [`printed_field`] recognise.
//! Its neighbours: `mod.rs` calls [`collect`], `goals.rs` and `report.rs`
//! look figures up in the [`Results`]. Invariant: a figure
//! criterion left out (a missing bound or estimate) becomes NaN, never a
//! made-up number, and a bench without `full_id` is skipped, not guessed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One criterion bench function's result.
#[derive(Clone, Copy, Debug)]
pub(super) struct Measure {
    /// Median time per iteration and its 95% confidence interval, in ns: (low, median, high).
    pub(super) ns: (f64, f64, f64),
    /// Elements (records, events, messages) per iteration, when the bench declared a throughput.
    pub(super) elements: Option<f64>,
}

impl Measure {
    /// Throughput (low, median, high) in elements per second.
    pub(super) fn rate(&self) -> Option<(f64, f64, f64)> {
        let e = self.elements?;
        Some((e * 1e9 / self.ns.2, e * 1e9 / self.ns.1, e * 1e9 / self.ns.0))
    }
}

/// Results keyed by criterion's full id: `group/function[/parameter]`.
pub(super) type Results = BTreeMap<String, Measure>;

/// Criterion's `new/benchmark.json`: only the fields the report reads.
#[derive(Debug, Deserialize)]
struct BenchmarkFile {
    /// `group/function[/parameter]`; the key of [`Results`].
    full_id: Option<String>,
    /// Criterion's `Throughput` enum, externally tagged: `{"Elements": n}` or `{"Bytes": n}` (or `null`).
    throughput: Option<Throughput>,
}

#[derive(Debug, Deserialize)]
struct Throughput {
    #[serde(rename = "Elements")]
    elements: Option<f64>,
    #[serde(rename = "Bytes")]
    bytes: Option<f64>,
}

/// Criterion's `new/estimates.json`: only the median.
#[derive(Debug, Deserialize)]
struct EstimatesFile {
    median: Option<Estimate>,
}

#[derive(Debug, Deserialize)]
struct Estimate {
    point_estimate: Option<f64>,
    confidence_interval: Option<ConfidenceInterval>,
}

#[derive(Debug, Deserialize)]
struct ConfidenceInterval {
    lower_bound: Option<f64>,
    upper_bound: Option<f64>,
}

/// Parses one of criterion's files; the error names the file.
fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The [`Measure`] of one bench function from its two files, or `None` when
/// `benchmark.json` has no `full_id`.
fn measure(bench: (&Path, &str), estimates: (&Path, &str)) -> Result<Option<(String, Measure)>, String> {
    let b: BenchmarkFile = parse(bench.0, bench.1)?;
    let e: EstimatesFile = parse(estimates.0, estimates.1)?;
    let Some(id) = b.full_id else { return Ok(None) };
    let median = e.median.ok_or_else(|| format!("{}: no median", estimates.0.display()))?;
    let ci = median.confidence_interval.as_ref();
    let point = median.point_estimate.unwrap_or(f64::NAN);
    let lo = ci.and_then(|c| c.lower_bound).unwrap_or(f64::NAN);
    let hi = ci.and_then(|c| c.upper_bound).unwrap_or(f64::NAN);
    let elements = b.throughput.and_then(|t| t.elements.or(t.bytes));
    Ok(Some((id, Measure { ns: (lo, point, hi), elements })))
}

/// Reads every `new/benchmark.json` + `new/estimates.json` under `dir`,
/// keeping those written after `since` (all when `None`).
pub(super) fn collect(dir: &Path, since: Option<SystemTime>) -> Result<Results, String> {
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
        if let Some((id, m)) = measure((&bench, &b), (&estimates, &e))? {
            out.insert(id, m);
        }
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
pub(super) fn printed_rate(log: &str, prefix: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.starts_with(prefix))?;
    line.rsplit(':').next()?.split_whitespace().next()?.parse().ok()
}

/// A figure a bench printed with its unit: see [`printed_field`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Printed {
    /// A time, in ns.
    Nanos(f64),
    /// A size, in bytes.
    Bytes(f64),
}

/// The figure after the word `key` on the first line starting with `prefix`,
/// read as `key value unit` (a comma may follow either): `p99 6.7 us,` on
/// the `feed/latency ...` lines, `mean 1234.5 B,` on the `memory/...` lines.
/// Units: `ns`, `us`/`µs`, `ms`, `s` (a time), `B`, `KiB`, `MiB` (a size);
/// another unit, a missing key or an unparsable value is `None`.
pub(super) fn printed_field(log: &str, prefix: &str, key: &str) -> Option<Printed> {
    let line = log.lines().find(|l| l.starts_with(prefix))?;
    let mut words = line[prefix.len()..].split_whitespace().map(|w| w.trim_end_matches(','));
    words.by_ref().find(|w| *w == key)?;
    let value: f64 = words.next()?.parse().ok()?;
    Some(match words.next()? {
        "ns" => Printed::Nanos(value),
        "us" | "µs" => Printed::Nanos(value * 1e3),
        "ms" => Printed::Nanos(value * 1e6),
        "s" => Printed::Nanos(value * 1e9),
        "B" => Printed::Bytes(value),
        "KiB" => Printed::Bytes(value * 1024.0),
        "MiB" => Printed::Bytes(value * 1024.0 * 1024.0),
        _ => return None,
    })
}

/// The unpaced tokio broadcast's loss at `subscribers` from the fan-out
/// bench's summary block (`  16 subscribers:` then
/// `    tokio_broadcast_unpaced  ... lost N (P%)`), as `lost N (P%)`.
pub(super) fn unpaced_loss(log: &str, subscribers: &str) -> Option<String> {
    let header = format!("{subscribers} subscribers:");
    let mut lines = log.lines().skip_while(|l| l.trim() != header).skip(1);
    let line = lines
        .by_ref()
        .take_while(|l| !l.trim().ends_with("subscribers:"))
        .find(|l| l.trim().starts_with("tokio_broadcast_unpaced"))?;
    line.find("lost ").map(|at| line[at..].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_files() {
        let b = r#"{"group_id":"durable/1_appender","function_id":"ours_feed","value_str":null,"throughput":{"Elements":16},"full_id":"durable/1_appender/ours_feed","directory_name":"durable_1_appender/ours_feed","title":"a \"b\""}"#;
        let e = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.1},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.5e3,"upper_bound":2000.0},"point_estimate":1750.25,"standard_error":3.0},"std_dev":null}"#;
        let (id, m) = measure((Path::new("b.json"), b), (Path::new("e.json"), e)).unwrap().unwrap();
        assert_eq!(id, "durable/1_appender/ours_feed");
        assert_eq!(m.ns, (1500.0, 1750.25, 2000.0));
        assert_eq!(m.elements, Some(16.0));
    }

    #[test]
    fn criterion_files_without_figures() {
        // A bench without a throughput has no rate; one without `full_id` is skipped.
        let e = r#"{"median":{"confidence_interval":null,"point_estimate":10.0}}"#;
        let b = r#"{"full_id":"journal/open","throughput":null}"#;
        let (_, m) = measure((Path::new("b.json"), b), (Path::new("e.json"), e)).unwrap().unwrap();
        assert_eq!(m.elements, None);
        assert!(m.ns.0.is_nan() && m.ns.1 == 10.0 && m.ns.2.is_nan());
        assert!(measure((Path::new("b.json"), "{}"), (Path::new("e.json"), e)).unwrap().is_none());
        let missing = measure((Path::new("b.json"), b), (Path::new("e.json"), "{}")).unwrap_err();
        assert!(missing.contains("e.json: no median"), "{missing}");
        let broken = measure((Path::new("b.json"), "{"), (Path::new("e.json"), e)).unwrap_err();
        assert!(broken.starts_with("b.json: "), "{broken}");
    }

    #[test]
    fn printed_fields() {
        let log = "feed/latency record->stream_from (paced 50k/s): p50 6.2 us, p99 1500.0 us, n=20000 (dropped 0)\n\
                   feed/latency tokio mpsc hop (paced 50k/s): p50 3.1 us, p99 0.3 ms, n=20000 (dropped 0)\n\
                   memory/session subscriber: mean 312.5 B, n=1000 (session capacity 256)\n\
                   memory/odd: mean 3 parsecs, p50 x us\n";
        assert_eq!(printed_field(log, "feed/latency record->stream_from", "p99"), Some(Printed::Nanos(1_500_000.0)));
        assert_eq!(printed_field(log, "feed/latency record->stream_from", "p50"), Some(Printed::Nanos(6200.0)));
        assert_eq!(printed_field(log, "feed/latency tokio mpsc hop", "p99"), Some(Printed::Nanos(300_000.0)));
        assert_eq!(printed_field(log, "memory/session subscriber", "mean"), Some(Printed::Bytes(312.5)));
        // An absent line or key, an unknown unit and a value that is no number are not figures.
        assert_eq!(printed_field(log, "memory/stream_from", "mean"), None);
        assert_eq!(printed_field(log, "memory/session subscriber", "p99"), None);
        assert_eq!(printed_field(log, "memory/odd", "mean"), None);
        assert_eq!(printed_field(log, "memory/odd", "p50"), None);
        assert_eq!(printed_field("", "feed/latency", "p99"), None);
    }

    #[test]
    fn unpaced_losses() {
        let log = "fan-out summary (x)\n   1 subscribers:\n    tokio_broadcast_unpaced     7.00M events/s   lost 5 (0.1%)\n  16 subscribers:\n    ours  1M events/s   lost 0 (0.0%)\n    tokio_broadcast_unpaced  2M events/s   lost 900 (90.0%)\n";
        assert_eq!(unpaced_loss(log, "1").as_deref(), Some("lost 5 (0.1%)"));
        assert_eq!(unpaced_loss(log, "16").as_deref(), Some("lost 900 (90.0%)"));
        assert_eq!(unpaced_loss(log, "4"), None);
    }
}
