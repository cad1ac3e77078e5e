//! A real crash: a child process (this test binary, re-run) appends with
//! `SyncPolicy::Always` and prints each acknowledged seq; the parent kills it
//! with SIGKILL at a random moment, reopens, and checks that every
//! acknowledged record is there with its payload, that the next seq follows
//! the last record, and that `verify` is clean. 60 rounds by default; set
//! `EVENTS_JOURNAL_CRASH_ROUNDS` for a soak.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use events_journal::{Journal, JournalOptions, Reader, Retention, SyncPolicy, verify};
use support::{payload, read_all, ts};

const CHILD_ENV: &str = "EVENTS_JOURNAL_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_at_a_random_moment_loses_no_acknowledged_record";

fn options() -> JournalOptions {
    // Small segments so crashes also land in rolls and retention.
    JournalOptions::new().sync(SyncPolicy::Always).segment_bytes(4096).retention(Retention::unlimited())
}

/// The child: append forever (single records and batches), acknowledging
/// each seq on stdout only after `append` returned.
fn child(dir: &Path) -> ! {
    let (mut j, _) = Journal::open(dir, options()).expect("child open");
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "READY {}", j.next_seq()).unwrap();
    loop {
        let next = j.next_seq();
        if next % 3 == 0 {
            let payloads: Vec<Vec<u8>> = (next..next + 4).map(payload).collect();
            let range = j
                .append_batch(payloads.iter().enumerate().map(|(i, p)| (ts(next + i as u64), p.as_slice())))
                .expect("append_batch");
            for seq in range {
                writeln!(out, "ACK {seq}").unwrap();
            }
        } else {
            let seq = j.append(ts(next), payload(next)).expect("append");
            writeln!(out, "ACK {seq}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_at_a_random_moment_loses_no_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let rounds: u64 = std::env::var("EVENTS_JOURNAL_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let mut acked_max = 0u64;
    // A small xorshift: the kill moment is random but the run is reproducible from its seed.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = rng % 40;
        let mut child = support::child_command(TEST_NAME, (CHILD_ENV, dir.path().to_str().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut ready = None;
        let mut acked = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            // libtest prints "test <name> ... " without a newline before the child's first line.
            if let Some((_, n)) = line.split_once("READY ") {
                ready = Some(n.parse::<u64>().unwrap());
            } else if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.parse::<u64>().unwrap());
                seen += 1;
            } else {
                continue;
            }
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements already in the pipe count too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.parse::<u64>().unwrap());
            }
        }
        let ready = ready.expect("child never became ready");
        assert!(ready > acked_max, "round {round}: child started at {ready}, but {acked_max} was acknowledged");
        assert!(acked.windows(2).all(|w| w[1] == w[0] + 1), "round {round}: acks not contiguous");
        if let Some(&last) = acked.last() {
            acked_max = last;
        }

        let (j, _) = Journal::open(dir.path(), options()).unwrap();
        let reader = Reader::open(dir.path()).unwrap();
        let records = read_all(&reader, 0);
        let last = records.last().map_or(0, |r| r.seq());
        assert!(last >= acked_max, "round {round}: acknowledged {acked_max} but the journal ends at {last}");
        assert_eq!(j.next_seq(), last + 1, "round {round}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.seq(), i as u64 + 1, "round {round}");
            assert_eq!(r.payload(), payload(r.seq()).as_slice(), "round {round}: payload of {}", r.seq());
        }
        j.close().unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(report.is_ok(), "round {round}: {:?}", report.problems);
        // Whatever was written but not acknowledged is now part of the journal:
        // the next child must continue after it, never reuse it.
        acked_max = acked_max.max(last);
    }
}
