//! The demo's verification phase: the crash-and-recover run of a child
//! process (through `crate::crash`), and the invariants checked against
//! what `mod.rs` measured and what the journal's `verify` reports, and the
//! durable consumer that the crash interrupts (`crate::crash_consumer`). Its
//! neighbour `summary.rs` prints the result.
//! Invariant: every check is an `Invariant` in the summary, so the exit
//! code (1 when any fails) and the printed list never disagree.

use std::sync::Arc;

use events::layers::journal::{JournalError, VerifyReport};
use indicatif::ProgressBar;
use serde::Serialize;

use super::progress::Bars;
use super::resume::ResumeReport;
use super::{DemoArgs, Measured, Plan};
use crate::Failure;
use crate::crash::{self, CrashOutcome};
use crate::crash_consumer::ConsumerOutcome;

/// One checked property of the run.
#[derive(Debug, Serialize)]
pub(super) struct Invariant {
    pub(super) name: &'static str,
    pub(super) ok: bool,
    pub(super) detail: String,
}

/// A child appends to the demo's journal and is SIGKILLed at a random
/// moment; the journal is then reopened and checked.
pub(super) async fn crash(bars: &Bars, args: &DemoArgs, journaled: u64) -> Result<CrashOutcome, Failure> {
    let crash_bar = bars.multi.add(ProgressBar::new_spinner().with_prefix("crash"));
    crash_bar.set_message("child appending; SIGKILL at a random moment");
    let on_ack = {
        let crash_bar = crash_bar.clone();
        Arc::new(move |seq: u64| crash_bar.set_message(format!("child acknowledged seq {seq}")))
    };
    let outcome = crash::crash_and_recover(&args.dir, args.sync, journaled, on_ack).await?;
    let ended = if outcome.sigkilled { "killed" } else { "ended by itself" };
    crash_bar.finish_with_message(format!("{ended} after {} acknowledged appends; recovered", outcome.acknowledged));
    Ok(outcome)
}

/// The name of the check that every UI subscriber got every event in order
/// (the table's delivery line says whether it held).
pub(super) const LOSSLESS: &str = "lossless UI subscribers";

/// Every invariant of the run, in the order they are printed.
pub(super) fn invariants(
    plan: &Plan,
    m: &Measured,
    crash: Option<&CrashOutcome>,
    verify: Result<VerifyReport, JournalError>,
) -> Vec<Invariant> {
    let durable_total = plan.durable_total;
    let mut invariants = vec![
        {
            let crash_gaps = crash.map_or(0, |c| c.gaps);
            let reconnects = m.client.reconnects;
            // Said as it was: the line had named every seq seen whatever
            // the counts (the check failing beside it).
            let detail = match (m.client.gaps, crash_gaps) {
                (0, 0) => format!("client saw seqs 1..={durable_total} across {reconnects} reconnect(s)"),
                (0, crash) => {
                    format!("client saw seqs 1..={durable_total}; the crash child's journal has {crash} gap(s)")
                }
                (gaps, _) => format!(
                    "client missed seqs at {gaps} place(s) of 1..={durable_total} across {reconnects} reconnect(s)"
                ),
            };
            Invariant { name: "no gap", ok: m.client.gaps == 0 && crash_gaps == 0, detail }
        },
        Invariant {
            name: "no duplicate",
            ok: m.client.duplicates == 0,
            detail: format!("{} duplicates, {} resets", m.client.duplicates, m.client.resets),
        },
        Invariant {
            name: "every durable event journaled",
            ok: m.journaled == durable_total,
            detail: format!("{} of {durable_total}", m.journaled),
        },
        Invariant {
            name: LOSSLESS,
            ok: m.lossless,
            detail: if m.lossless {
                format!("{} deliveries, each subscriber every event in order", m.delivered)
            } else {
                format!("{} deliveries: a subscriber missed events or got them out of order", m.delivered)
            },
        },
        resuming_ui(&m.resume),
    ];
    if let Some(c) = crash {
        invariants.push(Invariant {
            name: "child SIGKILLed mid-run",
            ok: c.sigkilled,
            detail: format!("after {} acknowledged appends; the child ended: {}", c.acknowledged, c.child_exit),
        });
        invariants.push(Invariant {
            name: "nothing acknowledged lost",
            ok: c.nothing_lost(),
            detail: format!(
                "{} acknowledged, {} lost, {} wrong payload",
                c.acknowledged,
                c.lost.len(),
                c.wrong_payload.len()
            ),
        });
        invariants.push(Invariant {
            name: "no seq reuse after crash",
            ok: c.no_reuse(),
            detail: format!(
                "highest acknowledged {}, recovered up to {}, next append got {}",
                c.max_acked, c.recovered_latest, c.next_seq
            ),
        });
        invariants.push(consumer_resumed(&c.consumer));
    }
    invariants.push(verified(verify));
    invariants
}

/// The chat UI that dropped its live-output stream mid-response: every
/// response it saw concluded, rebuilt from its tokens, equals its message.
fn resuming_ui(r: &ResumeReport) -> Invariant {
    let mut detail = format!(
        "{} reconnects ({} mid-response, {} inside a run of tokens), {} of {} responses rebuilt token for token, {} live-output resets",
        r.reconnects, r.mid_response, r.inside_token_run, r.responses_rebuilt, r.responses, r.live_output_resets
    );
    let wrong = [
        (r.mismatched, "mismatched"),
        (r.duplicates, "duplicate"),
        (r.gaps, "missing"),
        (r.other_resets, "other resets"),
        (r.cut_by_reset, "cut by a reset"),
    ];
    for (count, what) in wrong.into_iter().filter(|(count, _)| *count > 0) {
        detail.push_str(&format!(", {count} {what}"));
    }
    if let Some(problem) = &r.first_problem {
        detail.push_str(&format!("; first: {problem}"));
    }
    Invariant { name: "resuming UI", ok: r.rebuilt_every_response(), detail }
}

/// The durable consumer killed with the child: it resumed after its
/// persisted checkpoint, with no gap and a bounded redelivery.
fn consumer_resumed(c: &ConsumerOutcome) -> Invariant {
    let mut detail = format!(
        "{} resumed after seq {} (checkpoint), redelivered {} {} {}, {}",
        c.name,
        c.checkpoint,
        c.redelivered,
        if c.redelivered <= c.redelivery_bound { '≤' } else { '>' },
        c.redelivery_bound,
        if c.gaps == 0 { "no gap".to_owned() } else { format!("{} gap(s)", c.gaps) },
    );
    if let Some(error) = &c.error {
        detail.push_str(&format!("; the child's consumer failed: {error}"));
    }
    Invariant { name: "durable consumer resumes", ok: c.resumed(), detail }
}

fn verified(verify: Result<VerifyReport, JournalError>) -> Invariant {
    match verify {
        Ok(report) => Invariant {
            name: "journal verifies clean",
            ok: report.is_ok(),
            detail: format!(
                "{} segments, {} records, {} problems",
                report.segments,
                report.records,
                report.problems.len()
            ),
        },
        Err(e) => Invariant { name: "journal verifies clean", ok: false, detail: events::error_chain(&e) },
    }
}

#[cfg(test)]
mod tests {
    use super::super::clients::ClientReport;
    use super::*;

    /// What a failed run's delivery checks say: what went wrong, not what a
    /// run that passed would have seen. The "no gap" line had named every
    /// seq seen, and the lossless one every event delivered in order,
    /// whatever the counts beside them.
    #[test]
    fn failed_delivery_checks_say_what_went_wrong() {
        let plan = Plan { per_session: 10, emitted_total: 20, durable_total: 6 };
        let measured = |gaps, lossless| Measured {
            elapsed: 1.0,
            delivered: 40,
            lossless,
            client: ClientReport { received: 6 - gaps, gaps, ..ClientReport::default() },
            resume: ResumeReport::default(),
            samples: Vec::new(),
            stats: events::FeedStats::default(),
            journaled: 6,
        };
        let check = |m: &Measured, name: &str| {
            let all = invariants(&plan, m, None, Err(JournalError::NoSegments { dir: "d".into() }));
            let found = all.into_iter().find(|i| i.name == name).expect(name);
            (found.ok, found.detail)
        };
        let good = measured(0, true);
        assert_eq!(check(&good, "no gap"), (true, "client saw seqs 1..=6 across 0 reconnect(s)".to_owned()));
        assert_eq!(check(&good, LOSSLESS), (true, "40 deliveries, each subscriber every event in order".to_owned()));
        let bad = measured(2, false);
        let (ok, detail) = check(&bad, "no gap");
        assert!(!ok && detail.contains("missed seqs at 2 place(s)") && !detail.contains("saw"), "{detail}");
        let (ok, detail) = check(&bad, LOSSLESS);
        assert!(!ok && detail.contains("missed events or got them out of order"), "{detail}");
    }
}
