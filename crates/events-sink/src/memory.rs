//! [`MemoryStore`]: an in-memory [`DurableStore`] (and so [`EventLog`]) for tests and examples, with
//! failure injection ([`MemoryStore::fail_next`]). Neighbours: the store
//! trait in `store.rs`; [`Watched`](crate::Watched) decorates it in the tests.
//! Invariant: seqs are contiguous from 1, and a failed append (injected)
//! consumes no seq and stores nothing.

use std::fmt;

use async_trait::async_trait;
use events_core::{Envelope, Seq, StreamId, Timestamp};
use parking_lot::Mutex;

use crate::{DurableStore, EventLog};

/// Why a [`MemoryStore`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// A failure injected with [`MemoryStore::fail_next`].
    #[error("injected append failure: seq {seq} was not assigned")]
    Injected {
        /// The seq the event would have received.
        seq: Seq,
    },
}

struct Inner<E> {
    log: Vec<Envelope<E>>,
    fail_next: usize,
}

/// An in-memory, sequenced event log.
///
/// # Example
///
/// ```
/// use events_core::Seq;
/// use events_sink::{DurableStore, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let env = store.append(Some("job-1".into()), 10u32).await.unwrap();
/// assert_eq!(env.seq, Seq::new(1));
///
/// store.fail_next(1);
/// assert!(store.append(None, 11).await.is_err());
/// assert_eq!(store.append(None, 12).await.unwrap().seq, Seq::new(2));
/// # });
/// ```
pub struct MemoryStore<E> {
    inner: Mutex<Inner<E>>,
}

impl<E> MemoryStore<E> {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore { inner: Mutex::new(Inner { log: Vec::new(), fail_next: 0 }) }
    }

    /// Makes the next `n` appends fail with [`MemoryStoreError::Injected`]
    /// (replacing any failures still pending).
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().fail_next = n;
    }

    /// The number of stored events.
    pub fn len(&self) -> usize {
        self.inner.lock().log.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().log.is_empty()
    }

    /// The seq of the newest stored event (`Seq::ZERO` when empty).
    pub fn latest_seq(&self) -> Seq {
        Seq::new(self.inner.lock().log.len() as u64)
    }
}

impl<E: Clone> MemoryStore<E> {
    /// A copy of the whole log.
    pub fn snapshot(&self) -> Vec<Envelope<E>> {
        self.inner.lock().log.clone()
    }
}

impl<E> Default for MemoryStore<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> fmt::Debug for MemoryStore<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("MemoryStore").field("len", &inner.log.len()).field("fail_next", &inner.fail_next).finish()
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> EventLog<E> for MemoryStore<E> {
    type Error = MemoryStoreError;

    async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<E>>, Self::Error> {
        let inner = self.inner.lock();
        // Seq n lives at index n - 1, so the events after `cursor` start at index `cursor`.
        let start = usize::try_from(cursor.get()).unwrap_or(usize::MAX).min(inner.log.len());
        Ok(inner.log[start..].iter().take(limit).cloned().collect())
    }

    async fn newest(&self) -> Result<Option<Seq>, Self::Error> {
        Ok(Some(Seq::new(self.inner.lock().log.len() as u64)))
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> DurableStore<E> for MemoryStore<E> {
    async fn append(&self, stream: Option<StreamId>, event: E) -> Result<Envelope<E>, Self::Error> {
        let mut inner = self.inner.lock();
        let seq = Seq::new(inner.log.len() as u64).next();
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(MemoryStoreError::Injected { seq });
        }
        let env = Envelope { seq, ts: Timestamp::now(), stream, event, id: None };
        inner.log.push(env.clone());
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_after_pages_and_clamps() {
        let store = MemoryStore::new();
        for n in 0..5u32 {
            store.append(None, n).await.unwrap();
        }
        let page = store.events_after(Seq::new(1), 2).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq.get()).collect::<Vec<_>>(), [2, 3]);
        assert!(store.events_after(Seq::new(5), 10).await.unwrap().is_empty());
        assert!(store.events_after(Seq::MAX, 10).await.unwrap().is_empty());
        assert_eq!(store.latest_seq(), Seq::new(5));
    }

    #[tokio::test]
    async fn injected_failures_consume_no_seq() {
        let store = MemoryStore::new();
        store.fail_next(2);
        let err = store.append(None, 'a').await.unwrap_err();
        assert_eq!(err, MemoryStoreError::Injected { seq: Seq::new(1) });
        assert!(store.append(None, 'b').await.is_err());
        assert_eq!(store.append(None, 'c').await.unwrap().seq, Seq::new(1));
        assert_eq!(store.len(), 1);
    }
}
