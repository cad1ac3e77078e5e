//! The [`Event`] trait: what a user's event type must be, the three
//! classification hooks (durability, routing key, terminal) that the fan-out,
//! the sinks and the durable feed consult, and its schema version with the
//! [`upcast`](Event::upcast) hook that reads older records ([`Old`]). The
//! hooks have defaults so a plain serde type becomes an event with an empty
//! `impl`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, CodecError};

/// Whether an event belongs in the durable journal.
///
/// Ephemeral events (streaming tokens, heartbeats, progress ticks) reach live
/// in-process subscribers but are filtered out *before* any clone or encode on
/// the durable path. Default for [`Event::durability`]: [`Durability::Durable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Journaled with a sequence number and served to resuming clients.
    #[default]
    Durable,
    /// Delivered live only; never journaled.
    Ephemeral,
}

impl Durability {
    /// `true` for [`Durability::Durable`].
    pub fn is_durable(self) -> bool {
        matches!(self, Durability::Durable)
    }
}

/// An event that can travel through the pipeline.
///
/// The bounds are what the layers need: serde to journal it, `Clone` for the
/// rare consumer that wants an owned copy (delivery itself shares one `Arc`),
/// and `Send + Sync + 'static` to cross tasks.
///
/// # Example
///
/// ```
/// use events_core::{Durability, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// enum Job {
///     Progress { job: String, pct: u8 },
///     Done { job: String },
/// }
///
/// impl Event for Job {
///     fn durability(&self) -> Durability {
///         match self {
///             Job::Progress { .. } => Durability::Ephemeral,
///             Job::Done { .. } => Durability::Durable,
///         }
///     }
///     fn stream_id(&self) -> Option<&str> {
///         match self {
///             Job::Progress { job, .. } | Job::Done { job } => Some(job),
///         }
///     }
///     fn is_terminal(&self) -> bool {
///         matches!(self, Job::Done { .. })
///     }
/// }
///
/// assert!(Job::Done { job: "j1".into() }.is_terminal());
/// ```
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The schema version of this type, stored with every record written
    /// (the façade writes no version bytes for version 1, so journals
    /// written before versions existed read as version 1). Raise it when a
    /// change makes older records undecodable as this type, and say how to
    /// read them in [`upcast`](Event::upcast). Default: 1.
    const VERSION: u32 = 1;

    /// Reads a record written by an older version of this type (`old.version()
    /// < Self::VERSION`), typically by decoding it as the old type and
    /// converting: `Ok(old.decode::<V1>()?.into())`. Default: no upcaster,
    /// [`CodecError::Version`]. With a self-describing codec (`MsgPack`),
    /// added `#[serde(default)]` fields and new variants need no new version.
    ///
    /// # Errors
    ///
    /// Whatever the conversion reports; [`CodecError::Version`] by default.
    fn upcast<C: Codec>(old: Old<'_, C>) -> Result<Self, CodecError>
    where
        Self: Sized,
    {
        Err(old.unsupported(Self::VERSION))
    }

    /// Whether this event is journaled. Default: [`Durability::Durable`].
    fn durability(&self) -> Durability {
        Durability::Durable
    }

    /// The event's own routing key (session, job, document…). When the
    /// caller of `record`/`append` names a stream id, the caller's wins.
    /// Default: `None`.
    fn stream_id(&self) -> Option<&str> {
        None
    }

    /// Whether this event ends its stream (a job finished, a session closed).
    /// Terminal events travel exactly like the others; the flag is for
    /// consumers. Default: `false`.
    fn is_terminal(&self) -> bool {
        false
    }
}

/// A record written by an older version of an event type, handed to
/// [`Event::upcast`]: its version and a way to decode it as the type that
/// version had.
#[derive(Debug)]
pub struct Old<'a, C> {
    version: u32,
    body: &'a [u8],
    codec: &'a C,
}

impl<'a, C: Codec> Old<'a, C> {
    /// A record of `version` whose payload body (the codec's encoding of
    /// `(stream id, event)`, as the façade writes it) is `body`.
    pub fn new(version: u32, body: &'a [u8], codec: &'a C) -> Self {
        Old { version, body, codec }
    }

    /// The schema version the record was written with.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Decodes the record's event as `T`, the type it had at that version.
    ///
    /// # Errors
    ///
    /// The codec's error when the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        let (_stream, event): (Option<crate::StreamId>, T) = self.codec.decode(self.body)?;
        Ok(event)
    }

    /// The error for a version nothing knows how to read.
    pub fn unsupported(&self, current: u32) -> CodecError {
        CodecError::Version { codec: C::NAME, version: self.version, current }
    }
}
