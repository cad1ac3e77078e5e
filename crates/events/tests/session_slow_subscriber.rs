//! A session with a fast and a deliberately slow UI subscriber: both see
//! every event (ephemeral included) in order, and every durable event reaches
//! the feed under the session's stream id.

mod support;

use events::{Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
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

/// `Feed::close` while a session's emit waits on a full subscriber: the emit already holds
/// its inbox slot, so close waits for it, and the event the subscriber saw is journaled. A
/// close that stopped the writer without it would lose an event a UI had shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_an_emit_blocked_on_a_full_subscriber_and_journals_it() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).session_capacity(1).open().await.unwrap();
    let session = feed.session("sess-1");
    let mut ui = session.subscribe();
    session.emit(msg(1)).await.unwrap();
    // The ring is full: this emit reserves its inbox slot, then waits for `ui`.
    let blocked = tokio::spawn({
        let session = session.clone();
        async move { session.emit(msg(2)).await }
    });
    // The session's fan-out records a lag only when an emit finds the ring full, which the
    // blocked emit does after reserving its slot.
    eventually("the second emit holds its slot and waits for the UI", || session.stats().max_lag >= 1).await;
    let closing = tokio::spawn(feed.clone().close());
    // `record` is dropped (and counted) once the writer took the close command and stopped
    // accepting; until then each probe is journaled, as `Done`.
    eventually("the writer took the close command", || {
        feed.record(None, &Ev::Done);
        feed.stats().dropped > 0
    })
    .await;

    let mut shown = Vec::new();
    for _ in 0..2 {
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), ui.next()).await.unwrap();
        shown.push((*item.unwrap().unwrap()).clone());
    }
    assert_eq!(shown, [msg(1), msg(2)]);
    blocked.await.unwrap().unwrap();
    closing.await.unwrap().unwrap();
    drop((session, feed));

    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let mut s = feed.stream_from(Seq::ZERO);
    let mut journaled = Vec::new();
    while journaled.len() < feed.latest_seq().get() as usize {
        let FeedItem::Event(env) = s.next().await.unwrap().unwrap() else { panic!("a reset") };
        journaled.push(env.event.clone());
    }
    journaled.retain(|e| *e != Ev::Done);
    assert_eq!(journaled, shown, "every event the UI showed is journaled");
    feed.close().await.unwrap();
}
