//! Randomised delivery: P concurrent producers and M subscribers consuming at
//! random speeds on a 2-worker runtime, with a random capacity. Every
//! subscriber must see the same total order, which contains each producer's
//! events exactly once and in its emit order; a subscriber that joins midway
//! sees a contiguous suffix of that order. Every other subscriber borrows its
//! events (`recv_ref`) instead of cloning them, so a slot reused while lent
//! shows up as a wrong or torn event.

use std::sync::Arc;

use events_fanout::Fanout;
use proptest::prelude::*;

mod support;
use support::runtime;

/// One event: which producer, and its index in that producer's sequence.
type Tag = (usize, u32);

async fn consume(mut sub: events_fanout::Subscriber<Arc<Tag>>, yields_every: u32, lend: bool) -> Vec<Tag> {
    let yields = |got: &Vec<Tag>| yields_every != 0 && (got.len() as u32).is_multiple_of(yields_every);
    let mut got = Vec::new();
    loop {
        if lend {
            let Some(item) = sub.recv_ref().await else { break };
            let item = item.expect("Overflow::Wait never disconnects");
            got.push(**item);
            if yields(&got) {
                // Yield while still holding the lent event: its slot must stay intact.
                tokio::task::yield_now().await;
                assert_eq!(**item, got[got.len() - 1], "a lent slot was reused");
            }
        } else {
            let Some(item) = sub.recv().await else { break };
            got.push(*item.expect("Overflow::Wait never disconnects"));
            if yields(&got) {
                tokio::task::yield_now().await;
            }
        }
    }
    got
}

fn check(per_producer: &[u32], subscribers: &[Vec<Tag>], late: &[Tag]) -> Result<(), TestCaseError> {
    let reference = &subscribers[0];
    for seen in subscribers {
        prop_assert_eq!(seen, reference, "every subscriber sees one total order");
    }
    for (producer, &count) in per_producer.iter().enumerate() {
        let mine: Vec<u32> = reference.iter().filter(|t| t.0 == producer).map(|t| t.1).collect();
        prop_assert_eq!(mine, (0..count).collect::<Vec<_>>(), "producer {} in order, exactly once", producer);
    }
    prop_assert!(reference.ends_with(late), "a late subscriber sees a suffix");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_subscriber_sees_every_producer_in_order(
        capacity in 1_usize..9,
        per_producer in prop::collection::vec(0_u32..300, 1..4),
        speeds in prop::collection::vec(0_u32..5, 1..6),
        producer_yields in 0_u32..4,
        late_after in 0_u32..100,
    ) {
        let (subscribers, late) = runtime().block_on(async {
            let fanout = Fanout::with_capacity(capacity);
            let readers: Vec<_> = speeds
                .iter()
                .enumerate()
                .map(|(i, &speed)| tokio::spawn(consume(fanout.subscribe(), speed, i % 2 == 1)))
                .collect();
            let producers: Vec<_> = per_producer
                .iter()
                .enumerate()
                .map(|(id, &count)| {
                    let fanout = fanout.clone();
                    tokio::spawn(async move {
                        let mut late = None;
                        for n in 0..count {
                            if id == 0 && n == late_after {
                                late = Some(tokio::spawn(consume(fanout.subscribe(), 0, late_after % 2 == 0)));
                            }
                            fanout.emit(Arc::new((id, n))).await.unwrap();
                            if producer_yields != 0 && n.is_multiple_of(producer_yields) {
                                tokio::task::yield_now().await;
                            }
                        }
                        late
                    })
                })
                .collect();
            let mut late_reader = None;
            for producer in producers {
                if let Some(reader) = producer.await.unwrap() {
                    late_reader = Some(reader);
                }
            }
            // Every handle must be gone before any reader can end.
            drop(fanout);
            let late = match late_reader {
                Some(reader) => reader.await.unwrap(),
                None => Vec::new(),
            };
            let mut seen = Vec::new();
            for reader in readers {
                seen.push(reader.await.unwrap());
            }
            (seen, late)
        });
        check(&per_producer, &subscribers, &late)?;
    }
}
