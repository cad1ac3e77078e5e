//! Codec throughput: encode and decode of a ~256-byte envelope with the
//! default bincode codec, postcard, and the self-describing MessagePack
//! codec, so the cost of the codec seam is visible next to the journal
//! figures; plus CBOR (ciborium) and JSON (serde_json) through the same
//! seam, the other self-describing candidates measured before MessagePack
//! was chosen (`codec/cbor`, `codec/json` are bench-only).

#![allow(missing_docs, reason = "criterion_group! generates an undocumented public function")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use events_benches::{SampleEvent, sample_event};
use events_core::{Bincode, Codec, CodecError, Envelope, MsgPack, Postcard, Seq, StreamId, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hint::black_box;

fn bench_codec<C: Codec>(c: &mut Criterion, codec: C) {
    let env = Envelope {
        seq: Seq(42),
        ts: Timestamp::now(),
        stream: Some(StreamId::from("sess-1")),
        event: sample_event(42, 200),
        id: None,
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

/// CBOR through the codec seam (bench only).
#[derive(Clone, Copy, Debug, Default)]
struct Cbor;

impl Codec for Cbor {
    const ID: u32 = 101;
    const NAME: &'static str = "cbor";

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        ciborium::into_writer(value, out).map_err(|e| CodecError::Encode { codec: Self::NAME, source: Box::new(e) })
    }

    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
        let mut rest = bytes;
        let value = ciborium::from_reader(&mut rest).map_err(|e| CodecError::Decode {
            codec: Self::NAME,
            len: bytes.len(),
            source: Box::new(e),
        })?;
        Ok((value, bytes.len() - rest.len()))
    }
}

/// JSON through the codec seam (bench only).
#[derive(Clone, Copy, Debug, Default)]
struct Json;

impl Codec for Json {
    const ID: u32 = 102;
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        serde_json::to_writer(out, value).map_err(|e| CodecError::Encode { codec: Self::NAME, source: Box::new(e) })
    }

    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
        let decode_error =
            |e: serde_json::Error| CodecError::Decode { codec: Self::NAME, len: bytes.len(), source: Box::new(e) };
        match values.next() {
            Some(Ok(value)) => Ok((value, values.byte_offset())),
            Some(Err(e)) => Err(decode_error(e)),
            None => Err(decode_error(serde::de::Error::custom("no value"))),
        }
    }
}

fn codecs(c: &mut Criterion) {
    bench_codec(c, Bincode);
    bench_codec(c, Postcard);
    bench_codec(c, MsgPack);
    bench_codec(c, Cbor);
    bench_codec(c, Json);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
