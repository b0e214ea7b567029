//! [`FlowKey`]: every field a flow table can match, in a fixed-size array of
//! 64-bit words.
//!
//! # Layout
//!
//! The key is `[u64; FLOW_WORDS]`. Each field lives at a fixed word, bit
//! shift and width (the table below is generated from one macro invocation,
//! the single source of truth, so a field cannot be added to the accessors
//! without also getting a layout). 128-bit fields (IPv6 addresses) take two
//! words, high half first. Values are stored as host integers holding the
//! network-order value, e.g. `nw_src = u32::from_be_bytes(octets)`.
//!
//! Why words rather than a struct of named fields: the classifier masks and
//! hashes keys once per subtable per packet. With words, a subtable
//! precomputes which words its mask touches (usually 3 to 6 of the 39) and
//! masks and hashes only those, as OVS's miniflows do, with no per-field
//! code. The price is that fields are read through accessors; that price is
//! paid at compile time (every accessor is a shift and a mask).
//!
//! | word | bits 0..16 | 16..32 | 32..48 | 48..64 |
//! |------|-----------|--------|--------|--------|
//! | 0 | in_port | | conj_id | |
//! | 1 | metadata | | | |
//! | 2..=9 | reg(2k) | | reg(2k+1) | |
//! | 10 | tun_id | | | |
//! | 11 | tun_src | | tun_dst | |
//! | 12..=13 | tun_ipv6_src | | | |
//! | 14..=15 | tun_ipv6_dst | | | |
//! | 16 | tun_flags | tun_tos, tun_ttl | tun_metadata_present (8 bits) | |
//! | 17..=24 | tun_metadata0..7 | | | |
//! | 25 | dl_dst (48 bits) | | | dl_type |
//! | 26 | dl_src (48 bits) | | | |
//! | 27 | vlan0 TCI | vlan0 TPID | vlan1 TCI | vlan1 TPID |
//! | 28 | nw_src | | nw_dst | |
//! | 29..=30 | ipv6_src | | | |
//! | 31..=32 | ipv6_dst | | | |
//! | 33 | ipv6_label (32) | | nw_proto, nw_tos | nw_ttl, nw_frag |
//! | 34 | tp_src | tp_dst | tcp_flags | |
//! | 35 | arp_sha / nd_sll (48) | | | |
//! | 36 | arp_tha / nd_tll (48) | | | |
//! | 37..=38 | nd_target | | | |
//!
//! # Shared storage, as in OVS
//!
//! * ARP: the opcode's low 8 bits are in `nw_proto`, SPA/TPA in
//!   `nw_src`/`nw_dst`, SHA/THA in `arp_sha`/`arp_tha`.
//! * ICMP and ICMPv6: type in `tp_src`, code in `tp_dst`.
//! * ND: `nd_sll` is `arp_sha`, `nd_tll` is `arp_tha`.
//! * VLAN: a TCI with the CFI/DEI bit (0x1000) set means "a tag is present"
//!   (OVS's `VLAN_CFI` convention): the packet's own DEI bit is not kept.
//!   `vlan0` is the outermost tag.
//! * `nw_frag`: [`NW_FRAG_ANY`] for any fragment, plus [`NW_FRAG_LATER`] for
//!   one with a non-zero offset (OVS `FLOW_NW_FRAG_*`).
//! * `tun_metadata`: up to [`TUN_METADATA_SLOTS`] Geneve options of up to
//!   8 data bytes each, right-aligned as big-endian integers; bit `i` of
//!   `tun_metadata_present` says slot `i` is present. Which option goes to
//!   which slot is the switch's TLV map.
//!
//! # Sizing (worst case)
//!
//! | part | words | why |
//! |------|-------|-----|
//! | port, conj, metadata | 2 | OpenFlow metadata is 64 bits |
//! | registers | 8 | 16 x 32-bit registers (OVS reg0..reg15) |
//! | tunnel | 15 | v4 and v6 endpoints, id, flags, 8 option slots |
//! | L2 | 3 | two MACs, type, two VLAN tags |
//! | L3 | 6 | IPv4 pair, IPv6 pair, label/proto/tos/ttl/frag |
//! | L4 | 5 | ports, flags, ARP/ND hardware addresses, ND target |
//! | **total** | **39** | 312 bytes |

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::EthernetAddress;

/// Number of 64-bit words in a [`FlowKey`].
pub const FLOW_WORDS: usize = 39;
/// Number of 32-bit registers (`reg0`..`reg15`).
pub const NUM_REGS: usize = 16;
/// Number of Geneve option slots (`tun_metadata0`..`tun_metadata7`).
pub const TUN_METADATA_SLOTS: usize = 8;

/// First word holding packet-derived fields (everything the extractor
/// writes). Words before it are metadata: port, registers, tunnel.
pub const FIRST_PACKET_WORD: usize = 25;

/// `nw_frag` bit: the packet is a fragment.
pub const NW_FRAG_ANY: u8 = 1;
/// `nw_frag` bit: the packet is a fragment with a non-zero offset.
pub const NW_FRAG_LATER: u8 = 2;
/// Mask of the defined `nw_frag` bits.
pub const NW_FRAG_MASK: u8 = NW_FRAG_ANY | NW_FRAG_LATER;

/// `tun_flags` bit: the Geneve OAM bit was set.
pub const TUN_FLAG_OAM: u16 = 1 << 0;
/// `tun_flags` bit: the outer IP header had DF set (or should get it).
pub const TUN_FLAG_DONT_FRAGMENT: u16 = 1 << 1;
/// `tun_flags` bit: the outer UDP checksum was present (or should be).
pub const TUN_FLAG_CSUM: u16 = 1 << 2;
/// `tun_flags` bit: the tunnel carries a key (VNI).
pub const TUN_FLAG_KEY: u16 = 1 << 3;

/// The "tag present" bit of a stored VLAN TCI.
pub const VLAN_CFI: u16 = 0x1000;
/// VID bits of a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// PCP bits of a TCI.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// PCP shift in a TCI.
pub const VLAN_PCP_SHIFT: u16 = 13;

/// Where a scalar field lives in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Word index (for 128-bit fields, the word holding the high half).
    pub word: u8,
    /// Bit offset of the field's least significant bit within the word.
    pub shift: u8,
    /// Width in bits (1..=64, or 128 for two-word fields at shift 0).
    pub width: u8,
}

impl Slot {
    /// The mask of `width` low bits, as a u128.
    #[inline]
    pub const fn value_mask(&self) -> u128 {
        if self.width >= 128 {
            u128::MAX
        } else {
            (1u128 << self.width) - 1
        }
    }

    /// Reads the field from `words`.
    ///
    /// `inline(always)`: with a constant slot the width branches fold away
    /// and each accessor becomes a shift and a mask (measured: not inlining
    /// this doubled the cost of flow extraction).
    #[inline(always)]
    pub fn get(&self, words: &[u64; FLOW_WORDS]) -> u128 {
        let w = self.word as usize;
        if self.width == 128 {
            (u128::from(words[w]) << 64) | u128::from(words[w + 1])
        } else {
            let v = words[w] >> self.shift;
            if self.width == 64 {
                u128::from(v)
            } else {
                u128::from(v & ((1u64 << self.width) - 1))
            }
        }
    }

    /// Writes `value` (truncated to the field width) into `words`, leaving
    /// other bits untouched.
    #[inline(always)]
    pub fn set(&self, words: &mut [u64; FLOW_WORDS], value: u128) {
        let w = self.word as usize;
        if self.width == 128 {
            words[w] = (value >> 64) as u64;
            words[w + 1] = value as u64;
        } else {
            let m: u64 = if self.width == 64 {
                u64::MAX
            } else {
                (1u64 << self.width) - 1
            };
            let v = (value as u64) & m;
            words[w] = (words[w] & !(m << self.shift)) | (v << self.shift);
        }
    }
}

macro_rules! flow_layout {
    ( $( $(#[$doc:meta])* $name:ident, $setter:ident : $ty:ty = ($word:expr, $shift:expr, $width:expr); )* ) => {
        /// The slot of every named field of the key, by accessor name.
        #[allow(non_upper_case_globals)]
        pub mod slots {
            use super::Slot;
            $(
                $(#[$doc])*
                pub const $name: Slot = Slot { word: $word, shift: $shift, width: $width };
            )*
        }

        impl FlowKey {
            $(
                $(#[$doc])*
                #[inline(always)]
                #[allow(non_snake_case)]
                pub fn $name(&self) -> $ty {
                    <$ty as FromSlot>::from_raw(slots::$name.get(&self.0))
                }

                #[doc = concat!("Sets `", stringify!($name), "`.")]
                #[inline(always)]
                pub fn $setter(&mut self, v: $ty) {
                    slots::$name.set(&mut self.0, <$ty as FromSlot>::to_raw(v))
                }
            )*
        }
    };
}

/// Conversion between accessor types and raw slot bits.
trait FromSlot: Sized {
    fn from_raw(v: u128) -> Self;
    fn to_raw(self) -> u128;
}
macro_rules! from_slot_int {
    ($($t:ty),*) => {$(
        impl FromSlot for $t {
            #[inline(always)] fn from_raw(v: u128) -> Self { v as $t }
            #[inline(always)] fn to_raw(self) -> u128 { self as u128 }
        }
    )*};
}
from_slot_int!(u8, u16, u32, u64, u128);
impl FromSlot for EthernetAddress {
    #[inline]
    fn from_raw(v: u128) -> Self {
        EthernetAddress::from_u64(v as u64)
    }
    #[inline]
    fn to_raw(self) -> u128 {
        u128::from(self.to_u64())
    }
}
impl FromSlot for Ipv4Addr {
    #[inline]
    fn from_raw(v: u128) -> Self {
        Ipv4Addr::from(v as u32)
    }
    #[inline]
    fn to_raw(self) -> u128 {
        u128::from(u32::from(self))
    }
}
impl FromSlot for Ipv6Addr {
    #[inline]
    fn from_raw(v: u128) -> Self {
        Ipv6Addr::from(v)
    }
    #[inline]
    fn to_raw(self) -> u128 {
        u128::from(self)
    }
}

/// Everything a flow table can match on, for one packet.
///
/// See the [module documentation](self) for the layout. `Default` is the
/// all-zero key. The same type serves as its own mask: see [`FlowMask`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey(pub [u64; FLOW_WORDS]);

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey([0; FLOW_WORDS])
    }
}

flow_layout! {
    /// Input port (OpenFlow numbering).
    in_port, set_in_port: u32 = (0, 0, 32);
    /// Conjunction id set by a matched `conjunction` set (`conj_id`).
    conj_id, set_conj_id: u32 = (0, 32, 32);
    /// OpenFlow 64-bit metadata.
    metadata, set_metadata: u64 = (1, 0, 64);
    /// Tunnel id (Geneve/VXLAN VNI; 64 bits as in OVS).
    tun_id, set_tun_id: u64 = (10, 0, 64);
    /// Tunnel IPv4 source.
    tun_src, set_tun_src: Ipv4Addr = (11, 0, 32);
    /// Tunnel IPv4 destination.
    tun_dst, set_tun_dst: Ipv4Addr = (11, 32, 32);
    /// Tunnel IPv6 source.
    tun_ipv6_src, set_tun_ipv6_src: Ipv6Addr = (12, 0, 128);
    /// Tunnel IPv6 destination.
    tun_ipv6_dst, set_tun_ipv6_dst: Ipv6Addr = (14, 0, 128);
    /// Tunnel flags (`TUN_FLAG_*`).
    tun_flags, set_tun_flags: u16 = (16, 0, 16);
    /// Outer IP TOS of the tunnel.
    tun_tos, set_tun_tos: u8 = (16, 16, 8);
    /// Outer IP TTL of the tunnel.
    tun_ttl, set_tun_ttl: u8 = (16, 24, 8);
    /// Bitmap of present `tun_metadata` slots.
    tun_metadata_present, set_tun_metadata_present: u8 = (16, 32, 8);
    /// Ethernet destination.
    dl_dst, set_dl_dst: EthernetAddress = (25, 0, 48);
    /// EtherType of the innermost parsed header (after VLAN tags).
    dl_type, set_dl_type: u16 = (25, 48, 16);
    /// Ethernet source.
    dl_src, set_dl_src: EthernetAddress = (26, 0, 48);
    /// Outer VLAN TCI (with [`VLAN_CFI`] as "present").
    vlan0_tci, set_vlan0_tci: u16 = (27, 0, 16);
    /// Outer VLAN TPID (0x8100 or 0x88a8).
    vlan0_tpid, set_vlan0_tpid: u16 = (27, 16, 16);
    /// Inner VLAN TCI.
    vlan1_tci, set_vlan1_tci: u16 = (27, 32, 16);
    /// Inner VLAN TPID.
    vlan1_tpid, set_vlan1_tpid: u16 = (27, 48, 16);
    /// IPv4 source or ARP SPA.
    nw_src, set_nw_src: Ipv4Addr = (28, 0, 32);
    /// IPv4 destination or ARP TPA.
    nw_dst, set_nw_dst: Ipv4Addr = (28, 32, 32);
    /// IPv6 source.
    ipv6_src, set_ipv6_src: Ipv6Addr = (29, 0, 128);
    /// IPv6 destination.
    ipv6_dst, set_ipv6_dst: Ipv6Addr = (31, 0, 128);
    /// IPv6 flow label (20 bits used).
    ipv6_label, set_ipv6_label: u32 = (33, 0, 32);
    /// IP protocol, or the low 8 bits of the ARP opcode.
    nw_proto, set_nw_proto: u8 = (33, 32, 8);
    /// IP TOS / traffic class byte (DSCP << 2 | ECN).
    nw_tos, set_nw_tos: u8 = (33, 40, 8);
    /// IP TTL / hop limit.
    nw_ttl, set_nw_ttl: u8 = (33, 48, 8);
    /// Fragment bits (`NW_FRAG_*`).
    nw_frag, set_nw_frag: u8 = (33, 56, 8);
    /// L4 source port, or ICMP type.
    tp_src, set_tp_src: u16 = (34, 0, 16);
    /// L4 destination port, or ICMP code.
    tp_dst, set_tp_dst: u16 = (34, 16, 16);
    /// TCP flags (12 bits).
    tcp_flags, set_tcp_flags: u16 = (34, 32, 16);
    /// ARP SHA or ND source link-layer address.
    arp_sha, set_arp_sha: EthernetAddress = (35, 0, 48);
    /// ARP THA or ND target link-layer address.
    arp_tha, set_arp_tha: EthernetAddress = (36, 0, 48);
    /// ND target address.
    nd_target, set_nd_target: Ipv6Addr = (37, 0, 128);
}

impl FlowKey {
    /// Register `i` (0..16) slot.
    ///
    /// # Panics
    /// If `i >= NUM_REGS`.
    #[inline]
    pub const fn reg_slot(i: usize) -> Slot {
        assert!(i < NUM_REGS);
        Slot {
            word: 2 + (i / 2) as u8,
            shift: ((i % 2) * 32) as u8,
            width: 32,
        }
    }

    /// Register `i` (0..16).
    ///
    /// # Panics
    /// If `i >= NUM_REGS`.
    #[inline]
    pub fn reg(&self, i: usize) -> u32 {
        Self::reg_slot(i).get(&self.0) as u32
    }

    /// Sets register `i`.
    ///
    /// # Panics
    /// If `i >= NUM_REGS`.
    #[inline]
    pub fn set_reg(&mut self, i: usize, v: u32) {
        Self::reg_slot(i).set(&mut self.0, u128::from(v))
    }

    /// Geneve option slot `i` (0..8).
    ///
    /// # Panics
    /// If `i >= TUN_METADATA_SLOTS`.
    #[inline]
    pub const fn tun_metadata_slot(i: usize) -> Slot {
        assert!(i < TUN_METADATA_SLOTS);
        Slot {
            word: 17 + i as u8,
            shift: 0,
            width: 64,
        }
    }

    /// Geneve option slot `i` value.
    ///
    /// # Panics
    /// If `i >= TUN_METADATA_SLOTS`.
    #[inline]
    pub fn tun_metadata(&self, i: usize) -> u64 {
        self.0[Self::tun_metadata_slot(i).word as usize]
    }

    /// Sets Geneve option slot `i` and marks it present.
    ///
    /// # Panics
    /// If `i >= TUN_METADATA_SLOTS`.
    #[inline]
    pub fn set_tun_metadata(&mut self, i: usize, v: u64) {
        self.0[Self::tun_metadata_slot(i).word as usize] = v;
        let p = self.tun_metadata_present() | (1 << i);
        self.set_tun_metadata_present(p);
    }

    /// Zeroes every packet-derived field (words from
    /// [`FIRST_PACKET_WORD`]), keeping port, registers, metadata and tunnel.
    #[inline]
    pub fn clear_packet_fields(&mut self) {
        for w in &mut self.0[FIRST_PACKET_WORD..] {
            *w = 0;
        }
    }

    /// The key with `mask` applied (bitwise AND).
    #[inline]
    pub fn masked(&self, mask: &FlowMask) -> FlowKey {
        let mut out = [0u64; FLOW_WORDS];
        for (o, (k, m)) in out.iter_mut().zip(self.0.iter().zip(mask.0.0.iter())) {
            *o = k & m;
        }
        FlowKey(out)
    }

    /// True if every bit of `self` set in `mask` equals the same bit of
    /// `other`.
    #[inline]
    pub fn matches_masked(&self, other: &FlowKey, mask: &FlowMask) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .zip(mask.0.0.iter())
            .all(|((a, b), m)| (a ^ b) & m == 0)
    }

    /// True if the outer VLAN tag is present.
    #[inline]
    pub fn has_vlan(&self) -> bool {
        self.vlan0_tci() & VLAN_CFI != 0
    }

    /// True for IPv4 or IPv6 (`dl_type` 0x0800 / 0x86dd).
    #[inline]
    pub fn is_ip(&self) -> bool {
        matches!(self.dl_type(), 0x0800 | 0x86dd)
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sparse: only non-zero words, so debug output stays readable.
        let mut m = f.debug_map();
        for (i, w) in self.0.iter().enumerate() {
            if *w != 0 {
                m.entry(&i, &format_args!("{w:#018x}"));
            }
        }
        m.finish()
    }
}

/// Which bits of a [`FlowKey`] a rule cares about: a 1 bit is matched, a 0
/// bit is a wildcard. Same layout as the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct FlowMask(pub FlowKey);

impl FlowMask {
    /// The mask that wildcards everything.
    pub const CATCHALL: FlowMask = FlowMask(FlowKey([0; FLOW_WORDS]));
    /// The mask that matches every bit.
    pub const EXACT: FlowMask = FlowMask(FlowKey([u64::MAX; FLOW_WORDS]));

    /// Sets all bits of `slot` in the mask.
    #[inline]
    pub fn set_exact(&mut self, slot: Slot) {
        slot.set(&mut self.0.0, slot.value_mask());
    }

    /// Sets the mask bits of `slot` to `m` (truncated to the slot width).
    #[inline]
    pub fn set(&mut self, slot: Slot, m: u128) {
        slot.set(&mut self.0.0, m);
    }

    /// The mask bits of `slot`.
    #[inline]
    pub fn get(&self, slot: Slot) -> u128 {
        slot.get(&self.0.0)
    }

    /// True if no bit is matched.
    #[inline]
    pub fn is_catchall(&self) -> bool {
        self.0.0.iter().all(|w| *w == 0)
    }

    /// Bit `i` set for each non-zero word of the mask (the words a subtable
    /// must look at).
    #[inline]
    pub fn word_map(&self) -> u64 {
        let mut map = 0u64;
        for (i, w) in self.0.0.iter().enumerate() {
            if *w != 0 {
                map |= 1 << i;
            }
        }
        map
    }

    /// Bitwise AND with another mask (the bits both match).
    #[inline]
    pub fn and(&self, other: &FlowMask) -> FlowMask {
        FlowMask(self.0.masked(other))
    }

    /// Bitwise OR with another mask (the bits either matches).
    #[inline]
    pub fn or(&self, other: &FlowMask) -> FlowMask {
        let mut out = self.0;
        for (o, w) in out.0.iter_mut().zip(other.0.0.iter()) {
            *o |= w;
        }
        FlowMask(out)
    }

    /// True if every bit matched by `self` is matched by `other` too
    /// (`self` is more general or equal).
    #[inline]
    pub fn is_subset_of(&self, other: &FlowMask) -> bool {
        self.0
            .0
            .iter()
            .zip(other.0.0.iter())
            .all(|(a, b)| a & !b == 0)
    }
}

// Serde: sparse lists of (word index, value) for non-zero words. Compact for
// the control protocol (a typical match touches 3 to 6 words) and robust:
// an index out of range is a decode error, never a panic.
mod serde_impl {
    use super::{FLOW_WORDS, FlowKey, FlowMask};
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for FlowKey {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let n = self.0.iter().filter(|w| **w != 0).count();
            let mut seq = s.serialize_seq(Some(n))?;
            for (i, w) in self.0.iter().enumerate() {
                if *w != 0 {
                    seq.serialize_element(&(i as u8, *w))?;
                }
            }
            seq.end()
        }
    }

    struct KeyVisitor;
    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = FlowKey;
        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a sparse flow key: a sequence of (word index, value)")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FlowKey, A::Error> {
            let mut k = FlowKey::default();
            let mut last: Option<u8> = None;
            while let Some((i, w)) = seq.next_element::<(u8, u64)>()? {
                if usize::from(i) >= FLOW_WORDS {
                    return Err(A::Error::custom(format_args!(
                        "flow key word index {i} out of range (max {})",
                        FLOW_WORDS - 1
                    )));
                }
                if last.is_some_and(|l| l >= i) {
                    return Err(A::Error::custom(
                        "flow key word indices not strictly increasing",
                    ));
                }
                last = Some(i);
                k.0[usize::from(i)] = w;
            }
            Ok(k)
        }
    }

    impl<'de> Deserialize<'de> for FlowKey {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FlowKey, D::Error> {
            d.deserialize_seq(KeyVisitor)
        }
    }

    impl Serialize for FlowMask {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for FlowMask {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FlowMask, D::Error> {
            FlowKey::deserialize(d).map(FlowMask)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap() {
        // Every named slot plus registers and option slots: no bit is
        // claimed twice, and every slot fits in the key.
        let mut all: Vec<Slot> = vec![
            slots::in_port,
            slots::conj_id,
            slots::metadata,
            slots::tun_id,
            slots::tun_src,
            slots::tun_dst,
            slots::tun_ipv6_src,
            slots::tun_ipv6_dst,
            slots::tun_flags,
            slots::tun_tos,
            slots::tun_ttl,
            slots::tun_metadata_present,
            slots::dl_dst,
            slots::dl_type,
            slots::dl_src,
            slots::vlan0_tci,
            slots::vlan0_tpid,
            slots::vlan1_tci,
            slots::vlan1_tpid,
            slots::nw_src,
            slots::nw_dst,
            slots::ipv6_src,
            slots::ipv6_dst,
            slots::ipv6_label,
            slots::nw_proto,
            slots::nw_tos,
            slots::nw_ttl,
            slots::nw_frag,
            slots::tp_src,
            slots::tp_dst,
            slots::tcp_flags,
            slots::arp_sha,
            slots::arp_tha,
            slots::nd_target,
        ];
        all.extend((0..NUM_REGS).map(FlowKey::reg_slot));
        all.extend((0..TUN_METADATA_SLOTS).map(FlowKey::tun_metadata_slot));
        let mut seen = FlowMask::default();
        for s in all {
            let mut m = FlowMask::default();
            m.set_exact(s);
            assert_eq!(seen.and(&m), FlowMask::default(), "slot {s:?} overlaps");
            seen = seen.or(&m);
        }
        // Packet fields start exactly at FIRST_PACKET_WORD.
        assert_eq!(slots::dl_dst.word as usize, FIRST_PACKET_WORD);
        assert!(seen.0.0[..FIRST_PACKET_WORD].iter().all(|w| *w != 0));
    }

    #[test]
    fn accessors_roundtrip() {
        let mut k = FlowKey::default();
        k.set_in_port(7);
        k.set_conj_id(0xdead_beef);
        k.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
        k.set_nw_dst(Ipv4Addr::new(192, 168, 1, 2));
        k.set_ipv6_src("2001:db8::1".parse().unwrap());
        k.set_dl_src(EthernetAddress([1, 2, 3, 4, 5, 6]));
        k.set_dl_type(0x86dd);
        k.set_reg(15, 42);
        k.set_reg(0, 1);
        k.set_tun_metadata(3, 0x1122);
        assert_eq!(k.in_port(), 7);
        assert_eq!(k.conj_id(), 0xdead_beef);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(k.ipv6_src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.dl_src(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!((k.reg(15), k.reg(0), k.reg(1)), (42, 1, 0));
        assert_eq!(k.tun_metadata(3), 0x1122);
        assert_eq!(k.tun_metadata_present(), 1 << 3);
        k.clear_packet_fields();
        assert_eq!(k.dl_type(), 0);
        assert_eq!(k.in_port(), 7);
        assert_eq!(k.reg(15), 42);
    }

    #[test]
    fn masked_match() {
        let mut rule = FlowKey::default();
        rule.set_nw_dst(Ipv4Addr::new(10, 0, 0, 0));
        let mut mask = FlowMask::default();
        mask.set(slots::nw_dst, 0xffff_ff00);
        let mut pkt = FlowKey::default();
        pkt.set_nw_dst(Ipv4Addr::new(10, 0, 0, 77));
        pkt.set_tp_dst(80);
        assert!(pkt.matches_masked(&rule, &mask));
        pkt.set_nw_dst(Ipv4Addr::new(10, 0, 1, 77));
        assert!(!pkt.matches_masked(&rule, &mask));
        assert_eq!(mask.word_map(), 1 << 28);
    }

    #[test]
    fn serde_sparse_roundtrip_and_rejects_bad_index() {
        let mut k = FlowKey::default();
        k.set_tp_dst(80);
        k.set_metadata(u64::MAX);
        let bytes = postcard::to_allocvec(&k).unwrap();
        assert!(bytes.len() < 24, "sparse encoding is {} bytes", bytes.len());
        assert_eq!(postcard::from_bytes::<FlowKey>(&bytes).unwrap(), k);
        let bad = postcard::to_allocvec(&vec![(39u8, 1u64)]).unwrap();
        assert!(postcard::from_bytes::<FlowKey>(&bad).is_err());
        let dup = postcard::to_allocvec(&vec![(3u8, 1u64), (3u8, 2u64)]).unwrap();
        assert!(postcard::from_bytes::<FlowKey>(&dup).is_err());
    }
}
