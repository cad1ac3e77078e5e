//! The wire form of a cursor, `<epoch>-<seq>`: the `id:` of every frame
//! `sse.rs` sends, the `latest_id` of `status.rs`, the cursor the viewer page
//! keeps, and what `Last-Event-ID` and `?since=` accept (a bare `<seq>` too).
//! An ephemeral event of live output (`?live_output=1`) has the id
//! `<epoch>-<seq>.<index>`: the `index`-th ephemeral event after durable
//! `seq`, so a browser that reconnects mid-response resumes inside it.
//!
//! Invariant (DESIGN §3, 11): a cursor that leaves the process names the
//! journal's epoch as well as the seq, in decimal, the same shape as the
//! `Nats-Msg-Id` events-nats publishes. A client holding a cursor of a
//! journal that has since been recreated then gets an explicit
//! `epoch_mismatch` reset, never the new journal from the middle. Parsing is
//! strict (ASCII digits only, no sign, no spaces inside, no overflow): a
//! malformed cursor is refused, never guessed.

use events::{Position, Seq};

/// The id of the frame that leaves a client at `seq` of journal `epoch`.
pub(crate) fn format(epoch: u64, seq: Seq) -> String {
    format!("{epoch}-{}", seq.get())
}

/// The id of a live-output frame at `position` (`<epoch>-<seq>` for a
/// durable event, `<epoch>-<seq>.<index>` for an ephemeral one).
pub(crate) fn format_position(epoch: u64, position: Position) -> String {
    match position.index {
        0 => format(epoch, position.seq),
        index => format!("{epoch}-{}.{index}", position.seq.get()),
    }
}

/// A cursor as a client sent it: `<epoch>-<seq>`, or a bare `<seq>` from a
/// client that predates epochs (or a person typing a URL); `sse.rs` pins a
/// bare seq to the epoch it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireCursor {
    pub(crate) epoch: Option<u64>,
    pub(crate) seq: Seq,
    /// Ephemeral events after `seq` already seen (`.<index>`; 0 when absent).
    pub(crate) index: u32,
}

impl WireCursor {
    /// Parses `<epoch>-<seq>` or `<seq>`, each optionally followed by
    /// `.<index>` (1 or more); `None` if `text` is none of these.
    pub(crate) fn parse(text: &str) -> Option<WireCursor> {
        let (position, index) = match text.split_once('.') {
            Some((position, index)) => (position, u32::try_from(decimal(index)?).ok().filter(|&i| i > 0)?),
            None => (text, 0),
        };
        match position.split_once('-') {
            Some((epoch, seq)) => {
                Some(WireCursor { epoch: Some(decimal(epoch)?), seq: Seq::new(decimal(seq)?), index })
            }
            None => Some(WireCursor { epoch: None, seq: Seq::new(decimal(position)?), index }),
        }
    }
}

/// A `u64` in plain decimal. `str::parse` alone would also take a leading
/// `+`, which no id this crate sends has.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<(Option<u64>, u64)> {
        WireCursor::parse(text).map(|c| (c.epoch, c.seq.get()))
    }

    #[test]
    fn the_two_accepted_forms_round_trip() {
        assert_eq!(format(7, Seq::new(42)), "7-42");
        assert_eq!(parsed("7-42"), Some((Some(7), 42)));
        assert_eq!(parsed(&format(u64::MAX, Seq::new(u64::MAX))), Some((Some(u64::MAX), u64::MAX)));
        assert_eq!(parsed("0-0"), Some((Some(0), 0)));
        assert_eq!(parsed("42"), Some((None, 42)));
        assert_eq!(parsed("0"), Some((None, 0)));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "-",
            "7-",
            "-42",
            "+42",
            "7-+42",
            "7--42",
            "7-42-1",
            "0x7-42",
            "7-4a",
            " 42",
            "7 -42",
            "1e3",
            "18446744073709551616",
            "1-18446744073709551616",
            "latest",
            "7-42.",
            "7-42.0",
            "7-42.-1",
            "7-42.1.2",
            "7-42.4294967296",
            ".3",
            "7.3-42",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_ephemeral_position_round_trips() {
        let at = |seq, index| Position { seq: Seq::new(seq), index };
        assert_eq!(format_position(7, at(42, 0)), "7-42");
        assert_eq!(format_position(7, at(42, 3)), "7-42.3");
        let c = WireCursor::parse("7-42.3").unwrap();
        assert_eq!((c.epoch, c.seq, c.index), (Some(7), Seq::new(42), 3));
        let c = WireCursor::parse(&format_position(u64::MAX, at(u64::MAX, u32::MAX))).unwrap();
        assert_eq!((c.epoch, c.seq, c.index), (Some(u64::MAX), Seq::new(u64::MAX), u32::MAX));
        let c = WireCursor::parse("42.1").unwrap();
        assert_eq!((c.epoch, c.seq, c.index), (None, Seq::new(42), 1));
    }
}
