//! Per-stream reads against a filtered full scan.
//!
//! * `feed/read_stream`: one stream's history out of a journal of N events
//!   (`events_benches::read_records()`: 1,000,000, or 200,000 in a quick
//!   run; 256-byte texts) spread round-robin over 100 streams, so the stream
//!   holds 1%: `read_stream(id, 0)` through the per-stream index (the
//!   sidecars built by a warm-up read, as the first read after a roll does),
//!   against the façade's filtered full scan, `stream_filtered(0,
//!   Filter::stream(id))` up to the latest seq (it decodes every record and
//!   hands over only the stream's events; every segment holds some of the
//!   stream, so its index jumps over none). Goal:
//!   ≥ 20×. For context, `stream_from(0)` filtered by the caller (every
//!   event decoded and handed over). Every row declares N elements, so the
//!   throughput ratio is the speed-up.
//!
//! Its own bench binary (not `feed`), so `cargo bench --bench stream_read`
//! builds only this journal.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::{Feed, FeedItem, Filter, Seq, StreamId, SyncPolicy};
use events_benches::{PAYLOAD, SampleEvent, fill_feed, read_records, sample_event};
use futures::StreamExt;

const STREAMS: u64 = 100;

fn read_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n = read_records();
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<StreamId> = (0..STREAMS).map(|s| StreamId::new(format!("stream-{s}"))).collect();
    rt.block_on(fill_feed(dir.path(), n, |i| (Some(ids[(i % STREAMS) as usize].clone()), sample_event(i, PAYLOAD))));
    let feed: Feed<SampleEvent> = rt.block_on(Feed::builder(dir.path()).sync(SyncPolicy::Never).open()).unwrap();
    let id = ids[42].as_str();
    let want = n / STREAMS;
    let latest = feed.latest_seq();
    let read = || {
        rt.block_on(async {
            let mut stream = feed.read_stream(id, Seq::ZERO).unwrap();
            let mut got = 0;
            while let Some(env) = stream.next().await {
                black_box(env.unwrap());
                got += 1;
            }
            assert_eq!(got, want);
        });
    };
    read(); // builds the sidecars of the sealed segments
    let mut group = c.benchmark_group("feed/read_stream");
    group.throughput(Throughput::Elements(n)).sample_size(10);
    group.bench_function("read_stream", |b| b.iter(read));
    group.bench_function("stream_filtered_scan", |b| {
        b.iter(|| {
            rt.block_on(async {
                // A checkpoint as soon as the scan has nothing ready: the
                // one at the latest seq ends the loop (the stream's last
                // event is not the journal's).
                let mut stream =
                    feed.stream_filtered(Seq::ZERO, Filter::stream(id)).unwrap().checkpoint_after(Duration::ZERO);
                let mut got = 0;
                loop {
                    let seq = match stream.next().await {
                        Some(Ok(FeedItem::Event(env))) => {
                            got += 1;
                            let seq = env.seq;
                            black_box(env);
                            seq
                        }
                        Some(Ok(FeedItem::Checkpoint { seq })) => seq,
                        other => panic!("stream ended: {:?}", other.map(|item| item.map(|_| ()))),
                    };
                    if seq >= latest {
                        break;
                    }
                }
                assert_eq!(got, want);
            });
        });
    });
    group.bench_function("filtered_scan", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = feed.stream_from(Seq::ZERO);
                let mut got = 0;
                loop {
                    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("stream ended") };
                    if env.stream.as_ref().is_some_and(|s| s.as_str() == id) {
                        black_box(&env);
                        got += 1;
                    }
                    if env.seq >= latest {
                        break;
                    }
                }
                assert_eq!(got, want);
            });
        });
    });
    group.finish();
    rt.block_on(feed.close()).unwrap();
}

criterion_group!(benches, read_stream);
criterion_main!(benches);
