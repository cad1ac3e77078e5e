//! Which stream ids a sealed segment may hold, answered from memory: a
//! Bloom filter of the keys of its per-stream index (`index.rs`), kept by
//! the writer's version checks (`guard.rs`) so that an append expecting
//! `Expected::NoStream` of a new stream skips every sealed segment without
//! reading its sidecar. Before, each such append read and checked every
//! retained segment's sidecar on the writer thread (4 ms with 64 segments
//! of 1 MiB), stalling every other appender.
//!
//! Invariant: no false negatives. A key the segment holds always answers
//! `true`; a key it does not hold answers `false` except for about one in a
//! hundred, which then costs the sidecar read it cost before.

use std::hash::{BuildHasher, Hasher};

/// Bits per key: with [`PROBES`] probes, about 1% false positives.
const BITS_PER_KEY: usize = 10;
/// Probes per key.
const PROBES: u64 = 7;

/// The keys of one sealed segment, as a Bloom filter.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    bits: Box<[u64]>,
}

impl KeyFilter {
    /// A filter of `keys` (`count` of them; a wrong count only changes the
    /// false positive rate).
    pub(crate) fn new<'a>(count: usize, keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let words = (count.max(1) * BITS_PER_KEY).div_ceil(64);
        let mut filter = KeyFilter { bits: vec![0u64; words].into_boxed_slice() };
        let len = filter.len();
        for key in keys {
            for bit in probes(len, key) {
                filter.bits[bit / 64] |= 1 << (bit % 64);
            }
        }
        filter
    }

    /// Whether the segment may hold `key` (`false`: it certainly does not).
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        probes(self.len(), key).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Its length in bits.
    fn len(&self) -> u64 {
        self.bits.len() as u64 * 64
    }
}

/// The bits of `key` in a filter of `len` bits: double hashing of one
/// 64-bit hash.
fn probes(len: u64, key: &[u8]) -> impl Iterator<Item = usize> + use<> {
    let mut hasher = FIXED.build_hasher();
    hasher.write(key);
    let hash = hasher.finish();
    let (h1, h2) = (hash, hash.rotate_left(32) | 1);
    (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % len) as usize)
}

/// A hasher with fixed keys: the filter lives in this process only, and its
/// keys are the feed's own stream ids.
const FIXED: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_and_few_others_are() {
        let keys: Vec<String> = (0..5_000).map(|i| format!("session-{i}")).collect();
        let filter = KeyFilter::new(keys.len(), keys.iter().map(|k| k.as_bytes()));
        assert!(keys.iter().all(|k| filter.may_contain(k.as_bytes())), "a false negative");
        let false_positives = (0..100_000).filter(|i| filter.may_contain(format!("other-{i}").as_bytes())).count();
        assert!(false_positives < 2_000, "{false_positives} false positives in 100,000");
        assert_eq!(filter.bits.len(), (5_000 * BITS_PER_KEY).div_ceil(64), "10 bits per key");
    }

    #[test]
    fn an_empty_segment_holds_nothing() {
        let filter = KeyFilter::new(0, []);
        assert!(!filter.may_contain(b"doc"));
        assert!(!filter.may_contain(b""));
    }
}
