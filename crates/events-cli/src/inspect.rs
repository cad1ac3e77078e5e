//! `events inspect DIR`: what a journal directory holds — epoch, format
//! version, codec tag, every segment with its seq range, size and creation
//! time, which process holds the writer lock, and how many durable
//! consumers it has (`consumers.rs` lists them). The other entries are
//! sorted as the journal's own listing sorts them (`entry_kind`): sidecar
//! indexes are counted, segments retention renamed out and has not
//! unlinked yet are listed as `removed`, anything else as `ignored`. It reads headers, file
//! names and checkpoint files, and the newest segment's frames only to name
//! the last seq when no writer runs (a dead writer's segment ends where its
//! last valid frame does), and never takes the lock: the holder is found in
//! `/proc/locks` (by device and inode; by the inode alone only while the
//! journal's own test says the lock is held). Its neighbour `ops.rs` holds
//! the other read-only commands and the directory checks it shares: a
//! directory without a segment is refused, not shown as an empty journal.
//! Lines go out through `crate::Out`, so `| head` ends it quietly.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use events::layers::journal::format::{FORMAT_VERSION, SegmentHeader};
use events::layers::journal::{EntryKind, Reader, entry_kind};

use crate::ops::require_journal;
use crate::render::{printable, rfc3339};
use crate::segments::read_header;
use crate::{Failure, Out};

struct Segment {
    path: PathBuf,
    first_seq: u64,
    bytes: u64,
    header: Result<SegmentHeader, String>,
}

pub(crate) fn inspect(dir: &Path) -> Result<(), Failure> {
    require_journal(dir, "inspect")?;
    let mut segments = Vec::new();
    let (mut sidecars, mut removed, mut ignored) = (0, Vec::new(), Vec::new());
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        match entry_kind(&entry.file_name(), entry.file_type()?.is_file()) {
            EntryKind::Segment { first_seq } => {
                let bytes = match entry.metadata() {
                    Ok(meta) => meta.len(),
                    // Retention of a live writer took it out since the listing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                segments.push(Segment { header: read_header(&path), path, first_seq, bytes });
            }
            EntryKind::Sidecar { .. } => sidecars += 1,
            EntryKind::Removed { .. } => removed.push(path),
            EntryKind::Own => {}
            _ => ignored.push(path),
        }
    }
    removed.sort();
    ignored.sort();
    segments.sort_by_key(|s| s.first_seq);
    let reader = Reader::open(dir)?;
    // The segment the watermark names holds its acknowledged bytes, not the
    // space a writer under `--sync always` reserved past them (zeros, about
    // 1 MiB): counted from the file's length, a few records showed as 1 MiB.
    if let Ok(sizes) = reader.segment_sizes() {
        for seg in &mut segments {
            seg.bytes = sizes.of(seg.first_seq).map_or(seg.bytes, |acked| acked.min(seg.bytes));
        }
    }
    // The records the files hold; a dead writer's seqs handed out past
    // them (cut by a salvage, taken by a power loss) are said apart.
    let last = reader.last_record_seq();
    let last_seq = last.as_ref().ok().copied();
    let handed_out = reader.last_seq().ok().filter(|&seq| last_seq.is_some_and(|last| seq > last));

    let epoch = segments.iter().find_map(|s| s.header.as_ref().ok().map(|h| h.epoch));
    let codec = segments.iter().find_map(|s| s.header.as_ref().ok().map(|h| h.codec_tag));
    let mut out = Out::new();
    outln!(out, "journal    {}", dir.display())?;
    outln!(out, "epoch      {}", epoch.map_or_else(|| "(no readable segment)".into(), |e| e.to_string()))?;
    // The version the headers carry is not the binary's when none decodes.
    let unreadable = segments.iter().filter(|s| s.header.is_err()).count();
    match unreadable {
        0 => outln!(out, "format     version {FORMAT_VERSION}")?,
        n if n == segments.len() => outln!(out, "format     unknown: no segment header is readable (see below)")?,
        n => outln!(out, "format     version {FORMAT_VERSION} ({n} segment headers unreadable, see below)")?,
    }
    outln!(out, "codec tag  {}", codec.map_or_else(|| "-".into(), |c| format!("{c} ({})", codec_name(c))))?;
    outln!(out, "lock       {}", lock_holder(&dir.join("LOCK"), reader.writer_running()))?;
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    match (segments.first(), &last) {
        (Some(first), Ok(last)) if *last >= first.first_seq => {
            outln!(out, "records    {}..={} ({} records)", first.first_seq, last, last - first.first_seq + 1)?;
        }
        // Not "none": the journal may hold records nobody can read now.
        (Some(_), Err(e)) => outln!(out, "records    unknown: {e}")?,
        _ => outln!(out, "records    none")?,
    }
    if let Some(seq) = handed_out {
        outln!(
            out,
            "handed out up to seq {seq} by a writer that died: their records are gone, and the next writer starts after it"
        )?;
    }
    outln!(out, "segments   {} ({} bytes)", segments.len(), total)?;
    if sidecars > 0 {
        outln!(out, "sidecars   {sidecars} (stream indexes of sealed segments, rebuilt when missing)")?;
    }
    match crate::consumers::count(dir)? {
        0 => outln!(out, "consumers  none")?,
        n => outln!(out, "consumers  {n} (events consumers {} lists them)", dir.display())?,
    }
    outln!(out)?;
    outln!(out, "{:<26} {:>12} {:>12} {:>12}  created", "segment", "first seq", "last seq", "bytes")?;
    for (i, seg) in segments.iter().enumerate() {
        let last = match segments.get(i + 1) {
            Some(next) => Some(next.first_seq - 1),
            None => last_seq.filter(|l| *l >= seg.first_seq),
        };
        let created = match &seg.header {
            Ok(h) => rfc3339(h.created_at),
            Err(e) => format!("unreadable header: {e}"),
        };
        outln!(
            out,
            "{:<26} {:>12} {:>12} {:>12}  {created}",
            seg.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            seg.first_seq,
            last.map_or_else(|| "(empty)".into(), |l| l.to_string()),
            seg.bytes,
        )?;
    }
    for path in removed {
        outln!(
            out,
            "removed    {} (taken out by retention, unlinked moments later or at the next open)",
            printable(&path.display().to_string())
        )?;
    }
    // Anyone who can write the directory names these: escaped, a name can
    // neither fake a line of the report nor drive the terminal.
    for path in ignored {
        outln!(out, "ignored    {}", printable(&path.display().to_string()))?;
    }
    Ok(())
}

fn codec_name(tag: u32) -> &'static str {
    match tag {
        1 => "bincode",
        2 => "postcard",
        3 => "msgpack",
        _ => "unknown",
    }
}

/// Who holds the writer lock, from `/proc/locks`, without touching the lock.
/// `writer_running` is the journal's own test of the lock
/// ([`Reader::writer_running`]).
fn lock_holder(lock: &Path, writer_running: Option<bool>) -> String {
    let Ok(meta) = fs::metadata(lock) else {
        // A writer whose lock file was deleted under it still marks the
        // directory, which the journal's own test sees.
        return match writer_running {
            Some(true) => "held (the LOCK file is gone; the writer's mark on the directory says it runs)".into(),
            _ => "free (no LOCK file)".into(),
        };
    };
    let Ok(locks) = fs::read_to_string("/proc/locks") else { return "unknown (no /proc/locks)".into() };
    holder_in(&locks, lock, meta.dev(), meta.ino(), writer_running)
}

/// The holder of the lock on `lock` (device `dev`, inode `ino`) that the
/// `/proc/locks` text `locks` names.
fn holder_in(locks: &str, lock: &Path, dev: u64, ino: u64, writer_running: Option<bool>) -> String {
    // "1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF"
    let lines: Vec<Vec<&str>> =
        locks.lines().map(|line| line.split_whitespace().collect::<Vec<_>>()).filter(|f| f.len() >= 6).collect();
    // The same device and inode; else the inode alone, but only while the
    // lock is held: on btrfs `stat` gives a subvolume's own device,
    // `/proc/locks` the filesystem's, while with no writer running a line
    // of that inode on another device is another file, locked by a process
    // that has nothing to do with this journal.
    let found = lines
        .iter()
        .find(|fields| names_file(fields[5], Some(dev), ino))
        .or_else(|| lines.iter().find(|fields| writer_running == Some(true) && names_file(fields[5], None, ino)));
    let Some(fields) = found else {
        return match writer_running {
            Some(true) => "held (by a process /proc/locks does not name)".into(),
            _ => "free (no writer running)".into(),
        };
    };
    // An OFD lock has no owning process ("-1"): the holder wrote its pid into the file.
    let pid = match fields[4] {
        "-1" => fs::read_to_string(lock).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        pid => Some(pid.to_owned()),
    };
    format!("held by pid {} ({} {})", pid.as_deref().unwrap_or("unknown"), fields[1], fields[3])
}

/// Whether a `/proc/locks` file field (`MAJOR:MINOR:INODE`, the device
/// numbers in hex) names inode `ino`, on device `dev` when given: the same
/// inode number on another filesystem is another file.
fn names_file(field: &str, dev: Option<u64>, ino: u64) -> bool {
    let mut parts = field.split(':');
    let (Some(major), Some(minor), Some(inode), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    // Linux's `dev_t` layout (glibc's `major` and `minor`).
    let on_dev = dev.is_none_or(|dev| {
        let dev_major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
        let dev_minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
        (hex(major), hex(minor)) == (Some(dev_major), Some(dev_minor))
    });
    on_dev && inode.parse::<u64>().ok() == Some(ino)
}

#[cfg(test)]
mod tests {
    use super::{holder_in, lock_holder, names_file};

    #[test]
    fn a_lock_line_names_the_file_by_device_and_inode() {
        let dev = Some(libc::makedev(0xfd, 0x01));
        assert!(names_file("fd:01:1234567", dev, 1_234_567));
        assert!(!names_file("fd:02:1234567", dev, 1_234_567), "same inode, another device");
        assert!(!names_file("08:01:1234567", dev, 1_234_567));
        assert!(!names_file("fd:01:1234568", dev, 1_234_567));
        assert!(!names_file("garbage", dev, 1_234_567));
        // Large device numbers (bits past 32).
        let big = libc::makedev(0x1234, 0x56789);
        assert!(names_file("1234:56789:7", Some(big), 7));
        // The inode alone (a btrfs subvolume's `stat` device is not the lock's).
        assert!(names_file("00:2f:1234567", None, 1_234_567));
        assert!(!names_file("00:2f:1234568", None, 1_234_567));
    }

    /// With no writer running, a lock on the same inode number of another
    /// filesystem named its unrelated holder (here the pid a dead writer
    /// left in the LOCK file).
    #[test]
    fn an_inode_alone_names_the_holder_only_while_the_lock_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("LOCK");
        std::fs::write(&lock, "4242\n").unwrap();
        let dev = libc::makedev(0xfd, 0x01);
        let elsewhere = "1: OFDLCK ADVISORY  WRITE -1 00:2f:1234567 0 EOF\n";
        assert_eq!(holder_in(elsewhere, &lock, dev, 1_234_567, Some(false)), "free (no writer running)");
        // A btrfs subvolume: `stat` and `/proc/locks` give other devices.
        assert_eq!(holder_in(elsewhere, &lock, dev, 1_234_567, Some(true)), "held by pid 4242 (OFDLCK WRITE)");
        // The same device and inode is this file.
        let here = "1: FLOCK  ADVISORY  WRITE 777 fd:01:1234567 0 EOF\n";
        assert_eq!(holder_in(here, &lock, dev, 1_234_567, None), "held by pid 777 (FLOCK WRITE)");
        assert_eq!(holder_in("", &lock, dev, 1_234_567, Some(false)), "free (no writer running)");
        assert!(holder_in("", &lock, dev, 1_234_567, Some(true)).starts_with("held"));
    }

    /// The lock file deleted under a running writer: held, as the
    /// journal's own test says (the writer's mark on the directory). It
    /// had said "free (no LOCK file)" while a writer ran.
    #[test]
    fn a_running_writer_without_its_lock_file_is_named_as_holding_it() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("LOCK");
        assert!(lock_holder(&lock, Some(true)).starts_with("held (the LOCK file is gone"));
        assert_eq!(lock_holder(&lock, Some(false)), "free (no LOCK file)");
    }
}
