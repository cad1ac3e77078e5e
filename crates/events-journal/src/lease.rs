//! The seq lease: `<dir>/LEASE`, where the writer records, durably, the
//! highest seq it may hand out before it writes there again, the boot of
//! the machine it runs in, and whether every seq it hands out is synced
//! first. It is what keeps "no seq reuse" true across a power loss under
//! `SyncPolicy::Never` and `Interval`: those policies acknowledge records
//! the kernel still holds, and readers may see them, so a power loss can
//! take seqs that were handed out. Recovery cannot see what it lost, but
//! the lease bounds it:
//!
//! - at open the writer reads the previous writer's lease; if that writer
//!   did not close, may have run in another boot (the kernel's `boot_id`
//!   differs, or is not known then or now: a reboot or a power loss may
//!   have come in between, where a process crash keeps the page cache)
//!   and acknowledged before syncing, the next seq goes above its lease (a
//!   new segment named `upto + 1`: readers see one `Gap`);
//! - then, before any append, it writes its own lease (this boot, open,
//!   `upto` = the next seq + [`LEASE_STEP`] - 1) and fsyncs it; an append
//!   that would go past `upto` first extends it the same way. Under
//!   `Always` every acknowledged seq was synced, so nothing is skipped and
//!   the lease is never extended;
//! - a clean close records itself closed (after the final sync), so the
//!   next open skips nothing even after a reboot.
//!
//! The record is 64 bytes, written in one of two slots (the generation's
//! parity), 512 bytes apart so that a torn write can only damage the slot
//! being written; the valid slot with the higher generation wins. A torn
//! write leaves the previous lease, which still bounds every seq handed
//! out, since a seq past it waits for the fsync of the new one. No lease
//! (a journal of an older build): nothing is skipped, as before. No boot
//! id (a platform without `/proc/sys/kernel/random/boot_id`): a reopen
//! after a writer that did not close skips its lease, as after a reboot,
//! since it cannot tell one from a process crash. Leases never name a seq
//! past `MAX_SEQ`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::seam::{Io, Step};

/// File name of the lease inside a journal directory.
pub const LEASE_FILE: &str = "LEASE";

/// Length of one lease record.
const LEASE_LEN: usize = 64;

/// Where the second slot starts (the first is at 0).
const SLOT_STRIDE: u64 = 512;

/// How many seqs one lease covers past the next seq: one `fdatasync` of
/// `LEASE` per this many appends under `Never` or `Interval`, and at most
/// this many seqs skipped after a power loss.
pub const LEASE_STEP: u64 = 1 << 20;

const MAGIC: [u8; 8] = *b"EVJLEASE";
const VERSION: u16 = 1;
const STATE_OPEN: u16 = 1;
const STATE_CLOSED: u16 = 2;

/// One lease record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Written by a writer that is still open (or crashed), not by a clean close.
    pub(crate) open: bool,
    /// Every seq this writer hands out is synced first (`SyncPolicy::Always`).
    pub(crate) synced_acks: bool,
    /// Its open made every sealed segment durable before this lease was
    /// written (`Journal::sync_sealed`), so that a clean close, or
    /// `Always`, vouches for all of them. Never set by a build before
    /// 2026-12-06 (the byte was 0).
    pub(crate) sealed_synced: bool,
    /// Which slot wins: the higher one.
    pub(crate) generation: u64,
    pub(crate) epoch: u64,
    /// No seq above this is handed out before a later lease is durable.
    pub(crate) upto: u64,
    /// The boot the writer ran in (`None`: unknown).
    pub(crate) boot: Option<[u8; 16]>,
}

impl Lease {
    fn encode(&self) -> [u8; LEASE_LEN] {
        let mut b = [0u8; LEASE_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(if self.open { STATE_OPEN } else { STATE_CLOSED }).to_le_bytes());
        b[12] = u8::from(self.synced_acks);
        b[13] = u8::from(self.boot.is_some());
        b[14] = u8::from(self.sealed_synced);
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..32].copy_from_slice(&self.epoch.to_le_bytes());
        b[32..40].copy_from_slice(&self.upto.to_le_bytes());
        b[40..56].copy_from_slice(&self.boot.unwrap_or_default());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8; LEASE_LEN]) -> Option<Lease> {
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
        if b[0..8] != MAGIC || u16_at(8) != VERSION || crc32fast::hash(&b[..60]) != crc {
            return None;
        }
        let open = match u16_at(10) {
            STATE_OPEN => true,
            STATE_CLOSED => false,
            _ => return None,
        };
        let boot = (b[13] == 1).then(|| b[40..56].try_into().unwrap_or_default());
        if u64_at(32) > crate::format::MAX_SEQ {
            return None; // not a seq any journal hands out
        }
        Some(Lease {
            open,
            synced_acks: b[12] == 1,
            sealed_synced: b[14] == 1,
            generation: u64_at(16),
            epoch: u64_at(24),
            upto: u64_at(32),
            boot,
        })
    }

    /// The seqs a power loss may have taken after they were handed out,
    /// from `next` (the next seq recovery found) on: `Some(upto)` when
    /// this lease's writer did not close, acknowledged before syncing, may
    /// have run in a boot other than `boot` (not known to be the same: a
    /// boot id unknown then or now counts as another, since taking it for
    /// the same would hand out again the seqs a power loss took; the cost
    /// is one lease's seqs skipped, one gap for readers) and leased seqs
    /// from `next` on.
    pub(crate) fn lost_upto(&self, epoch: u64, boot: Option<[u8; 16]>, next: u64) -> Option<u64> {
        let same_boot = matches!((self.boot, boot), (Some(then), Some(now)) if then == now);
        (self.open && !self.synced_acks && self.epoch == epoch && !same_boot && self.upto >= next).then_some(self.upto)
    }
}

/// What the last writer's lease tells recovery.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Vouched {
    /// The seqs it acknowledged that no crash since can have taken.
    pub(crate) kept: Option<Kept>,
    /// Its lease, when it crashed (the lease still open) and the machine
    /// has restarted since (both boot ids known, and different): what it
    /// wrote and never synced may then have reached the disk in any order,
    /// a later page without an earlier one.
    pub(crate) rebooted: Option<Lease>,
}

impl Vouched {
    /// From the last writer's `lease` (if any) and its watermark's
    /// `(epoch, seq)` (if any), seen from a process in `boot`.
    pub(crate) fn by(lease: Option<Lease>, acked: Option<(u64, u64)>, boot: Option<[u8; 16]>) -> Vouched {
        let rebooted = lease.filter(|l| l.open && matches!((l.boot, boot), (Some(then), Some(now)) if then != now));
        Vouched { kept: acked.and_then(|(epoch, seq)| Kept::by(lease, epoch, seq, boot)), rebooted }
    }
}

/// The seqs the last writer acknowledged that no crash since can have
/// taken: recovery that would cut through them found damage, not a torn
/// write, and [`RecoveryMode::Strict`](crate::RecoveryMode::Strict)
/// refuses it (`recover_segment.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kept {
    pub(crate) epoch: u64,
    /// The last seq it acknowledged (its watermark's).
    pub(crate) upto: u64,
    /// Why they survive, for the error.
    pub(crate) why: &'static str,
}

impl Kept {
    /// Whether the seqs up to `acked` (the previous writer's watermark, of
    /// `epoch`) must still be on disk, in every segment, by the previous
    /// writer's `lease`, seen from a process in `boot`:
    /// - in the same boot: a process crash keeps the page cache, and only
    ///   a reboot (a power loss) drops unsynced writes;
    /// - after a clean close: it synced everything first;
    /// - when it synced every seq before handing it out (`Always`): its
    ///   open synced the segment it took over, every roll the segment it
    ///   sealed;
    /// - not otherwise (no lease, no boot id, or `Never` / `Interval`
    ///   across a reboot: [`Lease::lost_upto`] skips what was lost).
    ///
    /// The last two also need its open to have made every sealed segment
    /// durable, those an earlier writer may have left unsynced included
    /// (`Journal::sync_sealed`; `sealed_synced`): a lease of an older build
    /// does not say so, and vouches for nothing after a reboot.
    pub(crate) fn by(lease: Option<Lease>, epoch: u64, acked: u64, boot: Option<[u8; 16]>) -> Option<Kept> {
        let lease = lease.filter(|l| l.epoch == epoch && acked > 0)?;
        let same_boot = matches!((lease.boot, boot), (Some(then), Some(now)) if then == now);
        // A clean close and `Always` vouch for the sealed segments only when
        // the writer's open made them durable first (a lease of an older
        // build did not say so, and may not have).
        let why = if !lease.open && lease.sealed_synced {
            "closed cleanly after syncing them"
        } else if same_boot {
            "the machine has not restarted since, so its page cache still held them"
        } else if lease.synced_acks && lease.sealed_synced {
            "synced every record before acknowledging it"
        } else {
            return None;
        };
        Some(Kept { epoch, upto: acked, why })
    }

    /// The refusal of a cut at `offset` of `path` (a segment of `epoch`)
    /// that loses the seqs from `first_lost` on, when some of them were
    /// kept; `what` says what is wrong there.
    pub(crate) fn refusal(
        &self,
        path: &Path,
        offset: u64,
        epoch: u64,
        first_lost: u64,
        what: &str,
    ) -> Option<JournalError> {
        if epoch != self.epoch || first_lost > self.upto {
            return None;
        }
        let reason = format!(
            "{what}, where seq {first_lost} should be; the last writer acknowledged up to seq {} and {}, so this is damage, not a torn write (open in a salvage mode, e.g. RecoveryMode::TruncateAtCorruption, to cut it: readers then see a gap)",
            self.upto, self.why
        );
        Some(JournalError::corrupt(path, offset, Some(first_lost), reason))
    }
}

/// Makes durable, before recovery drops frames of `rebooted`'s writer
/// whose seqs run up to `dropped` (a power-loss cut), a lease that has the
/// next open skip past them ([`Lease::lost_upto`]) if this one never gets
/// that far: its writer's, still open, no longer vouching that it synced
/// what it handed out, up to `dropped` (under `Always`; its own `upto`
/// otherwise, which covers them). The open that goes on writes its own
/// lease over it.
pub(crate) fn hold_back(io: &Io, dir: &Path, rebooted: Lease, dropped: u64) -> Result<(), JournalError> {
    let upto = if rebooted.synced_acks { dropped } else { rebooted.upto.max(dropped) };
    let mut leaser = Leaser::open(io, dir, Some(rebooted))?;
    leaser.begin(Lease { synced_acks: false, upto, ..rebooted })
}

/// The valid lease of `dir` with the highest generation (`None`: no file,
/// or no valid slot).
pub(crate) fn read(dir: &Path) -> Result<Option<Lease>, JournalError> {
    let path = dir.join(LEASE_FILE);
    let file = match crate::own_file::open_regular(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("open lease", &path, e)),
    };
    let mut best: Option<Lease> = None;
    for slot in 0..2 {
        let mut buf = [0u8; LEASE_LEN];
        match file.read_exact_at(&mut buf, slot * SLOT_STRIDE) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(JournalError::io("read lease", &path, e)),
        }
        if let Some(lease) = Lease::decode(&buf)
            && best.is_none_or(|b| lease.generation > b.generation)
        {
            best = Some(lease);
        }
    }
    Ok(best)
}

/// The writer's handle on `LEASE`.
#[derive(Debug)]
pub(crate) struct Leaser {
    file: File,
    path: PathBuf,
    io: Io,
    /// The last lease made durable (before [`begin`](Self::begin): the
    /// previous writer's).
    pub(crate) current: Lease,
    /// Set by `begin`: only this writer's own lease is extended or closed.
    begun: bool,
    /// The generation of this writer's first lease (`begin`'s).
    pub(crate) opened: u64,
}

impl Leaser {
    /// Opens (or creates) the lease of `dir`, whose valid record is
    /// `previous`, without writing: [`begin`](Self::begin) does.
    pub(crate) fn open(io: &Io, dir: &Path, previous: Option<Lease>) -> Result<Leaser, JournalError> {
        let path = dir.join(LEASE_FILE);
        let file = io
            .op(Step::Lease, || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path))
            .map_err(|e| JournalError::io("open lease", &path, e))?;
        if previous.is_none() {
            // The name must be as durable as the first lease written in it:
            // also when an earlier open created the file and crashed (or
            // failed) before this fsync.
            io.sync_dir(dir).map_err(|e| JournalError::io("fsync directory", dir, e))?;
        }
        // Until `begin`, the previous record (or nothing: generation 0 goes first).
        let current = previous.unwrap_or(Lease {
            open: false,
            synced_acks: true,
            sealed_synced: false,
            generation: u64::MAX,
            epoch: 0,
            upto: 0,
            boot: None,
        });
        Ok(Leaser { file, path, io: io.clone(), current, begun: false, opened: 0 })
    }

    /// Makes this writer's first lease durable, in the slot after the previous one's.
    pub(crate) fn begin(&mut self, lease: Lease) -> Result<(), JournalError> {
        self.write(Lease { generation: self.current.generation.wrapping_add(1), ..lease })?;
        self.begun = true;
        self.opened = self.current.generation;
        Ok(())
    }

    /// Makes a lease up to `upto` durable.
    pub(crate) fn extend(&mut self, upto: u64) -> Result<(), JournalError> {
        self.write(Lease { upto, generation: self.current.generation.wrapping_add(1), ..self.current })
    }

    /// Records a clean close: everything handed out is synced. Does
    /// nothing before `begin`: the previous writer's lease stays as it was
    /// (an open refused after recovery must not erase what it says).
    pub(crate) fn close(&mut self) -> Result<(), JournalError> {
        if !self.begun {
            return Ok(());
        }
        self.write(Lease { open: false, generation: self.current.generation.wrapping_add(1), ..self.current })
    }

    fn write(&mut self, lease: Lease) -> Result<(), JournalError> {
        let bytes = lease.encode();
        let at = (lease.generation % 2) * SLOT_STRIDE;
        let written = self.io.op(Step::Lease, || self.file.write_all_at(&bytes, at));
        written.map_err(|e| JournalError::io("write lease", &self.path, e))?;
        self.io.sync_data(Step::Lease, &self.file).map_err(|e| JournalError::io("sync lease", &self.path, e))?;
        self.current = lease;
        Ok(())
    }
}

/// The kernel's id of the current boot (Linux); `None` where it cannot be read.
pub(crate) fn boot_id() -> Option<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    parse_boot_id(&text)
}

/// The 16 bytes of a UUID's text (`"8c0b…-…"`, dashes and a newline allowed).
fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text.trim().bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        id[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            open: true,
            synced_acks: false,
            sealed_synced: true,
            generation: 3,
            epoch: 9,
            upto: 1 << 20,
            boot: Some([7; 16]),
        }
    }

    #[test]
    fn records_round_trip_and_every_bit_flip_reads_as_absent() {
        let bytes = lease().encode();
        assert_eq!(Lease::decode(&bytes), Some(lease()));
        for bit in 0..LEASE_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Lease::decode(&b), None, "bit {bit}");
        }
        let unknown = Lease { boot: None, ..lease() };
        assert_eq!(Lease::decode(&unknown.encode()), Some(unknown));
        // A bound no journal reaches (a crafted file): skipping past it
        // would overflow the next seq.
        let past = Lease { upto: crate::format::MAX_SEQ + 1, ..lease() };
        assert_eq!(Lease::decode(&past.encode()), None);
    }

    #[test]
    fn only_an_open_unsynced_lease_not_known_of_this_boot_skips() {
        let l = lease();
        let other = Some([8; 16]);
        assert_eq!(l.lost_upto(9, other, 5), Some(1 << 20));
        assert_eq!(l.lost_upto(9, l.boot, 5), None, "same boot: a process crash keeps the page cache");
        // Not known to be the same boot: a power loss may have taken them
        // (it had been taken for the same boot: seqs handed out again).
        assert_eq!(l.lost_upto(9, None, 5), Some(1 << 20), "boot unknown now");
        assert_eq!(Lease { boot: None, ..l }.lost_upto(9, other, 5), Some(1 << 20), "boot unknown then");
        assert_eq!(Lease { open: false, ..l }.lost_upto(9, other, 5), None, "closed cleanly");
        assert_eq!(Lease { synced_acks: true, ..l }.lost_upto(9, other, 5), None, "Always");
        assert_eq!(l.lost_upto(10, other, 5), None, "another journal");
        assert_eq!(l.lost_upto(9, other, (1 << 20) + 1), None, "recovery is past it");
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_leaves_the_older() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lease { generation: 0, ..lease() };
        let mut leaser = Leaser::open(&Io::default(), dir.path(), None).unwrap();
        leaser.begin(lease()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first));
        leaser.extend(5 << 20).unwrap();
        let second = read(dir.path()).unwrap().unwrap();
        assert_eq!((second.generation, second.upto), (1, 5 << 20));
        // Tear the newer slot (generation 1, at 512): the older one is read.
        let file = OpenOptions::new().write(true).open(dir.path().join(LEASE_FILE)).unwrap();
        file.write_all_at(&[0xff; 8], SLOT_STRIDE + 20).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first));
        // A reopen writes after the winner, into the torn slot's place.
        let mut again = Leaser::open(&Io::default(), dir.path(), Some(first)).unwrap();
        again.begin(lease()).unwrap();
        assert_eq!(again.current.generation, 1);
        assert_eq!(read(dir.path()).unwrap(), Some(Lease { generation: 1, ..lease() }));
    }

    #[test]
    fn boot_ids_parse_from_the_kernels_text() {
        let id = parse_boot_id("8c0b1d2e-3f40-4a5b-9c6d-7e8f90a1b2c3\n").unwrap();
        assert_eq!(id[0], 0x8c);
        assert_eq!(id[15], 0xc3);
        assert_eq!(parse_boot_id("8c0b"), None);
        assert_eq!(parse_boot_id("zz0b1d2e-3f40-4a5b-9c6d-7e8f90a1b2c3"), None);
        if cfg!(target_os = "linux") {
            assert!(boot_id().is_some());
        }
    }
}
