//! The demo's summary: everything measured and verified, printed as a table
//! or serialized as JSON by `mod.rs`. Its neighbours `verification.rs`
//! (the invariants) and `mod.rs` (the measurements) fill it in.
//! Invariant: the JSON field names are the CLI's output contract; rename
//! none of them.

use serde::Serialize;

use super::resume::ResumeReport;
use super::verification::Invariant;
use super::{DemoArgs, Measured, Plan};
use crate::args::sync_to_arg;
use crate::crash::CrashOutcome;

/// Everything the demo measured and verified.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    dir: String,
    sync: String,
    sessions: u32,
    subscribers_per_session: u32,
    emitted: u64,
    durable: u64,
    ephemeral: u64,
    journaled: u64,
    delivered_to_subscribers: u64,
    sink_observed: u64,
    sink_dropped: u64,
    client_reconnects: u64,
    client_received: u64,
    /// The chat UI that reconnects mid-response (`resume.rs`).
    resuming_ui: ResumeReport,
    seconds: f64,
    events_per_second: f64,
    durable_per_second: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_max_us: f64,
    fsyncs: u64,
    batches: u64,
    crash: Option<CrashOutcome>,
    pub(super) invariants: Vec<Invariant>,
}

impl Summary {
    pub(super) fn new(
        args: &DemoArgs,
        plan: &Plan,
        m: Measured,
        sink_observed: u64,
        crash: Option<CrashOutcome>,
        invariants: Vec<Invariant>,
    ) -> Summary {
        let mut samples = m.samples;
        samples.sort_unstable();
        let pct = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() - 1) as f64 * p).round() as usize;
            samples[i] as f64 / 1000.0
        };
        let (emitted_total, durable_total, elapsed) = (plan.emitted_total, plan.durable_total, m.elapsed);
        Summary {
            dir: args.dir.display().to_string(),
            sync: sync_to_arg(args.sync),
            sessions: args.sessions,
            subscribers_per_session: args.subscribers,
            emitted: emitted_total,
            durable: durable_total,
            ephemeral: emitted_total - durable_total,
            journaled: m.journaled,
            delivered_to_subscribers: m.delivered,
            sink_observed,
            sink_dropped: m.stats.sink_dropped,
            client_reconnects: m.client.reconnects,
            client_received: m.client.received,
            resuming_ui: m.resume,
            seconds: elapsed,
            events_per_second: emitted_total as f64 / elapsed,
            durable_per_second: durable_total as f64 / elapsed,
            latency_p50_us: pct(0.50),
            latency_p99_us: pct(0.99),
            latency_max_us: pct(1.0),
            fsyncs: m.stats.fsyncs,
            batches: m.stats.batches,
            crash,
            invariants,
        }
    }
}

pub(super) fn print_table(s: &Summary) {
    let ms = |us: f64| us / 1000.0;
    println!();
    println!(
        "events demo — {} sessions × {} UI subscribers, sync={}, in {}",
        s.sessions, s.subscribers_per_session, s.sync, s.dir
    );
    println!("  emitted            {:>10}  ({} durable, {} ephemeral)", s.emitted, s.durable, s.ephemeral);
    println!("  journaled          {:>10}  seqs 1..={}", s.journaled, s.journaled);
    let lossless = s.invariants.iter().any(|i| i.name == super::verification::LOSSLESS && i.ok);
    let delivered = if lossless { "(lossless, in order)" } else { "(NOT lossless: see the checks below)" };
    println!("  delivered to UIs   {:>10}  {delivered}", s.delivered_to_subscribers);
    println!("  sink observed      {:>10}  (dropped {})", s.sink_observed, s.sink_dropped);
    println!("  resuming client    {:>10}  events over {} reconnect(s)", s.client_received, s.client_reconnects);
    let r = &s.resuming_ui;
    println!(
        "  resuming UI        {:>10}  live items of {} session(s) over {} reconnect(s) (ring evicted {})",
        r.items, r.sessions, r.reconnects, r.ring_evicted
    );
    println!(
        "  throughput         {:>10.0}  events/s ({:.0} durable/s) over {:.2} s",
        s.events_per_second, s.durable_per_second, s.seconds
    );
    println!(
        "  latency emit→live  p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(s.latency_p50_us),
        ms(s.latency_p99_us),
        ms(s.latency_max_us)
    );
    let per_fsync = if s.fsyncs == 0 { 0.0 } else { s.journaled as f64 / s.fsyncs as f64 };
    println!("  fsyncs             {:>10}  ({per_fsync:.1} events per fsync, {} batches)", s.fsyncs, s.batches);
    if let Some(c) = &s.crash {
        println!("  crash              {}", crash_line(c));
    }
    println!();
    println!("invariants");
    for i in &s.invariants {
        println!("  {} {:<32} {}", if i.ok { "✔" } else { "✘" }, i.name, i.detail);
    }
}

/// The table's crash line: how the child ended (the demo's SIGKILL, or an
/// exit of its own, which tested no crash), and what recovery kept.
pub(super) fn crash_line(c: &CrashOutcome) -> String {
    let ended =
        if c.sigkilled { "child SIGKILLed".to_owned() } else { format!("child ended by itself ({})", c.child_exit) };
    format!("{ended} after {} acknowledged appends; recovered seqs up to {}", c.acknowledged, c.recovered_latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that exited by itself (a failed append, say) is not said
    /// to have been SIGKILLed: the line had said so whatever happened.
    #[test]
    fn the_crash_line_says_how_the_child_ended() {
        let mut c = CrashOutcome {
            sigkilled: true,
            child_exit: "signal: 9 (SIGKILL)".into(),
            acknowledged: 5,
            recovered_latest: 12,
            ..CrashOutcome::default()
        };
        assert!(crash_line(&c).starts_with("child SIGKILLed after 5 acknowledged appends"), "{}", crash_line(&c));
        c.sigkilled = false;
        c.child_exit = "exit status: 2".into();
        let line = crash_line(&c);
        assert!(!line.contains("SIGKILL") && line.starts_with("child ended by itself (exit status: 2)"), "{line}");
    }
}
