//! Codec throughput: encode and decode of a ~256-byte envelope with the
//! default bincode codec and with postcard, so the cost of the codec seam is
//! visible next to the journal figures.

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_benches::{SampleEvent, sample_event};
use events_core::{Bincode, Codec, Envelope, Postcard, Seq, StreamId, Timestamp};
use std::hint::black_box;

fn bench_codec<C: Codec>(c: &mut Criterion, codec: C) {
    let env = Envelope {
        seq: Seq(42),
        ts: Timestamp::now(),
        stream: Some(StreamId::from("sess-1")),
        event: sample_event(42, 200),
    };
    let mut buf = Vec::with_capacity(512);
    codec.encode(&env, &mut buf).unwrap();
    let mut group = c.benchmark_group(format!("codec/{}", C::NAME));
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&env), &mut buf).unwrap();
        });
    });
    let encoded = buf.clone();
    group.bench_function("decode", |b| {
        b.iter(|| black_box(codec.decode::<Envelope<SampleEvent>>(black_box(&encoded)).unwrap()));
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    bench_codec(c, Bincode);
    bench_codec(c, Postcard);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
