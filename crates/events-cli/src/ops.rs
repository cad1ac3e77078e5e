//! The operator's commands: `inspect` (what a journal directory holds),
//! `dump` (one line per record), `verify` (a full CRC and contiguity scan)
//! and `tail` (follow another process's writer). They only read: none of
//! them takes the writer lock or changes a byte.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::Bincode;
use events_journal::{ReadError, Reader};
use serde_json::json;

use crate::Failure;
use crate::model::DemoEvent;

/// Arguments of `events dump`.
#[derive(Debug, clap::Args)]
pub(crate) struct DumpArgs {
    /// The journal directory.
    dir: PathBuf,
    /// Print records after this seq (exclusive).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Print at most this many records.
    #[arg(long)]
    limit: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `events tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// The journal directory.
    dir: PathBuf,
    /// Print records after this seq (exclusive). Default: only new records.
    #[arg(long)]
    from: Option<u64>,
    /// Keep waiting for new records instead of exiting at the end.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

fn require_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Error(format!("{} is not a directory", dir.display()).into()));
    }
    Ok(())
}

/// `events dump DIR`.
pub(crate) fn dump(args: &DumpArgs) -> Result<(), Failure> {
    require_dir(&args.dir)?;
    let reader = Reader::open(&args.dir)?;
    let records = match reader.read_since(args.from) {
        Ok(records) => records,
        Err(ReadError::Expired { earliest }) => {
            return Err(Failure::Error(
                format!("records after {} were removed by retention; the earliest is {earliest}", args.from).into(),
            ));
        }
        Err(ReadError::Ahead { latest }) => {
            return Err(Failure::Error(format!("--from {} is past the latest seq {latest}", args.from).into()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    for record in records.take(usize::try_from(args.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX)) {
        let record = record?;
        let line = format_record(record.seq(), record.ts(), record.payload(), args.json);
        if writeln!(out, "{line}").is_err() {
            break; // stdout closed (e.g. piped into `head`)
        }
    }
    Ok(())
}

/// `events verify DIR`.
pub(crate) fn verify(dir: &Path) -> Result<(), Failure> {
    require_dir(dir)?;
    let report = events_journal::verify(dir)?;
    let totals = format!(
        "{} segments, {} records ({}), {} bytes",
        report.segments,
        report.records,
        match (report.first_seq, report.last_seq) {
            (Some(first), Some(last)) => format!("seqs {first}..={last}"),
            _ => "empty".to_owned(),
        },
        report.bytes
    );
    if report.is_ok() {
        println!("ok: {totals}");
        return Ok(());
    }
    for p in &report.problems {
        let seq = p.seq.map_or_else(String::new, |s| format!(" seq {s}"));
        println!("{} offset {}{seq}: {}", p.path.display(), p.offset, p.what);
    }
    println!("FAILED: {} problem(s); {totals}", report.problems.len());
    Err(Failure::CheckFailed)
}

/// `events tail DIR`.
pub(crate) fn tail(args: &TailArgs) -> Result<(), Failure> {
    require_dir(&args.dir)?;
    let reader = Reader::open(&args.dir)?;
    let mut cursor = match args.from {
        Some(from) => from,
        None => reader.last_seq()?,
    };
    let mut out = std::io::stdout().lock();
    loop {
        match reader.read_since(cursor) {
            Ok(records) => {
                for record in records {
                    let record = record?;
                    cursor = record.seq();
                    let line = format_record(record.seq(), record.ts(), record.payload(), args.json);
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        return Ok(());
                    }
                }
            }
            Err(ReadError::Expired { earliest }) => {
                eprintln!(
                    "note: records {}..{earliest} were removed by retention; continuing at {earliest}",
                    cursor + 1
                );
                cursor = earliest - 1;
                continue;
            }
            Err(ReadError::Ahead { latest }) => {
                return Err(Failure::Error(format!("--from {cursor} is past the latest seq {latest}").into()));
            }
            Err(e) => return Err(e.into()),
        }
        if !args.follow {
            return Ok(());
        }
        // Polling is how `tail -f` follows a file written by another process.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One record as a line: text or JSON; the payload decoded when it is the
/// demo's event type, else shown as hex.
fn format_record(seq: u64, ts: u64, payload: &[u8], json: bool) -> String {
    let decoded = events::payload::decode::<DemoEvent, Bincode>(&Bincode, seq, ts, payload).ok();
    let time = rfc3339(ts);
    match (json, decoded) {
        (true, Some(env)) => json!({
            "seq": seq, "time": time, "stream": env.stream_str(), "size": payload.len(),
            "kind": env.event.kind(), "event": env.event,
        })
        .to_string(),
        (true, None) => {
            json!({ "seq": seq, "time": time, "stream": null, "size": payload.len(), "hex": hex(payload) }).to_string()
        }
        (false, Some(env)) => format!(
            "{seq:>10}  {time}  {:<12} {:>6} B  {:?}",
            env.stream_str().unwrap_or("-"),
            payload.len(),
            env.event
        ),
        (false, None) => format!("{seq:>10}  {time}  {:<12} {:>6} B  {}", "-", payload.len(), hex(payload)),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(64) * 2 + 3);
    for b in bytes.iter().take(64) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}

/// Unix nanoseconds as RFC 3339 UTC with microseconds.
pub(crate) fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn undecodable_payload_is_hex() {
        let line = format_record(3, 0, &[0xde, 0xad], false);
        assert!(line.contains("dead"), "{line}");
        let json: serde_json::Value = serde_json::from_str(&format_record(3, 0, &[0xde, 0xad], true)).unwrap();
        assert_eq!(json["hex"], "dead");
    }
}
