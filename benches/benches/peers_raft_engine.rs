//! raft-engine 0.4 (TiKV's raft log store) as a peer, in the criterion groups
//! of the rows it can serve, so the report lines it up beside ours (from
//! `journal.rs` and `durable.rs`) measured in the same run:
//!
//! * `journal/append_no_fsync_256B` / `raft_engine_batch_100`: one
//!   `Engine::write(batch, sync = false)` per batch of 100 entries of 256 B.
//! * `journal/read_crc_256B` / `raft_engine`: `fetch_entries_to` over the
//!   whole region, 1,024 entries per call (as a raft follower catches up);
//!   raft-engine checks each batch's checksum when it reads it.
//! * `durable/1_appender` / `raft_engine`: one entry per `write(.., sync = true)`.
//! * `durable/16_appenders` / `raft_engine`: 16 threads, one region each,
//!   one entry per synced write; raft-engine's write queue merges concurrent
//!   writers into one fdatasync (its group commit).
//!
//! Fairness: `batch_compression_threshold` is 0, so raft-engine never LZ4s a
//! batch (our journal does not compress either); everything else is its
//! default configuration (format V2, log recycling on). Entries are
//! protobuf `BytesValue`s whose 256-byte value starts with the entry's
//! index (raft-engine needs an index per entry and a protobuf `Message`;
//! this avoids pulling in the `raft` crate just for its `Entry` type). Between
//! samples of the no-fsync row the region is compacted and expired files
//! purged, so memory and disk stay bounded, outside the timed loop.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_benches::{durable_config, payload, read_records};
use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

const BATCH: usize = 100;

/// raft-engine's view of our entries: the index is the value's first 8 bytes.
#[derive(Clone, Debug)]
struct Entries;

impl MessageExt for Entries {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        u64::from_le_bytes(e.value[..8].try_into().expect("every bench entry starts with its index"))
    }
}

fn entry(index: u64) -> BytesValue {
    let mut value = payload(index as usize);
    value[..8].copy_from_slice(&index.to_le_bytes());
    let mut e = BytesValue::new();
    e.value = value;
    e
}

fn engine(dir: &Path) -> Engine {
    let cfg = Config {
        dir: dir.to_str().expect("temporary directories have UTF-8 paths").to_owned(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    };
    Engine::open(cfg).unwrap()
}

/// Appends entries `next..next + n` to `region` in batches of `per_batch`.
/// The entries are built once and only their index is written per batch,
/// as our side appends payloads built before its clock starts.
fn write_entries(engine: &Engine, region: u64, next: &mut u64, n: u64, per_batch: u64, sync: bool) {
    let mut batch = LogBatch::default();
    let mut entries: Vec<BytesValue> = (0..per_batch.min(n)).map(entry).collect();
    let mut left = n;
    while left > 0 {
        let k = left.min(per_batch);
        let entries = &mut entries[..k as usize];
        for (index, e) in (*next..).zip(entries.iter_mut()) {
            e.value[..8].copy_from_slice(&index.to_le_bytes());
        }
        batch.add_entries::<Entries>(region, entries).unwrap();
        engine.write(&mut batch, sync).unwrap();
        *next += k;
        left -= k;
    }
}

fn append_no_fsync(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let mut next = 1;
    let mut group = c.benchmark_group("journal/append_no_fsync_256B");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("raft_engine_batch_100", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            write_entries(&engine, 1, &mut next, iters * BATCH as u64, BATCH as u64, false);
            let elapsed = start.elapsed();
            engine.compact_to(1, next);
            engine.purge_expired_files().unwrap();
            elapsed
        });
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let n = read_records();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let mut next = 1;
    write_entries(&engine, 1, &mut next, n, BATCH as u64, false);
    engine.sync().unwrap();
    let read_all = || {
        let mut entries = Vec::with_capacity(1024);
        let mut at = 1;
        let mut bytes = 0;
        while at < next {
            entries.clear();
            let end = (at + 1024).min(next);
            engine.fetch_entries_to::<Entries>(1, at, end, None, &mut entries).unwrap();
            bytes += entries.iter().map(|e| black_box(&e.value).len()).sum::<usize>();
            at = end;
        }
        assert_eq!(bytes, n as usize * events_benches::PAYLOAD);
        bytes
    };
    let mut group = c.benchmark_group("journal/read_crc_256B");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_function("raft_engine", |b| b.iter(|| black_box(read_all())));
    group.finish();
}

/// `appenders` threads, one region each, each writing `iters` entries with
/// one synced write per entry.
fn durable_writes(engine: &Arc<Engine>, next: &mut [u64], iters: u64) -> Duration {
    let mut regions: Vec<(u64, &mut u64)> = next.iter_mut().enumerate().map(|(i, n)| (i as u64 + 1, n)).collect();
    events_benches::time_threads(&mut regions, |(region, next)| write_entries(engine, *region, next, iters, 1, true))
}

fn durable(c: &mut Criterion) {
    for (group, appenders) in [("durable/1_appender", 1usize), ("durable/16_appenders", 16)] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(engine(dir.path()));
        let mut next = vec![1u64; appenders];
        let mut group = c.benchmark_group(group);
        group.throughput(Throughput::Elements(appenders as u64));
        group.bench_function("raft_engine", |b| b.iter_custom(|iters| durable_writes(&engine, &mut next, iters)));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = durable_config();
    targets = append_no_fsync, read, durable
}
criterion_main!(benches);
