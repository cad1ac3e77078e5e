//! `events consumers DIR`: the journal's durable consumers (their checkpoint
//! files in `DIR/consumers/`) with checkpoint, lag and whether retention
//! still keeps what they need, as a table or JSON lines; `--delete NAME`
//! removes one. It reads the files as the façade's followers do
//! (`events::consumer_reports`), so it works beside a running writer and on
//! a closed journal, whatever the journal's codec, and it refuses a
//! directory without a journal like its neighbours in `ops.rs` (whose
//! `require_journal` it shares); `inspect.rs` prints only the count.
//! Invariant: listing never changes a byte; `--delete` changes only the one
//! checkpoint file it names, and a name that is not there is an error, not a
//! silent success.

use std::path::{Path, PathBuf};

use events::ConsumerReport;
use serde_json::json;

use crate::ops::require_journal;
use crate::{Failure, Out};

/// Arguments of `events consumers`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumersArgs {
    /// The journal directory.
    dir: PathBuf,
    /// Delete this consumer's checkpoint instead of listing (retention stops
    /// keeping segments for it).
    #[arg(long, value_name = "NAME")]
    delete: Option<String>,
    /// One JSON object per consumer and line instead of the table.
    #[arg(long, conflicts_with = "delete")]
    json: bool,
}

/// `events consumers DIR [--json | --delete NAME]`.
pub(crate) fn consumers(args: &ConsumersArgs) -> Result<(), Failure> {
    require_journal(&args.dir, if args.delete.is_some() { "delete a consumer of" } else { "list consumers of" })?;
    // Listing and deleting decode no payload: they work whatever the
    // journal's event type and codec.
    let mut out = Out::new();
    if let Some(name) = &args.delete {
        return delete(&args.dir, name, &mut out);
    }
    let reports = events::consumer_reports(&args.dir)?;
    if args.json {
        for report in &reports {
            outln!(out, "{}", to_json(report))?;
        }
        return Ok(());
    }
    if reports.is_empty() {
        return outln!(out, "no durable consumers in {}", args.dir.display());
    }
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0).max("name".len());
    outln!(
        out,
        "{:<width$}  {:>12}  {:>12}  {:>12}  {:<6}  problem",
        "name",
        "checkpoint",
        "lag",
        "lag_bytes",
        "pinned"
    )?;
    for r in &reports {
        outln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:>12}  {:<6}  {}",
            r.name,
            r.checkpoint.map_or_else(|| "-".to_owned(), |seq| seq.to_string()),
            r.lag,
            r.lag_bytes,
            if r.pinned { "yes" } else { "no" },
            r.problem.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

fn delete(dir: &Path, name: &str, out: &mut Out) -> Result<(), Failure> {
    if events::layers::journal::delete_consumer(dir, name)? {
        outln!(out, "deleted consumer {name} from {}", dir.display())
    } else {
        Err(Failure::Error(
            format!(
                "{} has no consumer named {name:?}; `events consumers {}` lists them",
                dir.display(),
                dir.display()
            )
            .into(),
        ))
    }
}

fn to_json(r: &ConsumerReport) -> serde_json::Value {
    json!({
        "name": r.name,
        "checkpoint": r.checkpoint.map(|seq| seq.get()),
        "lag": r.lag,
        "lag_bytes": r.lag_bytes,
        "pinned": r.pinned,
        "problem": r.problem,
    })
}

/// The number of consumers in `dir`, for `inspect`: what the façade's
/// listing counts (valid names only).
pub(crate) fn count(dir: &Path) -> Result<usize, Failure> {
    Ok(events::layers::journal::list_consumers(dir)?.len())
}
