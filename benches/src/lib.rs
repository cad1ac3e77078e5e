//! Shared fixtures for the criterion benches in `benches/`: payload makers,
//! the sample event type, the quick-run switch and the criterion settings,
//! so every bench measures the same data and `cargo xtask bench --quick`
//! shrinks every bench the same way.
//!
//! The quick switch is the `EVENTS_BENCH_QUICK` environment variable (any
//! value but `0`): benches read it through [`quick`] and [`scaled`] to cut
//! their sizes; criterion's own times come from the command line that
//! `cargo xtask bench` passes (`--warm-up-time`, `--measurement-time`).

use std::time::Duration;

pub mod counting_alloc;

use events_core::Event;
use serde::{Deserialize, Serialize};

/// A representative agent-runtime event: a message with a stream key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleEvent {
    /// Which session emitted it.
    pub session: String,
    /// A monotonically increasing counter.
    pub n: u64,
    /// Opaque text of the chosen size.
    pub text: String,
}

impl Event for SampleEvent {}

/// Makes the `n`-th sample event with `text_len` bytes of text.
pub fn sample_event(n: u64, text_len: usize) -> SampleEvent {
    SampleEvent { session: format!("sess-{}", n % 8), n, text: "x".repeat(text_len) }
}

/// The payload size every journal row of DESIGN.md section 8 uses.
pub const PAYLOAD: usize = 256;

/// The `i`-th 256-byte payload: the same bytes the journal benches write, so
/// ours and the peers hash, copy and store identical data.
pub fn payload(i: usize) -> Vec<u8> {
    (0..PAYLOAD).map(|j| (i * 31 + j) as u8).collect()
}

/// `n` payloads from [`payload`].
pub fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(payload).collect()
}

/// Whether a bench binary that is not a criterion bench (it prints its
/// figures) is left out by the filter `cargo bench -- <filter>` passed on:
/// the first argument that is neither an option nor an option's value.
/// `names` are the figures' prefixes (`memory`, `feed/latency`); the
/// filter, read as `|`-separated alternatives without `^`, `$` and
/// parentheses, keeps the bench when an alternative is part of a name or
/// starts with one (`mem`, `memory/`, `(memory|feed)` all keep `memory`),
/// or holds another regex character (`.*`): it may name anything.
pub fn filtered_out(names: &[&str]) -> bool {
    filtered_out_by(std::env::args().skip(1), names)
}

/// [`filtered_out`] for these arguments.
fn filtered_out_by(args: impl IntoIterator<Item = String>, names: &[&str]) -> bool {
    // Criterion's options that take a value (`--warm-up-time 0.5`).
    const VALUED: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--format",
        "--color",
        "-c",
        "-s",
        "-b",
    ];
    let mut args = args.into_iter();
    let mut filter = None;
    while let Some(arg) = args.next() {
        if VALUED.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filter = Some(arg);
            break;
        }
    }
    let Some(filter) = filter else { return false };
    let keeps = |alt: &str| {
        let alt = alt.trim_matches(|c| matches!(c, '^' | '$' | '(' | ')'));
        // A regex this reading cannot judge (`.*`, a class): run, rather
        // than leave out what it may name.
        alt.contains(['.', '*', '+', '?', '[', '{', '\\'])
            || names.iter().any(|name| name.contains(alt) || alt.starts_with(name))
    };
    !filter.split('|').any(keeps)
}

/// Whether this is a quick run (`EVENTS_BENCH_QUICK` set to anything but `0`).
pub fn quick() -> bool {
    std::env::var_os("EVENTS_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// `full` normally, `quick` in a quick run.
pub fn scaled(full: u64, quick_size: u64) -> u64 {
    if quick() { quick_size } else { full }
}

/// The number of records the read rows use: `EVENTS_BENCH_RECORDS` if set
/// (the journal bench reads the same variable), else 1,000,000, or 200,000 in
/// a quick run.
pub fn read_records() -> u64 {
    std::env::var("EVENTS_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| scaled(1_000_000, 200_000))
}

/// Criterion settings for rows whose one iteration waits for a disk flush:
/// few samples, so a run stays in seconds even at 4 ms per fdatasync.
/// Command-line times (`--warm-up-time`, `--measurement-time`) still win.
pub fn durable_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(scaled(4, 2)))
}

/// Criterion settings for the in-memory and no-fsync rows.
pub fn fast_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(scaled(3, 2)))
}

/// Writes `n` events into a new feed in `dir` (no fsync, unlimited
/// retention) through its inbox, event `i` being `make(i)` (its stream id
/// and the event), and closes it: the journal the read rows read.
///
/// # Panics
///
/// If the feed cannot be opened or written.
pub async fn fill_feed<E: events::Event>(
    dir: &std::path::Path,
    n: u64,
    mut make: impl FnMut(u64) -> (Option<events::StreamId>, E),
) {
    let feed: events::Feed<E> = events::Feed::builder(dir)
        .sync(events::SyncPolicy::Never)
        .retention(events::Retention::unlimited())
        .inbox_capacity(8192)
        .open()
        .await
        .unwrap();
    let inbox = feed.inbox();
    for i in 0..n {
        let (stream, event) = make(i);
        inbox.forward(stream, event).await.unwrap();
    }
    feed.close().await.unwrap();
}

/// The median of `samples` (sorted in place); 0 for none.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs `work(state)` on one scoped thread per element of `states`, all
/// released together by a barrier, and returns the wall time from the
/// release until the last one finished (the scope joins them all). The
/// shared timing scaffold of the multi-threaded durable benches.
pub fn time_threads<T: Send>(states: &mut [T], work: impl Fn(&mut T) + Sync) -> std::time::Duration {
    let barrier = std::sync::Barrier::new(states.len() + 1);
    std::thread::scope(|s| {
        for state in states.iter_mut() {
            let (barrier, work) = (&barrier, &work);
            s.spawn(move || {
                barrier.wait();
                work(state);
            });
        }
        barrier.wait();
        std::time::Instant::now()
    })
    .elapsed()
}

#[cfg(test)]
mod tests {
    use super::filtered_out_by;

    fn out(args: &[&str]) -> bool {
        filtered_out_by(args.iter().map(|a| (*a).to_owned()), &["memory"])
    }

    #[test]
    fn option_values_are_not_the_filter() {
        assert!(!out(&["--warm-up-time", "0.5", "--measurement-time", "1", "--bench"]));
        assert!(!out(&["--bench"]));
        assert!(!out(&[]));
    }

    #[test]
    fn a_filter_keeps_the_bench_it_names() {
        for keeps in
            ["memory", "mem", "memory/", "^memory/session", "durable|memory", "--bench memory", "(memory|nats)", ".*"]
        {
            let args: Vec<&str> = keeps.split(' ').collect();
            assert!(!out(&args), "{keeps}");
        }
        for drops in ["durable", "feed|fanout", "--warm-up-time 0.5 durable", "(durable|nats)"] {
            let args: Vec<&str> = drops.split(' ').collect();
            assert!(out(&args), "{drops}");
        }
    }
}
