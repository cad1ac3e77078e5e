//! Resume: a client that reads part of the feed, disconnects, and reconnects
//! with its last seq, seeing every event exactly once across the reconnect —
//! including across a restart of the feed. Run with
//! `cargo run -p events --example resume`.

use events::{Cursor, Event, Feed, FeedItem, Seq};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Update {
    doc: String,
    version: u64,
}

impl Event for Update {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("events-resume-{}", std::process::id()));
    let feed: Feed<Update> = Feed::builder(&dir).open().await?;
    for version in 1..=10 {
        feed.append(Some("doc-1"), Update { doc: "doc-1".into(), version }).await?;
    }

    // The client reads four events, then "disconnects", remembering its cursor.
    let mut cursor = Cursor::new(Seq::ZERO, feed.epoch());
    let mut client = feed.stream_from(cursor);
    for _ in 0..4 {
        if let Some(FeedItem::Event(env)) = client.next().await.transpose()? {
            println!("first connection:  #{} v{}", env.seq, env.event.version);
            cursor.seq = env.seq;
        }
    }
    drop(client);

    // The feed restarts in the meantime and receives more updates.
    feed.close().await?;
    let feed: Feed<Update> = Feed::builder(&dir).open().await?;
    for version in 11..=12 {
        feed.append(Some("doc-1"), Update { doc: "doc-1".into(), version }).await?;
    }

    // Reconnect with the cursor: exactly the events after it.
    let mut client = feed.stream_from(cursor);
    while let Some(item) = client.next().await {
        match item? {
            FeedItem::Event(env) => {
                println!("second connection: #{} v{}", env.seq, env.event.version);
                if env.seq == feed.latest_seq() {
                    break;
                }
            }
            FeedItem::Reset { reason, earliest, latest } => {
                println!("reset ({reason:?}): resync from {earliest}..={latest}");
            }
            FeedItem::Undecodable { seq, error, .. } => println!("skipped #{seq}: {error}"),
            // Only `stream_filtered` yields checkpoints: a filtered client
            // stores their seq as its cursor.
            FeedItem::Checkpoint { seq } => println!("scanned up to #{seq}"),
            // Only `stream_live` yields ephemeral events (streamed tokens).
            FeedItem::Ephemeral { position, .. } => println!("ephemeral at {position:?}"),
        }
    }
    feed.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
