//! A real `nats-server` owned by a test: a free 127.0.0.1 port, the process
//! started and awaited until it listens ([`start_nats_server`], which the
//! 3-node cluster of events-nats' tests also uses), and [`NatsServer`], a
//! single `-js` server with a temporary store that is killed on drop and can
//! be SIGKILLed and restarted on the same port and store.
//!
//! Neighbours: [`crate::jetstream`] (checks what a stream holds, and
//! [`NatsServer::jetstream`] with the `nats` feature).
//! Invariant: readiness is a TCP connect that succeeds, polled under a
//! 20 s deadline; nothing sleeps for a fixed time to let the server settle,
//! and no process started here outlives its owner.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The installed `nats-server` (Debian's is in `/usr/sbin`, off a normal
/// user's `PATH`): a command for it is `Command::new(nats_server())`.
pub fn nats_server() -> std::path::PathBuf {
    crate::program::program("nats-server")
}

/// How long a `nats-server` may take to listen before the test fails.
const READY: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (nothing listens on it once returned).
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports on 127.0.0.1, all bound at once before any is
/// released: ports asked for one at a time can come back twice (a cluster
/// node then failed to start, its route port another's client port).
///
/// # Panics
///
/// If a port cannot be bound.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Starts `nats-server` as `command` says and waits until it listens on
/// `port` on 127.0.0.1. Its stdout is discarded; its log (stderr) goes to
/// an unlinked temporary file, read back only if it exits before it listens.
///
/// # Panics
///
/// Naming `what`: if `nats-server` cannot be spawned (not installed), exits
/// before it listens (with the end of its log), or does not listen within 20 s.
pub fn start_nats_server(mut command: Command, port: u16, what: &str) -> Child {
    let mut log = tempfile::tempfile().expect("a temporary file for nats-server's log");
    let stderr = log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("nats-server is installed (apt-get install nats-server; `cargo xtask ci` does it)");
    let deadline = Instant::now() + READY;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port}");
        if let Some(status) = child.try_wait().unwrap() {
            use std::io::{Read, Seek};
            let mut text = String::new();
            let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
            let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("{what} exited with {status} (port {port}); its log ends:\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval of a readiness check
    }
    child
}

/// A `nats-server -js` owned by the test: a free port on 127.0.0.1, a
/// temporary store directory, SIGKILLed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts the server and returns once it listens.
    ///
    /// # Panics
    ///
    /// As [`start_nats_server`] does, or if no temporary directory can be made.
    pub fn start() -> NatsServer {
        let port = free_port();
        let mut server = NatsServer { child: None, port, store: tempfile::tempdir().unwrap() };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(nats_server());
        command.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"]).arg(self.store.path());
        self.child = Some(start_nats_server(command, self.port, "nats-server"));
    }

    /// The port it listens on (the same across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The store directory (`-sd`), the same across [`NatsServer::restart`]:
    /// a test can take a stream's last writes from it while the server is
    /// down, as a power loss before the server synced them does.
    pub fn store(&self) -> &std::path::Path {
        self.store.path()
    }

    /// `127.0.0.1:<port>`, as `async_nats::connect` and `--server` take it.
    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, like a crash; the store directory stays. Does nothing if
    /// the server is already down.
    ///
    /// # Panics
    ///
    /// If the process cannot be killed or reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Kills the server (if up), then starts it again on the same port and
    /// store and returns once it listens.
    ///
    /// # Panics
    ///
    /// As [`NatsServer::kill`] and [`start_nats_server`] do.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A JetStream context on a fresh connection to the server.
    ///
    /// # Panics
    ///
    /// If the connection fails.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(self.url()).await.unwrap())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Errors are ignored: a panic here, while a failing test unwinds, would abort the run.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listens(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn a_free_port_has_no_listener() {
        let port = free_port();
        assert_ne!(port, 0);
        assert!(!listens(port), "nothing listens on {port}");
    }

    #[test]
    fn the_server_listens_until_killed_and_again_after_restart() {
        let mut server = NatsServer::start();
        let port = server.port();
        assert_eq!(server.url(), format!("127.0.0.1:{port}"));
        assert!(listens(port));
        server.kill();
        assert!(!listens(port), "killed: nothing listens on {port}");
        server.kill(); // a second kill is a no-op
        server.restart();
        assert_eq!(server.port(), port, "a restart keeps the port");
        assert!(listens(port));
        drop(server);
        assert!(!listens(port), "dropped: nothing listens on {port}");
    }

    /// A server that exits before it listens: the panic says how, and ends
    /// with its own log (here, its complaint about an unknown flag).
    #[test]
    fn a_server_that_exits_at_start_shows_its_log() {
        let mut command = Command::new(nats_server());
        command.arg("--no-such-flag");
        let port = free_port();
        let start = std::panic::AssertUnwindSafe(|| start_nats_server(command, port, "the bad server"));
        let panic = std::panic::catch_unwind(start).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted panic message");
        assert!(message.starts_with("the bad server exited with exit status: "), "{message}");
        assert!(message.contains("no-such-flag"), "{message}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(32);
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 32, "{ports:?}");
    }
}
