//! `events inspect DIR`: what a journal directory holds — epoch, format
//! version, codec tag, every segment with its seq range, size and creation
//! time, and which process holds the writer lock. It reads headers and file
//! names only (never scans frames, so it is instant on any journal) and
//! never takes the lock: the holder is found in `/proc/locks`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use events_journal::Reader;
use events_journal::format::{FORMAT_VERSION, HEADER_LEN, SegmentHeader};

use crate::Failure;
use crate::ops::rfc3339;

struct Segment {
    path: PathBuf,
    first_seq: u64,
    bytes: u64,
    header: Result<SegmentHeader, String>,
}

pub(crate) fn inspect(dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Error(format!("{} is not a directory", dir.display()).into()));
    }
    let mut segments = Vec::new();
    let mut ignored = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let first_seq = name.strip_suffix(".seg").filter(|s| s.len() == 20).and_then(|s| s.parse::<u64>().ok());
        match first_seq {
            Some(first_seq) if entry.file_type()?.is_file() => {
                let bytes = entry.metadata()?.len();
                segments.push(Segment { header: read_header(&path), path, first_seq, bytes });
            }
            _ if name == "LOCK" => {}
            _ => ignored.push(path),
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    let reader = Reader::open(dir)?;
    let last_seq = reader.last_seq().ok();

    let epoch = segments.iter().find_map(|s| s.header.as_ref().ok().map(|h| h.epoch));
    let codec = segments.iter().find_map(|s| s.header.as_ref().ok().map(|h| h.codec_tag));
    println!("journal    {}", dir.display());
    println!("epoch      {}", epoch.map_or_else(|| "(no readable segment)".into(), |e| format!("{e:016x}")));
    println!("format     version {FORMAT_VERSION}");
    println!("codec tag  {}", codec.map_or_else(|| "-".into(), |c| format!("{c} ({})", codec_name(c))));
    println!("lock       {}", lock_holder(&dir.join("LOCK")));
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    match (segments.first(), last_seq) {
        (Some(first), Some(last)) if last >= first.first_seq => {
            println!("records    {}..={} ({} records)", first.first_seq, last, last - first.first_seq + 1);
        }
        _ => println!("records    none"),
    }
    println!("segments   {} ({} bytes)", segments.len(), total);
    println!();
    println!("{:<26} {:>12} {:>12} {:>12}  created", "segment", "first seq", "last seq", "bytes");
    for (i, seg) in segments.iter().enumerate() {
        let last = match segments.get(i + 1) {
            Some(next) => Some(next.first_seq - 1),
            None => last_seq.filter(|l| *l >= seg.first_seq),
        };
        let created = match &seg.header {
            Ok(h) => rfc3339(h.created_at),
            Err(e) => format!("unreadable header: {e}"),
        };
        println!(
            "{:<26} {:>12} {:>12} {:>12}  {created}",
            seg.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            seg.first_seq,
            last.map_or_else(|| "(empty)".into(), |l| l.to_string()),
            seg.bytes,
        );
    }
    for path in ignored {
        println!("ignored    {}", path.display());
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<SegmentHeader, String> {
    let mut buf = [0u8; HEADER_LEN];
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let n = file.read(&mut buf).map_err(|e| e.to_string())?;
    SegmentHeader::decode(&buf[..n]).map_err(|e| format!("{e:?}"))
}

fn codec_name(tag: u32) -> &'static str {
    match tag {
        1 => "bincode",
        2 => "postcard",
        _ => "unknown",
    }
}

/// Who holds the writer lock, from `/proc/locks`, without touching the lock.
fn lock_holder(lock: &Path) -> String {
    let Ok(meta) = fs::metadata(lock) else { return "free (no LOCK file)".into() };
    let ino = meta.ino();
    let Ok(locks) = fs::read_to_string("/proc/locks") else { return "unknown (no /proc/locks)".into() };
    for line in locks.lines() {
        // "1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 6 && fields[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(ino) {
            return format!("held by pid {} ({} {})", fields[4], fields[1], fields[3]);
        }
    }
    "free (no writer running)".into()
}
