//! `GET /metrics` after a known workload: a real feed (fsync on every
//! batch) with a named sink takes 37 appends, and a scrape must show
//! exactly those figures in the Prometheus text format, labelled with the
//! feed's name; two routers in one process keep their series apart; a
//! router that did not ask for metrics has no such route.

#![cfg(feature = "metrics")]

mod support;

use std::collections::BTreeMap;

use events::layers::sink::ChannelSink;
use events::{Envelope, Feed, SyncPolicy};
use events_http::FeedRouter;
use support::{Sse, TestEvent, WAIT, append, feed, serve};

const APPENDS: u64 = 37;

/// One scraped sample: the metric name and its labels, sorted.
type Series = (String, BTreeMap<String, String>);

/// The samples of a text exposition, by series. Panics on a line that is
/// neither a comment nor `name{labels} value`.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("bad value ({e}): {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("no '}}': {line:?}"))),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("bad label: {line:?}"));
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        assert!(samples.insert((name.to_owned(), labels), value).is_none(), "twice: {line:?}");
    }
    samples
}

/// The value of `name` with exactly `labels`; panics if absent.
fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let key = (name.to_owned(), labels);
    *samples.get(&key).unwrap_or_else(|| panic!("no sample {key:?} among {:?}", samples.keys()))
}

/// `GET http://{addr}/metrics`, checked for 200 and the exposition's
/// content type, parsed.
async fn scrape(addr: std::net::SocketAddr) -> BTreeMap<Series, f64> {
    let response = support::get(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_after_a_known_workload_shows_exact_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, mut delivered) = ChannelSink::<Envelope<TestEvent>>::new(APPENDS as usize);
    let feed: Feed<TestEvent> =
        Feed::builder(tmp.path()).sync(SyncPolicy::Always).named_sink("audit", sink).open().await.unwrap();
    append(&feed, Some("orders"), 1..=APPENDS).await;
    // Sinks are called after the append returned: wait until the last
    // event reached this one, so its counters are final.
    for n in 1..=APPENDS {
        let envelope = tokio::time::timeout(WAIT, delivered.recv()).await.expect("sink in time").unwrap();
        assert_eq!(envelope.event.n, n);
    }

    let routes = FeedRouter::new(feed.reader()).metrics("orders");
    let mut clients = routes.clients();
    let addr = serve(routes.build()).await;
    let _client = Sse::open(&format!("http://{addr}/stream?since=latest"), None).await;
    tokio::time::timeout(WAIT, clients.wait_for(|n| *n == 1)).await.expect("client counted").unwrap();

    let samples = scrape(addr).await;
    let stats = feed.stats();
    let feed_label = [("feed", "orders")];
    let total = |name: &str| value(&samples, name, &feed_label);
    assert_eq!(total("events_appended_total"), 37.0);
    assert_eq!(total("events_latest_seq"), 37.0);
    assert_eq!(total("events_earliest_seq"), 1.0);
    assert_eq!(total("events_healthy"), 1.0);
    assert_eq!(total("events_http_clients"), 1.0);
    // One append at a time: every batch held one event and, under
    // `SyncPolicy::Always`, was fsynced.
    assert_eq!(total("events_batches_total"), 37.0);
    assert!(total("events_fsyncs_total") >= 37.0, "{}", total("events_fsyncs_total"));
    assert_eq!(total("events_fsyncs_total"), stats.fsyncs as f64);
    assert_eq!(total("events_bytes_total"), stats.bytes as f64);
    assert!(stats.bytes > 0);
    // Every other feed-wide counter is 0 in this workload.
    let counted = ["events_appended_total", "events_batches_total", "events_bytes_total", "events_fsyncs_total"];
    let feed_wide = |name: &&str| !name.starts_with("events_sink_report_") && !name.starts_with("events_session_");
    let zeros = events::metrics::METRIC_NAMES.into_iter().filter(feed_wide).filter(|name| name.ends_with("_total"));
    for name in zeros.filter(|name| !counted.contains(name)) {
        assert_eq!(total(name), 0.0, "{name}");
    }
    let sink_labels = [("feed", "orders"), ("sink", "audit")];
    assert_eq!(value(&samples, "events_sink_report_emitted_total", &sink_labels), 37.0);
    assert_eq!(value(&samples, "events_sink_report_dropped_total", &sink_labels), 0.0);
    assert_eq!(value(&samples, "events_sink_report_panics_total", &sink_labels), 0.0);

    // Every series is the feed's: the router's recorder holds nothing else.
    for (name, labels) in samples.keys() {
        assert!(name.starts_with("events_"), "{name}");
        assert_eq!(labels.get("feed").map(String::as_str), Some("orders"), "{name} {labels:?}");
    }

    // The next scrape is refreshed, not cached.
    append(&feed, None, 38..=40).await;
    let samples = scrape(addr).await;
    assert_eq!(value(&samples, "events_appended_total", &feed_label), 40.0);
    assert_eq!(value(&samples, "events_latest_seq", &feed_label), 40.0);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_in_one_process_keep_their_series_apart() {
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (feed_a, feed_b) = (feed(tmp_a.path()).await, feed(tmp_b.path()).await);
    append(&feed_a, None, 1..=2).await;
    append(&feed_b, None, 1..=5).await;
    let addr_a = serve(FeedRouter::new(feed_a.reader()).metrics("a").build()).await;
    let addr_b = serve(FeedRouter::new(feed_b.reader()).metrics("b").build()).await;

    let (samples_a, samples_b) = (scrape(addr_a).await, scrape(addr_b).await);
    assert_eq!(value(&samples_a, "events_appended_total", &[("feed", "a")]), 2.0);
    assert_eq!(value(&samples_b, "events_appended_total", &[("feed", "b")]), 5.0);
    assert!(samples_a.keys().all(|(_, labels)| labels["feed"] == "a"), "{:?}", samples_a.keys());
    assert!(samples_b.keys().all(|(_, labels)| labels["feed"] == "b"), "{:?}", samples_b.keys());
    feed_a.close().await.unwrap();
    feed_b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_the_route_is_a_404() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.reader())).await;
    let response = support::get(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(response.status(), 404);
    feed.close().await.unwrap();
}

/// Each scrape of the router's own recorder is the feed as it is now: the
/// series of a durable consumer deleted since the last scrape are gone. The
/// recorder lived as long as the router, and kept `events_consumer_pinned`
/// and the rest of a deleted consumer (alerts on lag fired for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_consumer_leaves_the_next_scrape() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, None, 1..=3).await;
    let consumer = feed.consumer("indexer").await.unwrap();
    drop(consumer);
    let addr = serve(FeedRouter::new(feed.reader()).metrics("f").build()).await;
    let labels = [("feed", "f"), ("consumer", "indexer")];
    assert_eq!(value(&scrape(addr).await, "events_consumer_lag", &labels), 3.0);
    assert!(feed.reader().delete_consumer("indexer").unwrap());
    let samples = scrape(addr).await;
    let left: Vec<_> = samples.keys().filter(|(_, l)| l.contains_key("consumer")).collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(value(&samples, "events_appended_total", &[("feed", "f")]), 3.0);
    feed.close().await.unwrap();
}

/// A follower (`FeedReader::open`) whose directory is deleted scrapes as
/// unhealthy (`events_healthy` 0, as `/status` says), and healthy again
/// once a journal is made there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_cannot_read_its_journal_scrapes_as_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let writer = feed(&dir).await;
    append(&writer, None, 1..=3).await;
    writer.close().await.unwrap();
    let reader: events::FeedReader<TestEvent> = events::FeedReader::open(&dir).unwrap();
    let addr = serve(FeedRouter::new(reader).metrics("f").build()).await;
    let healthy = |samples: &BTreeMap<Series, f64>| value(samples, "events_healthy", &[("feed", "f")]);
    assert_eq!(healthy(&scrape(addr).await), 1.0);

    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(healthy(&scrape(addr).await), 0.0);

    let writer = feed(&dir).await;
    append(&writer, None, 1..=2).await;
    let samples = scrape(addr).await;
    assert_eq!((healthy(&samples), value(&samples, "events_latest_seq", &[("feed", "f")])), (1.0, 2.0));
    writer.close().await.unwrap();
}
