//! What a JetStream stream holds, checked message by message: the stream
//! state, then an ordered consumer from the start, comparing each message's
//! `Nats-Msg-Id` (`<epoch>-<seq>`; an `Events-Seq` header, which older
//! replicators wrote, must agree with it) and payload with what the test
//! expects for that seq. Behind the `nats` feature.
//!
//! Neighbours: [`crate::nats`] (the server the stream lives on); the header
//! names are the replicator's (events-nats, `docs/ARCHITECTURE.md`).
//! Invariant: [`verify_stream`] passes only if the stream holds seqs `1..=n`
//! exactly once each, in order, at stream sequences `1..=n`.

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures::StreamExt;

/// What the `Nats-Msg-Id` (`<epoch>-<seq>`) of each message must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgId {
    /// `<epoch>-<seq>` for this journal epoch.
    Epoch(u64),
    /// `<anything>-<seq>`: the test does not know the journal's epoch.
    AnyEpoch,
}

/// Checks that stream `name` holds exactly seqs `1..=n` in order, once
/// each, at stream sequences `1..=n`, each with the id `msg_id` describes
/// and the payload `expected(seq)`.
///
/// # Panics
///
/// On the first difference (naming the seq), or if the stream cannot be
/// read; it waits for each message without a deadline, so wrap it in the
/// test's own timeout.
pub async fn verify_stream<P: AsRef<[u8]>>(
    js: &Context,
    name: &str,
    n: u64,
    msg_id: MsgId,
    expected: impl Fn(u64) -> P,
) {
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.get_info().await.unwrap().state;
    assert_eq!((state.messages, state.first_sequence, state.last_sequence), (n, 1, n), "stream state");
    // Right after a cluster lost a node, the request can go unanswered
    // while a leader is elected (on a loaded 2-core CI machine, for longer
    // than the client's request timeout): asked again, a few times.
    let mut tries = 0;
    let consumer = loop {
        let config = OrderedConfig { deliver_policy: DeliverPolicy::All, ..OrderedConfig::default() };
        match stream.create_consumer(config).await {
            Ok(consumer) => break consumer,
            Err(e) if e.kind() == async_nats::jetstream::stream::ConsumerErrorKind::TimedOut && tries < 10 => {
                tries += 1;
            }
            Err(e) => panic!("cannot read stream {name}: {e}"),
        }
    };
    let mut messages = consumer.messages().await.unwrap();
    for want in 1..=n {
        let msg = messages.next().await.unwrap().unwrap();
        let headers = msg.message.headers.as_ref().unwrap();
        // A record's journal seq is the part of its `Nats-Msg-Id` after the epoch.
        let id = headers.get("Nats-Msg-Id").unwrap().as_str();
        let seq: u64 = id.split_once('-').unwrap().1.parse().unwrap();
        assert_eq!(seq, want, "stream sequence {}", msg.info().unwrap().stream_sequence);
        if let Some(old) = headers.get("Events-Seq") {
            assert_eq!(old.as_str(), seq.to_string(), "Events-Seq agrees with the id");
        }
        match msg_id {
            MsgId::Epoch(epoch) => assert_eq!(id, format!("{epoch}-{seq}")),
            MsgId::AnyEpoch => assert_eq!(id.split_once('-').unwrap().1, seq.to_string()),
        }
        assert_eq!(msg.message.payload.as_ref(), expected(seq).as_ref(), "payload of seq {seq}");
    }
}
