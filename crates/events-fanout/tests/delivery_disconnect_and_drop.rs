//! Randomised delivery when subscribers leave: some drop themselves midway,
//! others are disconnected by `Overflow::Disconnect` while a producer races
//! them. A subscriber that never leaves sees everything; every other one sees
//! a gap-free prefix of the same order, and a disconnected one is told so with
//! `Closed::TooSlow` right after that prefix. Producers never stall.

use std::{sync::Arc, time::Duration};

use events_fanout::{Closed, Fanout, Overflow, Subscriber};
use proptest::prelude::*;

mod support;
use support::runtime;

/// What one subscriber saw, and whether it was told it was too slow.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<u32>,
    too_slow: bool,
}

/// How a subscriber behaves: yields per event, stalls once, quits early.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    yields: u32,
    /// After this many events, stop reading for `STALL` (longer than the grace period).
    stall_at: Option<usize>,
    /// After this many events, drop the subscriber.
    quit_after: Option<usize>,
}

const GRACE: Duration = Duration::from_millis(1);
const STALL: Duration = Duration::from_millis(4);

async fn consume(mut sub: Subscriber<Arc<u32>>, behaviour: Behaviour) -> Seen {
    let mut seen = Seen::default();
    while let Some(item) = sub.recv().await {
        match item {
            Ok(event) => seen.events.push(*event),
            Err(Closed::TooSlow) => {
                seen.too_slow = true;
                assert_eq!(sub.recv().await, None, "TooSlow is the last item");
                break;
            }
            Err(other) => panic!("unexpected close reason {other:?}"),
        }
        if behaviour.quit_after.is_some_and(|q| seen.events.len() >= q) {
            break;
        }
        if behaviour.stall_at == Some(seen.events.len()) {
            tokio::time::sleep(STALL).await;
        }
        for _ in 0..behaviour.yields {
            tokio::task::yield_now().await;
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn leaving_subscribers_see_a_prefix_and_never_a_silent_gap(
        capacity in 1_usize..6,
        events in 1_u32..400,
        disconnect in any::<bool>(),
        subscribers in prop::collection::vec(
            (0_u32..6, prop::option::of(0_usize..300), prop::option::of(0_usize..300)),
            1..6,
        ),
    ) {
        let overflow = if disconnect {
            Overflow::Disconnect { after: GRACE }
        } else {
            Overflow::Wait
        };
        let (reference, others, stats) = runtime().block_on(async {
            let fanout = Fanout::builder().capacity(capacity).overflow(overflow).build();
            let steady = Behaviour { yields: 0, stall_at: None, quit_after: None };
            let steady = tokio::spawn(consume(fanout.subscribe(), steady));
            let others: Vec<_> = subscribers
                .iter()
                .map(|&(yields, stall_at, quit_after)| {
                    tokio::spawn(consume(fanout.subscribe(), Behaviour { yields, stall_at, quit_after }))
                })
                .collect();
            for n in 0..events {
                fanout.emit(Arc::new(n)).await.unwrap();
            }
            let stats = fanout.stats();
            drop(fanout);
            let mut seen = Vec::new();
            for other in others {
                seen.push(other.await.unwrap());
            }
            (steady.await.unwrap(), seen, stats)
        });
        // The steady reader yields never, so even under Disconnect it may still be closed on a
        // loaded machine; it must then obey the same prefix rule.
        prop_assert!(reference.too_slow || reference.events == (0..events).collect::<Vec<_>>());
        let mut closed = u64::from(reference.too_slow);
        // A reader that quit sits, between its last `recv` and its drop, exactly like a slow one:
        // the producer may disconnect it in that window (a loaded machine deschedules it for
        // longer than GRACE), and it never reads the `TooSlow` that says so.
        let mut quit_unannounced = 0_u64;
        for (seen, &(_, _, quit)) in others.iter().zip(&subscribers) {
            let n = seen.events.len();
            prop_assert_eq!(&seen.events, &(0..n as u32).collect::<Vec<_>>(), "a gap-free prefix");
            if seen.too_slow {
                prop_assert!(disconnect, "Wait never disconnects");
                closed += 1;
            } else if quit.is_some_and(|q| q <= n) {
                quit_unannounced += 1;
            } else {
                prop_assert_eq!(n, events as usize, "a reader that neither quit nor was closed got all");
            }
        }
        if !disconnect {
            prop_assert_eq!(stats.disconnected_slow, 0, "Wait never disconnects");
        }
        prop_assert!(
            (closed..=closed + quit_unannounced).contains(&stats.disconnected_slow),
            "every disconnect of a reader still reading is announced: {} counted, {} announced, {} quit",
            stats.disconnected_slow,
            closed,
            quit_unannounced,
        );
    }
}
