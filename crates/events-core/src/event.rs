//! The [`Event`] trait: what a user's event type must be, and the three
//! classification hooks (durability, routing key, terminal) that the fan-out,
//! the sinks and the durable feed consult. The hooks have defaults so a plain
//! serde type becomes an event with an empty `impl`.

use serde::Serialize;
use serde::de::DeserializeOwned;

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
