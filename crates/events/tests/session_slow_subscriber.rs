//! A session with a fast and a deliberately slow UI subscriber: both see
//! every event (ephemeral included) in order, and every durable event reaches
//! the feed under the session's stream id.

mod support;

use events::{Feed, FeedItem, Seq, SyncPolicy};
use futures::{FutureExt, StreamExt};
use support::{Ev, eventually, msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_sees_every_event_and_durable_ones_reach_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).session_capacity(4).open().await.unwrap();
    let session = feed.session("sess-1");
    assert_eq!(feed.session("sess-1").id(), "sess-1");
    let mut fast = session.subscribe();
    let mut slow = session.subscribe();
    assert_eq!(session.subscriber_count(), 2);

    let expected: Vec<Ev> =
        (0..2_000u64).map(|n| if n % 3 == 0 { Ev::Token(n) } else { msg(n) }).chain([Ev::Done]).collect();
    let producer = {
        let session = session.clone();
        let events = expected.clone();
        tokio::spawn(async move {
            for ev in events {
                session.emit(ev).await.unwrap();
            }
        })
    };
    let fast_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = fast.next().await {
            let ev = (*item.unwrap()).clone();
            let done = ev == Ev::Done;
            got.push(ev);
            if done {
                break;
            }
        }
        got
    });
    let mut slow_got = Vec::new();
    while let Some(item) = slow.next().await {
        let ev = (*item.unwrap()).clone();
        let done = ev == Ev::Done;
        slow_got.push(ev);
        if done {
            break;
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }
    producer.await.unwrap();
    assert_eq!(slow_got, expected);
    assert_eq!(fast_task.await.unwrap(), expected);

    // Durable events reached the journal, in order, under the session id.
    feed.sync().await.unwrap();
    let durable: Vec<Ev> = expected.iter().filter(|e| !matches!(e, Ev::Token(_))).cloned().collect();
    assert_eq!(feed.latest_seq(), Seq::new(durable.len() as u64));
    let mut s = feed.stream_from(Seq::ZERO);
    for want in &durable {
        let FeedItem::Event(env) = s.next().await.unwrap().unwrap() else { panic!() };
        assert_eq!(&env.event, want);
        assert_eq!(env.stream_str(), Some("sess-1"));
    }
    feed.close().await.unwrap();
}

/// `Feed::close` while a session's emit waits on a full subscriber: the
/// emit holds no inbox slot while it waits, so close does not wait for a UI
/// that may never read; once the UI makes room the emit fails with
/// `Closed` and no UI is shown its event, and everything the UI did see is
/// journaled. (The emit used to hold its slot, and close waited for the
/// UI: for ever, for one that never reads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_does_not_wait_for_an_emit_blocked_on_a_full_subscriber_which_then_shows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).session_capacity(1).open().await.unwrap();
    let session = feed.session("sess-1");
    let mut ui = session.subscribe();
    session.emit(msg(1)).await.unwrap();
    let blocked = tokio::spawn({
        let session = session.clone();
        async move { session.emit(msg(2)).await }
    });
    // The session's fan-out records a lag when an emit finds the ring full.
    eventually("the second emit waits for the UI", || session.stats().max_lag >= 1).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), feed.clone().close())
        .await
        .expect("close waited for a UI that does not read")
        .unwrap();

    let first = tokio::time::timeout(std::time::Duration::from_secs(10), ui.next()).await.unwrap();
    assert_eq!(*first.unwrap().unwrap(), msg(1));
    assert!(matches!(blocked.await.unwrap(), Err(events::Error::Closed)));
    assert!(ui.next().now_or_never().flatten().is_none(), "the UI was shown an event the journal will not have");
    drop((session, feed));

    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::new(1), "what the UI saw is journaled, and nothing else");
    feed.close().await.unwrap();
}
