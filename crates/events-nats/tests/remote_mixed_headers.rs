//! A stream holding records replicated before and after the replicator
//! stopped sending `Events-Epoch` and `Events-Seq` (now read from
//! `Nats-Msg-Id`) reads back as one feed: every record at its seq, the
//! older headers honoured, a cursor of the stream's epoch resuming across
//! the change with no gap and no duplicate.

mod support;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Config;
use events::{Cursor, FeedItem, Seq};
use events_nats::{RemoteFeed, StreamSpec, headers};
use support::{Ev, Server, next_item};

const EPOCH: u64 = 12_345_678_901_234_567_890;

fn ev(n: u64) -> Ev {
    Ev { n, note: format!("note {n}") }
}

/// Publishes seq `seq` as the replicator of `old` or of today would have.
async fn publish(js: &async_nats::jetstream::Context, seq: u64, old: bool) {
    let mut body = Vec::new();
    events::payload::encode(&events::Bincode, Some("client"), &ev(seq), &mut body).unwrap();
    let mut h = HeaderMap::new();
    if old {
        h.insert(headers::EPOCH, EPOCH.to_string());
        h.insert(headers::SEQ, seq.to_string());
    }
    h.insert(headers::TIMESTAMP, (1_000 + seq).to_string());
    let message = PublishMessage::build()
        .payload(body.into())
        .headers(h)
        .message_id(headers::msg_id(EPOCH, seq))
        .expected_last_sequence(seq - 1);
    js.send_publish("feed.mixed", message).await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_records_read_as_one_feed() {
    let server = Server::start();
    let js = server.jetstream().await;
    js.create_stream(Config { name: "MIXED".into(), subjects: vec!["feed.mixed".into()], ..Config::default() })
        .await
        .unwrap();
    for seq in 1..=10 {
        publish(&js, seq, seq <= 6).await;
    }
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), StreamSpec::new("MIXED", "feed.mixed"));
    for cursor in [Seq::ZERO.into(), Cursor::new(Seq::new(4), EPOCH), Cursor::new(Seq::new(6), EPOCH)] {
        let mut items = remote.stream_from(cursor).await.unwrap();
        for seq in cursor.seq.get() + 1..=10 {
            match next_item(&mut items).await {
                FeedItem::Event(env) => {
                    assert_eq!((env.seq, env.event.clone()), (Seq::new(seq), ev(seq)));
                    assert_eq!(env.ts.as_nanos(), 1_000 + seq);
                    assert_eq!(env.stream_str(), Some("client"));
                }
                other => panic!("unexpected {other:?} before seq {seq} (cursor {cursor:?})"),
            }
        }
    }
}
