//! okaywal 0.3 as a peer in the durable-append rows, in the criterion groups
//! `durable.rs` fills with ours, so the report lines them up (same run):
//!
//! * `durable/1_appender` / `okaywal`: one entry of one 256 B chunk per
//!   `begin_entry` → `write_chunk` → `commit`, from one thread.
//! * `durable/16_appenders` / `okaywal`: the same from 16 threads sharing one
//!   `WriteAheadLog`; okaywal merges concurrent commits into one fsync (its
//!   group commit).
//!
//! Fairness: okaywal always fsyncs on commit, so it appears only in the
//! durable rows. Its checkpoint threshold is raised from 768 KiB to 1 GiB so
//! no checkpoint runs during a sample: a checkpoint hands the entries to the
//! manager and recycles the segment, after which reads no longer find them,
//! which is not what a log that serves reads may do. The manager keeps
//! everything (its `checkpoint_to` does nothing). Preallocation and buffers
//! keep their defaults. Each row writes into its own temporary directory on
//! the same file system as ours.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::io;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_benches::{durable_config, payload};
use okaywal::{Configuration, Entry, EntryId, LogManager, SegmentReader, WriteAheadLog};

/// A manager that keeps every entry: recovery and checkpoints do nothing.
#[derive(Debug)]
struct KeepAll;

impl LogManager for KeepAll {
    fn recover(&mut self, _entry: &mut Entry<'_>) -> io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(&mut self, _last: EntryId, _entries: &mut SegmentReader, _wal: &WriteAheadLog) -> io::Result<()> {
        Ok(())
    }
}

/// `appenders` threads sharing `wal`, each committing `iters` entries.
fn commits(wal: &WriteAheadLog, appenders: usize, iters: u64) -> Duration {
    let record = payload(7);
    events_benches::time_threads(&mut vec![(); appenders], |()| {
        for _ in 0..iters {
            let mut entry = wal.begin_entry().unwrap();
            entry.write_chunk(&record).unwrap();
            entry.commit().unwrap();
        }
    })
}

fn durable(c: &mut Criterion) {
    for (group, appenders) in [("durable/1_appender", 1usize), ("durable/16_appenders", 16)] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Configuration::default_for(dir.path()).checkpoint_after_bytes(1 << 30).open(KeepAll).unwrap();
        let mut group = c.benchmark_group(group);
        group.throughput(Throughput::Elements(appenders as u64));
        group.bench_function("okaywal", |b| b.iter_custom(|iters| commits(&wal, appenders, iters)));
        group.finish();
        wal.shutdown().unwrap();
    }
}

criterion_group! {
    name = benches;
    config = durable_config();
    targets = durable
}
criterion_main!(benches);
