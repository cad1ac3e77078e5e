//! How `dump` and `tail` show a record: what the journal's codec allows
//! without the application's types. A self-describing journal (MessagePack,
//! codec tag 3) is rendered generically as JSON; a bincode journal is
//! decoded when it holds the demo's event type, under the demo's streams;
//! anything else shows seq,
//! stream, time, size and a hex preview, and says why it cannot be decoded.
//! Neighbours: `ops.rs` reads the records; `inspect.rs` reads segment
//! headers (the codec tag comes from the oldest one).
//!
//! Invariant: rendering never fails a command: a payload it cannot decode
//! is shown as bytes with the reason, never skipped.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use events::{Bincode, Codec, MsgPack};
use serde_json::{Value, json};

pub(crate) use crate::generic::Generic;
use crate::model::DemoEvent;
use crate::segments::{read_header, segment_first_seq};

/// What the journal's payloads can be decoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payloads {
    /// MessagePack: any payload renders as JSON, no types needed.
    SelfDescribing,
    /// bincode: the demo's event type, when that is what was written.
    Demo,
    /// Another codec (named), or an unreadable header: bytes only.
    Opaque(&'static str),
}

impl Payloads {
    /// From the codec tag of the oldest segment of `dir`.
    pub(crate) fn of(dir: &Path) -> Payloads {
        Payloads::for_tag(codec_tag(dir))
    }

    pub(crate) fn for_tag(tag: Option<u32>) -> Payloads {
        match tag {
            Some(MsgPack::ID) => Payloads::SelfDescribing,
            Some(Bincode::ID) => Payloads::Demo,
            Some(2) => Payloads::Opaque("postcard"),
            Some(_) => Payloads::Opaque("an unknown codec"),
            None => Payloads::Opaque("an unreadable segment header"),
        }
    }

    /// One record, seq `seq` of the journal of `epoch`, as a line, text or
    /// JSON. A JSON line's `cursor` (`<epoch>-<seq>`) is what `--from`
    /// takes to go on after it, in that journal only.
    pub(crate) fn format_record(self, epoch: u64, seq: u64, ts: u64, payload: &[u8], as_json: bool) -> String {
        let time = rfc3339(ts);
        let size = payload.len();
        let cursor = format!("{epoch}-{seq}");
        // The caller's event id of an idempotent append, when the record has one.
        let id = events::payload::event_id(payload);
        match self.decode(payload) {
            Ok((stream, kind, event)) if as_json => {
                let mut line = json!({
                    "seq": seq, "cursor": cursor, "time": time, "stream": stream, "size": size, "event": event,
                });
                if let Some(kind) = kind {
                    line["kind"] = kind.into();
                }
                if let Some(id) = id {
                    line["id"] = id.into();
                }
                line.to_string()
            }
            Ok((stream, _, event)) => {
                let id = id.map(|id| format!("  id={}", printable(id))).unwrap_or_default();
                let stream = stream.as_deref().map_or_else(|| "-".to_owned(), printable);
                format!("{seq:>10}  {time}  {stream:<12} {size:>6} B  {event}{id}")
            }
            Err(why) if as_json => {
                let line = json!({
                    "seq": seq, "cursor": cursor, "time": time, "stream": null, "size": size,
                    "hex": hex(payload), "undecoded": why,
                });
                line.to_string()
            }
            Err(why) => format!("{seq:>10}  {time}  {:<12} {size:>6} B  {}  ({why})", "-", hex(payload)),
        }
    }

    /// Whether `payload` decodes as the demo's event but is not under the
    /// demo's stream for it: another application's event of the same
    /// layout, which only that tells from a demo event.
    pub(crate) fn another_application_s(payload: &[u8]) -> bool {
        matches!(demo_event(payload), Err(DemoMismatch::OtherStream))
    }

    /// The stream id, the demo event's kind (if it is one) and the event as
    /// JSON; or why it cannot be decoded.
    fn decode(self, payload: &[u8]) -> Result<(Option<String>, Option<&'static str>, Value), String> {
        match self {
            Payloads::SelfDescribing => {
                // Past the event-id and schema-version headers (docs/FORMAT.md).
                let body = events::payload::split(payload).map_err(|e| e.to_string())?.body;
                let (stream, Generic(event)): (Option<String>, Generic) =
                    MsgPack.decode(body).map_err(|e| format!("not a MessagePack payload: {e}"))?;
                Ok((stream, None, event))
            }
            Payloads::Demo => {
                const NOT_DEMO: &str = "bincode is not self-describing and this is not the demo's event type";
                let env = demo_event(payload).map_err(|mismatch| match mismatch {
                    DemoMismatch::Layout => NOT_DEMO.to_owned(),
                    DemoMismatch::OtherStream => format!("{NOT_DEMO} (its stream id is not the demo's)"),
                })?;
                let event = serde_json::to_value(&env.event).map_err(|e| e.to_string())?;
                Ok((env.stream_str().map(str::to_owned), Some(env.event.kind()), event))
            }
            Payloads::Opaque(codec) => Err(format!("{codec} is not self-describing")),
        }
    }
}

/// Why a payload is not the demo's event.
enum DemoMismatch {
    /// It does not decode as one.
    Layout,
    /// It decodes as one, but not under the demo's stream for it
    /// (`DemoEvent::demo_stream`): another application's event of the same
    /// layout.
    OtherStream,
}

/// The demo's event `payload` holds, or why it holds none.
fn demo_event(payload: &[u8]) -> Result<events::Envelope<DemoEvent>, DemoMismatch> {
    let env =
        events::payload::decode::<DemoEvent, Bincode>(&Bincode, 0, 0, payload).map_err(|_| DemoMismatch::Layout)?;
    if env.stream_str() != Some(env.event.demo_stream().as_str()) {
        return Err(DemoMismatch::OtherStream);
    }
    Ok(env)
}

/// Unix nanoseconds as RFC 3339 UTC with microseconds.
pub(crate) fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// The codec tag of the journal in `dir` (every segment carries it): that
/// of the oldest segment whose header reads, as the journal lists its
/// segments (regular files named like one: it ignores a directory or a
/// symlink of such a name). A damaged header (what `Journal::repair`
/// fixes) is passed over, as is a segment retention removed between the
/// listing and the read: every record had been shown as bytes, "an
/// unreadable segment header", when only the oldest header was damaged.
fn codec_tag(dir: &Path) -> Option<u32> {
    let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| segment_first_seq(&e.file_name()).map(|seq| (seq, e.path())))
        .collect();
    segments.sort_unstable_by_key(|(seq, _)| *seq);
    segments.iter().find_map(|(_, path)| read_header(path).ok()).map(|h| h.codec_tag)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().min(64) * 2 + 3);
    for b in bytes.iter().take(64) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}

/// A caller-chosen string (a stream or event id) as the text output shows
/// it: control characters escaped (`\n`, `\u{1b}`), so that it can neither
/// fake a line of output nor drive the terminal.
pub(crate) fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) { s.escape_debug().to_string() } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn undecodable_payload_is_hex_with_the_reason() {
        for payloads in [Payloads::Demo, Payloads::Opaque("postcard"), Payloads::SelfDescribing] {
            let line = payloads.format_record(1, 3, 0, &[0xc1, 0xad], false);
            assert!(line.contains("c1ad"), "{line}");
            let json: Value = serde_json::from_str(&payloads.format_record(1, 3, 0, &[0xc1, 0xad], true)).unwrap();
            assert_eq!(json["hex"], "c1ad");
            assert!(json["undecoded"].as_str().is_some_and(|why| !why.is_empty()), "{json}");
        }
    }

    #[test]
    fn a_self_describing_payload_renders_as_json_without_types() {
        #[derive(serde::Serialize)]
        enum Job {
            Started { id: u32, tags: Vec<String> },
        }
        let mut payload = Vec::new();
        MsgPack.encode(&(Some("jobs"), Job::Started { id: 7, tags: vec!["a".into()] }), &mut payload).unwrap();
        let json: Value =
            serde_json::from_str(&Payloads::SelfDescribing.format_record(1, 9, 0, &payload, true)).unwrap();
        assert_eq!(json["seq"], 9);
        assert_eq!(json["stream"], "jobs");
        assert_eq!(json["event"], json!({ "Started": { "id": 7, "tags": ["a"] } }));
        assert_eq!(Payloads::for_tag(Some(3)), Payloads::SelfDescribing);
    }

    #[test]
    fn headers_are_skipped_and_the_event_id_is_shown() {
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        struct Note {
            text: String,
        }
        impl events::Event for Note {
            const VERSION: u32 = 3;
        }
        let mut payload = Vec::new();
        let note = Note { text: "hi".into() };
        events::payload::encode_with_id(&MsgPack, Some("notes"), Some("req-1"), &note, &mut payload).unwrap();
        let json: Value =
            serde_json::from_str(&Payloads::SelfDescribing.format_record(1, 4, 0, &payload, true)).unwrap();
        assert_eq!((&json["stream"], &json["id"]), (&json!("notes"), &json!("req-1")));
        assert_eq!(json["event"], json!({ "text": "hi" }));
        let line = Payloads::SelfDescribing.format_record(1, 4, 0, &payload, false);
        assert!(line.ends_with("id=req-1"), "{line}");
    }

    #[test]
    fn control_characters_in_ids_are_escaped_in_text_output() {
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        struct Note;
        impl events::Event for Note {}
        let mut payload = Vec::new();
        let (stream, id) = ("evil\n     9  2026-01-01T00:00:00Z  fake", "id\u{1b}[31m");
        events::payload::encode_with_id(&MsgPack, Some(stream), Some(id), &Note, &mut payload).unwrap();
        let line = Payloads::SelfDescribing.format_record(1, 4, 0, &payload, false);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        assert!(line.contains("evil\\n") && line.contains("id\\u{1b}[31m"), "{line}");
        // JSON output escapes them already: unchanged.
        let json: Value =
            serde_json::from_str(&Payloads::SelfDescribing.format_record(1, 4, 0, &payload, true)).unwrap();
        assert_eq!((&json["stream"], &json["id"]), (&json!(stream), &json!(id)));
    }
}
