//! The demo's progress bars: emitted, journaled and client position, a
//! ticker that refreshes them, and the crash spinner's home. Its neighbour
//! `mod.rs` creates them before the first phase and clears them before the
//! summary is printed.
//! Invariant: with `--json` everything draws to a hidden target, so stdout
//! holds only the JSON summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use events::Feed;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::Plan;
use crate::model::DemoEvent;

/// The bars of one demo run.
pub(super) struct Bars {
    pub(super) multi: MultiProgress,
    emitted: ProgressBar,
    journaled: ProgressBar,
    client: ProgressBar,
}

impl Bars {
    pub(super) fn new(json: bool, plan: &Plan) -> Bars {
        let multi =
            if json { MultiProgress::with_draw_target(ProgressDrawTarget::hidden()) } else { MultiProgress::new() };
        let emitted = bar(&multi, plan.emitted_total, "emitted");
        let journaled = bar(&multi, plan.durable_total, "journaled");
        let client = bar(&multi, plan.durable_total, "client");
        Bars { multi, emitted, journaled, client }
    }

    /// Refreshes the bars every 100 ms until aborted.
    pub(super) fn spawn_ticker(
        &self,
        feed: &Feed<DemoEvent>,
        emitted: &Arc<AtomicU64>,
        client_pos: &Arc<AtomicU64>,
    ) -> JoinHandle<()> {
        let (feed, emitted, pos) = (feed.clone(), Arc::clone(emitted), Arc::clone(client_pos));
        let (e, j, c) = (self.emitted.clone(), self.journaled.clone(), self.client.clone());
        tokio::spawn(async move {
            loop {
                e.set_position(emitted.load(Relaxed));
                j.set_position(feed.latest_seq().get());
                c.set_position(pos.load(Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    pub(super) fn set(&self, emitted: u64, journaled: u64, client: u64) {
        self.emitted.set_position(emitted);
        self.journaled.set_position(journaled);
        self.client.set_position(client);
    }

    pub(super) fn finish(&self) {
        for b in [&self.emitted, &self.journaled, &self.client] {
            b.finish();
        }
    }

    pub(super) fn clear(&self) {
        self.multi.clear().ok();
    }
}

fn bar(multi: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos:>8}/{len:8} {per_sec:>14}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    multi.add(ProgressBar::new(len).with_style(style).with_prefix(label.to_owned()))
}
