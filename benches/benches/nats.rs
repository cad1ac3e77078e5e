//! JetStream replication against raw pipelined `async-nats` publishing.
//!
//! * `raw`: N plain 200-byte messages published with `async-nats` JetStream,
//!   a window of W acknowledgement futures awaited in order (the fastest
//!   correct way to publish with acks; no headers).
//! * `replicator`: the same N payloads as journal records, replicated by
//!   `events_nats::Replicator` with the same window: journal reads, three
//!   headers per message (`Nats-Msg-Id` = `<epoch>-<seq>`, expected last
//!   sequence, timestamp), and ack checks included. Goal: ≥ 0.8× raw.
//! * `raw_min_headers`: raw pipelined publishing with the two headers
//!   exactly-once, gap-free replication cannot do without (`Nats-Msg-Id`,
//!   expected last sequence): the replicator's real ceiling.
//! * `raw_guard_only`: raw pipelined publishing with the expected last
//!   sequence alone, one header: the ceiling of any publisher that guards
//!   its writes against a gap or a duplicate (context for the goal: a
//!   replicator that must say which journal record each message is cannot
//!   beat it).
//! * `raw_headers`: raw pipelined publishing of the same messages the
//!   replicator sends (same three headers, same values), to separate the
//!   replicator's own cost from what headers cost the client and server.
//!   On this machine the first header costs raw publishing about 20–30%,
//!   each further one a few percent more.
//! * `one-by-one`: each publish awaits its ack before the next (context).
//!
//! * `r3_*`: `raw`, `raw_headers` and `replicator` again, into an R3 stream
//!   on a local 3-node cluster (three `nats-server` processes on 127.0.0.1,
//!   the durable configuration, see docs/DEPLOYING.md). Goal: the
//!   replicator ≥ 0.8× raw pipelined publishing with the same headers.
//!
//! The bench starts its own `nats-server -js` on a free 127.0.0.1 port with
//! a temporary store, then its own 3-node cluster, and kills them at the
//! end. Each round uses a fresh stream; rounds alternate between the sides
//! and the medians are compared. `EVENTS_NATS_BENCH_N` overrides N (default
//! 100,000).

use std::collections::VecDeque;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use events::layers::journal::{Journal, JournalOptions, SyncPolicy};
use events_nats::{Replicator, StreamSpec};
use events_testkit::nats::free_ports;

const PAYLOAD: usize = 200;
const WINDOW: usize = 256;
const ROUNDS: usize = 3;
const ONE_BY_ONE: u64 = 5_000;
/// A typical epoch: as many digits as a random u64.
const EPOCH: u64 = 12_345_678_901_234_567_890;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `nats-server` with `args` and waits until it listens on `port`.
fn spawn_server(args: &[&std::ffi::OsStr], port: u16) -> Server {
    let child = Command::new(events_testkit::nats::nats_server())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed (`cargo xtask ci` installs it)");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn start_server(store: &std::path::Path) -> (Server, u16) {
    let port = free_ports(1)[0];
    let port_arg = port.to_string();
    let args = ["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"].map(std::ffi::OsStr::new);
    let mut args = args.to_vec();
    args.push(store.as_os_str());
    (spawn_server(&args, port), port)
}

/// Three nodes routed to each other, each with its own store under `dir`;
/// returns them and their client ports.
fn start_cluster(dir: &std::path::Path) -> (Vec<Server>, Vec<u16>) {
    let ports: Vec<(u16, u16)> = free_ports(6).chunks(2).map(|p| (p[0], p[1])).collect();
    let routes: Vec<String> = ports.iter().map(|(_, r)| format!("nats-route://127.0.0.1:{r}")).collect();
    let mut servers = Vec::new();
    for (i, (port, route)) in ports.iter().enumerate() {
        let config = dir.join(format!("n{i}.conf"));
        let store = dir.join(format!("store-n{i}"));
        std::fs::write(
            &config,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: bench, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            ),
        )
        .unwrap();
        servers.push(spawn_server(&[std::ffi::OsStr::new("-c"), config.as_os_str()], *port));
    }
    (servers, ports.iter().map(|(p, _)| *p).collect())
}

/// Creates stream `name` on `subject` with `replicas`, waiting while a
/// cluster elects its meta leader, and returns the connection to publish
/// with: in a cluster, the one to the stream's leader (node `n<i>` is
/// `nodes[i]`), so every side publishes without an extra hop whichever
/// node the cluster placed its stream on.
async fn fresh_stream(nodes: &[Context], name: &str, subject: &str, replicas: usize) -> Context {
    let js = &nodes[0];
    let _ = js.delete_stream(name).await;
    let config = Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: StorageType::File,
        num_replicas: replicas,
        ..Config::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = js.create_stream(config.clone()).await {
        assert!(Instant::now() < deadline, "cannot create stream {name}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if nodes.len() == 1 {
        return js.clone();
    }
    loop {
        let leader = js.get_stream(name).await.unwrap().get_info().await.unwrap().cluster.and_then(|c| c.leader);
        if let Some(i) = leader.and_then(|l| l.strip_prefix('n')?.parse::<usize>().ok()) {
            return nodes[i].clone();
        }
        assert!(Instant::now() < deadline, "stream {name} has no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which headers raw publishing sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Headers {
    /// None: plain `publish`.
    None,
    /// The minimum an exactly-once, gap-free replication needs:
    /// `Nats-Msg-Id` (`<epoch>-<seq>`) and the expected last sequence.
    Minimum,
    /// What the replicator sends (the minimum, plus the timestamp).
    Same,
    /// The expected last sequence alone: one header.
    GuardOnly,
}

async fn raw(nodes: &[Context], n: u64, round: usize, headers: Headers, replicas: usize) -> Duration {
    let (name, subject) = (format!("RAW{round}{headers:?}"), format!("bench.raw{round}{headers:?}"));
    let js = &fresh_stream(nodes, &name, &subject, replicas).await;
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let start = Instant::now();
    let mut window = VecDeque::with_capacity(WINDOW);
    for seq in 1..=n {
        if window.len() == WINDOW {
            let ack: jetstream::context::PublishAckFuture = window.pop_front().unwrap();
            ack.await.unwrap();
        }
        if headers == Headers::None {
            window.push_back(js.publish(subject.clone(), payload.clone()).await.unwrap());
            continue;
        }
        let mut message = PublishMessage::build().payload(payload.clone());
        if headers == Headers::Same {
            // What the replicator sends for seq `seq` of a fresh stream.
            let mut h = async_nats::HeaderMap::new();
            h.insert(events_nats::headers::TIMESTAMP, 1_000u64.to_string());
            message = message.headers(h);
        }
        if headers != Headers::GuardOnly {
            message = message.message_id(events_nats::headers::msg_id(EPOCH, seq));
        }
        let message = message.expected_last_sequence(seq - 1);
        window.push_back(js.send_publish(subject.clone(), message).await.unwrap());
    }
    for ack in window {
        ack.await.unwrap();
    }
    let elapsed = start.elapsed();
    js.delete_stream(&name).await.unwrap();
    elapsed
}

async fn replicated(nodes: &[Context], dir: &std::path::Path, n: u64, round: usize, replicas: usize) -> Duration {
    let (name, subject) = (format!("REP{round}"), format!("bench.rep{round}"));
    // Created first (as for raw publishing), so the timing excludes the
    // cluster placing a new stream; the replicator checks it.
    let js = &fresh_stream(nodes, &name, &subject, replicas).await;
    let spec = StreamSpec::new(&name, &subject).replicas(replicas);
    // The clock starts once `start` returned: its set-up (the stream's
    // check, the resync, the checkpoint file) is outside, as the raw
    // side's stream lookup is; its task, spawned last, has barely started.
    let replicator = Replicator::builder(dir, js.clone(), spec).window(WINDOW).start().await.unwrap();
    let start = Instant::now();
    replicator.wait_for(n).await.unwrap();
    let elapsed = start.elapsed();
    let stats = replicator.stats();
    assert_eq!((stats.replicated, stats.errors, stats.published), (n, 0, n), "{stats:?}");
    replicator.shutdown().await;
    js.delete_stream(&name).await.unwrap();
    elapsed
}

async fn one_by_one(js: &Context) -> Duration {
    fresh_stream(std::slice::from_ref(js), "ONE", "bench.one", 1).await;
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let start = Instant::now();
    for _ in 0..ONE_BY_ONE {
        js.publish("bench.one", payload.clone()).await.unwrap().await.unwrap();
    }
    let elapsed = start.elapsed();
    js.delete_stream("ONE").await.unwrap();
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo bench -- --list` and test harness probes; a filter naming
    // other benches skips these (their rows then read "not run").
    if std::env::args().any(|a| a == "--list") || events_benches::filtered_out(&["nats"]) {
        return;
    }
    let n: u64 = std::env::var("EVENTS_NATS_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let store = tempfile::tempdir().unwrap();
    let journal_dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(journal_dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let payload = vec![7u8; PAYLOAD];
    for chunk in 0..n.div_ceil(4096) {
        let count = (n - chunk * 4096).min(4096);
        journal.append_batch((0..count).map(|_| (1_000, payload.as_slice()))).unwrap();
    }
    journal.sync().unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_server, port) = start_server(store.path());
    runtime.block_on(async {
        let js = jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await.unwrap());
        // Warm-up: connections, the server's file store, allocator.
        let nodes = std::slice::from_ref(&js);
        raw(nodes, n / 10, 99, Headers::None, 1).await;
        let (mut raws, mut raw_guard, mut raw_min, mut raw_headers, mut ours) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            raws.push(raw(nodes, n, round, Headers::None, 1).await);
            raw_guard.push(raw(nodes, n, round, Headers::GuardOnly, 1).await);
            raw_min.push(raw(nodes, n, round, Headers::Minimum, 1).await);
            raw_headers.push(raw(nodes, n, round, Headers::Same, 1).await);
            ours.push(replicated(nodes, journal_dir.path(), n, round, 1).await);
        }
        let serial = one_by_one(&js).await;
        let (raw_rate, our_rate) = (rate(n, median(raws)), rate(n, median(ours)));
        let (headers_rate, min_rate) = (rate(n, median(raw_headers)), rate(n, median(raw_min)));
        let guard_rate = rate(n, median(raw_guard));
        println!("nats/raw_pipelined      {n} x {PAYLOAD} B, window {WINDOW}: {raw_rate:>10.0} msg/s (median of {ROUNDS})");
        println!("nats/raw_guard_only     {n} x {PAYLOAD} B, window {WINDOW}: {guard_rate:>10.0} msg/s (median of {ROUNDS})");
        println!("nats/raw_min_headers    {n} x {PAYLOAD} B, window {WINDOW}: {min_rate:>10.0} msg/s (median of {ROUNDS})");
        println!("nats/raw_headers        {n} x {PAYLOAD} B, window {WINDOW}: {headers_rate:>10.0} msg/s (median of {ROUNDS})");
        println!("nats/replicator         {n} x {PAYLOAD} B, window {WINDOW}: {our_rate:>10.0} msg/s (median of {ROUNDS})");
        println!("nats/one_by_one         {ONE_BY_ONE} x {PAYLOAD} B:             {:>10.0} msg/s", rate(ONE_BY_ONE, serial));
        println!("nats/ratio replicator / raw pipelined = {:.2} (goal >= 0.80)", our_rate / raw_rate);
        println!("nats/ratio replicator / raw with the same headers = {:.2}", our_rate / headers_rate);
        println!("nats/ratio replicator / raw with the minimum headers = {:.2}", our_rate / min_rate);
        println!("nats/ratio replicator / raw with the guard alone = {:.2}", our_rate / guard_rate);
        println!("nats/ratio raw with the guard alone / raw pipelined = {:.2}", guard_rate / raw_rate);
    });

    // The same into an R3 stream on a local 3-node cluster.
    let cluster_dir = tempfile::tempdir().unwrap();
    let (_cluster, ports) = start_cluster(cluster_dir.path());
    runtime.block_on(async {
        // One connection per node (`n<i>` on `ports[i]`).
        let mut nodes = Vec::new();
        for port in &ports {
            nodes.push(jetstream::new(async_nats::connect(format!("127.0.0.1:{port}")).await.unwrap()));
        }
        raw(&nodes, n / 10, 99, Headers::None, 3).await;
        let (mut raws, mut raw_min, mut raw_headers, mut ours) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            raws.push(raw(&nodes, n, round, Headers::None, 3).await);
            raw_min.push(raw(&nodes, n, round, Headers::Minimum, 3).await);
            raw_headers.push(raw(&nodes, n, round, Headers::Same, 3).await);
            ours.push(replicated(&nodes, journal_dir.path(), n, round, 3).await);
        }
        let (raw_rate, our_rate) = (rate(n, median(raws)), rate(n, median(ours)));
        let (headers_rate, min_rate) = (rate(n, median(raw_headers)), rate(n, median(raw_min)));
        println!("nats/r3_raw_pipelined   {n} x {PAYLOAD} B, window {WINDOW}: {raw_rate:>10.0} msg/s (R3, 3 local nodes, median of {ROUNDS})");
        println!("nats/r3_raw_min_headers {n} x {PAYLOAD} B, window {WINDOW}: {min_rate:>10.0} msg/s (R3, 3 local nodes, median of {ROUNDS})");
        println!("nats/r3_raw_headers     {n} x {PAYLOAD} B, window {WINDOW}: {headers_rate:>10.0} msg/s (R3, 3 local nodes, median of {ROUNDS})");
        println!("nats/r3_replicator      {n} x {PAYLOAD} B, window {WINDOW}: {our_rate:>10.0} msg/s (R3, 3 local nodes, median of {ROUNDS})");
        println!("nats/ratio R3 replicator / raw with the same headers = {:.2} (goal >= 0.80)", our_rate / headers_rate);
        println!("nats/ratio R3 replicator / raw pipelined = {:.2}", our_rate / raw_rate);
        println!("nats/ratio R3 replicator / raw with the minimum headers = {:.2}", our_rate / min_rate);
    });
}
