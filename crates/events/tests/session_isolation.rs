//! A session's `emit` under the ordinary accidents of a UI server:
//!
//! * cancelled while the feed's inbox is full (a `timeout` around it): no
//!   subscriber saw the event and the journal never gets it; the next emit
//!   goes through to both;
//! * on an unhealthy feed: a durable emit is refused before any subscriber
//!   sees it (never `Ok` for an event the journal will not have);
//! * a stalled UI under a disconnect policy: it is closed with an explicit
//!   reason and the session (and the other UI) carry on;
//! * an event whose `Clone` panics, or whose `Drop` panics when the
//!   fan-out reuses its slot: refused before any UI sees it, or the emit
//!   that reused the slot goes through (UIs and journal alike).

mod support;

use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{Closed, Error, Feed, Overflow, Seq, SyncPolicy};
use futures::{FutureExt, StreamExt};
use support::{Ev, Fragile, msg, take_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_cancelled_on_a_full_inbox_is_neither_shown_nor_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).sync(SyncPolicy::Always).inbox_capacity(1).faults(plan.clone()).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();

    // Hold the writer inside a write (its fsyncs run on the journal's
    // commit thread, and it keeps taking commands meanwhile), then fill
    // the one inbox slot.
    let writes = plan.count(Step::AppendWrite);
    plan.inject_next(Step::AppendWrite, Fault::Hold);
    let first = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, msg(1)).await }
    });
    while plan.count(Step::AppendWrite) == writes {
        tokio::time::sleep(Duration::from_millis(1)).await; // the writer has not reached the stall yet
    }
    feed.record(None, &msg(2));
    let queued = feed.inbox().len();
    let cancelled = tokio::time::timeout(Duration::from_millis(50), session.emit(msg(3))).await;
    let shown = ui.next().now_or_never().is_some();
    plan.release();
    assert_eq!(queued, 1, "the held writer cannot take it");
    assert!(cancelled.is_err(), "the emit should have waited for inbox space");
    assert!(!shown, "a UI saw an event whose emit was cancelled before the journal had it");

    first.await.unwrap().unwrap();
    session.emit(msg(4)).await.unwrap();
    assert_eq!(*ui.next().await.unwrap().unwrap(), msg(4));
    feed.sync().await.unwrap();
    let mut journal = feed.stream_from(Seq::ZERO);
    let got: Vec<Ev> =
        take_events(&mut journal, feed.latest_seq().get() as usize).await.into_iter().map(|e| e.1).collect();
    assert!(!got.contains(&msg(3)), "the cancelled event was journaled: {got:?}");
    assert_eq!(got.last(), Some(&msg(4)));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_emit_on_an_unhealthy_feed_is_refused_before_any_ui_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    assert!(feed.append(None, msg(1)).await.is_err());
    assert!(!feed.stats().healthy);

    let refused = session.emit(msg(2)).await;
    assert!(matches!(refused, Err(Error::Unhealthy { .. })), "{refused:?}");
    assert!(ui.next().now_or_never().is_none(), "the UI was shown a durable event the journal will not have");
    // Ephemeral events never touch the journal: the UI still gets them.
    session.emit(Ev::Token(3)).await.unwrap();
    assert_eq!(*ui.next().await.unwrap().unwrap(), Ev::Token(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ui_is_disconnected_with_a_reason_and_the_session_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .session_capacity(4)
        // Long enough that the reading UI, a task on a loaded machine, is
        // never the one found too slow.
        .session_overflow(Overflow::Disconnect { after: Duration::from_secs(1) })
        .open()
        .await
        .unwrap();
    let session = feed.session("ui");
    let mut stalled = session.subscribe();
    let mut reader = session.subscribe();
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 50 {
            got.push((*reader.next().await.unwrap().unwrap()).clone());
        }
        got
    });
    tokio::time::timeout(Duration::from_secs(20), async {
        for n in 1..=50 {
            session.emit(msg(n)).await.unwrap();
        }
    })
    .await
    .expect("a stalled UI held the session");
    assert_eq!(reading.await.unwrap(), (1..=50).map(msg).collect::<Vec<_>>());
    // The stalled one: a prefix of the events, then the explicit close.
    let mut seen = 0u64;
    loop {
        match stalled.next().await {
            Some(Ok(ev)) => {
                seen += 1;
                assert_eq!(*ev, msg(seen), "the stalled UI's events are a prefix");
            }
            Some(Err(reason)) => {
                assert!(matches!(reason, Closed::TooSlow), "{reason:?}");
                break;
            }
            None => panic!("the stalled UI ended without a reason"),
        }
    }
    assert!(seen < 50);
    assert!(session.stats().disconnected_slow >= 1);
    feed.close().await.unwrap();
}

/// A durable event the journal would refuse (over `max_record_bytes`; a
/// session id over 256 bytes) is refused by `emit` with the typed error
/// before any UI sees it, and counted as an append's would be. `emit` had
/// shown it, returned `Ok`, and the writer then dropped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_event_the_journal_would_refuse_is_shown_to_no_ui() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).max_record_bytes(1024).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    let big = Ev::Msg { n: 1, own_stream: Some("x".repeat(4096)) };
    let refused = session.emit(big).await;
    assert!(matches!(refused, Err(Error::TooLarge { limit: 1024, .. })), "{refused:?}");
    let long = feed.session(&"s".repeat(300));
    let mut long_ui = long.subscribe();
    let refused = long.emit(msg(2)).await;
    assert!(matches!(refused, Err(Error::StreamIdTooLong { len: 300, .. })), "{refused:?}");
    // Ephemeral events are not journaled: a long id is no reason to refuse them.
    long.emit(Ev::Token(3)).await.unwrap();
    assert_eq!(*long_ui.next().await.unwrap().unwrap(), Ev::Token(3));
    session.emit(msg(4)).await.unwrap();
    assert_eq!(*ui.next().await.unwrap().unwrap(), msg(4), "the UI saw nothing before it");
    feed.sync().await.unwrap();
    let stats = feed.stats();
    assert_eq!((stats.latest_seq, stats.too_large, stats.encode_errors), (1, 1, 1), "{stats:?}");
    feed.close().await.unwrap();
}

/// With live output on, a token goes to the live output too, which keys it
/// by the session's id: a session id over the limit is refused before any
/// UI sees the token, as a durable event's is. It had been shown to the
/// UIs, then refused by the writer alone (counted as an encoding error),
/// so a `stream_live` client missed it with no reset (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_live_output_a_token_under_a_session_id_over_the_limit_is_refused_before_any_ui_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).live_output(events::LiveOutput::new()).open().await.unwrap();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    let long = feed.session(&"s".repeat(300));
    let mut long_ui = long.subscribe();
    let refused = long.emit(Ev::Token(1)).await;
    assert!(matches!(refused, Err(Error::StreamIdTooLong { len: 300, .. })), "{refused:?}");
    let session = feed.session("ui");
    session.emit(Ev::Token(2)).await.unwrap();
    let item = tokio::time::timeout(std::time::Duration::from_secs(10), live.next()).await.unwrap().unwrap();
    assert!(matches!(item, Ok(events::FeedItem::Ephemeral { ref env, .. }) if env.event == Ev::Token(2)), "{item:?}");
    assert!(futures::poll!(long_ui.next()).is_pending(), "the long session's UI was shown nothing");
    feed.close().await.unwrap();
}

/// The journal fails while an emit waits for a full UI: once the UI makes
/// room, the emit is refused with `Unhealthy` and the UI never sees it.
/// The health was checked only before the wait, so the UI was shown an
/// event the writer then dropped, and `emit` returned `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_failure_while_an_emit_waits_for_room_refuses_it_before_any_ui_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Always)
        .session_capacity(1)
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    session.emit(msg(1)).await.unwrap();
    feed.sync().await.unwrap();
    assert_eq!(session.stats().max_lag, 0);
    let waiting = tokio::spawn({
        let session = session.clone();
        async move { session.emit(msg(2)).await }
    });
    // The fan-out samples its lag when an emit finds it full.
    support::eventually("the emit waits for the full UI", || session.stats().max_lag >= 1).await;
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    assert!(feed.append(None, msg(9)).await.is_err());
    assert!(!feed.stats().healthy);
    assert_eq!(*ui.next().await.unwrap().unwrap(), msg(1));
    let refused = waiting.await.unwrap();
    assert!(matches!(refused, Err(Error::Unhealthy { .. })), "{refused:?}");
    assert!(ui.next().now_or_never().is_none(), "the UI was shown a durable event the journal will not have");
}

/// A UI that stops reading (the default `Overflow::Wait`) holds up its own
/// session's emits, not the feed: no inbox slot is held while an emit waits
/// for it, so appends and other sessions go on (an inbox of one slot here).
/// The slot was reserved before the wait, so every stalled session pinned
/// one, and with as many as the inbox holds the whole feed stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ui_stalls_its_session_not_the_feeds_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).inbox_capacity(1).session_capacity(1).open().await.unwrap();
    let stalled = feed.session("stalled");
    let stalled_ui = stalled.subscribe();
    stalled.emit(msg(1)).await.unwrap();
    assert_eq!(stalled.stats().max_lag, 0);
    let waiting = tokio::spawn({
        let stalled = stalled.clone();
        async move { stalled.emit(msg(2)).await }
    });
    support::eventually("the emit waits for the stalled UI", || stalled.stats().max_lag >= 1).await;

    let appended = tokio::time::timeout(Duration::from_secs(10), feed.append(None, msg(3))).await;
    assert!(matches!(appended, Ok(Ok(_))), "an append waited behind a stalled UI: {appended:?}");
    let other = feed.session("other");
    let mut other_ui = other.subscribe();
    tokio::time::timeout(Duration::from_secs(10), other.emit(msg(4))).await.unwrap().unwrap();
    assert_eq!(*other_ui.next().await.unwrap().unwrap(), msg(4));

    drop(stalled_ui); // the waiting emit goes through to nobody, and to the journal
    waiting.await.unwrap().unwrap();
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::new(4));
    feed.close().await.unwrap();
}

/// A panic in an event's `Drop`, run when the session's fan-out reuses the
/// slot of an event every UI is done with, stays there: the emit that
/// reused it returns `Ok`, and its event is journaled like the others. It
/// unwound out of that emit after the UIs had its event, and the journal
/// never got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_of_an_old_event_does_not_fail_the_emit_that_replaced_it() {
    use futures::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Fragile> = Feed::builder(dir.path()).session_capacity(1).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    session.emit(Fragile { n: 1, armed: true }).await.unwrap();
    drop(ui.next().await.unwrap().unwrap());
    let second = std::panic::AssertUnwindSafe(session.emit(Fragile { n: 2, armed: false })).catch_unwind().await;
    assert!(matches!(second, Ok(Ok(()))), "the emit failed or panicked");
    assert_eq!(ui.next().await.unwrap().unwrap().n, 2);
    feed.sync().await.unwrap();
    let journaled: Vec<u64> = feed
        .stream_from(Seq::ZERO)
        .take(2)
        .map(|item| match item {
            Ok(events::FeedItem::Event(env)) => env.event.n,
            other => panic!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(journaled, [1, 2]);
    feed.close().await.unwrap();
}

/// An event whose `Clone` panics is refused before any UI sees it
/// (`EventPanicked` during `Clone`): the journal's copy is made first. It
/// was made after the UIs had the event, and the panic left them with an
/// event the journal never got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_clone_is_refused_before_any_ui_sees_the_event() {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Uncloneable(u64);
    impl Clone for Uncloneable {
        fn clone(&self) -> Self {
            panic!("no clone of {}", self.0)
        }
    }
    impl events::Event for Uncloneable {}
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Uncloneable> = Feed::builder(dir.path()).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    let refused = session.emit(Uncloneable(1)).await;
    assert!(matches!(refused, Err(Error::EventPanicked { during: "Clone", .. })), "{refused:?}");
    assert!(ui.next().now_or_never().is_none(), "a UI saw the refused event");
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::ZERO);
    feed.close().await.unwrap();
}

/// The same for an ephemeral event when the feed keeps live output: the
/// live output's copy is made before any UI sees the token, so a `Clone`
/// that panics refuses the emit, and the UIs and the live output agree
/// (the next token reaches both). The copy had been made after the UIs
/// were shown the token, and a panic there left it out of the live output
/// with no loss to report: a client resuming from the ring missed it
/// without a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_clone_panics_is_refused_before_any_ui_or_the_live_output_sees_it() {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Token(u64);
    impl Clone for Token {
        fn clone(&self) -> Self {
            assert_ne!(self.0, 2, "no clone of token 2");
            Token(self.0)
        }
    }
    impl events::Event for Token {
        fn durability(&self) -> events::Durability {
            events::Durability::Ephemeral
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Token> = Feed::builder(dir.path()).live_output(events::LiveOutput::new()).open().await.unwrap();
    let session = feed.session("ui");
    let mut ui = session.subscribe();
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    session.emit(Token(1)).await.unwrap();
    let refused = session.emit(Token(2)).await;
    assert!(matches!(refused, Err(Error::EventPanicked { during: "Clone", .. })), "{refused:?}");
    session.emit(Token(3)).await.unwrap();
    let shown: Vec<u64> = [ui.next().await, ui.next().await].map(|t| t.unwrap().unwrap().0).to_vec();
    assert_eq!(shown, [1, 3], "the UI saw exactly what was not refused");
    let mut streamed = Vec::new();
    while streamed.len() < 2 {
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), live.next()).await.unwrap().unwrap();
        match item.unwrap() {
            events::FeedItem::Ephemeral { env, .. } => streamed.push(env.event.0),
            other => panic!("only tokens, no reset: {other:?}"),
        }
    }
    assert_eq!(streamed, [1, 3]);
    feed.close().await.unwrap();
}
