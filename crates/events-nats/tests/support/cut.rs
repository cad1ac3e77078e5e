//! A TCP proxy in front of a server's port that forwards both ways and,
//! once armed with a pattern, cuts the connection at the first bytes from
//! the client that contain it (they are never forwarded): a request lost
//! in flight, as a server restart or a network fault loses one. The
//! client's own reconnect comes back through the proxy.
//!
//! Invariant: a cut closes both sides of that one connection, and the
//! pattern fires once per arming.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; it stops accepting when dropped.
pub struct CutProxy {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// A proxy on a free 127.0.0.1 port forwarding to `server_port`.
    pub async fn start(server_port: u16) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (armed, cuts) = (Arc::clone(&armed), Arc::clone(&cuts));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else { continue };
                    tokio::spawn(pipe(client, server, Arc::clone(&armed), Arc::clone(&cuts)));
                }
            }
        });
        CutProxy { port, armed, cuts, task }
    }

    /// `127.0.0.1:<port>`, as `async_nats::connect` takes it.
    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts the next connection whose client sends `pattern`.
    pub fn arm(&self, pattern: &str) {
        *self.armed.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, armed: Arc<Mutex<Option<Vec<u8>>>>, cuts: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::io::copy(&mut server_read, &mut client_write);
    let up = async {
        let mut buf = vec![0; 64 * 1024];
        // The last bytes of the previous read: a pattern split across two reads is still seen.
        let mut window: Vec<u8> = Vec::new();
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            window.extend_from_slice(&buf[..n]);
            let cut = {
                let mut armed = armed.lock().unwrap();
                let hit = armed.as_ref().is_some_and(|p| window.windows(p.len()).any(|w| w == p.as_slice()));
                hit.then(|| armed.take())
            };
            if cut.is_some() {
                cuts.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            server_write.write_all(&buf[..n]).await?;
            let keep = window.len().saturating_sub(256);
            window.drain(..keep);
        }
    };
    // Either side ending drops both connections' halves: closed both ways.
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}
