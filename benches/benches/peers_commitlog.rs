//! commitlog 0.2 (a Kafka-style segmented log) as a peer, in the criterion
//! groups `journal.rs` fills with ours, so the report lines them up (same
//! run):
//!
//! * `journal/append_no_fsync_256B` / `commitlog_batch_234`: one
//!   `CommitLog::append` of a `MessageBuf` of 234 payloads of 256 B, the same
//!   records per call as our 64 KiB `append_batch`. The buffer is refilled
//!   for every batch, since building it is where commitlog computes each
//!   message's CRC (as our journal frames and checksums each batch).
//! * `journal/read_crc_256B` / `commitlog`: `CommitLog::read` from offset 0
//!   in 64 KiB slices until the end; commitlog checks every message's CRC32C
//!   when it builds each slice.
//!
//! Fairness: commitlog never fsyncs its data (its `flush` only flushes a
//! user-space buffer), so it appears only in the no-fsync and read rows.
//! Defaults otherwise (1 GB segments, 100,000-entry index). Every append
//! sample writes into a fresh temporary directory on the same file system as
//! ours, created outside the timed loop.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_benches::{PAYLOAD, fast_config, payloads, read_records};

/// Our 64 KiB batch: 234 frames of 280 bytes.
const BATCH: usize = 234;

fn append_batches(log: &mut CommitLog, payloads: &[Vec<u8>], batches: u64) {
    let mut buf = MessageBuf::default();
    for _ in 0..batches {
        buf.clear();
        for p in payloads {
            buf.push(p).unwrap();
        }
        log.append(&mut buf).unwrap();
    }
}

fn append_no_fsync(c: &mut Criterion) {
    let payloads = payloads(BATCH);
    let mut group = c.benchmark_group("journal/append_no_fsync_256B");
    group.throughput(Throughput::Elements(BATCH as u64));
    // As the journal's row: flat samples, and segments of the journal's
    // 8 MiB (commitlog's default of 1 GB never rolled in a sample).
    group.sampling_mode(criterion::SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("commitlog_batch_234", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let mut options = LogOptions::new(dir.path());
            options.segment_max_bytes(8 << 20);
            let mut log = CommitLog::new(options).unwrap();
            let start = Instant::now();
            append_batches(&mut log, &payloads, iters);
            start.elapsed()
        });
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let n = read_records();
    let dir = tempfile::tempdir().unwrap();
    let mut log = CommitLog::new(LogOptions::new(dir.path())).unwrap();
    let payloads = payloads(BATCH);
    append_batches(&mut log, &payloads, n / BATCH as u64);
    let rest: Vec<&Vec<u8>> = payloads.iter().take(n as usize % BATCH).collect();
    if !rest.is_empty() {
        let mut buf: MessageBuf = rest.into_iter().collect();
        log.append(&mut buf).unwrap();
    }
    log.flush().unwrap();
    let read_all = || {
        let mut at = 0;
        let mut bytes = 0;
        let end = log.next_offset();
        while at < end {
            let slice = log.read(at, ReadLimit::max_bytes(64 << 10)).unwrap();
            for m in slice.iter() {
                bytes += black_box(m.payload()).len();
                at = m.offset() + 1;
            }
        }
        assert_eq!(bytes, n as usize * PAYLOAD);
        bytes
    };
    let mut group = c.benchmark_group("journal/read_crc_256B");
    group.throughput(Throughput::Elements(n));
    group.bench_function("commitlog", |b| b.iter(|| black_box(read_all())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = fast_config();
    targets = append_no_fsync, read
}
criterion_main!(benches);
