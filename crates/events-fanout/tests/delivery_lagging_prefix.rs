//! Randomised `DisconnectLagging` on tokio's paused clock: subscribers that
//! read `k` events every `tick` (or not at all until the end) race one
//! producer. Every stream is a gap-free prefix of the emitted events, followed
//! by exactly one `Closed::Lagging` if and only if the subscriber was counted
//! as disconnected; a subscriber that provably stays within `max_age` of the
//! producer is never closed; and the producer always completes every emit.
//! A second property runs the same race on two real worker threads, where
//! evictions land in the middle of reads.

use std::time::Duration;

use events_fanout::{Closed, Fanout, FanoutStats, Overflow, Subscriber};
use proptest::prelude::*;
use tokio::task::JoinHandle;

mod support;
use support::runtime;

/// How a subscriber reads: `batch` events every `tick`, or nothing until the producer is done.
#[derive(Clone, Copy, Debug)]
enum Pace {
    Trickle { batch: usize, tick: Duration },
    Idle,
}

/// Longer than any run of the producer, so an idle subscriber only drains afterwards.
const IDLE_FOR: Duration = Duration::from_secs(3600);

/// What one reader saw: its events, then the close reason if it was closed.
type Seen = (Vec<u32>, Option<Closed>);

async fn consume(mut sub: Subscriber<u32>, pace: Pace) -> Seen {
    let mut events = Vec::new();
    let batch = match pace {
        Pace::Trickle { batch, .. } => batch,
        Pace::Idle => {
            tokio::time::sleep(IDLE_FOR).await;
            usize::MAX
        }
    };
    loop {
        for _ in 0..batch {
            match sub.recv().await {
                Some(Ok(n)) => events.push(n),
                Some(Err(closed)) => {
                    assert_eq!(sub.recv().await, None, "the close reason is the last item");
                    return (events, Some(closed));
                }
                None => return (events, None),
            }
        }
        if let Pace::Trickle { tick, .. } = pace {
            tokio::time::sleep(tick).await;
        }
    }
}

/// Takes the stats once the producer is done, drops `fanout` (which ends
/// every stream) and waits for each reader, in order.
async fn close_and_join(fanout: Fanout<u32>, readers: Vec<JoinHandle<Seen>>) -> (Vec<Seen>, FanoutStats) {
    let stats = fanout.stats();
    drop(fanout);
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await.unwrap());
    }
    (seen, stats)
}

fn pace() -> impl Strategy<Value = Pace> {
    prop_oneof![
        4 => (1_usize..8, 1_u64..30).prop_map(|(batch, ms)| Pace::Trickle { batch, tick: Duration::from_millis(ms) }),
        1 => Just(Pace::Idle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn lagging_subscribers_see_a_prefix_then_one_explicit_close(
        capacity in 1_usize..10,
        events in 1_u32..400,
        max_age_ms in 1_u64..80,
        paces in prop::collection::vec(pace(), 1..5),
    ) {
        let max_age = Duration::from_millis(max_age_ms);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let (seen, stats) = runtime.block_on(async {
            let fanout = Fanout::builder().capacity(capacity).overflow(Overflow::DisconnectLagging { max_age }).build();
            let readers: Vec<_> = paces.iter().map(|&pace| tokio::spawn(consume(fanout.subscribe(), pace))).collect();
            let produce = async {
                for n in 0..events {
                    fanout.emit(n).await.unwrap();
                }
            };
            // On a paused clock a producer stuck for good would auto-advance to this and fail.
            tokio::time::timeout(IDLE_FOR / 2, produce).await.expect("the producer completes every emit");
            close_and_join(fanout, readers).await
        });
        prop_assert_eq!(stats.emitted, u64::from(events));
        let mut closed = 0;
        for ((got, reason), pace) in seen.iter().zip(&paces) {
            prop_assert_eq!(got, &(0..got.len() as u32).collect::<Vec<_>>(), "a gap-free prefix");
            match reason {
                None => prop_assert_eq!(got.len(), events as usize, "not closed: it got everything"),
                Some(reason) => {
                    prop_assert_eq!(*reason, Closed::Lagging { max_age });
                    closed += 1;
                }
            }
            // Any event is read within ceil(capacity / batch) + 1 ticks of its emit.
            if let Pace::Trickle { batch, tick } = *pace {
                let rounds = capacity.div_ceil(batch) as u32 + 1;
                if tick * rounds < max_age {
                    prop_assert!(reason.is_none(), "{pace:?} stays within {max_age:?} yet was closed");
                }
            }
        }
        prop_assert_eq!(stats.disconnected_slow, closed, "every disconnect is announced exactly once");
    }
}

/// Reads with `yields` scheduler yields after each event: on real threads, under a 1 ms bound,
/// some of these fall behind and are closed while reading, others are not.
async fn consume_yielding(mut sub: Subscriber<u32>, yields: u32) -> Seen {
    let mut events = Vec::new();
    while let Some(item) = sub.recv().await {
        match item {
            Ok(n) => events.push(n),
            Err(closed) => {
                assert_eq!(sub.recv().await, None, "the close reason is the last item");
                return (events, Some(closed));
            }
        }
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    }
    (events, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn on_real_threads_every_disconnect_is_a_prefix_then_one_close(
        capacity in 1_usize..6,
        events in 1_u32..2000,
        yields in prop::collection::vec(0_u32..40, 1..5),
    ) {
        let max_age = Duration::from_millis(1);
        let (seen, stats) = runtime().block_on(async {
            let fanout = Fanout::builder().capacity(capacity).overflow(Overflow::DisconnectLagging { max_age }).build();
            let readers: Vec<_> =
                yields.iter().map(|&y| tokio::spawn(consume_yielding(fanout.subscribe(), y))).collect();
            for n in 0..events {
                fanout.emit(n).await.unwrap();
            }
            close_and_join(fanout, readers).await
        });
        let mut closed = 0;
        for (got, reason) in &seen {
            prop_assert_eq!(got, &(0..got.len() as u32).collect::<Vec<_>>(), "a gap-free prefix");
            match reason {
                None => prop_assert_eq!(got.len(), events as usize),
                Some(reason) => {
                    prop_assert_eq!(*reason, Closed::Lagging { max_age });
                    closed += 1;
                }
            }
        }
        prop_assert_eq!(stats.disconnected_slow, closed);
    }
}
