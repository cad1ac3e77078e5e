//! Quickstart: open a feed, record and append events, watch a session, and
//! read everything back with `stream_from`. Run with
//! `cargo run -p events --example quickstart`.

use events::{Durability, Event, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum AgentEvent {
    Token(String),
    Message(String),
    ToolCall { name: String },
    Done,
}

impl Event for AgentEvent {
    fn durability(&self) -> Durability {
        match self {
            AgentEvent::Token(_) => Durability::Ephemeral,
            _ => Durability::Durable,
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, AgentEvent::Done)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("events-quickstart-{}", std::process::id()));
    let feed: Feed<AgentEvent> = Feed::builder(&dir).sync(SyncPolicy::Always).open().await?;

    // A session: its UI sees every event, tokens included.
    let session = feed.session("sess-7");
    let mut ui = session.subscribe();
    for word in ["Hel", "lo"] {
        session.emit(AgentEvent::Token(word.into())).await?;
    }
    session.emit(AgentEvent::Message("Hello".into())).await?;
    session.emit(AgentEvent::ToolCall { name: "search".into() }).await?;
    session.emit(AgentEvent::Done).await?;
    for _ in 0..5 {
        if let Some(Ok(ev)) = ui.next().await {
            println!("ui    <- {ev:?}");
        }
    }

    // `append` waits for durability and returns the seq.
    let seq = feed.append(Some("sess-8"), AgentEvent::Message("direct".into())).await?;
    println!("appended as seq {seq}");

    // A client resuming from the beginning: durable events only, with seqs.
    let mut client = feed.stream_from(Seq::ZERO);
    while let Some(item) = client.next().await {
        if let FeedItem::Event(env) = item? {
            println!("feed  <- #{} {:?} {:?}", env.seq, env.stream_str(), env.event);
            if env.seq == seq {
                break;
            }
        }
    }
    println!("stats: {:?}", feed.stats());
    feed.close().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
