//! A follower in another process than the writer, across real crashes: a
//! child process appends with `SyncPolicy::Always` and is SIGKILLed at a
//! random moment, again and again; between two children the newest segment
//! sometimes gets a torn frame at its end (what a write cut by power loss
//! leaves), which the next child's recovery truncates. A follower thread of
//! the parent tails the directory the whole time. It must never fault on a
//! file cut under it, never see a gap or a seq twice, and every record it is
//! handed must be the one the journal holds for that seq in the end.

mod support;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events_journal::{Journal, JournalOptions, Reader, Retention, SyncPolicy};
use support::{payload, read_all, ts};

const CHILD_ENV: &str = "EVENTS_JOURNAL_FOLLOWER_CHILD";
const TEST_NAME: &str = "a_follower_in_another_process_survives_sigkills_and_torn_tails";

fn options() -> JournalOptions {
    JournalOptions::new().sync(SyncPolicy::Always).segment_bytes(4096).retention(Retention::unlimited())
}

fn child(dir: &Path) -> ! {
    let (mut j, _) = Journal::open(dir, options()).expect("child open");
    let mut out = std::io::stdout().lock();
    loop {
        let next = j.next_seq();
        let seq = j.append(ts(next), payload(next)).expect("append");
        writeln!(out, "ACK {seq}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_follower_in_another_process_survives_sigkills_and_torn_tails() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    // The first writer creates the journal, so the follower has one to open.
    Journal::open(dir.path(), options()).unwrap().0.close().unwrap();
    // The journal's final last seq once the writers are done (0 until then):
    // the follower stops when it has read up to it.
    let target = Arc::new(AtomicU64::new(0));
    let follower = {
        let reader = Reader::open(dir.path()).unwrap();
        let target = Arc::clone(&target);
        std::thread::spawn(move || {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                let end = target.load(Ordering::Acquire);
                if end != 0 && cursor >= end {
                    break;
                }
                let records = match reader.read_since(cursor) {
                    Ok(records) => records,
                    Err(e) => panic!("follower read at {cursor}: {e}"),
                };
                let mut got = 0;
                for record in records {
                    let record = record.unwrap_or_else(|e| panic!("follower at {cursor}: {e}"));
                    assert_eq!(record.seq(), cursor + 1, "follower: gap or duplicate");
                    assert_eq!(
                        record.payload(),
                        payload(record.seq()).as_slice(),
                        "follower: payload of {}",
                        record.seq()
                    );
                    cursor = record.seq();
                    seen.push(cursor);
                    got += 1;
                }
                if got == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            seen
        })
    };

    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let rounds = 25;
    let mut torn = 0;
    for round in 0..rounds {
        let kill_after = 5 + support::xorshift(&mut rng) % 60;
        let command = support::child_command(TEST_NAME, (CHILD_ENV, dir.path().to_str().unwrap()));
        let acks = support::kill_after_acks(command, kill_after as usize).acked.len();
        assert!(acks > 0, "round {round}: the child acknowledged nothing");
        if round % 3 == 0 {
            // A torn frame right after the last frame of the newest
            // segment, before the zeros a writer under `Always` reserved:
            // a length and half a header, as a write cut short leaves it.
            let seg = support::segments(dir.path()).pop().unwrap();
            let bytes = std::fs::read(&seg).unwrap();
            if bytes.len() < 64 {
                continue; // killed while creating it: the header itself is torn
            }
            let end = frames_end(&bytes);
            let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
            f.write_all_at(&[200, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3], end as u64).unwrap();
            torn += 1;
        }
    }
    assert!(torn > 0, "no round left a torn frame");
    // The last recovery; the follower then reads up to its end and stops.
    let (j, _) = Journal::open(dir.path(), options()).unwrap();
    let last = j.last_seq();
    j.close().unwrap();
    target.store(last, Ordering::Release);
    let seen = follower.join().expect("the follower panicked or faulted");
    let reader = Reader::open(dir.path()).unwrap();
    let journal: Vec<u64> = read_all(&reader, 0).iter().map(|r| r.seq()).collect();
    assert_eq!(journal.len() as u64, last);
    assert_eq!(seen, journal, "the follower read every record of the journal, in order");
}

/// Where the frames written into a segment image end: the first frame
/// header of zeros (the space reserved after them; a frame of an empty
/// payload has a length of 0 but a seq and a CRC) or frame that runs past
/// the end of the file.
fn frames_end(bytes: &[u8]) -> usize {
    let mut off = 64;
    while let Some(head) = bytes.get(off..off + 24) {
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        if head.iter().all(|&b| b == 0) || off + 24 + len > bytes.len() {
            break;
        }
        off += 24 + len;
    }
    off
}
