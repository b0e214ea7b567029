//! The Internet checksum (RFC 1071), pseudo-headers, and incremental update
//! (RFC 1624).
//!
//! All functions work on the folded 16-bit one's complement *sum*; a header's
//! checksum field holds the complement of the sum (`!sum`). A received header
//! verifies when `data(header) == 0xffff` (i.e. `!data(..) == 0`).
//!
//! # Fuzzing
//!
//! Verification helpers in the header modules return "valid" under
//! `cfg(fuzzing)`; the functions here always compute the real value.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Folds a 32-bit accumulator into 16 bits with end-around carry.
#[inline]
const fn fold(sum: u32) -> u16 {
    // Two steps always suffice for 32 bits (the first leaves at most
    // 0x1_fffe, the second at most 0xffff), without a data-dependent
    // branch.
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The one's complement sum of `data`, read as big-endian 16-bit words (an
/// odd trailing byte is padded with zero), folded to 16 bits.
///
/// Adds the data as native-order 64-bit words into one 64-bit accumulator
/// with end-around carry (`overflowing_add`, which the compiler turns into
/// an `add` and an `adc $0` per word: two instructions per 8 bytes, where
/// splitting each word into 32-bit halves took about four even
/// vectorised), then folds 64 -> 32 -> 16 once. The last 0..=7 bytes are
/// one zero-padded word built in a register (not through a stack buffer,
/// which stalled on store forwarding). The one's complement sum is
/// byte-order independent (RFC 1071 2(B)): summing byte-swapped words
/// gives the byte-swapped sum, so a little-endian host swaps the folded
/// result once at the end.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    let (words, rest) = data.as_chunks::<8>();
    let mut acc: u64 = 0;
    for w in words {
        acc = add_carry(acc, u64::from_ne_bytes(*w));
    }
    if !rest.is_empty() {
        acc = add_carry(acc, tail(rest));
    }
    let sum = fold64(acc);
    if cfg!(target_endian = "little") {
        sum.swap_bytes()
    } else {
        sum
    }
}

/// `a + b` with the carry out added back in (one's complement addition
/// of 64-bit words; cannot overflow again: the wrapped sum is at most
/// 2^64 - 2 when a carry occurred).
#[inline(always)]
const fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u64
}

/// The last 1..=7 bytes of the data as the native-order word of those
/// bytes followed by zeros (RFC 1071's padding), read in 4-, 2- and
/// 1-byte steps.
#[inline(always)]
fn tail(mut rest: &[u8]) -> u64 {
    // Built as the little-endian value of the padded 8 bytes, then
    // converted to native order (a no-op on little-endian hosts).
    let mut le: u64 = 0;
    let mut shift = 0;
    if let Some((c, r)) = rest.split_first_chunk::<4>() {
        le |= u64::from(u32::from_le_bytes(*c));
        shift = 32;
        rest = r;
    }
    if let Some((c, r)) = rest.split_first_chunk::<2>() {
        le |= u64::from(u16::from_le_bytes(*c)) << shift;
        shift += 16;
        rest = r;
    }
    if let Some(&b) = rest.first() {
        le |= u64::from(b) << shift;
    }
    u64::from_ne_bytes(le.to_le_bytes())
}

/// Folds a 64-bit one's complement accumulator to 16 bits (64 -> 32 in
/// two steps, each keeping the end-around carry, then [`fold`]).
#[inline(always)]
const fn fold64(acc: u64) -> u16 {
    let f = (acc & 0xffff_ffff) + (acc >> 32);
    let f = (f & 0xffff_ffff) + (f >> 32);
    fold(f as u32)
}

/// The straightforward RFC 1071 sum (16-bit big-endian words), the
/// reference [`data`] is checked against.
#[cfg(test)]
fn data_reference(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Combines several partial sums into one.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    let mut acc: u32 = 0;
    for &s in sums {
        acc += u32::from(s);
    }
    fold(acc)
}

/// The partial sum of the IPv4 pseudo-header (RFC 768, RFC 793):
/// source, destination, zero, protocol, upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let mut acc: u32 = 0;
    acc += u32::from(u16::from_be_bytes([s[0], s[1]]));
    acc += u32::from(u16::from_be_bytes([s[2], s[3]]));
    acc += u32::from(u16::from_be_bytes([d[0], d[1]]));
    acc += u32::from(u16::from_be_bytes([d[2], d[3]]));
    acc += u32::from(protocol);
    acc += u32::from(length);
    fold(acc)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1):
/// source, destination, 32-bit upper-layer length, next header.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        fold(length),
        u16::from(next_header),
    ])
}

/// The checksum field value for an upper-layer payload: the complement of
/// the pseudo-header sum plus the payload sum (whose checksum field must be
/// zero when this is computed).
#[inline]
pub fn finish(pseudo: u16, payload: &[u8]) -> u16 {
    !combine(&[pseudo, data(payload)])
}

/// Incrementally updates a checksum *field* value `csum` for a 16-bit word of
/// the covered data changing from `old` to `new` (RFC 1624, equation 3:
/// `HC' = ~(~HC + ~m + m')`).
///
/// This form never produces 0x0000 from a non-zero input where the full
/// recomputation would produce 0xffff... except as RFC 1624 explains: both
/// represent the same sum, and receivers accept either.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// [`update16`] for a 32-bit word (e.g. an IPv4 address).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let c = update16(csum, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

/// [`update16`] for a run of bytes at an even offset in the covered data
/// (e.g. an IPv6 address or a MAC address inside an ICMPv6 option).
/// `old` and `new` must have the same length; an odd final byte is treated
/// as the high byte of a word whose low byte did not change.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = u32::from(!csum);
    acc += u32::from(!data(old));
    acc += u32::from(data(new));
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The 8-byte-step sum equals the 16-bit-word reference for any
        /// length (every tail 0..=15) and content.
        #[test]
        fn data_matches_the_reference(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            proptest::prop_assert_eq!(data(&bytes), data_reference(&bytes));
        }

        /// The same at every start alignment (0..8 bytes into the
        /// buffer) and every length of the rest (every tail 0..=7).
        #[test]
        fn data_matches_the_reference_at_every_alignment(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 8..120),
        ) {
            for start in 0..8 {
                for end in start..bytes.len() {
                    let s = &bytes[start..end];
                    proptest::prop_assert_eq!(data(s), data_reference(s), "{}..{}", start, end);
                }
            }
        }
    }

    /// The loop RFC 1071 describes ("add back the carries until none is
    /// left"), the reference the two-step `fold` is checked against.
    fn fold_reference(mut sum: u32) -> u16 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    proptest::proptest! {
        /// The branch-free two-step fold equals the loop for any 32-bit
        /// accumulator.
        #[test]
        fn fold_matches_the_loop(sum in proptest::num::u32::ANY) {
            proptest::prop_assert_eq!(fold(sum), fold_reference(sum));
        }
    }

    #[test]
    fn fold_edges() {
        for s in [
            0,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xffff_0000,
            0xffff_fffe,
            u32::MAX,
        ] {
            assert_eq!(fold(s), fold_reference(s), "{s:#x}");
        }
    }

    #[test]
    fn data_folds_many_carries() {
        // All ones: every addition carries.
        for n in [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 1500, 9000, 65535,
        ] {
            let v = vec![0xffu8; n];
            assert_eq!(data(&v), data_reference(&v), "len {n}");
            // Every alignment of the same run.
            let w = vec![0xffu8; n + 7];
            for start in 0..8 {
                let s = &w[start..start + n];
                assert_eq!(data(s), data_reference(s), "len {n} at {start}");
            }
        }
        // One past the largest IP payload: still no carry is lost.
        let v = vec![0xffu8; 65536 + 9];
        assert_eq!(data(&v), data_reference(&v));
    }

    /// RFC 1071 section 3 example: the sum of 0001 f203 f4f5 f6f7 is 0xddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    /// The outer IPv4 header of packet 1 of `tcpdump-vxlan.pcap` (tcpdump
    /// test suite; 192.168.203.1 -> 192.168.202.1, checksum 0x5152) verifies.
    #[test]
    fn ipv4_header_verifies() {
        let hdr = [
            0x45, 0x00, 0x00, 0x86, 0xd2, 0xc0, 0x40, 0x00, 0x40, 0x11, 0x51, 0x52, 0xc0, 0xa8,
            0xcb, 0x01, 0xc0, 0xa8, 0xca, 0x01,
        ];
        assert_eq!(!data(&hdr), 0);
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut hdr = [
            0x45u8, 0x00, 0x00, 0x54, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0x0a, 0x00,
            0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
        ];
        let c = !data(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        // Rewrite the source address 10.0.0.1 -> 192.168.7.9.
        let old = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let new = u32::from_be_bytes([192, 168, 7, 9]);
        let inc = update32(c, old, new);
        hdr[12..16].copy_from_slice(&new.to_be_bytes());
        hdr[10..12].copy_from_slice(&[0, 0]);
        let full = !data(&hdr);
        assert_eq!(inc, full);
        // Byte-slice form agrees.
        assert_eq!(
            update_bytes(c, &old.to_be_bytes(), &new.to_be_bytes()),
            full
        );
        // TTL decrement (word 8: ttl<<8 | proto).
        let inc2 = update16(full, 0x4001, 0x3f01);
        hdr[10..12].copy_from_slice(&full.to_be_bytes());
        hdr[8] = 0x3f;
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc2, !data(&hdr));
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            8,
        );
        assert_eq!(v4, fold(0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 8));
        let a: Ipv6Addr = "fe80::1".parse().unwrap();
        let b: Ipv6Addr = "fe80::2".parse().unwrap();
        assert_eq!(
            pseudo_header_v6(a, b, 58, 32),
            fold(0xfe80 + 1 + 0xfe80 + 2 + 32 + 58)
        );
    }

    proptest::proptest! {
        #[test]
        fn update_bytes_matches_recompute(
            mut buf in proptest::collection::vec(proptest::num::u8::ANY, 2..64),
            at in 0usize..32, new in proptest::array::uniform4(proptest::num::u8::ANY),
        ) {
            let at = (at * 2) % (buf.len() & !1).max(2);
            let end = (at + 4).min(buf.len() & !1);
            let c = !data(&buf);
            let old = buf[at..end].to_vec();
            buf[at..end].copy_from_slice(&new[..end - at]);
            let inc = update_bytes(c, &old, &new[..end - at]);
            let full = !data(&buf);
            // 0x0000 and 0xffff both encode a zero sum in one's complement.
            proptest::prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }
    }
}
