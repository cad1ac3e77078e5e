//! The demo's event type, [`DemoEvent`]: the realistic mix an agent runtime
//! produces (streaming tokens and heartbeats that are ephemeral; messages,
//! tool calls, tool results and a terminal `Done` that are durable), plus
//! the probe records the crash test writes. `dump` decodes payloads of this
//! type and falls back to hex for anything else.

use events::{Durability, Event, Timestamp};
use serde::{Deserialize, Serialize};

/// One event of the demo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum DemoEvent {
    /// A streamed token (ephemeral).
    Token { session: u32, n: u64, text: String },
    /// A liveness tick (ephemeral).
    Heartbeat { session: u32, n: u64 },
    /// A complete message (durable).
    Message { session: u32, n: u64, at: u64, text: String },
    /// A tool invocation (durable).
    ToolCall { session: u32, n: u64, at: u64, tool: String, args: String },
    /// A tool's result (durable).
    ToolResult { session: u32, n: u64, at: u64, ok: bool, output: String },
    /// The session finished (durable, terminal).
    Done { session: u32, n: u64, at: u64 },
    /// Written by the crash child: appender `writer`'s `n`-th append.
    CrashProbe { writer: u32, n: u64 },
}

impl Event for DemoEvent {
    fn durability(&self) -> Durability {
        match self {
            DemoEvent::Token { .. } | DemoEvent::Heartbeat { .. } => Durability::Ephemeral,
            _ => Durability::Durable,
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, DemoEvent::Done { .. })
    }
}

impl DemoEvent {
    /// The `n`-th event of `session`, out of `total` for that session: a
    /// turn of six tokens, a heartbeat, a message, a tool call and its
    /// result, repeated; the last event is `Done`.
    pub(crate) fn nth(session: u32, n: u64, total: u64) -> DemoEvent {
        let at = Timestamp::now().as_nanos();
        if n + 1 == total {
            return DemoEvent::Done { session, n, at };
        }
        match n % 10 {
            0..=5 => DemoEvent::Token { session, n, text: DemoEvent::token_text(n) },
            6 => DemoEvent::Heartbeat { session, n },
            7 => DemoEvent::Message { session, n, at, text: DemoEvent::response_text(n) },
            8 => DemoEvent::ToolCall { session, n, at, tool: "search".into(), args: format!("{{\"q\":\"item {n}\"}}") },
            _ => DemoEvent::ToolResult { session, n, at, ok: !n.is_multiple_of(7), output: "x".repeat(64) },
        }
    }

    /// The text of the message `n` (`n % 10 == 7`): the six tokens streamed
    /// before it (`n - 7 ..= n - 2`), as an agent's message carries the
    /// response it streamed.
    pub(crate) fn response_text(n: u64) -> String {
        (n.saturating_sub(7)..n.saturating_sub(1)).map(DemoEvent::token_text).collect()
    }

    /// How many messages (each concluding a response) a session of `total`
    /// events emits: one per turn of ten whose message comes before `Done`.
    pub(crate) fn responses(total: u64) -> u64 {
        // Messages are at n = 7, 17, …, and n ≤ total - 2 (the last is `Done`).
        if total < 9 { 0 } else { (total - 9) / 10 + 1 }
    }

    /// The text of token `n`.
    fn token_text(n: u64) -> String {
        format!("tok{n} ")
    }

    /// The session-local counter, for order checks.
    pub(crate) fn n(&self) -> u64 {
        match self {
            DemoEvent::Token { n, .. }
            | DemoEvent::Heartbeat { n, .. }
            | DemoEvent::Message { n, .. }
            | DemoEvent::ToolCall { n, .. }
            | DemoEvent::ToolResult { n, .. }
            | DemoEvent::Done { n, .. }
            | DemoEvent::CrashProbe { n, .. } => *n,
        }
    }

    /// The session a session's event belongs to (`None` for a crash probe).
    pub(crate) fn session(&self) -> Option<u32> {
        match self {
            DemoEvent::Token { session, .. }
            | DemoEvent::Heartbeat { session, .. }
            | DemoEvent::Message { session, .. }
            | DemoEvent::ToolCall { session, .. }
            | DemoEvent::ToolResult { session, .. }
            | DemoEvent::Done { session, .. } => Some(*session),
            DemoEvent::CrashProbe { .. } => None,
        }
    }

    /// The stream the demo writes it under: `sess-<session>`, or `crash`
    /// for a crash probe. Bincode names no type, so an application's event
    /// of the same layout decodes as a demo event: its stream id matching
    /// this too is what tells a demo event, which a coincidence of layout
    /// alone does not give.
    pub(crate) fn demo_stream(&self) -> String {
        self.session().map_or_else(|| "crash".to_owned(), |s| format!("sess-{s}"))
    }

    /// When a durable demo event was emitted, unix nanoseconds.
    pub(crate) fn emitted_at(&self) -> Option<u64> {
        match self {
            DemoEvent::Message { at, .. }
            | DemoEvent::ToolCall { at, .. }
            | DemoEvent::ToolResult { at, .. }
            | DemoEvent::Done { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// A short name of the variant, for `dump`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            DemoEvent::Token { .. } => "token",
            DemoEvent::Heartbeat { .. } => "heartbeat",
            DemoEvent::Message { .. } => "message",
            DemoEvent::ToolCall { .. } => "tool_call",
            DemoEvent::ToolResult { .. } => "tool_result",
            DemoEvent::Done { .. } => "done",
            DemoEvent::CrashProbe { .. } => "crash_probe",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_mostly_ephemeral_and_ends_with_done() {
        let events: Vec<_> = (0..100).map(|n| DemoEvent::nth(0, n, 100)).collect();
        let durable = events.iter().filter(|e| e.durability().is_durable()).count();
        assert_eq!(durable, 30);
        assert!(events.last().unwrap().is_terminal());
        assert!(events.iter().enumerate().all(|(i, e)| e.n() == i as u64));
    }

    #[test]
    fn a_message_carries_the_tokens_streamed_before_it() {
        let events: Vec<_> = (0..20).map(|n| DemoEvent::nth(0, n, 20)).collect();
        let streamed: String = events[10..17]
            .iter()
            .filter_map(|e| if let DemoEvent::Token { text, .. } = e { Some(text.as_str()) } else { None })
            .collect();
        assert!(matches!(&events[17], DemoEvent::Message { text, .. } if *text == streamed), "{:?}", events[17]);
        assert_eq!(streamed, "tok10 tok11 tok12 tok13 tok14 tok15 ");
    }

    #[test]
    fn responses_counts_the_messages_of_a_session() {
        for total in 1..60 {
            let messages =
                (0..total).filter(|&n| matches!(DemoEvent::nth(0, n, total), DemoEvent::Message { .. })).count() as u64;
            assert_eq!(DemoEvent::responses(total), messages, "{total} events");
        }
    }
}
