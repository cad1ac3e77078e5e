//! Positions and identities: [`Seq`] (the global, contiguous sequence number
//! of a journaled event), [`Timestamp`] (unix nanoseconds) and [`StreamId`]
//! (a cheaply cloned routing key). `Seq(0)` means "before the first event",
//! so a fresh client resumes from `Seq::ZERO` and the first event is `Seq(1)`.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A global sequence number.
///
/// Journaled events get contiguous seqs starting at 1; `Seq::ZERO` is the
/// cursor of a client that has seen nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The cursor before the first event.
    pub const ZERO: Seq = Seq(0);
    /// The largest representable seq.
    pub const MAX: Seq = Seq(u64::MAX);

    /// Wraps a raw number.
    pub const fn new(n: u64) -> Self {
        Seq(n)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one.
    ///
    /// # Panics
    ///
    /// Panics on overflow past `u64::MAX`, which at a billion events a second
    /// takes 584 years; silently wrapping would reuse seqs.
    #[must_use]
    pub const fn next(self) -> Self {
        match self.0.checked_add(1) {
            Some(n) => Seq(n),
            None => panic!("Seq overflow"),
        }
    }

    /// The seq before this one, or `None` for `Seq::ZERO`.
    pub const fn prev(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(n) => Some(Seq(n)),
            None => None,
        }
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u64> for Seq {
    fn from(n: u64) -> Self {
        Seq(n)
    }
}

impl From<Seq> for u64 {
    fn from(s: Seq) -> Self {
        s.0
    }
}

/// A wall-clock instant in unix nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time. A clock before 1970 reads as 0; one past 2554 saturates.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime`, clamping to the representable range.
    pub fn from_system_time(t: SystemTime) -> Self {
        let nanos = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the unix epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Back to a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self::from_system_time(t)
    }
}

/// Defines a cheap-to-clone string id type: a reference-counted `str` with
/// the conversions, comparisons and serde form of a plain string.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates an id.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                $name(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // `Box<str>` accepts both borrowed and owned strings from the format.
                Box::<str>::deserialize(d).map(|b| $name(Arc::from(b)))
            }
        }
    };
}

string_id! {
    /// A routing key (session, job, document id). Cloning is a reference-count
    /// increment, so envelopes can carry it to many subscribers for free.
    StreamId
}

string_id! {
    /// A caller-chosen id of one appended event (a request id, a message id),
    /// stored with its record: a feed journals an event once per id within its
    /// dedupe window, so an append retried after a lost acknowledgement is not
    /// written twice.
    EventId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_next_prev_and_display() {
        assert_eq!(Seq::ZERO.next(), Seq(1));
        assert_eq!(Seq(5).prev(), Some(Seq(4)));
        assert_eq!(Seq::ZERO.prev(), None);
        assert_eq!(Seq(42).to_string(), "42");
        assert!(Seq(1) < Seq(2));
    }

    #[test]
    fn timestamp_round_trips_system_time() {
        let t = Timestamp(1_700_000_000_123_456_789);
        assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        assert!(Timestamp::now().as_nanos() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn stream_id_is_cheap_and_comparable() {
        let a = StreamId::from("sess-1");
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a.as_str(), "sess-1");
        assert_eq!(format!("{a:?}"), "\"sess-1\"");
    }
}
