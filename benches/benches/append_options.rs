//! What a conditional or idempotent append costs beside a plain one.
//!
//! * `feed/append_options`: one appender, 1,000 appends in a row to one
//!   stream (`SyncPolicy::Never`, so the writer's own work is what differs,
//!   not the disk): `plain` is `Feed::append`; `expected` is `append_with`
//!   expecting the seq the previous append returned (the version check the
//!   writer makes before allocating the seq: a cached lookup after the
//!   first); `id` is `append_with` with a fresh event id each time (the
//!   dedupe window's lookup and insert, and the id's bytes in the record).
//!   All rows declare 1,000 elements, so the throughput ratios are the cost
//!   ratios.
//! * `feed/append_new_stream`: the same feed shape, but the journal first
//!   holds 64 sealed segments of 1 MiB whose records belong to 10,000
//!   streams, and each append goes to a stream never seen before: `plain`
//!   is `Feed::append`; `no_stream` is `append_with` expecting
//!   `Expected::NoStream`, which the writer checks against every retained
//!   segment's per-stream index before it allocates the seq (100 appends
//!   per iteration).
//!
//! Its own bench binary, so `cargo bench --bench append_options` runs it alone.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::{AppendOptions, Expected, Feed, Retention, SyncPolicy};
use events_benches::{PAYLOAD, SampleEvent, sample_event};

const APPENDS: u64 = 1_000;

fn append_options(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<SampleEvent> = rt.block_on(Feed::builder(dir.path()).sync(SyncPolicy::Never).open()).unwrap();
    let mut group = c.benchmark_group("feed/append_options");
    group.throughput(Throughput::Elements(APPENDS));
    group.bench_function("plain", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..APPENDS {
                    black_box(feed.append(Some("doc"), sample_event(i, PAYLOAD)).await.unwrap());
                }
            });
        });
    });
    group.bench_function("expected", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut version = Some(feed.latest_seq()).filter(|s| s.get() > 0);
                for i in 0..APPENDS {
                    let options = AppendOptions::new().expect(Expected::from(version));
                    let done = feed.append_with(Some("doc"), sample_event(i, PAYLOAD), options).await.unwrap();
                    version = Some(done.seq);
                }
            });
        });
    });
    let mut next_id = 0u64;
    group.bench_function("id", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..APPENDS {
                    next_id += 1;
                    let options = AppendOptions::new().id(format!("req-{next_id}"));
                    let done = feed.append_with(Some("doc"), sample_event(i, PAYLOAD), options).await.unwrap();
                    assert!(!done.duplicate);
                }
            });
        });
    });
    group.finish();
    rt.block_on(feed.close()).unwrap();
}

/// Records written before the new-stream rows: 64 segments' worth.
const PREFILL_SEGMENTS: u64 = 64;
const SEGMENT_BYTES: u64 = 1 << 20;
const NEW_STREAMS: u64 = 100;

fn append_new_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = Feed::builder(dir.path()).sync(SyncPolicy::Never).segment_bytes(SEGMENT_BYTES);
    let open = open.retention(Retention::unlimited()).open();
    let feed: Feed<SampleEvent> = rt.block_on(open).unwrap();
    rt.block_on(async {
        let mut i = 0u64;
        while sealed_sidecars(dir.path()) < PREFILL_SEGMENTS as usize {
            for _ in 0..1_000 {
                feed.append(Some(&format!("pre-{}", i % 10_000)), sample_event(i, PAYLOAD)).await.unwrap();
                i += 1;
            }
        }
    });
    let mut group = c.benchmark_group("feed/append_new_stream");
    group.throughput(Throughput::Elements(NEW_STREAMS));
    let mut next = 0u64;
    group.bench_function("plain", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..NEW_STREAMS {
                    next += 1;
                    black_box(feed.append(Some(&format!("new-{next}")), sample_event(i, PAYLOAD)).await.unwrap());
                }
            });
        });
    });
    group.bench_function("no_stream", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..NEW_STREAMS {
                    next += 1;
                    let options = AppendOptions::new().expect(Expected::NoStream);
                    let stream = format!("new-{next}");
                    black_box(feed.append_with(Some(&stream), sample_event(i, PAYLOAD), options).await.unwrap());
                }
            });
        });
    });
    group.finish();
    rt.block_on(feed.close()).unwrap();
}

/// How many sidecar indexes the journal directory holds (the writer builds
/// one per sealed segment on a thread of its own).
fn sealed_sidecars(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "idx")))
        .count()
}

criterion_group!(benches, append_options, append_new_stream);
criterion_main!(benches);
