//! The replicator as a durable consumer of the journal it replicates: its
//! checkpoint file (`<journal dir>/consumers/<name>`, written by
//! `events_journal::ConsumerFile`), the rule that names it
//! ([`replicator_consumer_name`]), and the batched commits of what
//! JetStream acknowledged.
//!
//! Neighbours: `builder.rs` opens the file and commits the position the
//! first resync found before spawning anything; the acknowledgements that
//! `publish.rs` settles move the task's progress channel, which the
//! `Checkpointer` task of `replicator.rs` watches; `replicator.rs` flushes the last
//! progress at `shutdown` and reports the checkpoint in the stats. The
//! journal's writer reads the file at every retention pass and keeps the
//! segments the replicator still needs, up to its `consumer_limit`
//! (`events_journal`'s `pin.rs`).
//!
//! Invariant: the checkpoint never names a seq JetStream has not
//! acknowledged (it is only ever written from the progress channel, which
//! only acknowledgements and resyncs move), save one the journal no longer
//! holds: moved back (a resync sends again from an earlier seq), it stops
//! at the journal's earliest retained seq less one, where it still pins
//! what the replicator needs, since retention takes a checkpoint below that
//! for an expired one; commits run one at a time, each of the progress as
//! it then is, so none lands an older seq over a newer one; it always
//! carries the epoch of the journal being replicated, and its `fdatasync`
//! runs on the blocking pool, at most once per interval, so it never holds
//! up a publish. The
//! checkpoint is not where replication resumes (the stream is): it exists
//! for the retention pin and for lag reporting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use events::layers::journal::{ConsumerFile, MAX_CONSUMER_NAME, Reader};
use tokio::sync::watch;

use crate::NatsError;

/// What the default consumer name starts with.
const PREFIX: &str = "replicator.";

/// The consumer name a replicator publishing on `subject` registers under
/// unless its builder says otherwise
/// ([`ReplicatorBuilder::consumer_name`](crate::ReplicatorBuilder::consumer_name)).
///
/// The rule: `replicator.<subject>` when that is a valid consumer name (at
/// most 64 bytes of `[A-Za-z0-9._-]`), so `feed.events` gives
/// `replicator.feed.events` and a shared stream's feed `events.eu-1` gives
/// `replicator.events.eu-1`. Otherwise every byte outside that set becomes
/// `_`, the result is cut to 47 bytes, and `-` plus the 16 hex digits of
/// the subject's 64-bit FNV-1a hash are appended (64 bytes at most), so
/// two subjects that sanitize or truncate alike still get two names.
///
/// ```
/// assert_eq!(events_nats::replicator_consumer_name("feed.events"), "replicator.feed.events");
/// let odd = events_nats::replicator_consumer_name("feed.é");
/// assert!(odd.starts_with("replicator.feed.__-") && odd.len() == 11 + 8 + 16);
/// ```
pub fn replicator_consumer_name(subject: &str) -> String {
    let plain = format!("{PREFIX}{subject}");
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if plain.len() <= MAX_CONSUMER_NAME && plain.bytes().all(valid) {
        return plain;
    }
    let mut name: String = plain.bytes().map(|b| if valid(b) { char::from(b) } else { '_' }).collect();
    name.truncate(MAX_CONSUMER_NAME - 17);
    name.push_str(&format!("-{:016x}", fnv1a(subject.as_bytes())));
    name
}

/// 64-bit FNV-1a: stable across releases and platforms (unlike std's
/// `DefaultHasher`), which a name on disk needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The replicator's registration: its open checkpoint file and the last
/// seq made durable in it.
#[derive(Debug)]
pub(crate) struct Registration {
    name: String,
    path: PathBuf,
    epoch: u64,
    /// Held by each commit from the moment it reads the progress until its
    /// write is durable: commits run one at a time, each of the progress as
    /// it is then, so a commit that lost a race (a checkpointer aborted with
    /// its write still running) never lands an older seq over a newer one.
    file: Arc<Mutex<ConsumerFile>>,
    persisted: Arc<AtomicU64>,
    /// The task's acknowledged progress: what a commit makes durable.
    progress: watch::Receiver<u64>,
    /// The replicated journal, for its earliest retained seq.
    reader: Reader,
}

/// The seq a commit makes durable for acknowledged progress `seq`, over a
/// checkpoint at `persisted`: `seq` itself when it moves the checkpoint on.
/// Lower (the replicator sends again from an earlier seq: a stream emptied
/// or made again, a server that lost acknowledged messages), it never goes
/// below the journal's earliest retained seq less one (`first`): retention
/// takes a checkpoint under that for an expired one and pins nothing for
/// it, so the segments kept for the records never replicated would go at
/// the next roll. Without `first` (the directory cannot be listed), the
/// checkpoint stays where it is.
fn target(seq: u64, persisted: u64, first: Option<u64>) -> u64 {
    match first {
        _ if seq >= persisted => seq,
        Some(first) => seq.max(first.saturating_sub(1).min(persisted)),
        None => persisted,
    }
}

/// After a commit of `target`, moved back from `before`: where to commit
/// again when the journal now starts at `first`, past it (retention removed
/// what the checkpoint before pinned while this one was read and written):
/// its start less one, never above `before` (a seq the replicator never
/// got to stays unclaimed, as when it was cut loose).
fn recheck(target: u64, before: u64, first: u64) -> Option<u64> {
    let onto = first.saturating_sub(1).min(before);
    (target < before && target < onto).then_some(onto)
}

/// The seq a replicator of the journal of `epoch` in `dir` had acknowledged
/// through, as consumer `name`'s checkpoint says (0 if there is none, it
/// cannot be read, or it is of another journal). Reads only: nothing is
/// created.
pub(crate) async fn replicated_before(dir: &Path, name: &str, epoch: u64) -> u64 {
    let (dir, name) = (dir.to_path_buf(), name.to_owned());
    let listed = tokio::task::spawn_blocking(move || {
        let consumers = events::layers::journal::list_consumers(&dir).ok()?;
        let found = consumers.into_iter().find(|c| c.name == name)?;
        found.checkpoint.ok().filter(|c| c.epoch == epoch).map(|c| c.seq)
    });
    listed.await.ok().flatten().unwrap_or(0)
}

impl Registration {
    /// Opens (or creates) the checkpoint of consumer `name` of the journal
    /// `reader` reads, on the blocking pool. An existing checkpoint is left
    /// as it is until [`write`](Self::write) replaces it (the start commits
    /// the position the first resync found); one of another epoch counts
    /// as none.
    pub(crate) async fn open(
        reader: Reader,
        name: String,
        epoch: u64,
        progress: watch::Receiver<u64>,
    ) -> Result<Self, NatsError> {
        let dir = reader.dir().to_path_buf();
        let opened = tokio::task::spawn_blocking(move || ConsumerFile::open(&dir, &name, epoch))
            .await
            .map_err(|e| NatsError::js("registering the replicator's checkpoint", e))?;
        let (file, found) = opened?;
        tracing::debug!(consumer = file.name(), path = %file.path().display(), ?found, "replicator checkpoint opened");
        Ok(Registration {
            name: file.name().to_owned(),
            path: file.path().to_path_buf(),
            epoch,
            persisted: Arc::new(AtomicU64::new(if found.epoch == epoch { found.seq } else { 0 })),
            file: Arc::new(Mutex::new(file)),
            progress,
            reader,
        })
    }

    /// The checkpoint file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The consumer name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The last seq made durable in the checkpoint.
    pub(crate) fn persisted(&self) -> u64 {
        self.persisted.load(Ordering::Acquire)
    }

    /// Makes the newest acknowledged progress the durable checkpoint (see
    /// [`target`]) unless it already is; a failure is returned and leaves
    /// the previous checkpoint in place (the next commit retries).
    pub(crate) async fn commit(&self) -> Result<(), NatsError> {
        self.commit_progress(false).await
    }

    /// [`commit`](Self::commit), under the replicated journal's epoch,
    /// whatever the file held (its epoch too).
    ///
    /// # Errors
    ///
    /// [`NatsError::Journal`] naming the file if the write or its
    /// `fdatasync` fails; the previous checkpoint stays.
    pub(crate) async fn write(&self) -> Result<(), NatsError> {
        self.commit_progress(true).await
    }

    async fn commit_progress(&self, always: bool) -> Result<(), NatsError> {
        let (file, persisted) = (Arc::clone(&self.file), Arc::clone(&self.persisted));
        let (progress, reader, epoch) = (self.progress.clone(), self.reader.clone(), self.epoch);
        let committed = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            let before = persisted.load(Ordering::Acquire);
            let seq = *progress.borrow();
            let first = || reader.first_seq().ok();
            let target = target(seq, before, if seq < before { first() } else { None });
            if target == before && !always {
                return Ok(());
            }
            file.commit(target, epoch)?;
            persisted.store(target, Ordering::Release);
            // Moved back: retention may have removed what the checkpoint
            // before pinned while this one was read and written, leaving
            // this one under the journal's earliest seq. Then onto it.
            if target < before
                && let Some(onto) = first().and_then(|first| recheck(target, before, first))
            {
                file.commit(onto, epoch)?;
                persisted.store(onto, Ordering::Release);
            }
            Ok::<_, NatsError>(())
        });
        committed.await.map_err(|e| NatsError::js("committing the replicator's checkpoint", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::layers::journal::validate_consumer_name;

    /// Forward, a commit takes the progress; back, it stops at the
    /// journal's earliest seq less one (never above where it was), or
    /// stays where it was when the journal cannot be listed.
    #[test]
    fn a_checkpoint_moves_back_no_further_than_the_journal_starts() {
        assert_eq!(target(60, 50, None), 60);
        assert_eq!(target(50, 50, None), 50);
        assert_eq!(target(0, 50, Some(31)), 30, "the journal starts at 31");
        assert_eq!(target(40, 50, Some(31)), 40, "still retained: sent again from there");
        assert_eq!(target(0, 50, Some(1)), 0, "nothing pruned: from the start");
        assert_eq!(target(0, 50, Some(90)), 50, "cut loose past it: no further than where it was");
        assert_eq!(target(0, 50, None), 50, "the journal cannot be listed: kept");
        // Committed at 30 while retention removed up to 40 under the
        // checkpoint before (50): onto 39. Never past where it was, nor
        // again when the journal still holds what it names.
        assert_eq!(recheck(30, 50, 40), Some(39));
        assert_eq!(recheck(30, 50, 90), Some(50), "cut loose meanwhile: no seq it never got to");
        assert_eq!(recheck(30, 50, 31), None, "still pinned from 31");
        assert_eq!(recheck(60, 50, 90), None, "moved forward: nothing to check");
    }

    #[test]
    fn default_names_are_valid_distinct_and_stable() {
        let long = "x".repeat(80);
        let subjects = ["feed.events", "events.eu-1", "a*b", "a_b", "a>b", "feed.é", long.as_str(), &long[1..]];
        let names: Vec<String> = subjects.iter().map(|s| replicator_consumer_name(s)).collect();
        for (subject, name) in subjects.iter().zip(&names) {
            assert!(validate_consumer_name(name).is_ok(), "{subject:?} gave {name:?}");
        }
        assert_eq!(names[0], "replicator.feed.events");
        assert_eq!(names[1], "replicator.events.eu-1");
        assert_eq!(names[3], "replicator.a_b", "a valid subject is kept verbatim");
        assert_ne!(names[2], names[3], "a sanitized subject is told apart by its hash");
        assert_eq!(names[6].len(), MAX_CONSUMER_NAME);
        assert_ne!(names[6], names[7], "subjects truncated alike are told apart by their hash");
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a's published value for \"a\"");
    }
}
