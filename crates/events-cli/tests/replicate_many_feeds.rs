//! Many feeds, one stream: three journals (one per "machine") replicate
//! into one shared JetStream stream through three `events replicate
//! --shared` processes, each on its own subject `app.<feed id>` (two chosen
//! ids, one derived from the journal's epoch). One replicator is SIGKILLed
//! mid-way and restarted while the journals grow. A remote reader of every
//! feed (`RemoteFeeds`, one cursor per feed) reads throughout, stops once
//! and resumes from its serialized cursors; a reader of one feed
//! (`RemoteFeed`, subject filter) resumes from a cursor. Each feed arrives
//! complete, in order, once, with its own events; the stream holds each
//! feed's seqs exactly once, in order, on its subject.
//!
//! Neighbours: `tests/support` (server, child processes and their JSON lines).

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use events::layers::journal::{Journal, JournalOptions, Reader, SyncPolicy};
use events::{Bincode, Cursor, Event, FeedItem, Seq};
use events_nats::{FeedCursors, RemoteFeed, RemoteFeeds, StreamSpec};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use support::{Replicate, STEP, Server};

/// What the test's journals hold: which feed wrote it and its number there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ev {
    feed: String,
    n: u64,
}

impl Event for Ev {}

const HALF: u64 = 1_500;
const TOTAL: u64 = 2 * HALF;

/// Appends the events `from..=to` of feed `name` to the journal in `dir`.
fn fill(dir: &Path, name: &str, from: u64, to: u64) {
    let (mut journal, _) = Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Never).codec_tag(1)).unwrap();
    assert_eq!(journal.next_seq(), from);
    let payloads: Vec<Vec<u8>> = (from..=to)
        .map(|n| {
            let mut out = Vec::new();
            events::payload::encode(&Bincode, Some("s"), &Ev { feed: name.into(), n }, &mut out).unwrap();
            out
        })
        .collect();
    journal.append_batch(payloads.iter().map(|p| (1_000, p.as_slice()))).unwrap();
    journal.close().unwrap();
}

/// Reads every feed from `cursors` until each of `feeds` reached `until`,
/// checking each feed's order and content; returns the cursors.
async fn read_feeds(
    all: &RemoteFeeds<Ev>,
    mut cursors: FeedCursors,
    feeds: &BTreeMap<String, String>,
    until: u64,
) -> FeedCursors {
    let mut items = all.stream_from(&cursors).await.unwrap();
    let done = |c: &FeedCursors| feeds.keys().all(|f| c.get(f).is_some_and(|c| c.seq.get() >= until));
    while !done(&cursors) {
        let item = tokio::time::timeout(STEP, items.next()).await.expect("next item").expect("no end").unwrap();
        let FeedItem::Event(env) = &item.item else {
            panic!("unexpected reset in feed {}: {:?}", item.feed, item.item)
        };
        let before = cursors.get(&item.feed).map_or(0, |c| c.seq.get());
        assert_eq!(env.seq.get(), before + 1, "feed {} in order, no gap, no duplicate", item.feed);
        let name = feeds.get(&*item.feed).unwrap_or_else(|| panic!("unknown feed {}", item.feed));
        assert_eq!(env.event, Ev { feed: name.clone(), n: env.seq.get() }, "the event of feed {}", item.feed);
        cursors.advance(&item);
    }
    cursors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_feeds_share_one_stream_and_read_back_per_feed() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let names = ["alpha", "beta", "gamma"];
    let dirs: Vec<_> = names.iter().map(|n| tmp.path().join(n)).collect();
    for (dir, name) in dirs.iter().zip(names) {
        fill(dir, name, 1, HALF);
    }
    // Feed id: chosen for the first two, derived from the epoch for the third.
    let gamma_id = Reader::open(&dirs[2]).unwrap().epoch().unwrap().to_string();
    let args = |i: usize| -> Vec<String> {
        let mut a = vec!["--subject".into(), "app".into(), "--shared".into()];
        if i < 2 {
            a.extend(["--feed".into(), names[i].into()]);
        }
        a
    };
    let start = |i: usize| {
        let args = args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Replicate::start(&dirs[i], &server.url(), "MANY", &args)
    };
    let mut runs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (run, started) = start(i);
        let id = if i < 2 { (*name).to_owned() } else { gamma_id.clone() };
        assert_eq!(started["subject"].as_str(), Some(format!("app.{id}").as_str()), "{started}");
        runs.push(Some(run));
    }
    let feeds: BTreeMap<String, String> =
        [("alpha", "alpha"), ("beta", "beta"), (gamma_id.as_str(), "gamma")].map(|(a, b)| (a.into(), b.into())).into();

    // Every feed, from the start, while the replicators run.
    let spec = StreamSpec::shared("MANY", "app");
    let all: RemoteFeeds<Ev> = RemoteFeeds::new(js.clone(), spec.clone());
    let reader = {
        let (all, feeds) = (RemoteFeeds::new(js.clone(), spec.clone()), feeds.clone());
        tokio::spawn(async move { read_feeds(&all, FeedCursors::new(), &feeds, HALF / 2).await })
    };

    // alpha's replicator crashes mid-way; every journal grows; it restarts.
    let mut alpha = runs[0].take().unwrap();
    let progress = alpha.progress_until(|p| p["replicated"].as_u64() > Some(0));
    eprintln!("alpha SIGKILLed after {progress}");
    alpha.kill();
    for (dir, name) in dirs.iter().zip(names) {
        fill(dir, name, HALF + 1, TOTAL);
    }
    let (alpha, started) = start(0);
    eprintln!("alpha restarted: {started}");
    runs[0] = Some(alpha);

    // The reader stops half-way, keeps its cursors as text (an SSE id, a
    // checkpoint), and resumes from them to the end.
    let half_way = reader.await.unwrap();
    let checkpoint = half_way.to_string();
    assert!(checkpoint.contains("alpha:") && checkpoint.contains("beta:"), "{checkpoint}");
    let resumed: FeedCursors = checkpoint.parse().unwrap();
    assert_eq!(resumed, half_way);
    let end = read_feeds(&all, resumed, &feeds, TOTAL).await;
    assert!(feeds.keys().all(|f| end.get(f).is_some_and(|c| c.seq.get() == TOTAL)), "{end}");

    // One feed alone, by its subject, from its cursor.
    let beta: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone().feed("beta"));
    let beta_epoch = Reader::open(&dirs[1]).unwrap().epoch().unwrap();
    let mut items = beta.stream_from(Cursor::new(Seq::new(TOTAL - 100), beta_epoch)).await.unwrap();
    for n in TOTAL - 99..=TOTAL {
        let item = tokio::time::timeout(STEP, items.next()).await.unwrap().unwrap().unwrap();
        let FeedItem::Event(env) = item else { panic!("unexpected {item:?}") };
        assert_eq!((env.seq.get(), &env.event), (n, &Ev { feed: "beta".into(), n }));
    }

    for run in runs.into_iter().flatten() {
        let (stopped, status) = run.terminate();
        assert!(status.success());
        assert_eq!(stopped["replicated"].as_u64(), Some(TOTAL), "{stopped}");
    }

    // The stream itself: each subject holds its feed's seqs once, in order.
    let stream = js.get_stream("MANY").await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 3 * TOTAL);
    for id in feeds.keys() {
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("app.{id}"),
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        for n in 1..=TOTAL {
            let msg = tokio::time::timeout(STEP, messages.next()).await.unwrap().unwrap().unwrap();
            let id_header = msg.message.headers.as_ref().unwrap().get("Nats-Msg-Id").unwrap().as_str().to_owned();
            assert_eq!(events_nats::headers::parse_msg_id(&id_header).map(|(_, seq)| seq), Some(n), "feed {id}");
        }
    }
}
