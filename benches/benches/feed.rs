//! The façade end to end, against the raw journal it is built on.
//!
//! * `feed/e2e`: `record` of N events (256-byte payloads, `SyncPolicy::Never`)
//!   until a `stream_from` consumer has received the last one, against
//!   `raw/append`: the same payloads appended straight to an
//!   `events_journal::Journal` in ~64 KiB batches. Both sides start from
//!   data made before the clock starts: ours from the events, the raw side
//!   from their encoded payloads. Goal: ≥ 0.5×. The bench
//!   also prints p50/p99 record → consumer latency of a paced run (one event
//!   every 20 µs), and beside it, in the same run, the same paced events
//!   through one `tokio::sync::mpsc` hop (goal: our p99 ≤ 5× the hop's).
//! * `feed/catch_up`: `stream_from(0)` over a journal of N events (decoded
//!   into envelopes), against `raw/read`: `Reader::read_since(0)` iterating
//!   the same records with CRC checks. Goal: ≥ 0.5×.
//! * `feed/catch_up/read_and_decode`: `read_since(0)` decoding each record
//!   into an `Arc<Envelope>` dropped at once, on one thread: what decoding
//!   alone costs at its cheapest (no hand-over between threads, the
//!   allocator reusing what was just freed). No goal: the bound a replay
//!   that hands out decoded envelopes works under.
//! * `feed/catch_up/durable_consumer`: the same catch-up through a durable
//!   consumer that commits every event (persisted, with its fdatasync, every
//!   1,000), against `stream_from(0)`: what checkpointing costs per 1,000
//!   events. Each run creates the consumer and deletes it afterwards (a few
//!   file operations against a million events). No goal: reported.
//!
//! * `feed/catch_up_codec/{bincode,postcard,msgpack}`: `stream_from(0)` over
//!   200,000 events journaled with each codec. No goal: what each codec
//!   costs a resuming client.
//!
//! Fairness: both sides write to a temporary directory on the same file
//! system, use the same payload bytes, and neither fsyncs.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events::layers::journal::{Journal, JournalOptions, Reader};
use events::{Bincode, ConsumerOptions, Envelope, Event, Feed, FeedItem, Seq, SyncPolicy, Timestamp, payload};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const E2E_EVENTS: u64 = 200_000;
const CATCH_UP_EVENTS: u64 = 1_000_000;
const PAYLOAD: usize = 256;

/// A bench event whose encoding is about 256 bytes. The body is a string,
/// which serde encodes and decodes as one length-prefixed copy.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BenchEvent {
    n: u64,
    at: u64,
    body: String,
}

impl Event for BenchEvent {}

fn event(n: u64) -> BenchEvent {
    BenchEvent {
        n,
        at: Timestamp::now().as_nanos(),
        body: char::from(b'a' + (n % 26) as u8).to_string().repeat(PAYLOAD - 24),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Records `events` (made before the clock starts, as the raw side's
/// payloads are) and times them until the consumer has the last one.
async fn e2e_once(dir: &std::path::Path, events: Vec<BenchEvent>) -> Duration {
    let n = events.len() as u64;
    let feed: Feed<BenchEvent> = Feed::builder(dir).sync(SyncPolicy::Never).inbox_capacity(8192).open().await.unwrap();
    let base = feed.latest_seq().get();
    let mut stream = feed.stream_from(feed.latest_seq());
    let start = Instant::now();
    let producer = {
        let inbox = feed.inbox();
        tokio::spawn(async move {
            for event in events {
                // `forward` is `record` that waits for space instead of dropping,
                // so the measured run journals every event.
                inbox.forward(None, event).await.unwrap();
            }
        })
    };
    while let Some(item) = stream.next().await {
        if let FeedItem::Event(env) = item.unwrap()
            && env.seq.get() == base + n
        {
            break;
        }
    }
    let elapsed = start.elapsed();
    producer.await.unwrap();
    feed.close().await.unwrap();
    elapsed
}

fn raw_append_once(dir: &std::path::Path, payloads: &[Vec<u8>]) -> Duration {
    let (mut journal, _) = Journal::open(dir, JournalOptions::new().sync(events::SyncPolicy::Never)).unwrap();
    let start = Instant::now();
    let per_batch = (64 << 10) / (PAYLOAD + 24);
    for chunk in payloads.chunks(per_batch) {
        let ts = Timestamp::now().as_nanos();
        journal.append_batch(chunk.iter().map(|p| (ts, p.as_slice()))).unwrap();
    }
    let elapsed = start.elapsed();
    journal.close().unwrap();
    elapsed
}

/// Events of each paced latency run.
const LATENCY_EVENTS: u64 = 20_000;
/// Their pace: one event every 20 µs (50k/s).
const PACE: Duration = Duration::from_micros(20);

/// The paced producer of both latency runs, on a thread of its own:
/// `emit(event(i))` for every `i` below [`LATENCY_EVENTS`], one every
/// [`PACE`], each event stamped with `Timestamp::now()` as it is made, then
/// `last(event(LATENCY_EVENTS))`. Between events it gives its CPU away
/// (`sched_yield`), as a producer waiting for its next event would; a
/// producer that spun inside the runtime (`tokio::task::yield_now`) would
/// hold one of the two cores for good, and the p99 would measure the
/// kernel's 4 ms scheduling tick instead of either pipeline.
fn paced(
    mut emit: impl FnMut(BenchEvent) + Send + 'static,
    last: impl FnOnce(BenchEvent) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        for i in 0..LATENCY_EVENTS {
            emit(event(i));
            next += PACE;
            while Instant::now() < next {
                std::thread::yield_now();
            }
        }
        last(event(LATENCY_EVENTS));
    })
}

/// Prints p50 and p99 of `samples` (ns) on one `feed/latency` line. Each
/// dropped event counts as a sample that never arrived (`u64::MAX`): a
/// stall that overflows the queue raises the percentiles instead of
/// leaving its slowest events out of them.
fn print_percentiles(what: &str, mut samples: Vec<u64>, dropped: u64) {
    let received = samples.len();
    samples.extend(std::iter::repeat_n(u64::MAX, usize::try_from(dropped).unwrap_or(usize::MAX)));
    samples.sort_unstable();
    // A percentile that falls on a dropped event is `inf`, which the
    // report reads as a figure that misses any goal.
    let p = |q: f64| match samples[((samples.len() - 1) as f64 * q) as usize] {
        u64::MAX => f64::INFINITY,
        ns => ns as f64 / 1000.0,
    };
    println!(
        "feed/latency {what} (paced 50k/s): p50 {:.1} us, p99 {:.1} us, n={received} (dropped {dropped})",
        p(0.5),
        p(0.99),
    );
}

/// Paced latency, record → consumer, then the same paced events through one
/// tokio mpsc hop, in the same run: a producer thread paced by [`paced`], the
/// consumer on the bench thread (`block_on`) computing now − the event's
/// stamp. `record` and the mpsc's `try_send` both drop on a full queue
/// (1,024, the feed's default inbox); the drops are printed, and counted in
/// the percentiles as events that never arrived.
fn print_latency(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let n = LATENCY_EVENTS;
    let (samples, dropped) = rt.block_on(async {
        let feed: Feed<BenchEvent> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
        let mut stream = feed.stream_from(Seq::ZERO);
        let producer = {
            let (feed, last) = (feed.clone(), feed.clone());
            // `record` drops on a full inbox: an append after the last
            // record (the inbox is FIFO) marks the end whatever was dropped.
            paced(
                move |e| feed.record(None, &e),
                move |e| futures::executor::block_on(last.append(None, e)).map(drop).unwrap(),
            )
        };
        let mut samples = Vec::with_capacity(n as usize);
        while let Some(Ok(FeedItem::Event(env))) = stream.next().await {
            if env.event.n == n {
                break;
            }
            samples.push(Timestamp::now().as_nanos().saturating_sub(env.event.at));
        }
        producer.join().unwrap();
        let dropped = feed.stats().dropped;
        feed.close().await.unwrap();
        (samples, dropped)
    });
    print_percentiles("record->stream_from", samples, dropped);
    let (samples, dropped) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BenchEvent>(1024);
        let dropped = Arc::new(AtomicU64::new(0));
        let producer = {
            let (tx, last, dropped) = (tx.clone(), tx, Arc::clone(&dropped));
            let emit = move |e| {
                if tx.try_send(e).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            };
            paced(emit, move |e| last.blocking_send(e).unwrap())
        };
        let mut samples = Vec::with_capacity(n as usize);
        while let Some(e) = rx.recv().await {
            if e.n == n {
                break;
            }
            samples.push(Timestamp::now().as_nanos().saturating_sub(e.at));
        }
        producer.join().unwrap();
        (samples, dropped.load(Ordering::Relaxed))
    });
    print_percentiles("tokio mpsc hop", samples, dropped);
}

fn e2e(c: &mut Criterion) {
    let rt = runtime();
    let payloads: Vec<Vec<u8>> = (0..E2E_EVENTS)
        .map(|i| {
            let mut buf = Vec::new();
            payload::encode(&Bincode, None, &event(i), &mut buf).unwrap();
            buf
        })
        .collect();
    let mut group = c.benchmark_group("feed/e2e");
    group.throughput(Throughput::Elements(E2E_EVENTS)).sample_size(10);
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    rt.block_on(e2e_once(dir.path(), (0..E2E_EVENTS).map(event).collect()))
                })
                .sum()
        });
    });
    group.bench_function("raw_journal_append", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    raw_append_once(dir.path(), &payloads)
                })
                .sum()
        });
    });
    group.finish();
    // Not a criterion bench: a filter that leaves out its lines skips it
    // (criterion calls every group function, whatever the filter).
    if !events_benches::filtered_out(&["feed/latency"]) {
        print_latency(&rt);
    }
}

fn catch_up(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(events_benches::fill_feed(dir.path(), CATCH_UP_EVENTS, |i| (None, event(i))));
    let feed: Feed<BenchEvent> = rt.block_on(Feed::builder(dir.path()).sync(SyncPolicy::Never).open()).unwrap();
    let mut group = c.benchmark_group("feed/catch_up");
    group.throughput(Throughput::Elements(CATCH_UP_EVENTS)).sample_size(10);
    group.bench_function("ours", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = feed.stream_from(Seq::ZERO);
                let mut last = 0;
                while last < CATCH_UP_EVENTS {
                    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("stream ended") };
                    last = black_box(env.seq.get());
                }
            });
        });
    });
    let options = ConsumerOptions { every: 1000, interval: Duration::from_secs(3600) };
    group.bench_function("durable_consumer", |b| {
        b.iter(|| {
            rt.block_on(async {
                let consumer = feed.reader().consumer_with("bench", options).await.unwrap();
                let mut stream = consumer.stream();
                let mut last = 0;
                while last < CATCH_UP_EVENTS {
                    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("stream ended") };
                    last = black_box(env.seq.get());
                    consumer.commit(env.seq).await.unwrap();
                }
                consumer.flush().await.unwrap();
                assert_eq!(consumer.persisted(), Seq::new(CATCH_UP_EVENTS));
                drop((stream, consumer));
                feed.reader().delete_consumer("bench").unwrap();
            });
        });
    });
    let reader = Reader::open(dir.path()).unwrap();
    // What decoding alone costs, at its cheapest: one thread, each envelope
    // dropped before the next is decoded (the allocator reuses its memory).
    group.bench_function("read_and_decode", |b| {
        b.iter(|| {
            let mut last = 0;
            let mut records = reader.read_since(0).unwrap();
            while let Some(r) = records.next_ref() {
                let r = r.unwrap();
                let env: Envelope<BenchEvent> = payload::decode(&Bincode, r.seq(), r.ts(), r.payload()).unwrap();
                last = black_box(Arc::new(env)).seq.get();
            }
            assert_eq!(last, CATCH_UP_EVENTS);
        });
    });
    group.bench_function("raw_journal_read", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let mut records = reader.read_since(0).unwrap();
            while let Some(r) = records.next_ref() {
                bytes += black_box(r.unwrap().payload()).len();
            }
            black_box(bytes)
        });
    });
    group.finish();
    rt.block_on(feed.close()).unwrap();
}

/// Events in each codec's journal for `feed/catch_up_codec`.
const CODEC_EVENTS: u64 = 200_000;

/// `stream_from(0)` over the same events journaled with each codec: what
/// the codec costs a resuming client (the decode is most of catch-up).
fn catch_up_codecs(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("feed/catch_up_codec");
    group.throughput(Throughput::Elements(CODEC_EVENTS)).sample_size(10);
    catch_up_with(&rt, &mut group, Bincode);
    catch_up_with(&rt, &mut group, events::Postcard);
    catch_up_with(&rt, &mut group, events::MsgPack);
    group.finish();
}

fn catch_up_with<C: events::Codec>(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    codec: C,
) {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<BenchEvent, C> = rt.block_on(async {
        let feed: Feed<BenchEvent, C> = Feed::builder(dir.path())
            .codec(codec.clone())
            .sync(SyncPolicy::Never)
            .retention(events::Retention::unlimited())
            .open()
            .await
            .unwrap();
        let inbox = feed.inbox();
        for i in 0..CODEC_EVENTS {
            inbox.forward(None, event(i)).await.unwrap();
        }
        feed.close().await.unwrap();
        Feed::builder(dir.path()).codec(codec).sync(SyncPolicy::Never).open().await.unwrap()
    });
    group.bench_function(C::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = feed.stream_from(Seq::ZERO);
                let mut last = 0;
                while last < CODEC_EVENTS {
                    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("stream ended") };
                    last = black_box(env.seq.get());
                }
            });
        });
    });
    rt.block_on(feed.close()).unwrap();
}

criterion_group!(benches, e2e, catch_up, catch_up_codecs);
criterion_main!(benches);
