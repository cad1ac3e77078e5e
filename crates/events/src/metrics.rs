//! Publishes a feed's counters through the [`metrics`] facade, the
//! ecosystem's standard: [`record`] copies one [`FeedStats`] snapshot into
//! whatever recorder is current (a Prometheus exporter, statsd, a test
//! recorder), [`record_session`] does the same for a [`Session`]'s fan-out,
//! and [`spawn_publisher`] refreshes a feed's figures on a timer. Built only
//! with the `metrics` feature; `stats.rs` keeps the counters, this file only
//! reads them.
//!
//! Invariant: publishing never changes the feed. Every value is a snapshot
//! the feed already keeps; monotonic counters are published with
//! [`Counter::absolute`](::metrics::Counter::absolute), so publishing the
//! same snapshot twice (or from two places) never double counts.
//!
//! # Metrics
//!
//! Every series carries a `feed` label, the name given to [`record`], so
//! several feeds can share one registry. Counters count since the feed was
//! opened, and are published with `absolute`: a registry that lives longer
//! than the feed (an installed Prometheus recorder) never takes a counter
//! below a value it had, so a feed reopened in the same process under the
//! same label shows its old totals until the new ones pass them (give each
//! opening its own label, or render a fresh registry per scrape, as
//! `events-http`'s `FeedRouter::metrics` does). A new process starts at 0,
//! as Prometheus counters do on a restart.
//!
//! | name | kind | extra labels | from |
//! | --- | --- | --- | --- |
//! | `events_appended_total` | counter | | [`FeedStats::appended`] |
//! | `events_dropped_total` | counter | | [`FeedStats::dropped`] |
//! | `events_encode_errors_total` | counter | | [`FeedStats::encode_errors`] |
//! | `events_batches_total` | counter | | [`FeedStats::batches`] |
//! | `events_bytes_total` | counter | | [`FeedStats::bytes`] |
//! | `events_fsyncs_total` | counter | | [`FeedStats::fsyncs`] |
//! | `events_lagged_fallbacks_total` | counter | | [`FeedStats::lagged_fallbacks`] |
//! | `events_resets_total` | counter | | [`FeedStats::resets`] |
//! | `events_sink_dropped_total` | counter | | [`FeedStats::sink_dropped`] |
//! | `events_sink_timeouts_total` | counter | | [`FeedStats::sink_timeouts`] |
//! | `events_sink_panics_total` | counter | | [`FeedStats::sink_panics`] |
//! | `events_too_large_total` | counter | | [`FeedStats::too_large`] |
//! | `events_prune_errors_total` | counter | | [`FeedStats::prune_errors`] |
//! | `events_watermark_errors_total` | counter | | [`FeedStats::watermark_errors`] |
//! | `events_duplicates_total` | counter | | [`FeedStats::duplicates`] |
//! | `events_conflicts_total` | counter | | [`FeedStats::conflicts`] |
//! | `events_live_events` | gauge | | [`FeedStats::live_events`] |
//! | `events_live_evicted_total` | counter | | [`FeedStats::live_evicted`] |
//! | `events_latest_seq` | gauge | | [`FeedStats::latest_seq`] |
//! | `events_earliest_seq` | gauge | | [`FeedStats::earliest_seq`] |
//! | `events_healthy` | gauge | | [`FeedStats::healthy`]: 1 or 0 |
//! | `events_sink_report_emitted_total` | counter | `sink` | [`SinkReport::stats`]`.emitted` |
//! | `events_sink_report_filtered_total` | counter | `sink` | [`SinkReport::stats`]`.filtered` |
//! | `events_sink_report_dropped_total` | counter | `sink` | [`SinkReport::stats`]`.dropped` |
//! | `events_sink_report_timeouts_total` | counter | `sink` | [`SinkReport::stats`]`.timed_out` |
//! | `events_sink_report_panics_total` | counter | `sink` | [`SinkReport::panics`] |
//! | `events_sink_report_queue_dropped_total` | counter | `sink` | [`SinkReport::queue_dropped`]: what its full queue in the feed dropped |
//! | `events_session_emitted_total` | counter | `session` | [`Session::stats`]`.emitted` |
//! | `events_session_disconnected_slow_total` | counter | `session` | [`Session::stats`]`.disconnected_slow` |
//! | `events_session_max_lag` | gauge | `session` | [`Session::stats`]`.max_lag` |
//! | `events_session_subscribers` | gauge | `session` | [`Session::stats`]`.subscribers` |
//! | `events_consumer_checkpoint` | gauge | `consumer` | [`ConsumerReport::checkpoint`](crate::ConsumerReport::checkpoint) (0 if unreadable) |
//! | `events_consumer_lag` | gauge | `consumer` | [`ConsumerReport::lag`](crate::ConsumerReport::lag): events after its checkpoint |
//! | `events_consumer_lag_bytes` | gauge | `consumer` | [`ConsumerReport::lag_bytes`](crate::ConsumerReport::lag_bytes): journal bytes it has to read |
//! | `events_consumer_pinned` | gauge | `consumer` | [`ConsumerReport::pinned`](crate::ConsumerReport::pinned): 1 or 0 |
//!
//! The `sink` label is the sink's [`SinkReport::name`]. The feed-wide
//! `events_sink_*_total` series include the feed's own sink queues and
//! timeout; the per-sink `events_sink_report_*` series break them down by
//! sink (what each sink reports itself, and what its queue in the feed
//! dropped), so they are named apart: sum one family or the other, not
//! both.
//!
//! **Lag.** What the feed keeps is published: a durable consumer's lag
//! (`events_consumer_lag`) comes from its checkpoint in the journal
//! directory; a plain `stream_from` consumer's position is its own (the
//! feed does not track those readers), so its lag shows as `events_lagged_fallbacks_total` (consumers that fell behind
//! the live tail) and `events_resets_total`. A session's fan-out keeps the
//! largest lag of its slowest subscriber that it saw when its ring was full
//! (the capacity, once a subscriber filled it; not a lag below that),
//! published by [`record_session`] as `events_session_max_lag`; a single
//! subscriber's current lag is on the subscriber itself
//! (`SessionSubscriber::lag`), exact, which its owner can publish.

use std::time::Duration;

use ::metrics::{Label, counter, gauge};
use events_core::{Codec, Event};

use crate::reader::FeedReader;
use crate::session::Session;
use crate::stats::{FeedStats, SinkReport};

/// The label every series carries: the feed's name.
pub const FEED_LABEL: &str = "feed";

/// The label of the per-sink series: the sink's [`SinkReport::name`].
pub const SINK_LABEL: &str = "sink";

/// The label of the per-session series: the session's id.
pub const SESSION_LABEL: &str = "session";

/// The label of the per-consumer series: the durable consumer's name.
pub const CONSUMER_LABEL: &str = "consumer";

/// The name of every series [`record`] and [`record_session`] publish, as
/// in the [table](self#metrics).
pub const METRIC_NAMES: [&str; 35] = [
    "events_appended_total",
    "events_dropped_total",
    "events_encode_errors_total",
    "events_batches_total",
    "events_bytes_total",
    "events_fsyncs_total",
    "events_lagged_fallbacks_total",
    "events_resets_total",
    "events_sink_dropped_total",
    "events_sink_timeouts_total",
    "events_sink_panics_total",
    "events_too_large_total",
    "events_prune_errors_total",
    "events_watermark_errors_total",
    "events_duplicates_total",
    "events_conflicts_total",
    "events_live_events",
    "events_live_evicted_total",
    "events_latest_seq",
    "events_earliest_seq",
    "events_healthy",
    "events_sink_report_emitted_total",
    "events_sink_report_filtered_total",
    "events_sink_report_dropped_total",
    "events_sink_report_timeouts_total",
    "events_sink_report_panics_total",
    "events_sink_report_queue_dropped_total",
    "events_session_emitted_total",
    "events_session_disconnected_slow_total",
    "events_session_max_lag",
    "events_session_subscribers",
    "events_consumer_checkpoint",
    "events_consumer_lag",
    "events_consumer_lag_bytes",
    "events_consumer_pinned",
];

/// Publishes `stats` under the label `feed="<feed>"` to the current
/// recorder (the one of [`metrics::with_local_recorder`]
/// if one is set on this thread, else the global one, else nothing).
///
/// # Example
///
/// ```
/// use events::{Event, Feed};
/// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let feed: Feed<Ping> = Feed::builder(tmp.path()).open().await?;
/// feed.append(None, Ping(1)).await?;
/// // With a Prometheus (or any other) recorder installed, this sets
/// // `events_appended_total{feed="pings"} 1` among others.
/// events::metrics::record(&feed.stats(), "pings");
/// # feed.close().await?; Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn record(stats: &FeedStats, feed: &str) {
    let labels = [Label::new(FEED_LABEL, feed.to_owned())];
    let totals = [
        ("events_appended_total", stats.appended),
        ("events_dropped_total", stats.dropped),
        ("events_encode_errors_total", stats.encode_errors),
        ("events_batches_total", stats.batches),
        ("events_bytes_total", stats.bytes),
        ("events_fsyncs_total", stats.fsyncs),
        ("events_lagged_fallbacks_total", stats.lagged_fallbacks),
        ("events_resets_total", stats.resets),
        ("events_sink_dropped_total", stats.sink_dropped),
        ("events_sink_timeouts_total", stats.sink_timeouts),
        ("events_sink_panics_total", stats.sink_panics),
        ("events_too_large_total", stats.too_large),
        ("events_prune_errors_total", stats.prune_errors),
        ("events_watermark_errors_total", stats.watermark_errors),
        ("events_duplicates_total", stats.duplicates),
        ("events_conflicts_total", stats.conflicts),
        ("events_live_evicted_total", stats.live_evicted),
    ];
    for (name, value) in totals {
        counter!(name, labels.iter()).absolute(value);
    }
    // Seqs can go down (a directory recreated under a follower), so gauges.
    gauge!("events_latest_seq", labels.iter()).set(as_gauge(stats.latest_seq));
    gauge!("events_earliest_seq", labels.iter()).set(as_gauge(stats.earliest_seq));
    gauge!("events_live_events", labels.iter()).set(as_gauge(stats.live_events));
    gauge!("events_healthy", labels.iter()).set(if stats.healthy { 1.0 } else { 0.0 });
    for sink in &stats.sinks {
        record_sink(sink, feed);
    }
    for consumer in &stats.consumers {
        let labels = [Label::new(FEED_LABEL, feed.to_owned()), Label::new(CONSUMER_LABEL, consumer.name.clone())];
        gauge!("events_consumer_checkpoint", labels.iter()).set(as_gauge(consumer.checkpoint.map_or(0, |s| s.get())));
        gauge!("events_consumer_lag", labels.iter()).set(as_gauge(consumer.lag));
        gauge!("events_consumer_lag_bytes", labels.iter()).set(as_gauge(consumer.lag_bytes));
        gauge!("events_consumer_pinned", labels.iter()).set(if consumer.pinned { 1.0 } else { 0.0 });
    }
}

/// One sink's series, labelled with the feed and the sink's name.
fn record_sink(sink: &SinkReport, feed: &str) {
    let labels = [Label::new(FEED_LABEL, feed.to_owned()), Label::new(SINK_LABEL, sink.name.clone())];
    let totals = [
        ("events_sink_report_emitted_total", sink.stats.emitted),
        ("events_sink_report_filtered_total", sink.stats.filtered),
        ("events_sink_report_dropped_total", sink.stats.dropped),
        ("events_sink_report_timeouts_total", sink.stats.timed_out),
        ("events_sink_report_panics_total", sink.panics),
        ("events_sink_report_queue_dropped_total", sink.queue_dropped),
    ];
    for (name, value) in totals {
        counter!(name, labels.iter()).absolute(value);
    }
}

/// Publishes a session's fan-out figures under `feed="<feed>"` and
/// `session="<id>"`: events emitted, subscribers closed for being slow,
/// the largest lag its slowest subscriber reached, and its subscriber
/// count. One series per session: call it only for sessions whose number
/// a metrics backend can hold.
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn record_session<E: Event>(session: &Session<E>, feed: &str) {
    let stats = session.stats();
    let labels = [Label::new(FEED_LABEL, feed.to_owned()), Label::new(SESSION_LABEL, session.id().to_owned())];
    counter!("events_session_emitted_total", labels.iter()).absolute(stats.emitted);
    counter!("events_session_disconnected_slow_total", labels.iter()).absolute(stats.disconnected_slow);
    gauge!("events_session_max_lag", labels.iter()).set(as_gauge(stats.max_lag));
    gauge!("events_session_subscribers", labels.iter()).set(stats.subscribers as f64);
}

/// Spawns a task on the current tokio runtime that [`record`]s `reader`'s
/// stats under `feed` into the *global* recorder (a task moves between
/// threads, so a thread-local one would not be seen) every `every`,
/// starting at once. It runs until the returned handle is aborted or the
/// runtime shuts down. The stats are read on the blocking pool: for a
/// [`FeedReader::open`] follower they come from the journal's files.
///
/// # Panics
///
/// Outside a tokio runtime, and if `every` is zero.
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn spawn_publisher<E: Event, C: Codec>(
    reader: FeedReader<E, C>,
    feed: impl Into<String>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let feed = feed.into();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            ticks.tick().await;
            let reader = reader.clone();
            let stats = tokio::task::spawn_blocking(move || reader.stats()).await;
            // A panicking `stats` is a bug elsewhere; skip this tick rather
            // than end the publisher.
            if let Ok(stats) = stats {
                record(&stats, &feed);
            }
        }
    })
}

/// A count as a gauge value: exact below 2^53, which no seq or lag reaches.
fn as_gauge(value: u64) -> f64 {
    value as f64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use ::metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use parking_lot::Mutex;

    use super::*;

    /// A value cell shared by a counter or gauge handle and the recorder.
    #[derive(Debug, Default)]
    struct Cell(AtomicU64);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, _: f64) {
            unreachable!("record only sets gauges")
        }
        fn decrement(&self, _: f64) {
            unreachable!("record only sets gauges")
        }
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    /// Every series registered, as `name{label=value,...}`, with its cell
    /// and whether it is a gauge (stored as f64 bits).
    #[derive(Debug, Default)]
    struct Capture(Mutex<BTreeMap<String, (bool, Arc<Cell>)>>);

    impl Capture {
        fn cell(&self, key: &Key, gauge: bool) -> Arc<Cell> {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let series = format!("{}{{{}}}", key.name(), labels.join(","));
            let mut map = self.0.lock();
            Arc::clone(&map.entry(series).or_insert_with(|| (gauge, Arc::default())).1)
        }

        fn values(&self) -> BTreeMap<String, u64> {
            let map = self.0.lock();
            let value = |(gauge, cell): &(bool, Arc<Cell>)| {
                let bits = cell.0.load(Ordering::Relaxed);
                if *gauge { f64::from_bits(bits) as u64 } else { bits }
            };
            map.iter().map(|(series, entry)| (series.clone(), value(entry))).collect()
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key, false))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell(key, true))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            unreachable!("record publishes no histogram")
        }
    }

    /// Distinct values for every field, so a field published under the
    /// wrong name shows.
    fn sample() -> FeedStats {
        let mut sink =
            SinkReport { name: "audit".to_owned(), panics: 105, queue_dropped: 106, ..SinkReport::default() };
        sink.stats.emitted = 101;
        sink.stats.filtered = 102;
        sink.stats.dropped = 103;
        sink.stats.timed_out = 104;
        FeedStats {
            appended: 1,
            dropped: 2,
            encode_errors: 3,
            batches: 4,
            bytes: 5,
            fsyncs: 6,
            lagged_fallbacks: 7,
            resets: 8,
            sink_dropped: 9,
            sink_timeouts: 10,
            sink_panics: 11,
            sinks: vec![sink],
            too_large: 12,
            prune_errors: 13,
            watermark_errors: 22,
            duplicates: 18,
            conflicts: 19,
            live_events: 20,
            live_evicted: 21,
            latest_seq: 14,
            earliest_seq: 15,
            healthy: true,
            problem: None,
            consumers: vec![crate::ConsumerReport::for_test("indexer", 16, 17, true)],
        }
    }

    #[test]
    fn record_publishes_each_field_under_its_name() {
        let capture = Capture::default();
        ::metrics::with_local_recorder(&capture, || record(&sample(), "orders"));
        let f = "{feed=orders}";
        let s = "{feed=orders,sink=audit}";
        let expected: BTreeMap<String, u64> = [
            (format!("events_appended_total{f}"), 1),
            (format!("events_dropped_total{f}"), 2),
            (format!("events_encode_errors_total{f}"), 3),
            (format!("events_batches_total{f}"), 4),
            (format!("events_bytes_total{f}"), 5),
            (format!("events_fsyncs_total{f}"), 6),
            (format!("events_lagged_fallbacks_total{f}"), 7),
            (format!("events_resets_total{f}"), 8),
            (format!("events_sink_dropped_total{f}"), 9),
            (format!("events_sink_timeouts_total{f}"), 10),
            (format!("events_sink_panics_total{f}"), 11),
            (format!("events_too_large_total{f}"), 12),
            (format!("events_prune_errors_total{f}"), 13),
            (format!("events_watermark_errors_total{f}"), 22),
            (format!("events_duplicates_total{f}"), 18),
            (format!("events_conflicts_total{f}"), 19),
            (format!("events_live_events{f}"), 20),
            (format!("events_live_evicted_total{f}"), 21),
            (format!("events_latest_seq{f}"), 14),
            (format!("events_earliest_seq{f}"), 15),
            (format!("events_healthy{f}"), 1),
            (format!("events_sink_report_emitted_total{s}"), 101),
            (format!("events_sink_report_filtered_total{s}"), 102),
            (format!("events_sink_report_dropped_total{s}"), 103),
            (format!("events_sink_report_timeouts_total{s}"), 104),
            (format!("events_sink_report_panics_total{s}"), 105),
            (format!("events_sink_report_queue_dropped_total{s}"), 106),
            ("events_consumer_checkpoint{feed=orders,consumer=indexer}".to_owned(), 16),
            ("events_consumer_lag{feed=orders,consumer=indexer}".to_owned(), 17),
            ("events_consumer_lag_bytes{feed=orders,consumer=indexer}".to_owned(), 1700),
            ("events_consumer_pinned{feed=orders,consumer=indexer}".to_owned(), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(capture.values(), expected);
    }

    #[tokio::test]
    async fn record_session_publishes_the_fanout_figures() {
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        struct Tick(u32);
        impl Event for Tick {}

        let tmp = tempfile::tempdir().unwrap();
        let feed: crate::Feed<Tick> = crate::Feed::builder(tmp.path()).open().await.unwrap();
        let session = feed.session("s1");
        let _first = session.subscribe();
        let _second = session.subscribe();
        for n in 0..3 {
            session.emit(Tick(n)).await.unwrap();
        }
        let capture = Capture::default();
        ::metrics::with_local_recorder(&capture, || record_session(&session, "orders"));
        let labels = "{feed=orders,session=s1}";
        let expected: BTreeMap<String, u64> = [
            (format!("events_session_emitted_total{labels}"), 3),
            (format!("events_session_disconnected_slow_total{labels}"), 0),
            (format!("events_session_max_lag{labels}"), session.stats().max_lag),
            (format!("events_session_subscribers{labels}"), 2),
        ]
        .into_iter()
        .collect();
        assert_eq!(capture.values(), expected);
        drop(session);
        feed.close().await.unwrap();
    }

    // Current-thread: the publisher task runs on this thread, so the
    // thread-local recorder set here is the one it sees.
    #[tokio::test(flavor = "current_thread")]
    async fn spawn_publisher_refreshes_on_its_interval() {
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        struct Tick(u32);
        impl Event for Tick {}

        let tmp = tempfile::tempdir().unwrap();
        let feed: crate::Feed<Tick> = crate::Feed::builder(tmp.path()).open().await.unwrap();
        let capture = Capture::default();
        let _local = ::metrics::set_default_local_recorder(&capture);
        let publisher = spawn_publisher(feed.reader(), "ticks", Duration::from_millis(5));
        let appended = || capture.values().get("events_appended_total{feed=ticks}").copied();
        for n in 1..=3 {
            feed.append(None, Tick(n)).await.unwrap();
            // Polled: the publisher has no completion signal, by design.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while appended() != Some(u64::from(n)) {
                assert!(tokio::time::Instant::now() < deadline, "not published: {:?}", capture.values());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        publisher.abort();
        feed.close().await.unwrap();
    }

    #[test]
    fn names_are_prometheus_names_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in METRIC_NAMES {
            assert!(name.starts_with("events_"), "{name}");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn record_uses_only_listed_names() {
        let capture = Capture::default();
        ::metrics::with_local_recorder(&capture, || record(&sample(), "orders"));
        for series in capture.values().keys() {
            let name = &series[..series.find('{').unwrap_or(series.len())];
            assert!(METRIC_NAMES.contains(&name), "{name} is not in METRIC_NAMES");
        }
    }

    #[test]
    fn module_docs_list_every_name() {
        let docs = include_str!("metrics.rs");
        for name in METRIC_NAMES {
            assert!(docs.contains(&format!("| `{name}` |")), "{name} is missing from the table");
        }
    }
}
