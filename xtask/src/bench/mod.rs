//! `cargo xtask bench`: runs every bench target of `events-benches`, then
//! turns the results into `target/bench-report/REPORT.md` (one line per
//! comparison of DESIGN.md section 8: ours, the peer, the ratio with its
//! spread, the goal and ✔/✘) plus SVG charts, and prints the table.
//!
//! This file holds the command itself: its options, running `cargo bench`
//! (keeping its printout in `bench-output.txt`) and writing the report's
//! files. Its neighbours do the rest: [`results`] reads criterion's files
//! and the benches' printed figures, [`goals`] is the list of comparisons as
//! data, [`report`] resolves them into the Markdown report and [`chart`]
//! writes the SVG charts. Invariant: the report is always rebuilt from what
//! is on disk (criterion's files and the saved printout), never from this
//! process's memory of the run, so `--report-only` writes the same report a
//! run would have.

mod chart;
mod goals;
mod report;
mod results;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use crate::{cargo, workspace_root};
use report::Report;

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
        // The JetStream rows run a local `nats-server` (and a 3-node cluster of them).
        crate::prerequisites(&[(&["nats-server"], "nats-server")])?;
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
    let results = results::collect(&target.join("criterion"), since)?;
    let printed = fs::read_to_string(&log_path).unwrap_or_default();
    // A filter that matched no bench: the report would be the last runs' alone, as if new.
    // (The benches that print their figures, memory, latency and NATS, count.)
    if let Some(filter) = opts.filter.as_deref().filter(|_| !opts.report_only && failed.is_none())
        && results::collect(&target.join("criterion"), Some(started))?.is_empty()
        && !report::has_printed_figures(&printed)
    {
        return Err(format!("--filter {filter:?} ran no bench; no report written"));
    }
    let report = Report::new(&results, &printed);
    let mode = match (opts.report_only, opts.quick) {
        (true, _) => "no new (`--report-only`)",
        (false, true) => "quick (`--quick`)",
        (false, false) => "full",
    };
    let filter = opts.filter.as_deref().filter(|_| !opts.report_only);
    let md = report.markdown(mode, filter, opts.report_only);
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
