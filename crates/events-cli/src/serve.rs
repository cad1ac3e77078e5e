//! `events serve DIR`: serves a journal that another process writes,
//! read-only, over HTTP with `events-http` — Server-Sent Events at
//! `/stream`, JSON at `/status`, and the live viewer page at `/`.
//!
//! Invariant: the server never writes to the journal and takes no lock: it
//! follows the files through a `FeedReader`, so it can run beside the writer
//! (or after it exited) and be stopped at any moment without harm.

use std::net::SocketAddr;
use std::path::PathBuf;

use events::FeedReader;

use crate::Failure;
use crate::model::DemoEvent;

/// Arguments of `events serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The journal directory (written by `events demo` or any feed of demo events).
    dir: PathBuf,
    /// The address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
}

/// Serves until the process is stopped; prints one line with the URL once
/// listening.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    crate::runtime()?.block_on(async {
        let reader: FeedReader<DemoEvent> = FeedReader::open(&args.dir)?;
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        let app = events_http::router(reader).merge(events_http::viewer());
        println!("serving {} at http://{addr}/ (SSE at /stream, JSON at /status)", args.dir.display());
        events_http::axum::serve(listener, app).await?;
        Ok(())
    })
}
