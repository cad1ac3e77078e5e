//! Errors of the event model: [`CodecError`], returned when an event cannot
//! be encoded or a payload cannot be decoded. Every variant names the codec
//! so a journal holding payloads of another codec is easy to diagnose.

use std::error::Error as StdError;

/// A boxed underlying error from a codec library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Encoding or decoding a payload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be serialized.
    #[error("{codec}: cannot encode value")]
    Encode {
        /// The codec's name.
        codec: &'static str,
        /// What the codec library reported.
        #[source]
        source: BoxError,
    },
    /// The bytes are not a valid encoding of the requested type.
    #[error("{codec}: cannot decode {len}-byte payload")]
    Decode {
        /// The codec's name.
        codec: &'static str,
        /// The payload length.
        len: usize,
        /// What the codec library reported.
        #[source]
        source: BoxError,
    },
    /// The payload is larger than the codec's decode limit: refused by
    /// every decode, and by every encode of this crate's codecs (no decode
    /// would read what they wrote).
    #[error("{codec}: payload of {len} bytes exceeds the decode limit of {limit} bytes")]
    TooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The payload length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A value decoded but did not use every byte, so the payload is not
    /// what was written (or was written with another type or codec).
    #[error("{codec}: {trailing} trailing bytes after a {consumed}-byte value")]
    TrailingBytes {
        /// The codec's name.
        codec: &'static str,
        /// Bytes the value used.
        consumed: usize,
        /// Bytes left over.
        trailing: usize,
    },
    /// A record of a schema version this type cannot read: an older one
    /// with no [`upcast`](crate::Event::upcast), or a newer one than the
    /// code knows.
    #[error("{codec}: a record of schema version {version} cannot be read as version {current} ({})", why_version(*.version, *.current))]
    Version {
        /// The codec's name.
        codec: &'static str,
        /// The record's version.
        version: u32,
        /// The type's version ([`Event::VERSION`](crate::Event::VERSION)).
        current: u32,
    },
}

/// What a [`CodecError::Version`] asks of its reader: an upcaster for an
/// older record, newer code for a newer one (an upcaster cannot help).
fn why_version(version: u32, current: u32) -> &'static str {
    if version > current { "written by newer code: upgrade this reader" } else { "no upcaster for it" }
}
