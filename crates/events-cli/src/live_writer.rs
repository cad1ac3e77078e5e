//! `events __live-writer DIR` (hidden): a writer that serves its own live
//! output, for the viewer's browser test (`tests/serve_browser_live.rs`).
//! It opens a feed of the demo's events (`model.rs`) with live output,
//! serves `events_http::router` and the viewer on 127.0.0.1, and streams
//! responses on one session: `--tokens` ephemeral `Token`s, then a durable
//! `Message` whose text is their concatenation.
//!
//! Invariant: only a server in the writer's process can serve live output
//! (the ring of recent ephemeral events is in its memory), which is why this
//! is not `events serve`. Every response's full text is printed
//! (`response <n> <text>`) only after its message was emitted, so whoever
//! reads stdout knows exactly what the page should show.

use std::io::BufRead as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use events::{Feed, LiveOutput, SyncPolicy, Timestamp};

use crate::Failure;
use crate::model::DemoEvent;

/// The stream id the responses are emitted on.
pub(crate) const STREAM: &str = "sess-0";

/// Arguments of the hidden `__live-writer` command.
#[derive(Debug, clap::Args)]
pub(crate) struct LiveWriterArgs {
    /// The journal directory.
    dir: PathBuf,
    /// The port to serve on, on 127.0.0.1; 0 picks a free one (printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Responses to stream.
    #[arg(long, default_value_t = 3)]
    responses: u64,
    /// Tokens per response.
    #[arg(long, default_value_t = 20)]
    tokens: u64,
    /// The pause after each token, in milliseconds.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Most tokens of the session the live-output ring keeps (default: the
    /// ring's default); a small value lets a slow reconnect miss some.
    #[arg(long)]
    ring_per_stream: Option<usize>,
}

/// Serves, waits for a line on stdin (or its end) before streaming, streams
/// the responses, prints `done`, then serves until killed.
pub(crate) fn live_writer(args: &LiveWriterArgs) -> Result<(), Failure> {
    crate::runtime()?.block_on(async {
        let ring = args.ring_per_stream.map_or(LiveOutput::new(), |n| LiveOutput::new().per_stream(n));
        let feed: Feed<DemoEvent> = Feed::builder(&args.dir).sync(SyncPolicy::Never).live_output(ring).open().await?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)).await?;
        let addr = listener.local_addr()?;
        let app = events_http::router(feed.reader()).merge(events_http::viewer());
        let server = tokio::spawn(async move { events_http::axum::serve(listener, app).await });
        println!("serving live output at http://{addr}/ (viewer: /?live_output=1)");
        // The start signal: whoever runs this first opens its client.
        tokio::task::spawn_blocking(|| std::io::stdin().lock().read_line(&mut String::new()))
            .await
            .map_err(|e| Failure::Error(Box::new(e)))??;
        let session = feed.session(STREAM);
        let interval = Duration::from_millis(args.interval_ms);
        for r in 1..=args.responses {
            let mut text = String::new();
            for i in 1..=args.tokens {
                // Tokens that say where they belong: a duplicate or a
                // missing one shows in the concatenation.
                let token = format!("[{r}.{i}]");
                text.push_str(&token);
                session.emit(DemoEvent::Token { session: 0, n: i, text: token }).await?;
                tokio::time::sleep(interval).await;
            }
            let at = Timestamp::now().as_nanos();
            session.emit(DemoEvent::Message { session: 0, n: r, at, text: text.clone() }).await?;
            println!("response {r} {text}");
        }
        println!("done");
        server.await.map_err(|e| Failure::Error(Box::new(e)))??;
        Ok(())
    })
}
