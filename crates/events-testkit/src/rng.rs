//! A tiny deterministic generator for tests: random-looking inputs (kill
//! moments, garbage bytes, CRC test data) that a failing run reproduces
//! from its seed.

/// The next number of a xorshift generator (`state` must not be zero).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `n` bytes from [`xorshift`] seeded with `seed` (the low byte of each number).
pub fn bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n).map(|_| xorshift(&mut seed) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        assert_eq!(bytes(64, 7), bytes(64, 7));
        assert_ne!(bytes(64, 7), bytes(64, 8));
        let mut state = 7;
        assert_eq!(bytes(3, 7), (0..3).map(|_| xorshift(&mut state) as u8).collect::<Vec<_>>());
    }
}
