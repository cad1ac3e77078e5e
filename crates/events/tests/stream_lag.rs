//! `FeedStream::lag`: the acknowledged events a stream has not yielded yet,
//! exact at every step, for the writer's own stream and for a follower in
//! the same directory (which reads the writer's watermark).

mod support;

use events::{Feed, FeedReader, Seq};
use support::{Ev, msg, take_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_what_the_stream_has_not_yielded() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let follower: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    for (what, mut s) in [("writer", feed.stream_from(Seq::new(2))), ("follower", follower.stream_from(Seq::new(2)))] {
        assert_eq!(s.lag(), 8, "{what}: before the first poll, from its cursor");
        take_events(&mut s, 3).await;
        assert_eq!(s.lag(), 5, "{what}: after three of the batch");
        take_events(&mut s, 5).await;
        assert_eq!(s.lag(), 0, "{what}: caught up");
    }
    let mut s = feed.stream_from(Seq::new(10));
    let mut f = follower.stream_from(Seq::new(10));
    for n in 11..=14 {
        feed.append(None, msg(n)).await.unwrap();
    }
    assert_eq!((s.lag(), f.lag()), (4, 4), "new appends show at once");
    take_events(&mut s, 4).await;
    take_events(&mut f, 4).await;
    assert_eq!((s.lag(), f.lag()), (0, 0));
    feed.close().await.unwrap();
}
