//! Event types evolve under the self-describing codec with no upcaster: a
//! journal written with `V1` types (over several segments, across a
//! restart) is read back with `V2` types — a field added with
//! `#[serde(default)]`, a new variant, a variant removed that no record
//! used — and every event arrives converted, in order. The same evolution
//! under bincode fails with a codec error naming the codec, which is what
//! the self-describing codec is for.

#![cfg(feature = "msgpack")]

use events::{Bincode, Codec, Event, Feed, FeedItem, FeedReader, MsgPack, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(crate) enum AgentEvent {
        Message { text: String },
        ToolCall { name: String },
        Retired,
        Done,
    }
    impl Event for AgentEvent {}
}

mod v2 {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) enum AgentEvent {
        Message {
            text: String,
            #[serde(default)]
            tokens: u32,
        },
        ToolCall {
            name: String,
        },
        Done,
        Cancelled {
            reason: String,
        },
    }
    impl Event for AgentEvent {}
}

fn old(n: u64) -> v1::AgentEvent {
    match n % 3 {
        0 => v1::AgentEvent::Message { text: format!("m{n}") },
        1 => v1::AgentEvent::ToolCall { name: format!("t{n}") },
        _ => v1::AgentEvent::Done,
    }
}

fn converted(n: u64) -> v2::AgentEvent {
    match n % 3 {
        0 => v2::AgentEvent::Message { text: format!("m{n}"), tokens: 0 },
        1 => v2::AgentEvent::ToolCall { name: format!("t{n}") },
        _ => v2::AgentEvent::Done,
    }
}

async fn write_v1<C: Codec>(dir: &std::path::Path, codec: C) {
    // Two sessions of the writer (a restart), small segments (many rolls).
    for half in [1..=150, 151..=300] {
        let feed: Feed<v1::AgentEvent, C> =
            Feed::builder(dir).codec(codec.clone()).sync(SyncPolicy::Never).segment_bytes(1024).open().await.unwrap();
        for n in half {
            feed.append(Some("sess-1"), old(n)).await.unwrap();
        }
        feed.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_records_read_as_v2_with_the_self_describing_codec() {
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path(), MsgPack).await;
    assert!(std::fs::read_dir(tmp.path()).unwrap().count() > 5, "the journal spans several segments");

    let feed: Feed<v2::AgentEvent, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).open().await.unwrap();
    feed.append(None, v2::AgentEvent::Cancelled { reason: "user".into() }).await.unwrap();
    let mut stream = feed.stream_from(Seq::ZERO);
    for n in 1..=300 {
        let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("seq {n}: expected an event") };
        assert_eq!((env.seq, &env.event), (Seq::new(n), &converted(n)), "seq {n}");
        assert_eq!(env.stream_str(), Some("sess-1"));
    }
    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("the new event") };
    assert_eq!(env.event, v2::AgentEvent::Cancelled { reason: "user".into() });
    feed.close().await.unwrap();

    // The per-stream index reads the stream id out of MessagePack payloads too.
    let feed: Feed<v2::AgentEvent, MsgPack> = Feed::builder(tmp.path()).codec(MsgPack).open().await.unwrap();
    let history: Vec<_> = feed.read_stream("sess-1", Seq::ZERO).unwrap().collect::<Vec<_>>().await;
    assert_eq!(history.len(), 300, "the stream's 300 events, none of the unnamed one");
    for (n, env) in (1..).zip(history) {
        assert_eq!(env.unwrap().event, converted(n));
    }
    feed.close().await.unwrap();

    // A reader in another process with the new types sees the same.
    let reader = FeedReader::<v2::AgentEvent, MsgPack>::open_with_codec(tmp.path(), MsgPack).unwrap();
    let Some(Ok(FeedItem::Event(env))) = reader.stream_from(Seq::ZERO).next().await else { panic!() };
    assert_eq!(env.event, converted(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_evolution_under_bincode_is_a_codec_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path(), Bincode).await;
    let feed: Feed<v2::AgentEvent> = Feed::builder(tmp.path()).open().await.unwrap();
    let mut stream = feed.stream_from(Seq::ZERO);
    let failed = loop {
        match stream.next().await {
            Some(Ok(FeedItem::Event(_))) => {}
            Some(Err(e)) => break e,
            other => panic!("expected a codec error, got {other:?}"),
        }
    };
    let text = events::error_chain(&failed);
    assert!(text.contains("bincode"), "the error names the codec: {text}");
    feed.close().await.unwrap();
}

/// A follower opened with another codec than the journal's is refused with
/// `CodecTagMismatch` naming the segment, as the writer is: it had opened,
/// and every record came out undecodable (or, between codecs whose bytes
/// happen to fit, as other values).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_another_codec_than_the_journals_is_refused() {
    use events::layers::journal::JournalError;
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path(), Bincode).await;
    let refused = FeedReader::<v1::AgentEvent, MsgPack>::open_with_codec(tmp.path(), MsgPack);
    let Err(events::Error::Journal(JournalError::CodecTagMismatch { expected, found, path })) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!((expected, found), (MsgPack::ID, Bincode::ID));
    assert!(path.starts_with(tmp.path()), "{path:?}");
    assert!(FeedReader::<v1::AgentEvent>::open(tmp.path()).is_ok());

    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path(), MsgPack).await;
    let refused = FeedReader::<v1::AgentEvent>::open(tmp.path());
    assert!(matches!(refused, Err(events::Error::Journal(JournalError::CodecTagMismatch { .. }))), "{refused:?}");
}

/// A follower checks the codec again when the directory is recreated under
/// it: a stream that moved on to the new journal (one `EpochMismatch`
/// reset) ends with `CodecTagMismatch` when that journal is of another
/// codec, and so does a per-stream read. Before, the check ran only at
/// open, and every record of the new journal came out undecodable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_a_directory_recreated_with_another_codec() {
    use events::layers::journal::JournalError;
    use events::{Cursor, ResetReason};
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path(), Bincode).await;
    let follower = FeedReader::<v1::AgentEvent>::open(tmp.path()).unwrap();
    let old_epoch = follower.epoch();

    std::fs::remove_dir_all(tmp.path()).unwrap();
    write_v1(tmp.path(), MsgPack).await;
    let mut stream = follower.stream_from(Cursor::new(Seq::new(300), old_epoch));
    let Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { .. }, .. })) = stream.next().await else {
        panic!("expected the epoch reset")
    };
    let next = stream.next().await;
    let Some(Err(events::Error::Journal(JournalError::CodecTagMismatch { expected, found, path }))) = next else {
        panic!("expected the codec refused, got {next:?}")
    };
    assert_eq!((expected, found), (Bincode::ID, MsgPack::ID));
    assert!(path.starts_with(tmp.path()), "{path:?}");
    assert!(stream.next().await.is_none(), "the stream ends at the error");
    // A per-stream read too: it yielded a decode error for every record.
    let mut history = follower.read_stream("sess-1", Seq::ZERO).unwrap();
    let first = history.next().await;
    assert!(matches!(first, Some(Err(events::Error::Journal(JournalError::CodecTagMismatch { .. })))), "{first:?}");
    assert!(history.next().await.is_none(), "the read ends at the error");
}
