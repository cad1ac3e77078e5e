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
//!
//! Its own bench binary, so `cargo bench --bench append_options` runs it alone.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::{AppendOptions, Expected, Feed, SyncPolicy};
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

criterion_group!(benches, append_options);
criterion_main!(benches);
