//! The frame CRC: CRC-32 (IEEE, as `crc32fast` computes it) of a frame's
//! bytes `0..4` and `8..`, skipping the CRC field.
//!
//! Every record a reader yields has its frame's CRC checked, so this is the
//! read path's inner loop. `crc32fast` is built for long buffers, but a
//! frame is short (280 bytes for a 256-byte payload) and its CRC skips a
//! field, so it takes two calls: a table lookup per byte for the first four
//! bytes, then a fold whose fixed costs (set-up, collapsing its parallel
//! streams into one by sequential folds, the final reduction) are paid per
//! frame. On a CPU with AVX-512 and `VPCLMULQDQ`, [`frame_crc`] instead
//! folds 64 bytes per step in one 512-bit register, puts the length field
//! into the first block in place of the CRC field (so the frame is one
//! message, with no table step), and folds the register's four lanes into
//! one at once (each lane multiplied by the constant for its distance, then
//! all XORed) rather than one after another. Elsewhere, and for frames
//! under 68 bytes, it calls `crc32fast`. Both give the same value: the
//! tests hold the fast path to `crc32fast` on every length and alignment,
//! and check that the fast path is taken wherever the CPU lists the
//! features.
//!
//! The frame layout this relies on (length at `0..4`, CRC at `4..8`) is
//! [`format`](crate::format)'s; its tests would fail if either moved.
//!
//! The folding follows the method of Gopal et al., "Fast CRC computation for
//! generic polynomials using PCLMULQDQ instruction" (Intel, 2009): for a
//! fold over `D` bits, the constants are `x^(D+32) mod P` and
//! `x^(D-32) mod P`, bit-reflected and shifted left by one.

/// The CRC-32 of a complete frame: bytes `0..4` and `8..`, skipping the CRC
/// field. The frame must be at least 8 bytes long.
#[inline]
pub(crate) fn frame_crc(frame: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if frame.len() >= x86::MIN_FRAME && x86::available() {
        // SAFETY: `available` found every CPU feature `frame_crc` enables.
        return unsafe { x86::frame_crc(frame) };
    }
    portable(frame)
}

/// `crc32fast` over the two parts: the reference the fast path is held to.
#[inline]
pub(crate) fn portable(frame: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[0..4]);
    h.update(&frame[8..]);
    h.finalize()
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;
    use std::sync::LazyLock;

    /// The shortest frame the fast path takes: its message (the frame
    /// without the 4-byte CRC field) fills at least one 64-byte block.
    pub(crate) const MIN_FRAME: usize = 68;

    // Fold constants for the reflected CRC-32 polynomial 0x04C11DB7, each
    // pair (x^(D+32) mod P, x^(D-32) mod P) for a fold over D bits.
    /// D = 512: one 64-byte block onto the next.
    pub(crate) const K512: (i64, i64) = (0x1_5444_2bd4, 0x1_c6e4_1596);
    /// D = 384, 256, 128: the first three 16-byte lanes of a block onto its last.
    pub(crate) const K384: (i64, i64) = (0x3db1_ecdc, 0x1_7435_9406);
    pub(crate) const K256: (i64, i64) = (0xf1da_05aa, 0x1_5a54_6366);
    pub(crate) const K128: (i64, i64) = (0x1_7519_97d0, 0xccaa_009e);
    /// The 96 → 64 bit step of the final reduction.
    const K5: i64 = 0x1_63cd_6124;
    /// Barrett reduction: the polynomial and its quotient constant.
    const P_X: i64 = 0x1_db71_0641;
    const U_PRIME: i64 = 0x1_f701_1641;

    /// True when the CPU has every feature [`frame_crc`] enables: looked
    /// up once, then one load per frame.
    #[inline]
    pub(crate) fn available() -> bool {
        static AVAILABLE: LazyLock<bool> = LazyLock::new(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("vpclmulqdq")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("pclmulqdq")
                && is_x86_feature_detected!("sse4.1")
                && is_x86_feature_detected!("ssse3")
        });
        *AVAILABLE
    }

    /// 16 bytes of `b` from `at` (bounds-checked).
    #[inline]
    fn load128(b: &[u8], at: usize) -> __m128i {
        let s = &b[at..at + 16];
        // SAFETY: `s` is 16 readable bytes and the load needs no alignment.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// 64 bytes of `b` from `at` (bounds-checked).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load512(b: &[u8], at: usize) -> __m512i {
        let s = &b[at..at + 64];
        // SAFETY: `s` is 64 readable bytes and the load needs no alignment.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    }

    /// `a` folded over 128 bits onto `b`.
    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn fold128(a: __m128i, b: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(_mm_xor_si128(b, _mm_clmulepi64_si128(a, k, 0x00)), _mm_clmulepi64_si128(a, k, 0x11))
    }

    /// The frame CRC of [`super::frame_crc`], for frames of at least
    /// [`MIN_FRAME`] bytes. Callers check [`available`] first: running it
    /// on a CPU without these features is undefined behaviour, which is why
    /// calling it from code without them takes `unsafe`.
    #[target_feature(enable = "avx512f,avx2,vpclmulqdq,pclmulqdq,sse4.1,ssse3")]
    pub(crate) fn frame_crc(frame: &[u8]) -> u32 {
        assert!(frame.len() >= MIN_FRAME);
        let len_field = u32::from_le_bytes(frame[0..4].try_into().expect("4 bytes"));
        // The message is `frame[4..]` with its first four bytes (the CRC
        // field) replaced by the length field; its byte `i` lies at `frame[4 + i]`.
        let msg = &frame[4..];
        let n = msg.len();
        // The first block, with the length field (XORed with the CRC's
        // initial value, all ones) in place of the CRC field.
        let mut z = _mm512_mask_set1_epi32(load512(msg, 0), 1, (len_field ^ u32::MAX) as i32);
        let k512 = _mm512_broadcast_i32x4(_mm_set_epi64x(K512.1, K512.0));
        let mut i = 64;
        while i + 64 <= n {
            let lo = _mm512_clmulepi64_epi128(z, k512, 0x00);
            let hi = _mm512_clmulepi64_epi128(z, k512, 0x11);
            z = _mm512_ternarylogic_epi64(load512(msg, i), lo, hi, 0x96); // a ^ b ^ c
            i += 64;
        }
        // The block's four lanes onto its last: each lane folded by its
        // distance, the last kept as it is, then all four XORed.
        let k = _mm512_set_epi64(0, 0, K128.1, K128.0, K256.1, K256.0, K384.1, K384.0);
        let lo = _mm512_clmulepi64_epi128(z, k, 0x00);
        let hi = _mm512_clmulepi64_epi128(z, k, 0x11);
        let t = _mm512_ternarylogic_epi64(_mm512_maskz_mov_epi64(0xC0, z), lo, hi, 0x96);
        let y = _mm256_xor_si256(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64::<1>(t));
        let mut x = _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y));
        let k128 = _mm_set_epi64x(K128.1, K128.0);
        while i + 16 <= n {
            x = fold128(x, load128(msg, i), k128);
            i += 16;
        }
        let r = n - i;
        if r > 0 {
            // A last partial block of r bytes: the accumulator moves up r
            // bytes, what it shifts out is folded over 128 bits onto the
            // rest, and the r bytes (the top of the message's last 16, which
            // overlap what was folded) fill the bytes it vacated.
            let seq = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let shl = _mm_add_epi8(seq, _mm_set1_epi8(r as i8 - 16));
            let shr = _mm_xor_si128(shl, _mm_set1_epi8(i8::MIN));
            let overflow = _mm_shuffle_epi8(x, shl);
            let kept = _mm_shuffle_epi8(x, shr);
            let top = _mm_cmpgt_epi8(seq, _mm_set1_epi8(15 - r as i8));
            let tail = _mm_and_si128(load128(msg, n - 16), top);
            x = fold128(overflow, _mm_xor_si128(kept, tail), k128);
        }
        // 128 → 96 → 64 bits, then Barrett's reduction to 32.
        let low32 = _mm_set_epi32(0, 0, 0, -1);
        let x = _mm_xor_si128(_mm_clmulepi64_si128(x, k128, 0x10), _mm_srli_si128(x, 8));
        let x = _mm_xor_si128(
            _mm_clmulepi64_si128(_mm_and_si128(x, low32), _mm_set_epi64x(0, K5), 0x00),
            _mm_srli_si128(x, 4),
        );
        let pu = _mm_set_epi64x(U_PRIME, P_X);
        let t1 = _mm_clmulepi64_si128(_mm_and_si128(x, low32), pu, 0x10);
        let t2 = _mm_clmulepi64_si128(_mm_and_si128(t1, low32), pu, 0x00);
        !(_mm_extract_epi32(_mm_xor_si128(x, t2), 1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_testkit::rng::bytes;

    /// The fold constants are what their definition gives: x^e mod P,
    /// bit-reflected, shifted left by one.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fold_constants_follow_from_the_polynomial() {
        fn k(e: u32) -> i64 {
            let mut r: u64 = 1;
            for _ in 0..e {
                r <<= 1;
                if r & (1 << 32) != 0 {
                    r ^= 0x1_04c1_1db7;
                }
            }
            i64::from((r as u32).reverse_bits()) << 1
        }
        for (d, pair) in [(512, x86::K512), (384, x86::K384), (256, x86::K256), (128, x86::K128)] {
            assert_eq!((k(d + 32), k(d - 32)), pair, "D = {d}");
        }
    }

    /// Every frame length from 68 (the fast path's shortest) to 700 bytes,
    /// at four alignments, and a few long ones: the fast path gives
    /// crc32fast's value, and so does the dispatching function.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn frame_crc_is_crc32fast_on_every_length_and_alignment() {
        let data = bytes(70_000, 0x9e37_79b9_7f4a_7c15);
        let fast = x86::available();
        for len in (x86::MIN_FRAME..700).chain([1_000, 4_096, 4_163, 65_536, 69_000]) {
            for at in 0..4 {
                let frame = &data[at * 3..at * 3 + len];
                assert_eq!(frame_crc(frame), portable(frame), "len {len} at {at}");
                if fast {
                    // SAFETY: `available` found the features.
                    assert_eq!(unsafe { x86::frame_crc(frame) }, portable(frame), "fast path, len {len} at {at}");
                }
            }
        }
    }

    /// The fast path is taken wherever the CPU lists its features, so the
    /// test above checks it on every such machine (this one included)
    /// rather than silently checking only crc32fast against itself.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn the_fast_path_is_taken_where_the_cpu_has_it() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags: Vec<&str> =
            cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or("").split_whitespace().collect();
        let listed =
            ["avx512f", "vpclmulqdq", "avx2", "pclmulqdq", "sse4_1", "ssse3"].iter().all(|f| flags.contains(f));
        assert_eq!(x86::available(), listed, "flags: {flags:?}");
    }

    /// One bit flipped anywhere but the CRC field changes the CRC, and the
    /// CRC field itself is not covered: at lengths around the fast path's
    /// block and tail boundaries, and on the portable path below it.
    #[test]
    fn frame_crc_covers_every_byte_but_the_crc_field() {
        for len in [24, 67, 68, 79, 80, 83, 131, 132, 280, 300] {
            let mut frame = bytes(len, 7 + len as u64);
            let base = frame_crc(&frame);
            for i in 0..frame.len() {
                frame[i] ^= 0x10;
                assert_eq!(frame_crc(&frame) == base, (4..8).contains(&i), "len {len}, byte {i}");
                frame[i] ^= 0x10;
            }
        }
    }
}
