//! Command-line values shared by the commands: durations (`replicate`,
//! `serve`), and the `--sync` policy parser and its inverse (`demo/` and
//! `crash.rs`). A leaf module (it imports neither of them),
//! so the demo and its crash child depend on it instead of on each other.
//! Invariant: `parse_sync(&sync_to_arg(p))` gives back `p` for every policy
//! the demo can pass to its child (intervals rounded to whole milliseconds,
//! at least 1 ms; `parse_sync` accepts whole milliseconds up to a year).

use std::time::Duration;

use events::SyncPolicy;

/// The longest duration an option takes: a year, far past any sensible
/// progress interval, connect timeout, duplicate window or `--sync`
/// interval (a typo such as `18446744073709551615s` is a usage error, not a
/// server setting, nor a policy whose milliseconds [`sync_to_arg`] could
/// not even write as a `u64` for the crash child).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `250ms`, `5s` or `2m`: above zero (a zero interval would panic
/// the ticker after the start line, a zero timeout or window means nothing)
/// and at most [`MAX_DURATION`].
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s).ok_or_else(|| format!("expected a duration like 500ms, 5s or 2m, got {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(|| format!("{s:?} is too long"))?),
        _ => return Err(format!("unknown unit in {s:?}: use ms, s or m")),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: a duration must be above zero"));
    }
    if d > MAX_DURATION {
        return Err(format!("{s:?} is too long: at most 365 days"));
    }
    Ok(d)
}

/// `s` as its leading number and the unit after it (`"10ms"`: 10 and
/// `"ms"`), if it starts with a number that fits a `u64`.
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    Some((n.parse().ok()?, unit))
}

/// Parses `always`, `never` or a duration like `10ms` / `1s` (not zero:
/// refused here, before a command acts on it, rather than by the journal's
/// open after the demo wiped its directory; at most [`MAX_DURATION`]).
pub(crate) fn parse_sync(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => {
            let (n, unit) = number_and_unit(other)
                .ok_or_else(|| format!("expected always, never or an interval like 10ms, got {s:?}"))?;
            let every = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                _ => return Err(format!("unknown interval unit in {s:?}: use ms or s")),
            };
            if every.is_zero() {
                return Err(format!("an interval of {s:?} would fdatasync in a busy loop: use always"));
            }
            if every > MAX_DURATION {
                return Err(format!("an interval of {s:?} is too long: at most 365 days"));
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
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("soon").is_err());
        for zero in ["0s", "0ms", "0m"] {
            assert!(parse_duration(zero).unwrap_err().contains("above zero"), "{zero}");
        }
        assert!(parse_duration(&format!("{}m", u64::MAX)).unwrap_err().contains("too long"));
        // Accepted before, and handed to the ticker and the server as it was.
        assert!(parse_duration(&format!("{}s", u64::MAX)).unwrap_err().contains("too long"));
        assert_eq!(parse_duration("525600m"), Ok(MAX_DURATION));
        assert!(parse_duration("525601m").unwrap_err().contains("365 days"));
    }

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

    /// `--sync 18446744073709551615s` was accepted, and the demo handed its
    /// crash child `18446744073709551615000ms`, which the child refused.
    #[test]
    fn sync_intervals_are_bounded_and_every_accepted_one_round_trips() {
        for huge in [format!("{}s", u64::MAX), format!("{}ms", u64::MAX), "31536001s".into(), "31536000001ms".into()] {
            assert!(parse_sync(&huge).is_err_and(|e| e.contains("365 days")), "{huge}");
        }
        assert_eq!(parse_sync("31536000s"), Ok(SyncPolicy::Interval(MAX_DURATION)));
        assert_eq!(parse_sync("31536000000ms"), Ok(SyncPolicy::Interval(MAX_DURATION)));
        // Every accepted interval is a whole number of milliseconds from 1 ms
        // to the bound: its extremes, and values spread over the range.
        let max_ms = u64::try_from(MAX_DURATION.as_millis()).unwrap();
        let spread = (0..=64).map(|i| 1 + (max_ms - 1) / 64 * i);
        for ms in [1, 999, 1000, 1001, max_ms - 1, max_ms].into_iter().chain(spread) {
            for arg in [format!("{ms}ms"), format!("{}s", (ms / 1000).max(1))] {
                let policy = parse_sync(&arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
                assert_eq!(parse_sync(&sync_to_arg(policy)), Ok(policy), "{arg}");
            }
        }
    }
}
