//! The demo's lossless UI subscribers: every session gets `--subscribers` of
//! them, the first one of session 0 deliberately slow. Its neighbour
//! `mod.rs` opens the sessions here (so subscribers exist before the first
//! emit) and hands them to `producers.rs`.
//! Invariant: a subscriber counts itself in order only if it saw every
//! event of its session, numbered from 0, without an error.

use std::time::Duration;

use events::{Event, Feed, Session};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::joined;
use crate::Failure;
use crate::model::DemoEvent;

/// What a UI subscriber saw.
pub(super) struct UiReport {
    received: u64,
    in_order: bool,
}

/// Opens `sessions` sessions and subscribes `subscribers` UIs to each.
pub(super) fn spawn(
    feed: &Feed<DemoEvent>,
    sessions: u32,
    subscribers: u32,
) -> (Vec<Session<DemoEvent>>, Vec<JoinHandle<UiReport>>) {
    let mut opened = Vec::new();
    let mut uis = Vec::new();
    for s in 0..sessions {
        let session = feed.session(&format!("sess-{s}"));
        for k in 0..subscribers {
            let mut sub = session.subscribe();
            let slow = s == 0 && k == 0;
            uis.push(tokio::spawn(async move {
                let mut report = UiReport { received: 0, in_order: true };
                while let Some(item) = sub.next().await {
                    let Ok(ev) = item else {
                        report.in_order = false;
                        break;
                    };
                    report.in_order &= ev.n() == report.received;
                    report.received += 1;
                    if slow && report.received.is_multiple_of(256) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if ev.is_terminal() {
                        break;
                    }
                }
                report
            }));
        }
        opened.push(session);
    }
    (opened, uis)
}

/// Waits for every UI: total deliveries, and whether each saw all
/// `per_session` events in order.
pub(super) async fn join(uis: Vec<JoinHandle<UiReport>>, per_session: u64) -> Result<(u64, bool), Failure> {
    let mut delivered = 0;
    let mut lossless = true;
    for ui in uis {
        let report = joined(ui.await)?;
        delivered += report.received;
        lossless &= report.in_order && report.received == per_session;
    }
    Ok((delivered, lossless))
}
