//! Live output: ephemeral events (streamed tokens) interleaved with durable
//! ones in emit order, resumable from any position, never journaled; the
//! ring's limits give one explicit `Reset { LiveOutputExpired }` and the
//! stream goes on with the next durable event; memory stays bounded.

use std::time::Duration;

use events::{
    Cursor, Durability, Error, Event, Feed, FeedItem, FeedReader, LiveCursor, LiveOutput, Position, ResetReason, Seq,
};
use futures::StreamExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Agent {
    Token(String),
    Message(String),
}

impl Event for Agent {
    fn durability(&self) -> Durability {
        match self {
            Agent::Token(_) => Durability::Ephemeral,
            Agent::Message(_) => Durability::Durable,
        }
    }
}

/// An item as a test compares it: its position, stream and event.
type Seen = (Position, Option<String>, Agent);

fn seen(item: FeedItem<Agent>) -> Seen {
    match item {
        FeedItem::Event(env) => (Position::durable(env.seq), env.stream_str().map(str::to_owned), env.event.clone()),
        FeedItem::Ephemeral { position, env } => (position, env.stream_str().map(str::to_owned), env.event.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

/// Everything a closed feed's live stream yields from `from`.
async fn all_from(reader: &FeedReader<Agent>, from: LiveCursor, stream: Option<&str>) -> Vec<FeedItem<Agent>> {
    let live = reader.stream_live(from, stream).unwrap();
    tokio::time::timeout(Duration::from_secs(20), live.map(Result::unwrap).collect::<Vec<_>>())
        .await
        .expect("the live stream of a closed feed ends")
}

fn cursor_at(p: Position, epoch: u64) -> LiveCursor {
    LiveCursor::new(Cursor::new(p.seq, epoch), p.index)
}

#[tokio::test]
async fn tokens_and_messages_come_in_emit_order_and_only_messages_are_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    let session = feed.session("s1");
    for t in ["he", "llo"] {
        session.emit(Agent::Token(t.into())).await.unwrap();
    }
    session.emit(Agent::Message("hello".into())).await.unwrap();
    feed.record(Some("s2"), &Agent::Token("x".into()));
    session.emit(Agent::Token("bye".into())).await.unwrap();
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::new(1), "only the message is journaled");
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items: Vec<Seen> = all_from(&reader, Seq::ZERO.into(), None).await.into_iter().map(seen).collect();
    let at = |seq, index| Position { seq: Seq::new(seq), index };
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        items,
        vec![
            (at(0, 1), s("s1"), Agent::Token("he".into())),
            (at(0, 2), s("s1"), Agent::Token("llo".into())),
            (at(1, 0), s("s1"), Agent::Message("hello".into())),
            (at(1, 1), s("s2"), Agent::Token("x".into())),
            (at(1, 2), s("s1"), Agent::Token("bye".into())),
        ]
    );
    // One stream's live output.
    let s1: Vec<Seen> = all_from(&reader, Seq::ZERO.into(), Some("s1"))
        .await
        .into_iter()
        .filter(|item| !matches!(item, FeedItem::Checkpoint { .. }))
        .map(seen)
        .collect();
    assert_eq!(s1.len(), 4);
    assert!(s1.iter().all(|(_, stream, _)| stream.as_deref() == Some("s1")));
    // The stats count the ring.
    assert_eq!(reader.stats().live_events, 4);
}

#[tokio::test]
async fn live_output_is_opt_in() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).open().await.unwrap();
    feed.record(Some("s1"), &Agent::Token("t".into()));
    let says_why = |e: &Error| matches!(e, Error::Config(why) if why.contains("live output is off") && why.contains("writer's process"));
    assert!(feed.reader().stream_live(Seq::ZERO, None).err().is_some_and(|e| says_why(&e)));
    feed.close().await.unwrap();
    // And a reader in another process has no ring, though its writer keeps one.
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    assert!(feed.reader().stream_live(Seq::ZERO, None).is_ok());
    let follower = FeedReader::<Agent>::open(tmp.path()).unwrap();
    assert!(follower.stream_live(Seq::ZERO, None).err().is_some_and(|e| says_why(&e)));
    feed.close().await.unwrap();
}

/// A live client follows while it happens: tokens arrive before the
/// message that concludes them is even appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_client_sees_tokens_as_they_are_emitted() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    let session = feed.session("s1");
    for n in 0..20 {
        session.emit(Agent::Token(format!("t{n}"))).await.unwrap();
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(seen(item).2, Agent::Token(format!("t{n}")));
    }
    session.emit(Agent::Message("done".into())).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(seen(item), (Position::durable(Seq::new(1)), Some("s1".into()), Agent::Message("done".into())));
    assert_eq!(live.position(), Position::durable(Seq::new(1)));
    feed.close().await.unwrap();
}

/// One emit of a random interleaving: (stream, is the run's last event).
fn emit_plan() -> impl Strategy<Value = Vec<(u8, u8)>> {
    // Each stream gets runs of 1..=50 tokens, each concluded by a message.
    prop::collection::vec((0u8..3, 1u8..=50), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Reconnecting after any item yields exactly the items after it.
    #[test]
    fn resuming_at_any_position_yields_exactly_the_rest(plan in emit_plan(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 12)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
            let inbox = feed.inbox();
            // The runs of the plan, interleaved token by token across streams.
            let mut runs: Vec<(String, u8, u8)> =
                plan.iter().enumerate().map(|(i, &(s, len))| (format!("s{s}"), len, i as u8)).collect();
            let mut step = 0usize;
            while !runs.is_empty() {
                let i = step % runs.len();
                step += 7;
                let (stream, left, run) = &mut runs[i];
                let event = if *left == 0 { Agent::Message(format!("run {run}")) } else { Agent::Token(format!("run {run} left {left}")) };
                inbox.forward(Some(stream.as_str().into()), event).await.unwrap();
                if *left == 0 {
                    runs.remove(i);
                } else {
                    *left -= 1;
                }
            }
            let reader = feed.reader();
            let epoch = feed.epoch();
            feed.close().await.unwrap();
            let full: Vec<Seen> = all_from(&reader, Seq::ZERO.into(), None).await.into_iter().map(seen).collect();
            let emitted: usize = plan.iter().map(|&(_, len)| usize::from(len) + 1).sum();
            assert_eq!(full.len(), emitted);
            for cut in &cuts {
                let k = cut.index(full.len());
                let rest: Vec<Seen> = all_from(&reader, cursor_at(full[k].0, epoch), None).await.into_iter().map(seen).collect();
                assert_eq!(rest, full[k + 1..].to_vec(), "resumed after item {k} at {:?}", full[k].0);
                // One stream's output from the same cut: the rest of that stream.
                let stream = full[k].1.clone().unwrap();
                // Checkpoints (one stream's durable stream is `stream_filtered`) only move the position.
                let mine: Vec<Seen> = all_from(&reader, cursor_at(full[k].0, epoch), Some(&stream))
                    .await
                    .into_iter()
                    .filter(|item| !matches!(item, FeedItem::Checkpoint { .. }))
                    .map(seen)
                    .collect();
                let want: Vec<Seen> = full[k + 1..].iter().filter(|s| s.1.as_deref() == Some(stream.as_str())).cloned().collect();
                assert_eq!(mine, want);
            }
        });
    }
}

/// One stream past its `per_stream` limit while another's tokens are still
/// in the ring: a new client (bare `Seq::ZERO`) gets what the ring holds of
/// every stream, with no reset. It had started after the newest loss of any
/// stream, skipping the other stream's tokens silently.
#[tokio::test]
async fn a_new_client_gets_every_streams_tokens_the_ring_still_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(10)).open().await.unwrap();
    let inbox = feed.inbox();
    inbox.forward(Some("a".into()), Agent::Message("m1".into())).await.unwrap();
    for n in 1..=3 {
        inbox.forward(Some("a".into()), Agent::Token(format!("a{n}"))).await.unwrap();
    }
    for n in 1..=20 {
        inbox.forward(Some("b".into()), Agent::Token(format!("b{n}"))).await.unwrap();
    }
    let reader = feed.reader();
    feed.close().await.unwrap();
    let got: Vec<Agent> = all_from(&reader, Seq::ZERO.into(), None).await.into_iter().map(|i| seen(i).2).collect();
    let expected: Vec<Agent> = std::iter::once(Agent::Message("m1".into()))
        .chain((1..=3).map(|n| Agent::Token(format!("a{n}"))))
        .chain((11..=20).map(|n| Agent::Token(format!("b{n}"))))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn past_the_rings_limits_one_reset_then_the_next_durable_event() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(10)).open().await.unwrap();
    let inbox = feed.inbox();
    inbox.forward(Some("s1".into()), Agent::Message("start".into())).await.unwrap();
    for n in 0..50 {
        inbox.forward(Some("s1".into()), Agent::Token(format!("t{n}"))).await.unwrap();
    }
    inbox.forward(Some("s1".into()), Agent::Message("end".into())).await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    assert_eq!(reader.stats().live_evicted, 40);
    // A client that saw the 5th token: tokens 6..40 are gone.
    let items = all_from(&reader, cursor_at(Position { seq: Seq::new(1), index: 5 }, epoch), None).await;
    assert!(
        matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, earliest, .. } if earliest == Seq::new(2)),
        "{:?}",
        items[0]
    );
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(seen(items[1].clone()).2, Agent::Message("end".into()));
    // A client that saw the 45th token is still served from the ring.
    // (`seen` panics on a reset.)
    let events = |items: Vec<FeedItem<Agent>>| items.into_iter().map(|i| seen(i).2).collect::<Vec<_>>();
    let tokens = |range: std::ops::RangeInclusive<u32>| range.map(|n| Agent::Token(format!("t{n}")));
    let items = all_from(&reader, cursor_at(Position { seq: Seq::new(1), index: 45 }, epoch), None).await;
    let expected: Vec<Agent> = tokens(45..=49).chain([Agent::Message("end".into())]).collect();
    assert_eq!(events(items), expected);
    // A new client (bare Seq::ZERO) gets what is there, with no reset.
    let items = all_from(&reader, Seq::ZERO.into(), None).await;
    let expected: Vec<Agent> = std::iter::once(Agent::Message("start".into()))
        .chain(tokens(40..=49))
        .chain([Agent::Message("end".into())])
        .collect();
    assert_eq!(events(items), expected, "start, the 10 newest tokens, end");

    // By age.
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path())
        .live_output(LiveOutput::new().max_age(Duration::from_millis(50)))
        .open()
        .await
        .unwrap();
    let epoch = feed.epoch();
    feed.inbox().forward(Some("s1".into()), Agent::Token("old".into())).await.unwrap();
    feed.sync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    feed.append(Some("s1"), Agent::Message("m".into())).await.unwrap();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items = all_from(&reader, LiveCursor::new(Cursor::new(Seq::ZERO, epoch), 0), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    assert_eq!(items.len(), 2);
}

/// 10,000 streams each in the middle of a response (20 tokens each, none
/// concluded): the ring holds at most its limit, measured by the feed's
/// own counters, and everything beyond was removed oldest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_mid_response_stay_within_the_memory_bound() {
    const STREAMS: usize = 10_000;
    const TOKENS: usize = 20;
    let limit = 65_536;
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(limit)).open().await.unwrap();
    let inbox = feed.inbox();
    for t in 0..TOKENS {
        for s in 0..STREAMS {
            inbox.forward(Some(format!("s{s}").as_str().into()), Agent::Token(format!("{t}"))).await.unwrap();
        }
    }
    feed.sync().await.unwrap();
    let stats = feed.stats();
    assert_eq!(stats.live_events, limit as u64);
    assert_eq!(stats.live_evicted, (STREAMS * TOKENS - limit) as u64);
    assert_eq!(stats.latest_seq, 0, "nothing ephemeral is journaled");
    // The newest tokens are the ones kept.
    let epoch = feed.epoch();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items = all_from(&reader, Seq::ZERO.into(), None).await;
    assert_eq!(items.len(), limit);
    assert_eq!(seen(items[limit - 1].clone()).0, Position { seq: Seq::ZERO, index: (STREAMS * TOKENS) as u32 });
    // A client that had seen only the first token of the first stream resets.
    let items = all_from(&reader, LiveCursor::new(Cursor::new(Seq::ZERO, epoch), 1), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }));
}

#[tokio::test]
async fn after_a_writer_restart_a_cursor_inside_a_run_resets() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || Feed::<Agent>::builder(tmp.path()).live_output(LiveOutput::new()).open();
    let feed = open().await.unwrap();
    feed.append(Some("s1"), Agent::Message("m1".into())).await.unwrap();
    feed.inbox().forward(Some("s1".into()), Agent::Token("t".into())).await.unwrap();
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    let feed = open().await.unwrap();
    feed.append(Some("s1"), Agent::Message("m2".into())).await.unwrap();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items = all_from(&reader, cursor_at(Position { seq: Seq::new(1), index: 1 }, epoch), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    assert_eq!(seen(items[1].clone()).2, Agent::Message("m2".into()));
    // A durable cursor at the end of the new journal resumes quietly.
    let items = all_from(&reader, Cursor::new(Seq::new(2), epoch).into(), None).await;
    assert!(items.is_empty(), "{items:?}");
}

/// A writer that reopened a journal streams a response before any durable
/// event: a client that saw its first token resumes with the rest and no
/// reset. Its tokens had the earlier process's positions, so every cursor
/// inside that run got a reset and the rest of the response was skipped.
#[tokio::test]
async fn after_a_restart_a_client_of_the_new_writer_resumes_inside_its_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || Feed::<Agent>::builder(tmp.path()).live_output(LiveOutput::new()).open();
    let feed = open().await.unwrap();
    feed.append(Some("s1"), Agent::Message("m1".into())).await.unwrap();
    feed.inbox().forward(Some("s1".into()), Agent::Token("old".into())).await.unwrap();
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    let feed = open().await.unwrap();
    for t in ["n1", "n2", "n3"] {
        feed.inbox().forward(Some("s1".into()), Agent::Token(t.into())).await.unwrap();
    }
    feed.append(Some("s1"), Agent::Message("m2".into())).await.unwrap();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let everything: Vec<Seen> = all_from(&reader, Seq::ZERO.into(), None).await.into_iter().map(seen).collect();
    let events: Vec<Agent> = everything.iter().map(|(_, _, e)| e.clone()).collect();
    let token = |t: &str| Agent::Token(t.into());
    assert_eq!(
        events,
        [Agent::Message("m1".into()), token("n1"), token("n2"), token("n3"), Agent::Message("m2".into())]
    );
    let n1 = everything[1].0;
    let resumed: Vec<Agent> =
        all_from(&reader, cursor_at(n1, epoch), None).await.into_iter().map(|item| seen(item).2).collect();
    assert_eq!(resumed, [token("n2"), token("n3"), Agent::Message("m2".into())]);
    // A cursor at m1 itself, which either writer may have handed out, is
    // owed the earlier writer's token too: a reset, then all of this one's.
    let items = all_from(&reader, cursor_at(Position::durable(Seq::new(1)), epoch), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    let after: Vec<Agent> = items[1..].iter().map(|item| seen(item.clone()).2).collect();
    assert_eq!(after, [token("n1"), token("n2"), token("n3"), Agent::Message("m2".into())]);
    // A cursor in an earlier writer's range above this one's (a generation
    // that wrapped, a lost `LEASE`): a reset, then all of this writer's
    // tokens in the run. The reset had reported up to the run's end, past
    // them: the client got only m2.
    let above = Position { seq: Seq::new(1), index: n1.index + (2 << 24) };
    let items = all_from(&reader, cursor_at(above, epoch), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    let after: Vec<Agent> = items[1..].iter().map(|item| seen(item.clone()).2).collect();
    assert_eq!(after, [token("n1"), token("n2"), token("n3"), Agent::Message("m2".into())]);
}

/// A writer that emitted only ephemeral events leaves a journal with no
/// durable event; the next writer's positions in that run are apart from
/// the first one's, so a cursor from the first run is reset, never resumed
/// among the second writer's events, and then gets all of those.
#[tokio::test]
async fn after_a_restart_with_no_durable_event_a_cursor_inside_the_run_resets() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || Feed::<Agent>::builder(tmp.path()).live_output(LiveOutput::new()).open();
    async fn forward(feed: &Feed<Agent>, tokens: [&'static str; 5]) {
        for t in tokens {
            feed.inbox().forward(Some("s1".into()), Agent::Token(t.into())).await.unwrap();
        }
    }
    let feed = open().await.unwrap();
    forward(&feed, ["a", "b", "c", "d", "e"]).await;
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    let feed = open().await.unwrap();
    assert_eq!(feed.epoch(), epoch);
    forward(&feed, ["n1", "n2", "n3", "n4", "n5"]).await;
    feed.append(Some("s1"), Agent::Message("m1".into())).await.unwrap();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items = all_from(&reader, cursor_at(Position { seq: Seq::ZERO, index: 3 }, epoch), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    let after: Vec<Agent> = items[1..].iter().map(|item| seen(item.clone()).2).collect();
    let token = |t: &str| Agent::Token(t.into());
    let second_writers = [token("n1"), token("n2"), token("n3"), token("n4"), token("n5"), Agent::Message("m1".into())];
    assert_eq!(after, second_writers, "{items:?}");
}

/// One stream's removals never reset a reader of another stream: the ring
/// keeps a floor per stream.
#[tokio::test]
async fn a_reader_of_one_stream_is_not_reset_by_another_streams_removals() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(1)).open().await.unwrap();
    let inbox = feed.inbox();
    inbox.forward(Some("s0".into()), Agent::Token("a".into())).await.unwrap();
    inbox.forward(Some("s1".into()), Agent::Token("x".into())).await.unwrap();
    inbox.forward(Some("s1".into()), Agent::Token("y".into())).await.unwrap(); // removes x
    inbox.forward(Some("s0".into()), Agent::Message("m".into())).await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    let from = LiveCursor::new(Cursor::new(Seq::ZERO, epoch), 0);
    let s0: Vec<Agent> = all_from(&reader, from, Some("s0"))
        .await
        .into_iter()
        .filter(|item| !matches!(item, FeedItem::Checkpoint { .. }))
        .map(|item| seen(item).2)
        .collect();
    assert_eq!(s0, vec![Agent::Token("a".into()), Agent::Message("m".into())]);
    // A reader of every stream did lose `x`: one reset, then what follows.
    let all = all_from(&reader, from, None).await;
    assert!(matches!(all[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{all:?}");
    assert_eq!(seen(all[1].clone()).2, Agent::Message("m".into()));

    // Still so when the other stream lost tokens in more runs than the
    // ring remembers one by one (`max_events` of them: 4 here).
    let tmp = tempfile::tempdir().unwrap();
    let live = LiveOutput::new().max_events(4).per_stream(1);
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(live).open().await.unwrap();
    let inbox = feed.inbox();
    inbox.forward(Some("s0".into()), Agent::Token("a".into())).await.unwrap();
    for n in 0..10 {
        inbox.forward(Some("s1".into()), Agent::Token(format!("x{n}"))).await.unwrap();
        inbox.forward(Some("s1".into()), Agent::Message(format!("m{n}"))).await.unwrap();
    }
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    let s0 = all_from(&reader, LiveCursor::new(Cursor::new(Seq::ZERO, epoch), 0), Some("s0")).await;
    let s0: Vec<Agent> =
        s0.into_iter().filter(|item| !matches!(item, FeedItem::Checkpoint { .. })).map(|item| seen(item).2).collect();
    assert_eq!(s0, vec![Agent::Token("a".into())]);
}

/// A run of 50 tokens between a question and its answer: resuming after
/// every one of its items (and after the question) yields exactly the rest
/// of the run, then the answer.
#[tokio::test]
async fn resuming_at_every_position_of_a_fifty_token_run() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    let session = feed.session("chat");
    session.emit(Agent::Message("question".into())).await.unwrap();
    for n in 0..50 {
        session.emit(Agent::Token(format!("t{n}"))).await.unwrap();
    }
    session.emit(Agent::Message("answer".into())).await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    let full: Vec<Seen> = all_from(&reader, Seq::ZERO.into(), None).await.into_iter().map(seen).collect();
    assert_eq!(full.len(), 52);
    for k in 0..full.len() {
        let rest: Vec<Seen> =
            all_from(&reader, cursor_at(full[k].0, epoch), None).await.into_iter().map(seen).collect();
        assert_eq!(rest, full[k + 1..].to_vec(), "resumed after item {k}");
    }
}

/// A loss reported by one reset does not hide a later one: tokens lost after
/// the next durable event get their own reset there.
#[tokio::test]
async fn a_second_loss_after_a_reset_is_reported_too() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(10)).open().await.unwrap();
    let inbox = feed.inbox();
    inbox.forward(Some("s1".into()), Agent::Message("start".into())).await.unwrap();
    for n in 0..5 {
        inbox.forward(Some("s1".into()), Agent::Token(format!("a{n}"))).await.unwrap();
    }
    inbox.forward(Some("s1".into()), Agent::Message("mid".into())).await.unwrap();
    for n in 0..20 {
        inbox.forward(Some("s1".into()), Agent::Token(format!("b{n}"))).await.unwrap();
    }
    inbox.forward(Some("s1".into()), Agent::Message("end".into())).await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    let items = all_from(&reader, cursor_at(Position { seq: Seq::new(1), index: 2 }, epoch), None).await;
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    assert_eq!(seen(items[1].clone()).2, Agent::Message("mid".into()));
    assert!(matches!(items[2], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, .. }), "{items:?}");
    // The 10 kept tokens of the second run come after a loss: skipped with it.
    assert_eq!(seen(items[3].clone()).2, Agent::Message("end".into()), "{items:?}");
    assert_eq!(items.len(), 4, "{items:?}");
}

/// After the durable stream resets elsewhere (a cursor ahead of the
/// journal), the live position follows it: the ring's tokens after the
/// journal's events are delivered, and `position()` is where the stream is.
#[tokio::test]
async fn a_reset_of_the_durable_stream_moves_the_live_position_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    feed.append(Some("s1"), Agent::Message("m1".into())).await.unwrap();
    feed.append(Some("s1"), Agent::Message("m2".into())).await.unwrap();
    feed.inbox().forward(Some("s1".into()), Agent::Token("t".into())).await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    let mut live = reader.stream_live(LiveCursor::new(Cursor::new(Seq::new(10), epoch), 0), None).unwrap();
    let mut items = Vec::new();
    while let Some(item) = live.next().await {
        items.push(item.unwrap());
    }
    assert!(matches!(items[0], FeedItem::Reset { reason: ResetReason::Ahead, .. }), "{items:?}");
    let rest: Vec<Seen> = items[1..].iter().cloned().map(seen).collect();
    let at = |seq, index| Position { seq: Seq::new(seq), index };
    assert_eq!(rest.iter().map(|s| s.0).collect::<Vec<_>>(), vec![at(1, 0), at(2, 0), at(2, 1)], "{items:?}");
    assert_eq!(live.position(), at(2, 1));
}

/// Only the runs that lost tokens are reported: tokens after messages 1, 20
/// and 40, the first two runs removed by the per-stream limit. A cursor
/// before them gets one reset before message 2 and one before message 21,
/// not one before every message up to the ring's floor.
#[tokio::test]
async fn a_reset_only_for_each_run_that_lost_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(5)).open().await.unwrap();
    let inbox = feed.inbox();
    for n in 1..=50u64 {
        inbox.forward(Some("s1".into()), Agent::Message(format!("m{n}"))).await.unwrap();
        if matches!(n, 1 | 20 | 40) {
            for t in 0..5 {
                inbox.forward(Some("s1".into()), Agent::Token(format!("{n}.{t}"))).await.unwrap();
            }
        }
    }
    let (reader, epoch) = (feed.reader(), feed.epoch());
    feed.close().await.unwrap();
    for filter in [None, Some("s1")] {
        let items = all_from(&reader, Cursor::new(Seq::new(1), epoch).into(), filter).await;
        let resets: Vec<Seq> = items
            .iter()
            .filter_map(|item| match item {
                FeedItem::Reset { reason: ResetReason::LiveOutputExpired, earliest, .. } => Some(*earliest),
                _ => None,
            })
            .collect();
        assert_eq!(resets, [Seq::new(2), Seq::new(21)], "{filter:?}: {items:?}");
        let tokens = items.iter().filter(|item| matches!(item, FeedItem::Ephemeral { .. })).count();
        assert_eq!(tokens, 5, "run 40 is whole: {filter:?}");
        assert_eq!(items.len(), 49 + 2 + 5, "{filter:?}");
    }
}

/// After a writer restart, a cursor 50 events back gets one reset for the
/// earlier writer's lost output, not one before each of the 50 events.
#[tokio::test]
async fn after_a_restart_a_cursor_far_back_gets_one_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || Feed::<Agent>::builder(tmp.path()).live_output(LiveOutput::new()).open();
    let feed = open().await.unwrap();
    for n in 1..=100 {
        feed.append(Some("s1"), Agent::Message(format!("m{n}"))).await.unwrap();
    }
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    let feed = open().await.unwrap();
    let reader = feed.reader();
    feed.close().await.unwrap();
    let items = all_from(&reader, Cursor::new(Seq::new(50), epoch).into(), None).await;
    assert!(
        matches!(items[0], FeedItem::Reset { reason: ResetReason::LiveOutputExpired, earliest, .. } if earliest == Seq::new(51)),
        "{items:?}"
    );
    assert_eq!(items.len(), 51, "one reset, then messages 51..=100: {items:?}");
}

/// A caught-up reader of one stream, not polled while many runs go by in
/// the other stream: its stream's tokens of the first run are lost and
/// that loss is folded away (`max_events(2)`: past two runs that lost
/// something, the ring no longer tells them apart), and a token of its
/// stream is kept in a later run before its next message. When polled it
/// drains all those runs at once: one reset for the folded stretch, then
/// the kept token, then the message. The reset had covered every run up to
/// the message, and the kept token was skipped with the lost ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_stream_reader_gets_a_kept_token_after_a_folded_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(2)).open().await.unwrap();
    let (a, b) = (feed.session("a"), feed.session("b"));
    a.emit(Agent::Message("m1".into())).await.unwrap();
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, Some("a")).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(seen(first).2, Agent::Message("m1".into()));
    assert!(tokio::time::timeout(Duration::from_millis(100), live.next()).await.is_err(), "caught up");
    for n in 1..=3 {
        a.emit(Agent::Token(format!("a{n}"))).await.unwrap();
    }
    // Runs 2 to 5 of stream b, each losing tokens to the next: run 1's
    // loss is folded away.
    for run in 2..=5 {
        b.emit(Agent::Message(format!("b{run}"))).await.unwrap();
        for n in 1..=2 {
            b.emit(Agent::Token(format!("b{run}.{n}"))).await.unwrap();
        }
    }
    a.emit(Agent::Token("kept".into())).await.unwrap();
    a.emit(Agent::Message("m6".into())).await.unwrap();
    feed.sync().await.unwrap();
    let mut got = Vec::new();
    while got.last().is_none_or(|last: &String| last != "Message(\"m6\")") {
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        match item {
            FeedItem::Checkpoint { .. } => {}
            FeedItem::Reset { reason, .. } => got.push(format!("{reason:?}")),
            item => got.push(format!("{:?}", seen(item).2)),
        }
    }
    assert_eq!(got, ["LiveOutputExpired", "Token(\"kept\")", "Message(\"m6\")"]);
    feed.close().await.unwrap();
}

/// Appends "held" (seq 2) while the writer is held in its write, records
/// t1, "lost" and t2 meanwhile (one batch after it), and fails that batch's
/// write (`EIO`): the feed is failed after it.
async fn fail_a_batch_with_tokens(feed: &Feed<Agent>, plan: &events::layers::journal::fault::FaultPlan) {
    use events::layers::journal::fault::{Fault, Step};
    let writes = plan.count(Step::AppendWrite);
    plan.inject(Step::AppendWrite, writes, Fault::Stall(Duration::from_millis(300)));
    plan.inject(Step::AppendWrite, writes + 1, Fault::Errno(libc::EIO));
    let held = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(Some("s"), Agent::Message("held".into())).await }
    });
    while plan.count(Step::AppendWrite) == writes {
        tokio::task::yield_now().await;
    }
    feed.record(Some("s"), &Agent::Token("t1".into()));
    feed.record(Some("s"), &Agent::Message("lost".into()));
    feed.record(Some("s"), &Agent::Token("t2".into()));
    assert_eq!(held.await.unwrap().unwrap(), Seq::new(2));
    assert!(feed.sync().await.is_err(), "the second batch failed");
}

/// A token staged in a writer batch before the batch's first durable event,
/// when that batch fails (EIO on its write): it follows the last
/// acknowledged event, not the failed one, so the ring keeps it and a
/// live-output reader gets it (session UIs were shown it). It had been
/// dropped with the failed batch, with no reset. So do the tokens staged
/// after a refused durable event, in that batch and in every later drain
/// of the failed feed, in emit order: they had been dropped, uncounted,
/// with no loss in the ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_before_a_failed_batch_stays_in_the_live_output() {
    use events::layers::journal::fault::FaultPlan;
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    // `Never`: each batch is acknowledged by its write, none waits for a sync.
    let builder = Feed::builder(tmp.path()).sync(events::SyncPolicy::Never).live_output(LiveOutput::new());
    let feed: Feed<Agent> = builder.faults(plan.clone()).open().await.unwrap();
    feed.append(Some("s"), Agent::Message("first".into())).await.unwrap();
    fail_a_batch_with_tokens(&feed, &plan).await;
    // The feed failed; a session's tokens still stream, around durable
    // events it refuses.
    feed.record(Some("s"), &Agent::Message("refused".into()));
    feed.record(Some("s"), &Agent::Token("t3".into()));
    assert!(feed.sync().await.is_err(), "the feed stays failed");
    let reader = feed.reader();
    let _ = feed.close().await;
    // The stream of the failed, closed feed ends with the failure.
    let live = reader.stream_live(LiveCursor::from(Seq::ZERO), Some("s")).unwrap();
    let mut got = tokio::time::timeout(Duration::from_secs(20), live.collect::<Vec<_>>()).await.unwrap();
    assert!(matches!(got.pop(), Some(Err(events::Error::Unhealthy { .. }))), "{got:?}");
    let items: Vec<Seen> = got.into_iter().map(|item| seen(item.unwrap())).collect();
    let s = Some("s".to_owned());
    assert_eq!(
        items,
        [
            (Position::durable(Seq::new(1)), s.clone(), Agent::Message("first".into())),
            (Position::durable(Seq::new(2)), s.clone(), Agent::Message("held".into())),
            (Position { seq: Seq::new(2), index: 1 }, s.clone(), Agent::Token("t1".into())),
            (Position { seq: Seq::new(2), index: 2 }, s.clone(), Agent::Token("t2".into())),
            (Position { seq: Seq::new(2), index: 3 }, s, Agent::Token("t3".into())),
        ]
    );
}

/// The same with a live-output stream caught up when the batch fails, the
/// feed left open: it ends after the tokens recorded before the refused
/// batch, with the failure, without waiting for the close. The bell stops
/// once the refusal put those tokens into the ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_output_stream_caught_up_on_a_failed_batch_ends_after_its_tokens() {
    use events::layers::journal::fault::FaultPlan;
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let builder = Feed::builder(tmp.path()).sync(events::SyncPolicy::Never).live_output(LiveOutput::new());
    let feed: Feed<Agent> = builder.faults(plan.clone()).open().await.unwrap();
    feed.append(Some("s"), Agent::Message("first".into())).await.unwrap();
    let mut live = feed.reader().stream_live(LiveCursor::from(Seq::ZERO), Some("s")).unwrap();
    assert!(matches!(live.next().await, Some(Ok(FeedItem::Event(_)))));
    fail_a_batch_with_tokens(&feed, &plan).await;
    let mut got =
        tokio::time::timeout(Duration::from_secs(20), live.collect::<Vec<_>>()).await.expect("ends, unclosed");
    assert!(matches!(got.pop(), Some(Err(events::Error::Unhealthy { .. }))), "{got:?}");
    let items: Vec<Seen> = got.into_iter().map(|item| seen(item.unwrap())).collect();
    let s = Some("s".to_owned());
    assert_eq!(
        items,
        [
            (Position::durable(Seq::new(2)), s.clone(), Agent::Message("held".into())),
            (Position { seq: Seq::new(2), index: 1 }, s.clone(), Agent::Token("t1".into())),
            (Position { seq: Seq::new(2), index: 2 }, s, Agent::Token("t2".into())),
        ]
    );
    assert!(!feed.is_closed());
    let _ = feed.close().await;
}

/// An ephemeral event whose `Drop` panics, let go by the ring (its limit of
/// one token a stream evicts it on the writer's thread): the writer goes
/// on, the feed stays healthy and appends. The panic had ended the writer
/// thread and failed the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_drop_panics_when_the_ring_lets_it_go_fails_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(true);
    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum Boom {
        Token(u32),
        Message(String),
    }
    impl Drop for Boom {
        fn drop(&mut self) {
            if matches!(self, Boom::Token(1)) && ARMED.swap(false, Ordering::SeqCst) {
                panic!("a Drop that panics");
            }
        }
    }
    impl Event for Boom {
        fn durability(&self) -> Durability {
            match self {
                Boom::Token(_) => Durability::Ephemeral,
                Boom::Message(_) => Durability::Durable,
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Boom> = Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(1)).open().await.unwrap();
    feed.inbox().forward(Some("s".into()), Boom::Token(1)).await.unwrap();
    feed.inbox().forward(Some("s".into()), Boom::Token(2)).await.unwrap();
    let appended = feed.append(Some("s"), Boom::Message("after".into())).await;
    assert!(appended.is_ok(), "{appended:?}");
    assert!(!ARMED.load(Ordering::SeqCst), "token 1 was let go");
    assert!(feed.stats().healthy, "{:?}", feed.stats().problem);
    feed.close().await.unwrap();
}

/// `position()` is where the items handed out end, not the items the
/// stream read ahead: a message read with the tokens before it queues them
/// all, and a client that took only the first token and resumes from
/// `position()` gets the rest, nothing twice.
#[tokio::test]
async fn position_counts_only_the_items_handed_out() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> = Feed::builder(tmp.path()).live_output(LiveOutput::new()).open().await.unwrap();
    let session = feed.session("s1");
    for t in ["t1", "t2", "t3"] {
        session.emit(Agent::Token(t.into())).await.unwrap();
    }
    session.emit(Agent::Message("m1".into())).await.unwrap();
    feed.sync().await.unwrap();
    let (reader, epoch) = (feed.reader(), feed.epoch());
    let mut live = reader.stream_live(Seq::ZERO, None).unwrap();
    let first = seen(live.next().await.unwrap().unwrap());
    assert_eq!(first.2, Agent::Token("t1".into()));
    // It had said (1, 0), the message's: resuming there lost t2, t3 and m1.
    assert_eq!(live.position(), first.0);
    drop(live);
    feed.close().await.unwrap();
    let rest: Vec<Agent> =
        all_from(&reader, cursor_at(first.0, epoch), None).await.into_iter().map(|i| seen(i).2).collect();
    assert_eq!(rest, [Agent::Token("t2".into()), Agent::Token("t3".into()), Agent::Message("m1".into())]);
}

/// A reader of one stream drains several runs at once (the other streams'
/// durable events between are not its own): when one of them lost tokens,
/// the reset covers up to that run, and the tokens kept of a later run
/// follow it. The reset had covered every run up to the stream's next
/// message, and the kept tokens were skipped with the lost ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_stream_reader_gets_the_kept_runs_after_a_lost_one() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(10)).open().await.unwrap();
    let (a, b) = (feed.session("a"), feed.session("b"));
    a.emit(Agent::Message("m1".into())).await.unwrap();
    b.emit(Agent::Message("b2".into())).await.unwrap();
    b.emit(Agent::Message("b3".into())).await.unwrap();
    // Run 3: a's 15 tokens, of which the ring keeps 10.
    for n in 1..=15 {
        a.emit(Agent::Token(format!("early{n}"))).await.unwrap();
    }
    b.emit(Agent::Message("b4".into())).await.unwrap();
    b.emit(Agent::Message("b5".into())).await.unwrap();
    // Run 5: 3 tokens, which push a's tokens 6..=8 of run 3 out.
    for n in 1..=3 {
        a.emit(Agent::Token(format!("late{n}"))).await.unwrap();
    }
    a.emit(Agent::Message("m6".into())).await.unwrap();
    feed.sync().await.unwrap();
    let epoch = feed.epoch();
    let mut live = feed.reader().stream_live(LiveCursor::new(Cursor::new(Seq::new(1), epoch), 0), Some("a")).unwrap();
    let mut got = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        match item {
            FeedItem::Reset { reason, earliest, .. } => {
                assert_eq!(reason, ResetReason::LiveOutputExpired);
                got.push(format!("reset, earliest {earliest}"));
            }
            FeedItem::Checkpoint { .. } => {}
            item => {
                let (position, _, event) = seen(item);
                let done = event == Agent::Message("m6".into());
                got.push(format!("{position:?} {event:?}"));
                if done {
                    break;
                }
            }
        }
    }
    let at = |seq, index| Position { seq: Seq::new(seq), index };
    let want = [
        "reset, earliest 4".to_owned(),
        format!("{:?} {:?}", at(5, 1), Agent::Token("late1".into())),
        format!("{:?} {:?}", at(5, 2), Agent::Token("late2".into())),
        format!("{:?} {:?}", at(5, 3), Agent::Token("late3".into())),
        format!("{:?} {:?}", Position::durable(Seq::new(6)), Agent::Message("m6".into())),
    ];
    assert_eq!(got, want);
    feed.close().await.unwrap();
}

/// A live stream with no cursor (a bare `Seq::ZERO`: what is there), built
/// once the ring had lost a token of the current run, then the ring losing
/// another before the stream's first read: it delivers what is kept, and
/// no panic. Its "no news" mark (the ring's floor when it was built) lay in
/// a run past the one its first read drains up to, and the loss look
/// ranged from the later run to the earlier one: `BTreeMap::range`
/// panicked (found by audit; `GET /stream?live_output=1` with no cursor on
/// a busy feed whose ring was full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_live_stream_built_after_a_loss_reads_on_after_another() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(2)).open().await.unwrap();
    let a = feed.session("a");
    a.emit(Agent::Message("m1".into())).await.unwrap();
    for n in 1..=3 {
        a.emit(Agent::Token(format!("t{n}"))).await.unwrap();
    }
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    a.emit(Agent::Token("t4".into())).await.unwrap();
    a.emit(Agent::Message("m2".into())).await.unwrap();
    feed.sync().await.unwrap();
    let mut got = Vec::new();
    while got.last().is_none_or(|last: &String| last != "Message(\"m2\")") {
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        match item {
            FeedItem::Checkpoint { .. } => {}
            FeedItem::Reset { reason, .. } => got.push(format!("{reason:?}")),
            item => got.push(format!("{:?}", seen(item).2)),
        }
    }
    // t2, there when it began, was lost after: a reset says so (its run's
    // other tokens go with it, as for any loss in a run).
    assert_eq!(got, ["Message(\"m1\")", "LiveOutputExpired", "Message(\"m2\")"]);
    feed.close().await.unwrap();
}

/// A live-output stream with no cursor, built while the ring held a token
/// of stream `a` (run 1) below where it had removed one of stream `b` (run
/// 2, by `b`'s own limit of one): when `a`'s token is removed after the
/// stream began, the stream says so with a reset before the next durable
/// event; `b`'s loss before it began stays no news (run 2's kept tokens go
/// out). Its no-news mark had been the highest position removed of any
/// stream, so `a`'s later loss below it went unsaid (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_live_stream_is_told_of_a_loss_below_another_streams_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().per_stream(1)).open().await.unwrap();
    let (a, b) = (feed.session("a"), feed.session("b"));
    a.emit(Agent::Message("m1".into())).await.unwrap();
    a.emit(Agent::Token("a1".into())).await.unwrap();
    b.emit(Agent::Message("m2".into())).await.unwrap();
    b.emit(Agent::Token("b1".into())).await.unwrap();
    b.emit(Agent::Token("b2".into())).await.unwrap();
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    a.emit(Agent::Token("a2".into())).await.unwrap();
    a.emit(Agent::Message("m3".into())).await.unwrap();
    feed.sync().await.unwrap();
    let mut got = Vec::new();
    while got.last().is_none_or(|last: &String| last != "Message(\"m3\")") {
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        match item {
            FeedItem::Checkpoint { .. } => {}
            FeedItem::Reset { reason, .. } => got.push(format!("{reason:?}")),
            item => got.push(format!("{:?}", seen(item).2)),
        }
    }
    assert_eq!(
        got,
        [
            "Message(\"m1\")",
            "LiveOutputExpired",
            "Message(\"m2\")",
            "Token(\"b2\")",
            "Token(\"a2\")",
            "Message(\"m3\")"
        ]
    );
    feed.close().await.unwrap();
}

/// Emits, for session `s`, message `m` then token `t`.
async fn message_and_token(s: &events::Session<Agent>, m: &str, t: &str) {
    s.emit(Agent::Message(m.into())).await.unwrap();
    s.emit(Agent::Token(t.into())).await.unwrap();
}

/// What a live stream yields up to `last` (a message), resets by reason.
async fn live_until(live: &mut events::LiveStream<Agent>, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    let last = format!("Message(\"{last}\")");
    while got.last() != Some(&last) {
        let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await.unwrap().unwrap().unwrap();
        match item {
            FeedItem::Checkpoint { .. } => {}
            FeedItem::Reset { reason, .. } => got.push(format!("{reason:?}")),
            item => got.push(format!("{:?}", seen(item).2)),
        }
    }
    got
}

/// The same once the ring's loss record is full (`max_events(2)`: two
/// runs) and folds its oldest runs: `a`'s token, below the folded stretch
/// when the stream began, removed after it is still reported (with the
/// stretch, whose runs are not told apart: before `m1`); the removals of
/// `b` before it began are not, folded or not. By position (the folded
/// stretch) the loss of `a`'s token went unsaid (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_live_stream_is_told_of_a_loss_in_a_run_folded_after_it_began() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(2).per_stream(1)).open().await.unwrap();
    let (a, b) = (feed.session("a"), feed.session("b"));
    message_and_token(&a, "m1", "a1").await;
    for n in 2..=5 {
        message_and_token(&b, &format!("m{n}"), &format!("b{n}")).await;
    }
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    a.emit(Agent::Token("a2".into())).await.unwrap();
    a.emit(Agent::Message("m6".into())).await.unwrap();
    feed.sync().await.unwrap();
    let got = live_until(&mut live, "m6").await;
    let want = ["LiveOutputExpired", "m1", "m2", "m3", "m4", "m5", "b5", "a2", "m6"];
    assert_eq!(got, want.map(label), "{got:?}");
    feed.close().await.unwrap();
}

/// A fold after a bare stream began, of runs that lost their tokens before
/// it: no reset for them; the token it was owed (there when it began,
/// removed after) is reported. Its no-news mark at the folded stretch when
/// it began had reset it for the next fold (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_after_a_bare_live_stream_began_reports_only_what_it_was_owed() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(2).per_stream(1)).open().await.unwrap();
    let b = feed.session("b");
    for n in 1..=4 {
        message_and_token(&b, &format!("m{n}"), &format!("b{n}")).await;
    }
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    message_and_token(&b, "m5", "b5").await;
    b.emit(Agent::Message("m6".into())).await.unwrap();
    feed.sync().await.unwrap();
    let got = live_until(&mut live, "m6").await;
    let want = ["m1", "m2", "m3", "m4", "LiveOutputExpired", "m5", "b5", "m6"];
    assert_eq!(got, want.map(label), "{got:?}");
    feed.close().await.unwrap();
}

/// `m3` → `Message("m3")`, `b5` → `Token("b5")`; a reset's reason as it is.
fn label(short: &str) -> String {
    match short.as_bytes().first() {
        Some(b'm') => format!("Message(\"{short}\")"),
        Some(b'a' | b'b') => format!("Token(\"{short}\")"),
        _ => short.to_owned(),
    }
}

/// A live-output stream of one stream (`x`) with no cursor, built once more
/// streams lost tokens than the ring keeps floors for (`max_events(4)`:
/// the lower floors folded into one mark above `x`'s token, still there):
/// `x`'s token removed after the stream began is reported before `x`'s next
/// durable event. Its no-news mark had been its floor with that folded mark
/// in it, above its token, whose loss went unsaid (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_live_stream_of_one_stream_is_told_of_a_loss_below_folded_floors() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Agent> =
        Feed::builder(tmp.path()).live_output(LiveOutput::new().max_events(4).per_stream(1)).open().await.unwrap();
    let token = |session: &str, token: &str| {
        let (session, token) = (feed.session(session), Agent::Token(token.into()));
        async move { session.emit(token).await.unwrap() }
    };
    for (session, t) in [("p", "p1"), ("q", "q1"), ("p", "p2"), ("q", "q2"), ("x", "x1"), ("b", "b1"), ("b", "b2")]
        .into_iter()
        .chain([("c", "c1"), ("c", "c2"), ("d", "d1"), ("d", "d2")])
    {
        token(session, t).await;
    }
    feed.sync().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, Some("x")).unwrap();
    token("e", "e1").await;
    feed.session("x").emit(Agent::Message("m1".into())).await.unwrap();
    feed.sync().await.unwrap();
    let got = live_until(&mut live, "m1").await;
    assert_eq!(got, ["LiveOutputExpired", "Message(\"m1\")"], "{got:?}");
    feed.close().await.unwrap();
}
