//! `verify` beside a live writer that rolls and prunes all the time: it
//! checks what the writer acknowledged and reports a healthy journal as
//! healthy, never a segment retention took out after the listing, a frame
//! the writer is in the middle of writing, or a segment created since.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events_journal::{Journal, JournalOptions, Retention, SyncPolicy, verify};
use support::{payload, ts};

#[test]
fn verify_beside_a_writer_that_rolls_and_prunes_finds_no_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(4096).retention(Retention::segments(2));
    let (mut j, _) = Journal::open(&dir, opts).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rolls = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, rolls) = (Arc::clone(&stop), Arc::clone(&rolls));
        std::thread::spawn(move || {
            let mut seq = 1;
            while !stop.load(Ordering::Relaxed) {
                j.append_batch((seq..seq + 3).map(|s| (ts(s), payload(s)))).unwrap();
                seq += 3;
                rolls.store(j.stats().rolls, Ordering::Relaxed);
            }
        })
    };
    // Until the writer rolled (and pruned) 300 times while verify ran.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while rolls.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "the writer rolled only {} times", rolls.load(Ordering::Relaxed));
        // Once the writer has rolled, the journal holds records whenever verify looks.
        let rolled = rolls.load(Ordering::Relaxed) > 0;
        let report = verify(&dir).unwrap();
        assert!(report.is_ok(), "round {round}: {:#?}", report.problems);
        assert!(report.segments > 0 && (report.records > 0 || !rolled), "round {round}: checked nothing: {report:?}");
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
