//! The demo's resuming UI: a chat client that follows a session's live
//! output (`stream_live`: tokens and messages in emit order), drops its
//! connection at random points, several of them in the middle of a
//! response, and reconnects from the position of the last item it saw, the
//! way a browser's `EventSource` resumes with its last event id. It rebuilds
//! every response from its tokens and checks it against the message that
//! concludes it. Its neighbour `mod.rs` spawns it before the producers start
//! (on a feed opened with live output); `verification.rs` turns its report
//! into the "resuming UI" invariant.
//! Invariant: the UI checks every item against the session's own counter
//! (`DemoEvent::n`), so a token delivered twice, one missing or one out of
//! place is counted, never papered over by the text comparison.

use std::time::Duration;

use events::{Cursor, Event, Feed, FeedItem, LiveCursor, LiveStream, Position, ResetReason, Seq};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::joined;
use crate::Failure;
use crate::model::DemoEvent;

/// How many sessions a resuming UI follows (the first ones; session 0 is
/// the one with the slow subscriber).
const FOLLOWED: u32 = 2;
/// Disconnects per followed session, on average over the run.
const DROPS_PER_SESSION: u64 = 24;
/// A UI that waits this long for its next item has stalled.
const STALL: Duration = Duration::from_secs(30);

/// What the resuming UIs saw, summed over the sessions they followed.
#[derive(Debug, Default, Serialize)]
pub(super) struct ResumeReport {
    /// Sessions followed, one UI each.
    pub(super) sessions: u32,
    /// Responses (messages) those sessions emitted: each must be rebuilt.
    pub(super) responses: u64,
    /// Items received: tokens, heartbeats and durable events of those sessions.
    pub(super) items: u64,
    /// Deliberate disconnects, each followed by a reconnect from the last position seen.
    pub(super) reconnects: u64,
    /// Reconnects made while a response was streaming (tokens seen, its message not yet).
    pub(super) mid_response: u64,
    /// Reconnects between two tokens of one response: the first item after
    /// the reconnect was the next token.
    pub(super) inside_token_run: u64,
    /// Responses whose message the UI saw, rebuilt from their tokens equal to it.
    pub(super) responses_rebuilt: u64,
    /// Responses whose tokens did not add up to their message.
    pub(super) mismatched: u64,
    /// Items received again (a session counter at or below one already seen).
    pub(super) duplicates: u64,
    /// Items missing (a session counter that skipped), outside a reset.
    pub(super) gaps: u64,
    /// `Reset { LiveOutputExpired }` items: the ring had lost tokens the UI needed.
    pub(super) live_output_resets: u64,
    /// Any other reset or undecodable item.
    pub(super) other_resets: u64,
    /// Responses cut by a reset, so not rebuilt (and not counted as mismatched).
    pub(super) cut_by_reset: u64,
    /// Ephemeral events the ring dropped by its limits during the run (the
    /// UIs must never have needed one of them).
    pub(super) ring_evicted: u64,
    /// The first thing that went wrong, for the invariant's detail.
    pub(super) first_problem: Option<String>,
}

impl ResumeReport {
    /// Every response the sessions emitted was rebuilt token for token,
    /// with nothing lost, repeated or reset, across reconnects of which at
    /// least one fell inside a run of tokens (when there was a response).
    pub(super) fn rebuilt_every_response(&self) -> bool {
        let reconnected_mid_run = self.reconnects > 0 && self.inside_token_run > 0;
        self.responses_rebuilt == self.responses
            && (self.responses == 0 || reconnected_mid_run)
            && self.mismatched == 0
            && self.duplicates == 0
            && self.gaps == 0
            && self.live_output_resets == 0
            && self.other_resets == 0
            && self.cut_by_reset == 0
            && self.first_problem.is_none()
    }

    fn add(&mut self, o: ResumeReport) {
        self.sessions += o.sessions;
        self.responses += o.responses;
        self.items += o.items;
        self.reconnects += o.reconnects;
        self.mid_response += o.mid_response;
        self.inside_token_run += o.inside_token_run;
        self.responses_rebuilt += o.responses_rebuilt;
        self.mismatched += o.mismatched;
        self.duplicates += o.duplicates;
        self.gaps += o.gaps;
        self.live_output_resets += o.live_output_resets;
        self.other_resets += o.other_resets;
        self.cut_by_reset += o.cut_by_reset;
        self.first_problem = self.first_problem.take().or(o.first_problem);
    }

    fn problem(&mut self, what: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what());
        }
    }
}

/// One session's UI state: the response being rebuilt and the last
/// position seen, which is all a reconnect needs.
pub(super) struct Rebuilder {
    pub(super) report: ResumeReport,
    /// Where to resume: the position of the last item seen.
    position: Position,
    /// The session counter expected next.
    next_n: u64,
    /// The response streaming now: its tokens' text, and how many.
    text: String,
    tokens: u64,
    /// A reset came: the next event may skip counters, and if it is a
    /// message, its response lost tokens.
    cut: bool,
    /// The last item was a token.
    last_was_token: bool,
    /// Set by a disconnect after a token: was the next item the next token?
    cut_after_token: bool,
}

impl Rebuilder {
    /// A UI for one session that emits `responses` responses.
    pub(super) fn new(responses: u64) -> Self {
        Rebuilder {
            report: ResumeReport { sessions: 1, responses, ..ResumeReport::default() },
            position: Position::default(),
            next_n: 0,
            text: String::new(),
            tokens: 0,
            cut: false,
            last_was_token: false,
            cut_after_token: false,
        }
    }

    /// Takes one event of the session at `position`; `true` once it is the
    /// session's last (`Done`).
    pub(super) fn event(&mut self, position: Position, event: &DemoEvent) -> bool {
        self.report.items += 1;
        let n = event.n();
        if n < self.next_n {
            self.report.duplicates += 1;
            self.report.problem(|| format!("item {n} again at {position:?}"));
            return false;
        }
        // Right after a reset the counter jumps: what it skipped is lost
        // and was counted as the reset.
        let after_reset = std::mem::take(&mut self.cut);
        if n > self.next_n && !after_reset {
            self.report.gaps += 1;
            let expected = self.next_n;
            self.report.problem(|| format!("items {expected}..{n} missing before {position:?}"));
        }
        self.next_n = n + 1;
        self.position = position;
        let is_token = matches!(event, DemoEvent::Token { .. });
        if std::mem::take(&mut self.cut_after_token) && is_token {
            self.report.inside_token_run += 1;
        }
        self.last_was_token = is_token;
        match event {
            DemoEvent::Token { text, .. } => {
                self.text.push_str(text);
                self.tokens += 1;
            }
            DemoEvent::Message { text, .. } => {
                let rebuilt = std::mem::take(&mut self.text);
                self.tokens = 0;
                if after_reset {
                    self.report.cut_by_reset += 1;
                } else if rebuilt == *text {
                    self.report.responses_rebuilt += 1;
                } else {
                    self.report.mismatched += 1;
                    self.report.problem(|| format!("message {n} says {text:?}, its tokens {rebuilt:?}"));
                }
            }
            _ => {}
        }
        event.is_terminal()
    }

    /// Takes a reset: the tokens streamed since the last durable event are
    /// lost, so the response in progress cannot be rebuilt. The stream goes
    /// on with the next durable event.
    pub(super) fn reset(&mut self, reason: ResetReason) {
        if reason == ResetReason::LiveOutputExpired {
            self.report.live_output_resets += 1;
        } else {
            self.report.other_resets += 1;
        }
        let at = self.position;
        self.report.problem(|| format!("{reason:?} after {at:?}"));
        self.text.clear();
        self.tokens = 0;
        self.cut = true;
    }

    /// The UI drops its connection now: where it will resume.
    pub(super) fn disconnect(&mut self, epoch: u64) -> LiveCursor {
        self.report.reconnects += 1;
        if self.tokens > 0 {
            self.report.mid_response += 1;
        }
        self.cut_after_token = self.last_was_token;
        LiveCursor::new(Cursor::new(self.position.seq, epoch), self.position.index)
    }
}

/// Opens one live-output stream per followed session now (so each sees the
/// whole run) and spawns its UI.
pub(super) fn spawn(
    feed: &Feed<DemoEvent>,
    sessions: u32,
    per_session: u64,
) -> Result<Vec<JoinHandle<Result<ResumeReport, events::Error>>>, Failure> {
    let epoch = feed.epoch();
    let mut uis = Vec::new();
    for s in 0..sessions.min(FOLLOWED) {
        let id = format!("sess-{s}");
        let from = LiveCursor::new(Cursor::new(Seq::ZERO, epoch), 0);
        let stream = feed.reader().stream_live(from, Some(&id))?;
        let feed = feed.clone();
        uis.push(tokio::spawn(async move { follow(feed, id, stream, per_session).await }));
    }
    Ok(uis)
}

/// Waits for every resuming UI and sums their reports.
pub(super) async fn join(
    uis: Vec<JoinHandle<Result<ResumeReport, events::Error>>>,
    ring_evicted: u64,
) -> Result<ResumeReport, Failure> {
    let mut total = ResumeReport { ring_evicted, ..ResumeReport::default() };
    for ui in uis {
        total.add(joined(ui.await)??);
    }
    Ok(total)
}

/// Follows session `id` until its `Done`, disconnecting about
/// `DROPS_PER_SESSION` times at random items, half of them (and all until
/// one happened) right after a token.
async fn follow(
    feed: Feed<DemoEvent>,
    id: String,
    mut stream: LiveStream<DemoEvent>,
    per_session: u64,
) -> Result<ResumeReport, events::Error> {
    let mut rng = StdRng::from_entropy();
    let mean_gap = (per_session / DROPS_PER_SESSION).max(1);
    let mut ui = Rebuilder::new(DemoEvent::responses(per_session));
    loop {
        let mut countdown = rng.gen_range(1..=2 * mean_gap);
        let after_token = ui.report.inside_token_run == 0 || rng.gen_bool(0.5);
        loop {
            let item = match tokio::time::timeout(STALL, stream.next()).await {
                Ok(Some(item)) => item?,
                Ok(None) => {
                    ui.report.problem(|| format!("the stream ended before {id}'s last event"));
                    return Ok(ui.report);
                }
                Err(_) => {
                    ui.report.problem(|| format!("no item in {STALL:?} after {:?}", ui.position));
                    return Ok(ui.report);
                }
            };
            let done = match item {
                FeedItem::Event(env) => ui.event(Position::durable(env.seq), &env.event),
                FeedItem::Ephemeral { position, env } => ui.event(position, &env.event),
                FeedItem::Reset { reason, .. } => {
                    ui.reset(reason);
                    false
                }
                // Other sessions' events scanned past: only the position moves.
                FeedItem::Checkpoint { seq } => {
                    ui.position = ui.position.max(Position::durable(seq));
                    false
                }
                FeedItem::Undecodable { seq, .. } => {
                    ui.report.other_resets += 1;
                    ui.report.problem(|| format!("undecodable event {seq}"));
                    false
                }
            };
            if done {
                return Ok(ui.report);
            }
            countdown = countdown.saturating_sub(1);
            if countdown == 0 && (!after_token || ui.last_was_token) {
                break;
            }
        }
        // Gone for a moment, as a flaky network would have it; the session
        // goes on emitting meanwhile.
        let from = ui.disconnect(feed.epoch());
        drop(stream);
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..3_000))).await;
        stream = feed.reader().stream_live(from, Some(&id))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds session 0's events `range` (of a 100-event run) to `ui`, each
    /// at the position a live stream gives it, except where `tamper` says.
    fn feed(ui: &mut Rebuilder, range: std::ops::Range<u64>, tamper: impl Fn(u64, DemoEvent) -> Option<DemoEvent>) {
        for n in range {
            let event = DemoEvent::nth(0, n, 100);
            // Durable events are numbered 3 per 10; the position only has to grow.
            let position = Position { seq: Seq::new(n / 10 * 3), index: (n % 10) as u32 + 1 };
            if let Some(event) = tamper(n, event) {
                ui.event(position, &event);
            }
        }
    }

    fn untouched(_: u64, e: DemoEvent) -> Option<DemoEvent> {
        Some(e)
    }

    #[test]
    fn responses_rebuilt_across_a_reconnect_inside_a_run_of_tokens_pass() {
        let mut ui = Rebuilder::new(10);
        feed(&mut ui, 0..13, untouched);
        ui.disconnect(1);
        feed(&mut ui, 13..100, untouched);
        let r = &ui.report;
        assert_eq!((r.reconnects, r.mid_response, r.inside_token_run), (1, 1, 1));
        assert_eq!(r.responses_rebuilt, 10);
        assert!(r.rebuilt_every_response(), "{r:?}");

        // A UI that stopped halfway did not rebuild every response.
        let mut ui = Rebuilder::new(10);
        feed(&mut ui, 0..13, untouched);
        ui.disconnect(1);
        feed(&mut ui, 13..50, untouched);
        assert!(!ui.report.rebuilt_every_response(), "{:?}", ui.report);
    }

    #[test]
    fn a_wrong_missing_or_repeated_token_fails() {
        let wrong = |n: u64, e: DemoEvent| {
            if n == 23 { Some(DemoEvent::Token { session: 0, n, text: "tok2e ".into() }) } else { Some(e) }
        };
        let missing = |n: u64, e: DemoEvent| (n != 23).then_some(e);
        for (what, tamper) in [("wrong", &wrong as &dyn Fn(u64, DemoEvent) -> Option<DemoEvent>), ("missing", &missing)]
        {
            let mut ui = Rebuilder::new(10);
            feed(&mut ui, 0..22, untouched);
            ui.disconnect(1);
            feed(&mut ui, 22..100, tamper);
            let r = &ui.report;
            assert!(!r.rebuilt_every_response(), "{what}: {r:?}");
            assert_eq!(r.responses_rebuilt, 9, "{what}: the other responses still rebuild");
        }
        // A reconnect that replays a token the UI already had.
        let mut ui = Rebuilder::new(10);
        feed(&mut ui, 0..23, untouched);
        ui.disconnect(1);
        feed(&mut ui, 22..100, untouched);
        assert_eq!(ui.report.duplicates, 1);
        assert!(!ui.report.rebuilt_every_response());
    }

    #[test]
    fn a_reset_or_no_reconnect_inside_a_run_fails() {
        let mut ui = Rebuilder::new(10);
        feed(&mut ui, 0..3, untouched);
        ui.disconnect(1);
        ui.reset(ResetReason::LiveOutputExpired);
        feed(&mut ui, 7..100, untouched);
        let r = &ui.report;
        assert_eq!((r.live_output_resets, r.cut_by_reset, r.gaps), (1, 1, 0), "{r:?}");
        assert!(!r.rebuilt_every_response());

        // Disconnected only between responses.
        let mut ui = Rebuilder::new(10);
        feed(&mut ui, 0..8, untouched);
        ui.disconnect(1);
        feed(&mut ui, 8..100, untouched);
        assert_eq!((ui.report.mid_response, ui.report.inside_token_run), (0, 0));
        assert!(!ui.report.rebuilt_every_response());
    }
}
