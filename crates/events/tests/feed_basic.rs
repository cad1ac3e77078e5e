//! Basic feed behaviour: seqs are contiguous and journaled, ephemeral events
//! never reach the journal or the feed, stream ids route as documented, and
//! `append` of an ephemeral event is refused with a typed error; a stream
//! polled again after it ended answers `None` again.

mod support;

use events::layers::journal::Reader;
use events::{Error, Feed, Seq, SyncPolicy};
use support::{Ev, msg, take_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_are_contiguous_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 1..=100 {
        assert_eq!(feed.append(None, msg(n)).await.unwrap(), Seq::new(n));
    }
    assert_eq!(feed.latest_seq(), Seq::new(100));
    assert_eq!(feed.earliest_seq(), Seq::new(1));
    feed.close().await.unwrap();

    let reader = Reader::open(dir.path()).unwrap();
    let seqs: Vec<u64> = reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_events_never_reach_journal_or_feed() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let mut live = feed.stream_from(Seq::ZERO);
    feed.record(Some("s"), &Ev::Token(1));
    assert!(matches!(feed.append(Some("s"), Ev::Token(2)).await, Err(Error::Ephemeral)));
    feed.append(Some("s"), msg(1)).await.unwrap();
    feed.record(Some("s"), &Ev::Token(3));
    feed.append(Some("s"), msg(2)).await.unwrap();

    let got = take_events(&mut live, 2).await;
    assert_eq!(got, vec![(Seq::new(1), msg(1)), (Seq::new(2), msg(2))]);
    assert_eq!(feed.latest_seq(), Seq::new(2));
    assert_eq!(feed.stats().dropped, 0, "ephemeral events are ignored, not dropped");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_stream_id_wins_and_terminal_routes_via_caller() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let own = Ev::Msg { n: 1, own_stream: Some("own".into()) };
    feed.append(None, own.clone()).await.unwrap();
    feed.append(Some("caller"), own).await.unwrap();
    feed.append(Some("sess-9"), Ev::Done).await.unwrap();
    feed.append(None, Ev::Done).await.unwrap();

    let mut s = feed.stream_from(Seq::ZERO);
    let mut streams = Vec::new();
    for _ in 0..4 {
        let item = futures::StreamExt::next(&mut s).await.unwrap().unwrap();
        let env = item.event().unwrap().clone();
        streams.push(env.stream_str().map(str::to_owned));
    }
    assert_eq!(streams, vec![Some("own".into()), Some("caller".into()), Some("sess-9".into()), None]);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_feed_on_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let err = Feed::<Ev>::builder(dir.path()).open().await.unwrap_err();
    assert!(matches!(err, Error::Journal(events::JournalError::Locked { .. })), "{err:?}");
    feed.close().await.unwrap();
    // Released on close.
    let again: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_feed_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let other = feed.clone();
    feed.close().await.unwrap();
    assert!(matches!(other.append(None, msg(1)).await, Err(Error::Closed)));
    other.record(None, &msg(2));
    assert_eq!(other.stats().dropped, 1);
}

/// `stream_from` and `read_stream` polled again after they ended (a
/// `select!` loop that re-polls the stream of a closed feed): `None` again.
/// Both had panicked ("`Unfold` must not be polled after it returned
/// `Poll::Ready(None)`").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_polled_after_its_end_ends_again() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    feed.append(Some("s"), msg(1)).await.unwrap();
    let mut all = feed.stream_from(Seq::ZERO);
    let mut one = feed.read_stream("s", Seq::ZERO).unwrap();
    feed.close().await.unwrap();
    assert!(matches!(all.next().await, Some(Ok(events::FeedItem::Event(_)))));
    assert!(all.next().await.is_none());
    assert!(all.next().await.is_none(), "polled after its end");
    assert!(one.next().await.unwrap().is_ok());
    assert!(one.next().await.is_none());
    assert!(one.next().await.is_none(), "polled after its end");
}
