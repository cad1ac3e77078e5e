//! Command-line values shared by `demo/` and `crash.rs`: the `--sync`
//! policy parser and its inverse. A leaf module (it imports neither of them),
//! so the demo and its crash child depend on it instead of on each other.
//! Invariant: `parse_sync(&sync_to_arg(p))` gives back `p` for every policy
//! the demo can pass to its child (intervals rounded to whole milliseconds,
//! at least 1 ms).

use std::time::Duration;

use events::SyncPolicy;

/// Parses `always`, `never` or a duration like `10ms` / `1s` (not zero:
/// refused here, before a command acts on it, rather than by the journal's
/// open after the demo wiped its directory).
pub(crate) fn parse_sync(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => {
            let (num, unit) = other.find(|c: char| !c.is_ascii_digit()).map_or((other, ""), |i| other.split_at(i));
            let n: u64 =
                num.parse().map_err(|_| format!("expected always, never or an interval like 10ms, got {s:?}"))?;
            let every = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                _ => return Err(format!("unknown interval unit in {s:?}: use ms or s")),
            };
            if every.is_zero() {
                return Err(format!("an interval of {s:?} would fdatasync in a busy loop: use always"));
            }
            Ok(SyncPolicy::Interval(every))
        }
    }
}

/// A `--from` position: a seq, or `<epoch>-<seq>` (a `--json` line's
/// `cursor`, `/status`'s `latest_id`, an SSE id), which also names the
/// journal the seq belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FromCursor {
    /// The journal's epoch, when given.
    pub(crate) epoch: Option<u64>,
    /// Records after this seq.
    pub(crate) seq: u64,
}

/// Parses a [`FromCursor`]: decimal digits only, no sign.
pub(crate) fn parse_from(s: &str) -> Result<FromCursor, String> {
    let number = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse::<u64>().ok())
            .flatten()
            .filter(|_| !part.is_empty())
    };
    let bad = || format!("expected a seq or <epoch>-<seq> (as a --json line's cursor), got {s:?}");
    match s.split_once('-') {
        None => Ok(FromCursor { epoch: None, seq: number(s).ok_or_else(bad)? }),
        Some((epoch, seq)) => {
            Ok(FromCursor { epoch: Some(number(epoch).ok_or_else(bad)?), seq: number(seq).ok_or_else(bad)? })
        }
    }
}

/// The inverse of [`parse_sync`], for passing the policy to the child.
pub(crate) fn sync_to_arg(policy: SyncPolicy) -> String {
    match policy {
        SyncPolicy::Always => "always".into(),
        SyncPolicy::Never => "never".into(),
        SyncPolicy::Interval(d) => format!("{}ms", d.as_millis().max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_a_seq_or_an_epoch_and_a_seq() {
        assert_eq!(parse_from("7"), Ok(FromCursor { epoch: None, seq: 7 }));
        assert_eq!(parse_from("42-7"), Ok(FromCursor { epoch: Some(42), seq: 7 }));
        assert_eq!(parse_from("18446744073709551615-0"), Ok(FromCursor { epoch: Some(u64::MAX), seq: 0 }));
        for bad in ["", "-", "-7", "7-", "+7", "1-2-3", "0x10", "1.5", "18446744073709551616", " 7", "latest"] {
            assert!(parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sync_round_trips_through_its_argument() {
        for policy in [SyncPolicy::Always, SyncPolicy::Never, SyncPolicy::Interval(Duration::from_millis(10))] {
            assert_eq!(parse_sync(&sync_to_arg(policy)), Ok(policy));
        }
        assert_eq!(parse_sync("2s"), Ok(SyncPolicy::Interval(Duration::from_secs(2))));
        assert!(parse_sync("10m").is_err_and(|e| e.contains("unknown interval unit")));
        assert!(parse_sync("soon").is_err());
        for zero in ["0ms", "0s", "000ms"] {
            assert!(parse_sync(zero).is_err_and(|e| e.contains("busy loop")), "{zero}");
        }
    }
}
