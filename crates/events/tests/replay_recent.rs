//! A stream that starts (or falls back) near the end of a writer's feed
//! takes the envelopes the writer keeps (`FeedBuilder::live_capacity`)
//! instead of reading the journal: the very `Arc`s the live tail carried.
//! Whatever part comes from the journal, the kept envelopes or the live
//! tail, a stream sees every event once, in order; a cursor whose next
//! event retention removed is still reported as expired.

mod support;

use std::sync::Arc;

use events::{Error, Feed, FeedItem, OnExpired, Retention, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

async fn next_event(stream: &mut events::FeedStream<Ev>) -> Arc<events::Envelope<Ev>> {
    match stream.next().await {
        Some(Ok(FeedItem::Event(env))) => env,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_near_the_end_shares_the_live_envelopes_and_sees_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).live_capacity(256).open().await.unwrap();
    let mut live = feed.stream_from(Seq::ZERO);
    let mut seen = Vec::new();
    for n in 1..=1_000 {
        // One at a time, so the live tail (4 chunks here) never lags.
        feed.append(None, msg(n)).await.unwrap();
        let env = next_event(&mut live).await;
        assert_eq!((env.seq, &env.event), (Seq::new(n), &msg(n)));
        seen.push(env);
    }

    // The newest 256 (and up to one chunk more) are kept: a stream from
    // there gets the live tail's own envelopes, not copies decoded again.
    let mut near = feed.stream_from(Seq::new(900));
    for n in 901..=1_000 {
        let env = next_event(&mut near).await;
        assert_eq!(env.seq, Seq::new(n));
        assert!(Arc::ptr_eq(&env, &seen[n as usize - 1]), "event {n} was decoded again");
    }

    // From further back: the journal, then the kept envelopes, then live,
    // contiguous across both seams.
    let mut far = feed.stream_from(Seq::new(10));
    for n in 11..=1_000 {
        let env = next_event(&mut far).await;
        assert_eq!((env.seq, &env.event), (Seq::new(n), &msg(n)));
    }
    assert!(!Arc::ptr_eq(&far_first(&feed).await, &seen[10]), "seq 11 is no longer kept: read from the journal");
    feed.append(None, msg(1_001)).await.unwrap();
    for stream in [&mut live, &mut near, &mut far] {
        assert_eq!(next_event(stream).await.seq, Seq::new(1_001));
    }
    feed.close().await.unwrap();
}

async fn far_first(feed: &Feed<Ev>) -> Arc<events::Envelope<Ev>> {
    next_event(&mut feed.stream_from(Seq::new(10))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_is_reported_even_when_its_events_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        .live_capacity(4_096)
        .on_expired(OnExpired::Fail)
        .open()
        .await
        .unwrap();
    for n in 1..=300 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let earliest = feed.earliest_seq();
    assert!(earliest > Seq::new(2), "retention pruned nothing");
    let err = feed.stream_from(Seq::new(1)).next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err:?}");
    // From the earliest retained on, the kept envelopes serve it.
    let mut s = feed.stream_from(Seq::new(earliest.get() - 1));
    for n in earliest.get()..=300 {
        assert_eq!(next_event(&mut s).await.seq, Seq::new(n));
    }
    feed.close().await.unwrap();
}
