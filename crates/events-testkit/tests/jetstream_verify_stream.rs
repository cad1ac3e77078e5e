//! `verify_stream` against a real server: it passes on a stream that holds
//! seqs `1..=n` with the expected ids and payloads, and fails (the spawned
//! check panics) on a wrong payload, a wrong epoch, a missing message or a
//! seq out of order, so the tests that rely on it can fail.
//!
//! Neighbours: `src/jetstream.rs` (the check), `src/nats.rs` (the server).

use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use async_nats::jetstream::stream::Config;
use events_testkit::jetstream::{MsgId, verify_stream};
use events_testkit::nats::NatsServer;

fn payload(seq: u64) -> Vec<u8> {
    format!("payload of {seq}").into_bytes()
}

/// Creates stream `name` on subject `name` and publishes `(seq, id, payload)` in order.
async fn stream_of(js: &Context, name: &str, messages: &[(u64, String, Vec<u8>)]) {
    js.create_stream(Config { name: name.into(), subjects: vec![name.into()], ..Config::default() }).await.unwrap();
    for (seq, id, payload) in messages {
        let mut headers = HeaderMap::new();
        headers.insert("Events-Seq", seq.to_string().as_str());
        headers.insert("Nats-Msg-Id", id.as_str());
        js.publish_with_headers(name.to_string(), headers, payload.clone().into()).await.unwrap().await.unwrap();
    }
}

fn good(n: u64) -> Vec<(u64, String, Vec<u8>)> {
    (1..=n).map(|seq| (seq, format!("7-{seq}"), payload(seq))).collect()
}

/// Runs `verify_stream` on its own task; `true` if it passed, `false` if it panicked.
async fn passes(js: &Context, name: &str, n: u64, msg_id: MsgId) -> bool {
    let (js, name) = (js.clone(), name.to_string());
    match tokio::spawn(async move { verify_stream(&js, &name, n, msg_id, payload).await }).await {
        Ok(()) => true,
        Err(e) => {
            assert!(e.is_panic(), "{e}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_a_good_stream_and_fails_on_each_kind_of_difference() {
    let server = NatsServer::start();
    let js = server.jetstream().await;

    stream_of(&js, "GOOD", &good(5)).await;
    assert!(passes(&js, "GOOD", 5, MsgId::Epoch(7)).await);
    assert!(passes(&js, "GOOD", 5, MsgId::AnyEpoch).await);
    assert!(!passes(&js, "GOOD", 5, MsgId::Epoch(8)).await, "another epoch");
    assert!(!passes(&js, "GOOD", 4, MsgId::AnyEpoch).await, "one message too many");

    let mut wrong_payload = good(5);
    wrong_payload[2].2 = b"not it".to_vec();
    stream_of(&js, "PAYLOAD", &wrong_payload).await;
    assert!(!passes(&js, "PAYLOAD", 5, MsgId::AnyEpoch).await, "a wrong payload");

    let mut swapped = good(5);
    swapped.swap(1, 2);
    stream_of(&js, "ORDER", &swapped).await;
    assert!(!passes(&js, "ORDER", 5, MsgId::AnyEpoch).await, "seqs out of order");

    let mut wrong_id = good(5);
    wrong_id[4].1 = "7-4".into();
    stream_of(&js, "ID", &wrong_id).await;
    assert!(!passes(&js, "ID", 5, MsgId::AnyEpoch).await, "an id naming another seq");
}
