//! Durable appends: a record is counted only once it has been `fdatasync`ed.
//! Ours against the raw limit it is built on, in the DESIGN.md section 8
//! rows "durable append" at 1, 16 and 1,024 concurrent appenders. The peers
//! (raft-engine, okaywal) add their functions to the same criterion groups
//! from `peers_raft_engine.rs` and `peers_okaywal.rs`, so the report lines
//! them up; they run in the same `cargo xtask bench`.
//!
//! * `durable/1_appender`: `ours_journal` is `Journal::append` of one 256 B
//!   record under `SyncPolicy::Always` (one write + one fdatasync per call);
//!   `ours_feed` is the façade's `Feed::append` awaited one at a time from one
//!   task (`SyncPolicy::Always`); `raw_write_fdatasync_reserved` is the
//!   limit: one `write(2)` of the same 280-byte frame (CRC included) then
//!   `fdatasync` per record, nothing else, into a file reserved ahead with
//!   written zeros in 1 MiB steps, as the journal does under `Always` (each
//!   fdatasync then finds the file's size unchanged and its blocks
//!   written). Context: `raw_write_fdatasync`, the same into a growing
//!   file, whose every fdatasync commits the new size too.
//! * `durable/16_appenders`: `ours_feed` is `Feed::append` from 16 tokio
//!   tasks at once (2 workers), so concurrent appends share one fdatasync
//!   (group commit); `raw_16_threads_fdatasync` is 16 threads sharing one
//!   `O_APPEND` file, each doing write + fdatasync per record with no
//!   batching of its own (the kernel may still merge concurrent syncs, which
//!   is why this beats one thread). The report also derives "the limit of 16
//!   records per fdatasync": 16 × this run's `durable/1_appender`
//!   `raw_write_fdatasync_reserved` rate.
//! * `durable/1024_appenders`: `Feed::append` from 1,024 tasks with
//!   `SyncPolicy::Always` (`ours_feed`) against the same with
//!   `SyncPolicy::Never` (`ours_feed_no_fsync`): the goal is that durable
//!   appends run at 0.8× or more of the same without fsync at this
//!   concurrency. No peer is run here: none can hold
//!   1,024 writer threads.
//!
//! One criterion iteration is one record per appender (throughput
//! `Elements(appenders)`); every appender runs `iters` records in a row.
//! Every side writes into its own temporary directory on the same file
//! system. Samples are few (fsync takes 0.1–4 ms here).

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::{Feed, Retention, SyncPolicy};
use events_benches::{SampleEvent, durable_config, payload, sample_event};
use events_journal::{Journal, JournalOptions, format};

/// Text length that makes a `SampleEvent` encode to about 256 bytes.
const TEXT: usize = 240;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn frame(i: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(format::FRAME_HEADER_LEN + events_benches::PAYLOAD);
    format::encode_frame(&mut buf, i + 1, i, &payload(i as usize));
    buf
}

fn append_file(dir: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(dir.join("raw.log")).unwrap()
}

/// `appenders` threads, each writing `iters` frames with one fdatasync per
/// record, into one shared append-only file.
fn raw_fdatasync(file: &File, appenders: usize, iters: u64) -> Duration {
    let frame = frame(7);
    events_benches::time_threads(&mut vec![(); appenders], |()| {
        let mut f = file;
        for _ in 0..iters {
            f.write_all(&frame).unwrap();
            file.sync_data().unwrap();
        }
    })
}

/// One writer into a file reserved ahead of its writes, as the journal
/// reserves its active segment under `Always`.
struct Reserved {
    file: File,
    len: u64,
    reserved: u64,
    /// One step of zeros, made once: not timed.
    zeros: Vec<u8>,
}

impl Reserved {
    const STEP: u64 = 1 << 20;

    fn new(dir: &Path) -> Self {
        let file =
            OpenOptions::new().create(true).read(true).write(true).truncate(true).open(dir.join("raw.log")).unwrap();
        Reserved { file, len: 0, reserved: 0, zeros: vec![0; Self::STEP as usize] }
    }

    /// `iters` frames, each written at the end of the data then fdatasynced.
    fn appends(&mut self, iters: u64) -> Duration {
        use std::os::unix::fs::FileExt;
        let frame = frame(7);
        let start = Instant::now();
        for _ in 0..iters {
            if self.len + frame.len() as u64 > self.reserved {
                // Written zeros, as the journal reserves (not `fallocate`,
                // whose unwritten blocks each cost a metadata commit).
                self.file.write_all_at(&self.zeros, self.reserved).unwrap();
                self.reserved += Self::STEP;
            }
            self.file.write_all_at(&frame, self.len).unwrap();
            self.len += frame.len() as u64;
            self.file.sync_data().unwrap();
        }
        start.elapsed()
    }
}

fn feed(rt: &tokio::runtime::Runtime, dir: &Path, sync: SyncPolicy) -> Feed<SampleEvent> {
    rt.block_on(
        Feed::builder(dir)
            .sync(sync)
            .segment_bytes(64 << 20)
            .retention(Retention::segments(4))
            .inbox_capacity(4096)
            .open(),
    )
    .unwrap()
}

/// `appenders` tasks, each awaiting `iters` appends one after the other.
fn feed_appends(rt: &tokio::runtime::Runtime, feed: &Feed<SampleEvent>, appenders: usize, iters: u64) -> Duration {
    let event = sample_event(1, TEXT);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let feed = feed.inbox();
                let event = event.clone();
                tokio::spawn(async move {
                    for _ in 0..iters {
                        feed.append(None, event.clone()).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn one_appender(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable/1_appender");
    group.throughput(Throughput::Elements(1));

    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Always).segment_bytes(64 << 20).retention(Retention::segments(4));
    let (mut journal, _) = Journal::open(dir.path(), opts).unwrap();
    let record = payload(7);
    group.bench_function("ours_journal", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                journal.append(i, &record).unwrap();
            }
            start.elapsed()
        });
    });
    journal.close().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ours = feed(&rt, dir.path(), SyncPolicy::Always);
    group.bench_function("ours_feed", |b| b.iter_custom(|iters| feed_appends(&rt, &ours, 1, iters)));
    rt.block_on(ours.close()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = append_file(dir.path());
    group.bench_function("raw_write_fdatasync", |b| b.iter_custom(|iters| raw_fdatasync(&file, 1, iters)));

    let dir = tempfile::tempdir().unwrap();
    let mut reserved = Reserved::new(dir.path());
    group.bench_function("raw_write_fdatasync_reserved", |b| b.iter_custom(|iters| reserved.appends(iters)));
    group.finish();
}

fn sixteen_appenders(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable/16_appenders");
    group.throughput(Throughput::Elements(16));

    let dir = tempfile::tempdir().unwrap();
    let ours = feed(&rt, dir.path(), SyncPolicy::Always);
    group.bench_function("ours_feed", |b| b.iter_custom(|iters| feed_appends(&rt, &ours, 16, iters)));
    rt.block_on(ours.close()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = append_file(dir.path());
    group.bench_function("raw_16_threads_fdatasync", |b| b.iter_custom(|iters| raw_fdatasync(&file, 16, iters)));
    group.finish();
}

fn many_appenders(c: &mut Criterion) {
    const APPENDERS: usize = 1024;
    let rt = runtime();
    let mut group = c.benchmark_group("durable/1024_appenders");
    group.throughput(Throughput::Elements(APPENDERS as u64));
    for (name, sync) in [("ours_feed", SyncPolicy::Always), ("ours_feed_no_fsync", SyncPolicy::Never)] {
        let dir = tempfile::tempdir().unwrap();
        let ours = feed(&rt, dir.path(), sync);
        group.bench_function(name, |b| b.iter_custom(|iters| feed_appends(&rt, &ours, APPENDERS, iters)));
        rt.block_on(ours.close()).unwrap();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = durable_config();
    targets = one_appender, sixteen_appenders, many_appenders
}
criterion_main!(benches);
