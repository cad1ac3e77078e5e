//! A 3-node JetStream cluster owned by a test: three `nats-server`
//! processes on free 127.0.0.1 ports (client and route ports distinct),
//! routes to each other, each with its own store directory under one
//! temporary directory; nodes can be SIGKILLed and restarted on the same
//! ports and stores, and the stream leader looked up.
//!
//! Neighbours: `support/mod.rs` (the single server and the stream checks).
//! Invariant: every wait polls a real condition (a TCP connect, the meta
//! leader answering, a stream's cluster info) under a deadline, and every
//! process is killed by its PID on drop, so a failing test leaves no server.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Context};

use super::{free_ports, start_nats_server};

/// How long the cluster may take to elect a leader or heal.
const READY: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn spawn(&mut self) {
        let mut command = Command::new(events_testkit::nats::nats_server());
        command.arg("-c").arg(&self.config);
        self.child = Some(start_nats_server(command, self.port, &self.name));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

/// Three `nats-server -js` nodes in one cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the three nodes (`n1`, `n2`, `n3`) and waits until each
    /// listens (JetStream needs [`Cluster::jetstream`] to elect its leader).
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = free_ports(6).chunks(2).map(|p| (p[0], p[1])).collect();
        let routes: Vec<String> = ports.iter().map(|(_, route)| format!("nats-route://127.0.0.1:{route}")).collect();
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(format!("store-{name}"));
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: events-test, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(Node { name, port: *port, config, child: None });
        }
        for node in &mut nodes {
            node.spawn();
        }
        Cluster { nodes, _dir: dir }
    }

    /// The client URLs of every node (a client given all of them fails over).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect()
    }

    /// A JetStream context connected to the cluster, once its meta leader
    /// answers account requests.
    pub async fn jetstream(&self) -> Context {
        let client = async_nats::connect(self.urls()).await.unwrap();
        let deadline = Instant::now() + READY;
        loop {
            // The account info request, raw: it answers with an error (or not
            // at all) until the meta leader is elected.
            let answer =
                tokio::time::timeout(Duration::from_millis(500), client.request("$JS.API.INFO", "".into())).await;
            let ready = answer.as_ref().is_ok_and(|a| {
                a.as_ref().is_ok_and(|m| {
                    serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|v| v.get("error").is_none())
                })
            });
            if ready {
                return jetstream::new(client);
            }
            assert!(Instant::now() < deadline, "JetStream never became ready: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await; // polling the meta leader
        }
    }

    /// SIGKILLs node `name` (its store stays).
    pub fn kill(&mut self, name: &str) {
        self.node(name).kill();
    }

    /// Starts node `name` again on its ports and store.
    pub fn restart(&mut self, name: &str) {
        let node = self.node(name);
        node.kill();
        node.spawn();
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The names of every node.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Waits until stream `name` has a leader and `replicas - 1` current
/// followers; returns the leader's server name.
pub async fn healthy_leader(js: &Context, name: &str, replicas: usize) -> String {
    let deadline = Instant::now() + READY;
    loop {
        if let Ok(stream) = js.get_stream(name).await
            && let Ok(info) = stream.get_info().await
            && let Some(cluster) = info.cluster
            && let Some(leader) = cluster.leader
            && cluster.replicas.iter().filter(|p| p.current && !p.offline).count() + 1 >= replicas
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "stream {name} did not get a leader and {replicas} current replicas");
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the stream's cluster info
    }
}
