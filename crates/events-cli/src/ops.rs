//! The operator's commands `dump` (one line per record), `verify` (a full
//! CRC and contiguity scan) and `tail` (follow another process's writer),
//! beside `inspect.rs` (what a journal directory holds), which shares this
//! file's directory checks. They only read: none of them takes the writer
//! lock or changes a byte. Every line goes out through `crate::Out`, so a
//! reader that closes the pipe ends them quietly; `dump`, `verify` and
//! `inspect` refuse, with a message naming it, a directory that holds no
//! journal instead of reporting an empty one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::layers::journal::{Followed, Follower, JournalError, ReadError, Reader, Reset};
use serde_json::json;

use crate::args::FromCursor;
use crate::render::Payloads;
use crate::segments::segment_first_seq;
use crate::{Failure, Out};

/// Arguments of `events dump`.
#[derive(Debug, clap::Args)]
pub(crate) struct DumpArgs {
    /// The journal directory.
    dir: PathBuf,
    /// Print records after this seq (exclusive; 0, the default: everything retained, also
    /// when retention removed the first records). `<epoch>-<seq>` (a `--json` line's
    /// `cursor`) also names the journal: a directory that now holds another is an error,
    /// and `<epoch>-0` is a position (an error if retention removed records after it).
    #[arg(long, default_value = "0", value_parser = crate::args::parse_from)]
    from: FromCursor,
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
    /// Print records after this seq (exclusive; 0: everything retained, with no reset for
    /// what retention removed before the command started). Default: only new records (all
    /// of a journal that appears after the command started).
    /// `<epoch>-<seq>` (a `--json` line's `cursor`) also names the journal: if the
    /// directory now holds another, an `epoch_mismatch` reset, then its earliest record;
    /// `<epoch>-0` is a position (an `expired` reset if retention removed records after it).
    #[arg(long, value_parser = crate::args::parse_from)]
    from: Option<FromCursor>,
    /// Keep waiting for new records instead of exiting at the end (without
    /// it, the end the journal had when `tail` started).
    #[arg(long)]
    follow: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn require_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failure::Error(format!("{} is not a directory", dir.display()).into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Failure::Error(format!("{} does not exist", dir.display()).into()))
        }
        Err(e) => Err(Failure::Error(format!("{}: {e}", dir.display()).into())),
    }
}

/// Refuses what is not a journal directory: a missing path, a file, or a directory without a
/// single segment file (an empty directory, a mistyped path, a directory of something else).
/// A journal always has at least one segment (retention never removes the active one), so
/// reporting such a directory as an empty journal would hide the mistake. `what` names the
/// command's action for the message.
pub(crate) fn require_journal(dir: &Path, what: &str) -> Result<(), Failure> {
    require_dir(dir)?;
    let listing = |e: std::io::Error| Failure::Error(format!("cannot list {}: {e}", dir.display()).into());
    for entry in fs::read_dir(dir).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        if segment_first_seq(&entry.file_name()).is_some() && entry.file_type()?.is_file() {
            return Ok(());
        }
    }
    Err(Failure::Error(
        format!(
            "{} holds no journal (no segment file <first-seq>.seg): nothing to {what}; \
             check the path, or point it at a directory a feed has written",
            dir.display()
        )
        .into(),
    ))
}

/// `events dump DIR`.
pub(crate) fn dump(args: &DumpArgs) -> Result<(), Failure> {
    require_journal(&args.dir, "dump")?;
    let reader = Reader::open(&args.dir)?;
    let payloads = Payloads::of(&args.dir);
    let mut out = Out::new();
    let mut left = args.limit.unwrap_or(u64::MAX);
    // The journal whose seqs `--from` means (if it names one, the one in
    // the directory must be it) and every line's cursor names.
    let now = reader.epoch()?;
    let epoch = args.from.epoch.unwrap_or(now);
    let another = |found: u64| {
        let dir = args.dir.display();
        Failure::Error(
            format!("{dir} holds the journal of epoch {found}, not {epoch}: its seqs are other records").into(),
        )
    };
    if now != epoch {
        return Err(another(now));
    }
    // The seq printed last (or the gap's end), where a read again goes on.
    let mut cursor = args.from.seq;
    loop {
        // A read made while a writer opens the journal stops at its sealed
        // segments (the segments a read walks are fixed when it starts):
        // looked at around the read, since the writer may be open by the
        // time the records are printed.
        let opening = reader.writer_opening()?;
        let records = dump_from(&reader, cursor, &args.from)?;
        let opening = opening || reader.writer_opening()?;
        // Recreated while the dump was reading.
        if let Some(found) = records.epoch().filter(|&found| found != epoch) {
            return Err(another(found));
        }
        for record in records {
            if left == 0 {
                return Ok(());
            }
            let line = match record {
                Ok(record) => {
                    left -= 1;
                    cursor = record.seq();
                    payloads.format_record(epoch, record.seq(), record.ts(), record.payload(), args.json)
                }
                // A gap is part of what the journal says: print it and go on.
                Err(JournalError::Gap { expected, found, .. }) => {
                    cursor = found - 1;
                    format_reset(&Reset::Gap { first_missing: expected, last_missing: found - 1 }, args.json)
                }
                Err(e) => return Err(e.into()),
            };
            outln!(out, "{line}")?;
        }
        if left == 0 {
            return Ok(()); // no need to wait for a writer for more
        }
        // The journal's end, or the end of its sealed segments while a
        // writer opens it: then the rest is there once it is open.
        if !waited_for_an_opening_writer(&reader)? && !opening {
            return Ok(());
        }
    }
}

/// The records `dump` prints after `cursor`; `from` is what `--from` asked.
fn dump_from(reader: &Reader, cursor: u64, from: &FromCursor) -> Result<events::layers::journal::Records, Failure> {
    // A bare 0 is everything retained; `<epoch>-0` is a position, as
    // every cursor naming its journal (`GET /stream?since=` and
    // `stream_from` take it so): records after it pruned are refused.
    let read = if from.epoch.is_none() { read_from(reader, cursor) } else { reader.read_since(cursor) };
    let from = from.seq;
    match read {
        Ok(records) => Ok(records),
        Err(ReadError::Expired { earliest }) => Err(Failure::Error(
            format!("records after {from} were removed by retention; the earliest is {earliest}").into(),
        )),
        Err(ReadError::Ahead { latest }) => {
            Err(Failure::Error(format!("--from {from} is past the latest seq {latest}").into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// How long `dump` and `tail` wait for a writer that is opening the journal.
const OPENING_WAIT: Duration = Duration::from_secs(60);

/// Whether a read that just ended may have ended early: a writer is opening
/// the journal, and reads stop at the sealed segments until it is open.
/// Waits until it is, then `true` (read again from where the read ended);
/// an error naming the directory after [`OPENING_WAIT`].
fn waited_for_an_opening_writer(reader: &Reader) -> Result<bool, Failure> {
    Ok(reader.wait_while_a_writer_opens(std::time::Instant::now() + OPENING_WAIT)?)
}

/// The records after `from`; a bare 0 is everything retained (as in `tail`
/// and `stream_from(Seq::ZERO)`), read again if retention removed the
/// earliest between the look and the read.
fn read_from(reader: &Reader, from: u64) -> Result<events::layers::journal::Records, ReadError> {
    if from != 0 {
        return reader.read_since(from);
    }
    let mut tries = 0;
    loop {
        match reader.read_since(reader.first_seq()?.saturating_sub(1)) {
            Err(ReadError::Expired { .. }) if tries < 8 => tries += 1,
            read => return read,
        }
    }
}

/// `events verify DIR`. The verdict does not depend on the reader: if stdout is closed while
/// problems are being listed, it stops listing and still exits 1.
pub(crate) fn verify(dir: &Path) -> Result<(), Failure> {
    require_journal(dir, "verify")?;
    let report = events::layers::journal::verify(dir)?;
    let mut out = Out::new();
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
        return outln!(out, "ok: {totals}");
    }
    let listed = report
        .problems
        .iter()
        .try_for_each(|p| {
            let seq = p.seq.map_or_else(String::new, |s| format!(" seq {s}"));
            outln!(out, "{} offset {}{seq}: {}", p.path.display(), p.offset, p.what)
        })
        .and_then(|()| outln!(out, "FAILED: {} problem(s); {totals}", report.problems.len()));
    crate::verdict(listed, false)
}

/// `events tail DIR`: follows through the journal's [`Follower`], so it
/// stops at the writer's durable watermark and prints every reset (expired
/// cursor, cursor ahead, salvage gap, recreated directory) as a line of the
/// output, in the library's terms, instead of skipping silently.
pub(crate) fn tail(args: &TailArgs) -> Result<(), Failure> {
    if !args.follow {
        require_dir(&args.dir)?;
    }
    let mut waiting = false;
    // No journal was there when the command started: every record of the
    // one that appears is newer than the command. (Not a segment pruned
    // under a look at a journal that is there: that is tried again as before.)
    let mut absent = false;
    let mut vanished = None;
    let (mut follower, mut from_start) = loop {
        match start_following(args, absent) {
            Ok(started) => break started,
            // Under `--follow`, a directory that holds no journal yet is
            // waited for, as `serve` does.
            Err(e) if args.follow && holds_no_journal(&args.dir, &e, &mut vanished) => {
                let gone = matches!(std::fs::metadata(&args.dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
                absent |= gone || matches!(e, JournalError::NoSegments { .. });
                say_waiting(&args.dir, &mut waiting);
                Out::check_open()?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    };
    vanished = None;
    let mut payloads = Payloads::of(&args.dir);
    let mut out = Out::new();
    // Without `--follow`, the records up to the journal's end as `tail`
    // starts (as `dump` reads one snapshot): a writer appending faster than
    // `tail` prints had kept it going until the writer paused. While a
    // writer opens, that end is what its predecessor acknowledged. Read
    // again for another journal (an epoch reset); unbounded where the end
    // cannot be read (damage `tail` reports after the records before it).
    let mut end = if args.follow { None } else { follower.reader().last_seq().ok() };
    loop {
        // As in `dump`: a read made while a writer opens the journal stops
        // at its sealed segments, and the writer may be open by the time
        // the pass ends (then the wait below returns at once, `false`).
        let opening = !args.follow && follower.reader().writer_opening()?;
        loop {
            let step = match follower.next() {
                Ok(Some(step)) => step,
                Ok(None) => {
                    // Caught up: an expired reset from here on is one.
                    (vanished, from_start) = (None, false);
                    break;
                }
                // Deleted, or recreated and not written yet: under `--follow`
                // a moment to wait through, as `serve` does; the follower
                // prints the new journal's epoch reset once it is there.
                Err(e) if args.follow && holds_no_journal(&args.dir, &e, &mut vanished) => {
                    say_waiting(&args.dir, &mut waiting);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            (waiting, vanished) = (false, None);
            let line = match step {
                // `--from 0` is everything retained: retention that removed
                // the earliest between the look and the first read is no
                // reset (as `dump` reads again); the follower goes on with
                // the earliest there is.
                Followed::Reset(Reset::Expired { .. }) if from_start => {
                    from_start = false;
                    continue;
                }
                Followed::Record(record) if end.is_some_and(|end| record.seq() > end) => return Ok(()),
                Followed::Record(record) => {
                    from_start = false;
                    payloads.format_record(follower.epoch(), record.seq(), record.ts(), record.payload(), args.json)
                }
                Followed::Reset(reset) => {
                    from_start = false;
                    if let Reset::Epoch { .. } = reset {
                        // Another journal, maybe of another codec, and
                        // another end.
                        payloads = Payloads::of(&args.dir);
                        end = end.and_then(|_| follower.reader().last_seq().ok());
                    }
                    format_reset(&reset, args.json)
                }
            };
            outln!(out, "{line}")?;
            out.flush()?;
        }
        // The end of the sealed segments while a writer opens the journal
        // is not its end: `tail` without `--follow` reads on once it is open.
        if !args.follow && !waited_for_an_opening_writer(follower.reader())? && !opening {
            return Ok(());
        }
        if !args.follow {
            continue;
        }
        // Polling is how `tail -f` follows a file written by another process;
        // a reader gone meanwhile ends it, as a write would.
        Out::check_open()?;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The follower of `tail`, at the cursor `--from` asks for. Without one, at
/// the journal's end, unless it `appeared` after the command started: then
/// from its beginning, since all of it is new (its end would skip the records
/// written between its creation and this look).
/// With it, whether it starts before the earliest retained record, for a
/// bare `--from 0`.
fn start_following(args: &TailArgs, appeared: bool) -> Result<(Follower, bool), JournalError> {
    let reader = Reader::open(&args.dir)?;
    // Before any seq the cursor is taken from: a directory recreated
    // between the two reads is then one `epoch_mismatch` reset, not the new
    // journal's first records skipped under the old journal's last seq.
    let epoch = reader.epoch()?;
    let cursor = match args.from {
        // A cursor of a named journal is a position, `<epoch>-0` too, as
        // `GET /stream?since=` and `stream_from` take it: an `expired`
        // reset if records after it were pruned, and the follower says so
        // if the directory now holds another journal.
        Some(FromCursor { epoch: Some(named), seq }) => {
            return Ok((Follower::resume(reader, named, seq), false));
        }
        // A bare 0 asks for everything retained, as `stream_from(Seq::ZERO)`
        // and `GET /stream?since=0` do: no `expired` reset for what retention
        // removed before the command started.
        Some(FromCursor { seq: 0, .. }) => {
            let cursor = reader.first_seq()?.saturating_sub(1);
            return Ok((Follower::resume(reader, epoch, cursor), true));
        }
        Some(FromCursor { seq, .. }) => seq,
        // Seq 0, not the first retained: what retention removed since is
        // an `expired` reset, as for any cursor.
        None if appeared => 0,
        None => reader.last_seq()?,
    };
    Ok((Follower::resume(reader, epoch, cursor), false))
}

/// Says once on stderr that `tail` waits for a journal in `dir`.
fn say_waiting(dir: &Path, waiting: &mut bool) {
    if !std::mem::replace(waiting, true) {
        // A closed stderr is no reason to stop following (`eprintln!` panics on it).
        let _ = writeln!(std::io::stderr(), "waiting: {} holds no journal right now", dir.display());
    }
}

/// How long `tail --follow` waits on a file it cannot find in a directory
/// that still holds segments (a deletion under way removes them one by
/// one) before it reports it: the watermark naming a segment deleted by
/// hand is damage, not a journal yet to come.
const VANISHED_WAIT: Duration = Duration::from_secs(2);

/// Whether `error` came from a directory that holds no journal right now:
/// gone, or without a segment file yet, or a file missing for less than
/// [`VANISHED_WAIT`] (`since`: when it was first found missing with
/// segments still there, and how many; one fewer starts it again). A path that is not a directory, or cannot be
/// read (permissions), is an error to report, not to wait on; so is a
/// file missing for longer among segments. (Any file missing had been
/// waited on for ever, "holds no journal right now".)
fn holds_no_journal(dir: &Path, error: &JournalError, since: &mut Option<(std::time::Instant, usize)>) -> bool {
    let not_found = match error {
        JournalError::NoSegments { .. } => {
            *since = None;
            return true;
        }
        JournalError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    };
    let listed = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *since = None;
            return true;
        }
        listed => listed,
    };
    // A directory that cannot be listed (permissions) is reported.
    let (true, Ok(entries)) = (not_found, listed) else { return false };
    let segments = entries.filter(|e| e.as_ref().is_ok_and(|e| segment_first_seq(&e.file_name()).is_some())).count();
    if segments == 0 {
        *since = None;
        return true;
    }
    // Counted from the last segment that went: a deletion still under way
    // (a segment gone at least every 2 s) is not damage.
    if since.is_none_or(|(_, seen)| segments < seen) {
        *since = Some((std::time::Instant::now(), segments));
    }
    since.is_some_and(|(first, _)| first.elapsed() < VANISHED_WAIT)
}

/// A reset as a line: what was skipped and where the output goes on, saying
/// only what is known. A gap's records may have been lost to damage a
/// recovery cut, a salvage, or a power loss before they were synced, and a
/// cursor ahead of the journal may be a rolled-back journal or a mistyped
/// `--from`: the reset cannot tell which (a recreated journal is an `Epoch`).
fn format_reset(reset: &Reset, json: bool) -> String {
    match (reset, json) {
        (Reset::Expired { earliest }, false) => {
            format!("{:>10}  expired: earlier records were removed by retention; continuing at {earliest}", "reset")
        }
        (Reset::Ahead { latest, earliest }, false) => format!(
            "{:>10}  ahead: the cursor is past the journal's last seq {latest}; continuing at {earliest}",
            "reset"
        ),
        (Reset::Gap { first_missing, last_missing }, false) => format!(
            "{:>10}  gap: records {first_missing}..={last_missing} are missing (lost to damage, a salvage, \
             or a power loss); continuing at {}",
            "reset",
            last_missing + 1
        ),
        (Reset::Epoch { old, new, earliest }, false) => format!(
            "{:>10}  epoch_mismatch: the directory now holds another journal (epoch {new}, was {old}); continuing at {earliest}",
            "reset"
        ),
        (Reset::Expired { earliest }, true) => json!({ "reset": "expired", "earliest": earliest }).to_string(),
        (Reset::Ahead { latest, earliest }, true) => {
            json!({ "reset": "ahead", "latest": latest, "earliest": earliest }).to_string()
        }
        (Reset::Gap { first_missing, last_missing }, true) => {
            json!({ "reset": "gap", "first_missing": first_missing, "last_missing": last_missing }).to_string()
        }
        (Reset::Epoch { old, new, earliest }, true) => json!({
            "reset": "epoch_mismatch", "cursor_epoch": old.to_string(),
            "journal_epoch": new.to_string(), "earliest": earliest,
        })
        .to_string(),
        (other, _) => format!("{:>10}  {other:?}", "reset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every gap was printed as "dropped by a salvage recovery" and every
    /// cursor ahead as "(journal recreated or rolled back)": causes the
    /// reset does not know.
    #[test]
    fn resets_say_what_is_known_and_no_cause_they_cannot_tell() {
        let gap = format_reset(&Reset::Gap { first_missing: 4, last_missing: 6 }, false);
        assert!(
            gap.ends_with(
                "gap: records 4..=6 are missing (lost to damage, a salvage, or a power loss); continuing at 7"
            ),
            "{gap}"
        );
        let ahead = format_reset(&Reset::Ahead { latest: 9, earliest: 1 }, false);
        assert!(ahead.ends_with("ahead: the cursor is past the journal's last seq 9; continuing at 1"), "{ahead}");
        for line in [gap, ahead] {
            assert!(!line.contains("salvage recovery") && !line.contains("recreated"), "{line}");
        }
    }
}
