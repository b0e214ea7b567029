//! One-pass flow extraction: an Ethernet frame's bytes to the packet fields
//! of a [`FlowKey`], plus the byte offsets of its layers.
//!
//! The reference for every semantic choice is Open vSwitch's
//! `miniflow_extract` (`lib/flow.c`); where we differ, it is said below.
//!
//! # What is extracted
//!
//! ```text
//!  Ethernet  dl_dst dl_src
//!  802.1Q/ad up to `vlan_limit` tags: vlanN_tci (| VLAN_CFI), vlanN_tpid
//!  LLC/SNAP  EtherType < 0x0600: the SNAP type if the frame is LLC/SNAP with
//!            OUI 00-00-00, else dl_type = 0x05ff (OVS FLOW_DL_TYPE_NONE)
//!  ARP/RARP  (htype 1, ptype 0x0800, hlen 6, plen 4 only) nw_src = SPA,
//!            nw_dst = TPA, arp_sha, arp_tha, nw_proto = opcode if <= 0xff
//!  IPv4      nw_src nw_dst nw_proto nw_tos nw_ttl nw_frag; options skipped
//!  IPv6      ipv6_src ipv6_dst ipv6_label nw_tos (traffic class) nw_ttl
//!            (hop limit); extension headers (hop-by-hop, routing,
//!            destination options, AH, fragment) are walked: nw_proto is the
//!            first protocol that is not one of them, nw_frag comes from the
//!            fragment header
//!  TCP       tp_src tp_dst tcp_flags (low 12 bits of offset/flags word)
//!  UDP/SCTP  tp_src tp_dst
//!  ICMP/IGMP tp_src = type, tp_dst = code
//!  ICMPv6    tp_src = type, tp_dst = code; for neighbor solicitation and
//!            advertisement (code 0): nd_target, and the source/target
//!            link-layer address options in arp_sha (nd_sll) / arp_tha
//!            (nd_tll)
//! ```
//!
//! Fragments: the first fragment (offset 0, more-fragments set, or an IPv6
//! fragment header with offset 0 and M set) gets `nw_frag = NW_FRAG_ANY` and
//! its L4 header is parsed; later fragments get `NW_FRAG_ANY |
//! NW_FRAG_LATER` and no L4 fields. For a later IPv6 fragment `nw_proto` is
//! 44 (the fragment header), as in OVS; for IPv4 it is the header's
//! protocol.
//!
//! Checksums are **not** verified (IPv4 header, TCP, UDP, SCTP, ICMP): the data
//! path forwards packets as they are, as OVS does; a switch is not an end
//! host. Nor is the IP version nibble checked (OVS does not either: the
//! EtherType decides).
//!
//! # Malformed packets
//!
//! Extraction stops at the first header that fails its length or field
//! check. Every field read before that point stays set in the key; the rest
//! is zero. [`Extracted::error`] says which [`Layer`] failed and why. Nothing
//! panics on any input and every offset in [`Layers`] is either
//! [`Layers::NONE`] or at most `frame.len()`. Examples:
//!
//! * a frame shorter than 14 bytes: L2 `Truncated`; the key's packet fields
//!   are all zero (metadata, registers and tunnel fields are kept);
//! * a VLAN TPID with fewer than 4 bytes after it: `Vlan` `Truncated`;
//!   `dl_type` is the TPID (OVS stops the same way, silently);
//! * IPv4 with IHL < 5 or a total length below the header length or beyond
//!   the frame: L3 `BadLength`/`Truncated` with only the L2 fields (and
//!   `dl_type` = 0x0800) set;
//! * ARP shorter than 28 bytes or not Ethernet/IPv4: L3 `Truncated` or
//!   `Unsupported`, only the L2 fields set (OVS is silent);
//! * IPv4 whose TCP header is truncated: Ethernet and IP fields and
//!   `nw_proto = 6` are set, the ports are zero, L4 `Truncated`; a TCP data
//!   offset below 5 is L4 `BadLength`.
//!
//! Bytes after the IPv4 total length or IPv6 payload length (Ethernet
//! padding) are ignored: L4 parsing sees only the IP payload. As in OVS, a
//! frame whose padding exceeds 65535 bytes is an L3 `BadLength`.
//!
//! ND options are walked as OVS does: the walk stops at a zero-length option
//! (L4 error `BadLength`) or one longer than what is left (`Truncated`),
//! keeping what it found; fewer than 8 trailing bytes are ignored; a second
//! source (or target) link-layer option makes the packet invalid ND:
//! `nd_target`, `arp_sha` and `arp_tha` are zeroed (L4 error `BadField`),
//! type and code stay. An NS/NA too short for its target address keeps
//! type and code (L4 `Truncated`).
//!
//! # Deviations from OVS
//!
//! * For IPv6, OVS leaves `ipv6_label`, `nw_tos` and `nw_ttl` zero when the
//!   extension-header walk fails; we keep them (they were read before the
//!   failure, following the rule above). `nw_proto` and `nw_frag` are only
//!   written after a successful walk, as in OVS.
//! * The IPv6 extension-header walk ([`ipv6::walk_extension_headers`])
//!   stops after [`ipv6::MAX_EXTENSION_HEADERS`] headers with an L3
//!   `TooManyHeaders` error (OVS has no limit; the limit bounds the work per
//!   packet and keeps every offset well inside `u16`). Reserved bits of a
//!   fragment header are ignored (OVS counts a header whose only non-zero
//!   bits are reserved ones as a fragment).
//! * Fields OVS has and [`FlowKey`] does not are not extracted: MPLS labels
//!   (an MPLS frame gets `dl_type` only), NSH, the IGMP group, the ND
//!   options type and reserved word, conntrack fields.
//! * `vlan_limit = 0` means "as many tags as the key holds" (two), where
//!   OVS's 0 means unlimited: the key has two VLAN slots.
//! * [`Extracted::error`] exists at all: OVS only counts some of these cases
//!   in coverage counters, and is silent on others (short ARP, short L4
//!   headers, bad ND options). The error is for counters and traces; the
//!   key does not depend on anyone looking at it.
//!
//! # How the wire views are used
//!
//! Fields are read through the `wire` views' getters. Where a view's
//! `check_len` is stricter than OVS (the IPv4/IPv6 version nibble, the UDP
//! length field, the fixed part of an ICMPv6 NS/NA), the extractor checks
//! OVS's condition itself and builds the view with `new_unchecked`; the
//! getters it then calls only touch bytes that condition covers. TCP flags
//! are read as the raw 12 bits, since the view's `flags()` drops the three
//! reserved bits OVS keeps.
//!
//! # Performance
//!
//! One pass over the headers, no allocation (tested under a counting
//! allocator in `tests/extract_alloc.rs`), no copy of the packet. The
//! common frame (untagged IPv4 without options, TCP or UDP) takes
//! `extract_fast`: one store per key word, no clearing first. About
//! 15 to 28 ns of CPU per TCP/IPv4 frame on the 2-core development VM (the
//! `#[ignore]`d `extract_timing` test; noisy while other builds run).

use core::fmt;
use core::net::Ipv6Addr;

use super::key::{FlowKey, NW_FRAG_ANY, NW_FRAG_LATER, VLAN_CFI};
use crate::wire::{
    EthernetAddress, EthernetFrame, ParseError, arp, icmpv4, icmpv6, ipv4, ipv6, sctp, tcp, udp,
    vlan,
};

/// Settings of the extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtractConfig {
    /// How many VLAN tags to parse (0..=2). Tags beyond the limit are left
    /// in the payload and `dl_type` is the TPID of the first one not
    /// parsed. OVS's default is 1. 0 means "as many as the key holds" (2),
    /// as OVS's 0 means unlimited; values above 2 act as 2.
    pub vlan_limit: u8,
}

impl ExtractConfig {
    /// OVS's default: one VLAN tag.
    pub const OVS_DEFAULT: ExtractConfig = ExtractConfig { vlan_limit: 1 };

    /// The number of tags actually parsed (1 or 2).
    #[inline]
    pub const fn effective_vlan_limit(&self) -> usize {
        match self.vlan_limit {
            0 => MAX_VLAN_TAGS,
            n if (n as usize) > MAX_VLAN_TAGS => MAX_VLAN_TAGS,
            n => n as usize,
        }
    }
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self::OVS_DEFAULT
    }
}

/// VLAN tags the key has room for.
pub const MAX_VLAN_TAGS: usize = 2;

/// Byte offsets of the layers found in a frame ([`Layers::NONE`] when a
/// layer was not reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layers {
    /// Start of the Ethernet header (always 0 for an Ethernet frame).
    pub l2: u16,
    /// Start of the network header (after VLAN tags and LLC/SNAP); set as
    /// soon as the Ethernet header parsed, as OVS's `l3_ofs`.
    pub l3: u16,
    /// Start of the transport header (after IPv4 options or IPv6 extension
    /// headers); set once the IP header is accepted. Not set for ARP.
    pub l4: u16,
    /// Start of the transport payload (after the TCP header with options,
    /// or the 8-byte UDP/ICMP/ICMPv6/IGMP or 12-byte SCTP header); set once
    /// that header is accepted.
    pub l7: u16,
}

impl Layers {
    /// The value of an absent offset.
    pub const NONE: u16 = u16::MAX;
    /// No layer found.
    pub const EMPTY: Layers = Layers {
        l2: Self::NONE,
        l3: Self::NONE,
        l4: Self::NONE,
        l7: Self::NONE,
    };

    #[inline]
    fn get(v: u16) -> Option<usize> {
        (v != Self::NONE).then_some(usize::from(v))
    }

    /// The L3 offset, if found.
    #[inline]
    pub fn l3(&self) -> Option<usize> {
        Self::get(self.l3)
    }

    /// The L4 offset, if found.
    #[inline]
    pub fn l4(&self) -> Option<usize> {
        Self::get(self.l4)
    }

    /// The L7 offset, if found.
    #[inline]
    pub fn l7(&self) -> Option<usize> {
        Self::get(self.l7)
    }
}

impl Default for Layers {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The layer at which extraction stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// The Ethernet header (or LLC/SNAP).
    L2,
    /// A VLAN tag.
    Vlan,
    /// ARP, IPv4 or IPv6 (including IPv6 extension headers).
    L3,
    /// TCP, UDP, SCTP, ICMP, IGMP, ICMPv6 (including ND).
    L4,
}

impl Layer {
    /// A short stable name (used as a counter label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::L2 => "l2",
            Layer::Vlan => "vlan",
            Layer::L3 => "l3",
            Layer::L4 => "l4",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and why extraction stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtractError {
    /// The header that failed.
    pub layer: Layer,
    /// Why.
    pub error: ParseError,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.layer, self.error)
    }
}

impl std::error::Error for ExtractError {}

/// The result of [`extract`]: layer offsets and the first error, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extracted {
    /// Offsets of the layers found.
    pub layers: Layers,
    /// Why extraction stopped before the end of the headers, if it did.
    pub error: Option<ExtractError>,
}

const ETH_TYPE_IPV4: u16 = 0x0800;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_RARP: u16 = 0x8035;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_VLAN: u16 = 0x8100;
const ETH_TYPE_QINQ: u16 = 0x88a8;
/// Smallest value that is an EtherType rather than an 802.3 length.
const ETH_TYPE_MIN: u16 = 0x0600;
/// `dl_type` of an 802.3 frame without a SNAP EtherType (OVS
/// `FLOW_DL_TYPE_NONE`).
pub const DL_TYPE_NONE: u16 = 0x05ff;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

const IGMP_HEADER_LEN: usize = 8;
/// ICMPv6 header plus the ND target address.
const ND_FIXED_LEN: usize = 24;

type Step<T> = Result<T, ExtractError>;

#[inline]
fn err(layer: Layer, error: ParseError) -> ExtractError {
    ExtractError { layer, error }
}

/// An offset as stored in [`Layers`]; offsets past `u16::MAX - 1` (only
/// possible in a jumbo frame with huge IPv6 extension headers) are an error.
#[inline]
fn ofs(v: usize, layer: Layer) -> Step<u16> {
    match u16::try_from(v) {
        Ok(o) if o != Layers::NONE => Ok(o),
        _ => Err(err(layer, ParseError::BadLength)),
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Extracts the packet fields of `frame` (an Ethernet frame without FCS)
/// into `key`.
///
/// Calls [`FlowKey::clear_packet_fields`] first: port, metadata, registers
/// and tunnel fields are kept, everything else is rewritten. See the
/// [module documentation](self) for what is extracted and how malformed
/// packets are handled. Never panics, never allocates.
#[inline(always)]
pub fn extract(frame: &[u8], cfg: &ExtractConfig, key: &mut FlowKey) -> Extracted {
    extract_shaped(frame, cfg, key).0
}

/// [`extract`], and whether the frame took the single-step path for
/// untagged TCP/UDP over IPv4 without options: if `true`, every packet
/// word of `key` outside [`FAST_WORDS`] is zero (a cache can then hash
/// and compare only those words). `false` says nothing about the key.
#[inline(always)]
pub fn extract_shaped(frame: &[u8], cfg: &ExtractConfig, key: &mut FlowKey) -> (Extracted, bool) {
    if let Some(layers) = extract_fast(frame, key) {
        let ex = Extracted {
            layers,
            error: None,
        };
        return (ex, true);
    }
    (extract_general(frame, cfg, key), false)
}

/// The packet words `extract_fast` may set (Ethernet addresses and type,
/// IPv4 pair, protocol/TOS/TTL, L4 ports and TCP flags); it writes every
/// other packet word as zero.
pub const FAST_WORDS: [usize; 5] = [25, 26, 28, 33, 34];

/// The frame the data path sees most, in one step: untagged Ethernet II,
/// IPv4 without options and not a fragment, a complete TCP or UDP header.
/// Each packet word of the key is computed from whole loads of a
/// fixed-size view of the first 54 bytes (no bounds checks, no per-field
/// read-modify-write of the key words) and stored once, the words of
/// layers that are not there as zeros, so the key needs no clearing first.
/// `None` (key untouched) for anything else, which [`extract_general`]
/// handles; the result is the same either way (a unit proptest compares
/// the two on mutated frames), this only skips work.
#[inline(always)]
fn extract_fast(frame: &[u8], key: &mut FlowKey) -> Option<Layers> {
    const L3: usize = 14;
    const L4: usize = L3 + ipv4::HEADER_LEN;
    // Shorter frames (an Ethernet minimum-size UDP frame is 60 bytes) take
    // the general path.
    let h: &[u8; L4 + tcp::HEADER_LEN] = frame.first_chunk()?;
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let be64 = |i: usize| {
        u64::from_be_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ])
    };
    // IPv4 with IHL 5 (the version nibble is not checked, as in the
    // general path: only this byte value is fast), no MF flag, offset 0.
    if be16(12) != ETH_TYPE_IPV4 || h[L3] != 0x45 || be16(L3 + 6) & 0x3fff != 0 {
        return None;
    }
    // The general path's length checks, for IHL 5.
    let tot_len = usize::from(be16(L3 + 2));
    let l3_len = frame.len() - L3;
    if tot_len < ipv4::HEADER_LEN || l3_len < tot_len || l3_len - tot_len > usize::from(u16::MAX) {
        return None;
    }
    let l4_len = tot_len - ipv4::HEADER_LEN;
    let proto = h[L3 + 9];
    let (ports, hlen) = match proto {
        IPPROTO_TCP => {
            let hlen = usize::from(h[L4 + 12] >> 4) * 4;
            if hlen < tcp::HEADER_LEN || l4_len < hlen {
                return None;
            }
            // tp_src, tp_dst and the 12 low bits of the offset/flags word.
            let flags = u64::from(be16(L4 + 12) & 0x0fff);
            (
                u64::from(be16(L4)) | u64::from(be16(L4 + 2)) << 16 | flags << 32,
                hlen,
            )
        }
        IPPROTO_UDP if l4_len >= udp::HEADER_LEN => (
            u64::from(be16(L4)) | u64::from(be16(L4 + 2)) << 16,
            udp::HEADER_LEN,
        ),
        _ => return None,
    };
    let w = &mut key.0;
    // dl_dst and dl_type; dl_src; no VLAN tags.
    w[25] = be64(0) >> 16 | u64::from(ETH_TYPE_IPV4) << 48;
    w[26] = be64(4) & 0xffff_ffff_ffff;
    w[27] = 0;
    // nw_src and nw_dst; no IPv6 addresses.
    w[28] = u64::from(be32(L3 + 12)) | u64::from(be32(L3 + 16)) << 32;
    w[29..33].fill(0);
    // No flow label; nw_proto, nw_tos, nw_ttl; nw_frag 0.
    w[33] = u64::from(proto) << 32 | u64::from(h[L3 + 1]) << 40 | u64::from(h[L3 + 8]) << 48;
    w[34] = ports;
    // No ARP/ND addresses.
    w[35..].fill(0);
    Some(Layers {
        l2: 0,
        l3: L3 as u16,
        l4: L4 as u16,
        l7: (L4 + hlen) as u16,
    })
}

// The word layout `extract_fast` writes (see `key.rs`).
const _: () = {
    use super::key::slots as s;
    const fn at(f: super::key::Slot, word: u8, shift: u8) -> bool {
        f.word == word && f.shift == shift
    }
    assert!(at(s::dl_dst, 25, 0) && at(s::dl_type, 25, 48) && at(s::dl_src, 26, 0));
    assert!(at(s::vlan0_tci, 27, 0) && at(s::vlan1_tpid, 27, 48));
    assert!(at(s::nw_src, 28, 0) && at(s::nw_dst, 28, 32));
    assert!(at(s::ipv6_src, 29, 0) && at(s::ipv6_dst, 31, 0));
    assert!(at(s::ipv6_label, 33, 0) && at(s::nw_proto, 33, 32) && at(s::nw_tos, 33, 40));
    assert!(at(s::nw_ttl, 33, 48) && at(s::nw_frag, 33, 56));
    assert!(at(s::tp_src, 34, 0) && at(s::tp_dst, 34, 16) && at(s::tcp_flags, 34, 32));
    assert!(at(s::arp_sha, 35, 0) && at(s::nd_target, 37, 0));
    assert!(super::key::FLOW_WORDS == 39 && super::key::FIRST_PACKET_WORD == 25);
};

/// Every frame: see [`extract`]. A call of its own, so that the fast
/// path inlines into the caller.
#[inline(never)]
fn extract_general(frame: &[u8], cfg: &ExtractConfig, key: &mut FlowKey) -> Extracted {
    key.clear_packet_fields();
    let mut layers = Layers {
        l2: 0,
        ..Layers::EMPTY
    };
    let error = extract_l2(frame, cfg, key, &mut layers).err();
    Extracted { layers, error }
}

#[inline(always)]
fn extract_l2(
    frame: &[u8],
    cfg: &ExtractConfig,
    key: &mut FlowKey,
    layers: &mut Layers,
) -> Step<()> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| err(Layer::L2, e))?;
    key.set_dl_dst(eth.dst_addr());
    key.set_dl_src(eth.src_addr());

    // `pos` is the offset of the current EtherType/TPID field.
    let mut pos = 12;
    let mut dl_type = u16::from(eth.ethertype());

    // VLAN tags.
    let limit = cfg.effective_vlan_limit();
    let mut n = 0;
    while n < limit && (dl_type == ETH_TYPE_VLAN || dl_type == ETH_TYPE_QINQ) {
        let tag = match frame.get(pos + 2..).map(vlan::Packet::new_checked) {
            Some(Ok(tag)) => tag,
            _ => {
                // OVS: too short for TCI + EtherType; the TPID stays the
                // dl_type.
                key.set_dl_type(dl_type);
                layers.l3 = ofs(pos + 2, Layer::Vlan)?;
                return Err(err(Layer::Vlan, ParseError::Truncated));
            }
        };
        let tci = tag.tci() | VLAN_CFI;
        if n == 0 {
            key.set_vlan0_tci(tci);
            key.set_vlan0_tpid(dl_type);
        } else {
            key.set_vlan1_tci(tci);
            key.set_vlan1_tpid(dl_type);
        }
        dl_type = u16::from(tag.ethertype());
        pos += vlan::HEADER_LEN;
        n += 1;
    }
    pos += 2;

    // 802.3 length field: LLC/SNAP or "none".
    if dl_type < ETH_TYPE_MIN {
        dl_type = DL_TYPE_NONE;
        if let Some(llc) = frame.get(pos..pos + 8)
            && llc[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0]
        {
            pos += 8;
            let snap_type = be16(llc, 6);
            if snap_type >= ETH_TYPE_MIN {
                dl_type = snap_type;
            }
        }
    }
    key.set_dl_type(dl_type);
    // At most 14 + 2 * 4 + 8 bytes: always fits.
    layers.l3 = ofs(pos, Layer::L2)?;
    let l3 = frame.get(pos..).unwrap_or_default();

    match dl_type {
        ETH_TYPE_IPV4 => extract_ipv4(l3, pos, key, layers),
        ETH_TYPE_IPV6 => extract_ipv6(l3, pos, key, layers),
        ETH_TYPE_ARP | ETH_TYPE_RARP => extract_arp(l3, key),
        _ => Ok(()),
    }
}

#[inline(always)]
fn extract_arp(l3: &[u8], key: &mut FlowKey) -> Step<()> {
    let arp = arp::Packet::new_checked(l3).map_err(|e| err(Layer::L3, e))?;
    if arp.hardware_type() != arp::Hardware::Ethernet
        || u16::from(arp.protocol_type()) != ETH_TYPE_IPV4
        || arp.hardware_len() != 6
        || arp.protocol_len() != 4
    {
        return Err(err(Layer::L3, ParseError::Unsupported));
    }
    key.set_nw_src(arp.source_protocol_addr());
    key.set_nw_dst(arp.target_protocol_addr());
    // Only the low 8 bits of the opcode can be matched (OVS).
    if let Ok(op) = u8::try_from(u16::from(arp.operation())) {
        key.set_nw_proto(op);
    }
    key.set_arp_sha(arp.source_hardware_addr());
    key.set_arp_tha(arp.target_hardware_addr());
    Ok(())
}

#[inline(always)]
fn extract_ipv4(l3: &[u8], base: usize, key: &mut FlowKey, layers: &mut Layers) -> Step<()> {
    // OVS `ipv4_sanity_check`, with the version not looked at.
    if l3.len() < ipv4::HEADER_LEN {
        return Err(err(Layer::L3, ParseError::Truncated));
    }
    let ip = ipv4::Packet::new_unchecked(l3);
    let ihl = usize::from(ip.header_len());
    if ihl < ipv4::HEADER_LEN {
        return Err(err(Layer::L3, ParseError::BadLength));
    }
    if l3.len() < ihl {
        return Err(err(Layer::L3, ParseError::Truncated));
    }
    let tot_len = usize::from(ip.total_len());
    if tot_len < ihl {
        return Err(err(Layer::L3, ParseError::BadLength));
    }
    if l3.len() < tot_len {
        return Err(err(Layer::L3, ParseError::Truncated));
    }
    if l3.len() - tot_len > usize::from(u16::MAX) {
        return Err(err(Layer::L3, ParseError::BadLength));
    }

    key.set_nw_src(ip.src_addr());
    key.set_nw_dst(ip.dst_addr());
    let proto = u8::from(ip.next_header());
    key.set_nw_proto(proto);
    key.set_nw_tos(ip.dscp() << 2 | ip.ecn());
    key.set_nw_ttl(ip.ttl());
    let mut frag = 0;
    if ip.is_fragment() {
        frag = NW_FRAG_ANY;
        if ip.is_later_fragment() {
            frag |= NW_FRAG_LATER;
        }
    }
    key.set_nw_frag(frag);

    let l4_ofs = base + ihl;
    layers.l4 = ofs(l4_ofs, Layer::L3)?;
    if frag & NW_FRAG_LATER != 0 {
        return Ok(());
    }
    // Never look at Ethernet padding.
    let l4 = l3.get(ihl..tot_len).unwrap_or_default();
    extract_l4(l4, l4_ofs, proto, key, layers)
}

#[inline(always)]
fn extract_ipv6(l3: &[u8], base: usize, key: &mut FlowKey, layers: &mut Layers) -> Step<()> {
    // OVS `ipv6_sanity_check`: the view's `check_len` minus the version
    // check.
    if l3.len() < ipv6::HEADER_LEN {
        return Err(err(Layer::L3, ParseError::Truncated));
    }
    let ip = ipv6::Packet::new_unchecked(l3);
    let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    let Some(payload) = l3.get(ipv6::HEADER_LEN..end) else {
        return Err(err(Layer::L3, ParseError::Truncated));
    };
    if l3.len() - end > usize::from(u16::MAX) {
        return Err(err(Layer::L3, ParseError::BadLength));
    }
    key.set_ipv6_src(ip.src_addr());
    key.set_ipv6_dst(ip.dst_addr());
    key.set_ipv6_label(ip.flow_label());
    key.set_nw_tos(ip.traffic_class());
    key.set_nw_ttl(ip.hop_limit());

    let walk =
        ipv6::walk_extension_headers(ip.next_header(), payload).map_err(|e| err(Layer::L3, e))?;
    let mut proto = u8::from(walk.protocol);
    let mut frag = 0;
    if let Some(f) = walk.fragment
        && (f.offset != 0 || f.more_frags)
    {
        frag = NW_FRAG_ANY;
        if f.offset != 0 {
            frag |= NW_FRAG_LATER;
            // OVS reports a later fragment as protocol 44 (fragment).
            proto = IPPROTO_FRAGMENT;
        }
    }
    key.set_nw_proto(proto);
    key.set_nw_frag(frag);
    let l4_ofs = base + ipv6::HEADER_LEN + walk.offset;
    layers.l4 = ofs(l4_ofs, Layer::L3)?;
    if frag & NW_FRAG_LATER != 0 {
        return Ok(());
    }
    let l4 = payload.get(walk.offset..).unwrap_or_default();
    extract_l4(l4, l4_ofs, proto, key, layers)
}

#[inline(always)]
fn extract_l4(
    l4: &[u8],
    base: usize,
    proto: u8,
    key: &mut FlowKey,
    layers: &mut Layers,
) -> Step<()> {
    let hlen = match proto {
        IPPROTO_TCP => {
            // Same checks as OVS: 20 bytes, data offset >= 5, header fits.
            let tcp = tcp::Packet::new_checked(l4).map_err(|e| err(Layer::L4, e))?;
            key.set_tp_src(tcp.src_port());
            key.set_tp_dst(tcp.dst_port());
            // OVS keeps the 12 low bits of the offset/flags word (the 9
            // flags and the 3 reserved bits); the view's `flags()` masks
            // the reserved bits off.
            key.set_tcp_flags(be16(l4, 12) & 0x0fff);
            tcp.header_len()
        }
        IPPROTO_UDP => {
            // OVS checks only that the 8 bytes are there, not the UDP
            // length field (which the view's `check_len` does).
            if l4.len() < udp::HEADER_LEN {
                return Err(err(Layer::L4, ParseError::Truncated));
            }
            let udp = udp::Packet::new_unchecked(l4);
            key.set_tp_src(udp.src_port());
            key.set_tp_dst(udp.dst_port());
            udp::HEADER_LEN
        }
        IPPROTO_SCTP => {
            let sctp = sctp::Packet::new_checked(l4).map_err(|e| err(Layer::L4, e))?;
            key.set_tp_src(sctp.src_port());
            key.set_tp_dst(sctp.dst_port());
            sctp::HEADER_LEN
        }
        IPPROTO_ICMP => {
            let icmp = icmpv4::Packet::new_checked(l4).map_err(|e| err(Layer::L4, e))?;
            key.set_tp_src(u16::from(u8::from(icmp.msg_type())));
            key.set_tp_dst(u16::from(icmp.msg_code()));
            icmpv4::HEADER_LEN
        }
        IPPROTO_IGMP => {
            // Type and code in the first two bytes, as OVS; no IGMP view.
            let Some(h) = l4.get(..IGMP_HEADER_LEN) else {
                return Err(err(Layer::L4, ParseError::Truncated));
            };
            key.set_tp_src(u16::from(h[0]));
            key.set_tp_dst(u16::from(h[1]));
            IGMP_HEADER_LEN
        }
        IPPROTO_ICMPV6 => {
            // OVS wants only the 8-byte header for type and code; the
            // view's `check_len` also wants the fixed part of NS/NA.
            if l4.len() < icmpv6::HEADER_LEN {
                return Err(err(Layer::L4, ParseError::Truncated));
            }
            let icmp = icmpv6::Packet::new_unchecked(l4);
            let ty = icmp.msg_type();
            let code = icmp.msg_code();
            key.set_tp_src(u16::from(u8::from(ty)));
            key.set_tp_dst(u16::from(code));
            layers.l7 = ofs(base + icmpv6::HEADER_LEN, Layer::L4)?;
            if code == 0
                && matches!(
                    ty,
                    icmpv6::Message::NeighborSolicit | icmpv6::Message::NeighborAdvert
                )
            {
                return extract_nd(&icmp, key);
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    layers.l7 = ofs(base + hlen, Layer::L4)?;
    Ok(())
}

/// OVS `parse_icmpv6` for a neighbor solicitation or advertisement whose
/// 8-byte header is in `icmp`.
#[inline]
fn extract_nd(icmp: &icmpv6::Packet<&[u8]>, key: &mut FlowKey) -> Step<()> {
    let Some(target) = icmp.target_addr() else {
        return Err(err(Layer::L4, ParseError::Truncated));
    };
    key.set_nd_target(target);

    let mut opts = icmp.into_inner().get(ND_FIXED_LEN..).unwrap_or_default();
    let mut sll = EthernetAddress::ZERO;
    let mut tll = EthernetAddress::ZERO;
    let mut result = Ok(());
    // As OVS, fewer than 8 trailing bytes are ignored rather than
    // reported.
    while opts.len() >= 8 {
        let opt = match icmpv6::NdiscOptionIter::new(opts).next() {
            Some(Ok(opt)) => opt,
            Some(Err(e)) => {
                // Zero length or longer than what is left: stop, keep
                // what was found.
                result = Err(err(Layer::L4, e));
                break;
            }
            None => break,
        };
        let slot = match opt.kind {
            icmpv6::NdiscOptionType::SourceLinkLayerAddr => Some(&mut sll),
            icmpv6::NdiscOptionType::TargetLinkLayerAddr => Some(&mut tll),
            _ => None,
        };
        // Only one-unit options hold an Ethernet address (6 data bytes).
        if let Some(slot) = slot
            && opt.data.len() == 6
        {
            if *slot != EthernetAddress::ZERO {
                // The same option twice: not valid ND (OVS zeroes all three).
                key.set_nd_target(Ipv6Addr::UNSPECIFIED);
                return Err(err(Layer::L4, ParseError::BadField));
            }
            *slot = EthernetAddress::from_bytes(opt.data);
        }
        opts = opts.get(2 + opt.data.len()..).unwrap_or_default();
    }
    key.set_arp_sha(sll);
    key.set_arp_tha(tll);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    use crate::flow::key::{NW_FRAG_ANY, NW_FRAG_LATER};

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    fn run(frame: &[u8], vlan_limit: u8) -> (FlowKey, Extracted) {
        let mut key = FlowKey::default();
        let ex = extract(frame, &ExtractConfig { vlan_limit }, &mut key);
        (key, ex)
    }

    fn layers(l3: u16, l4: u16, l7: u16) -> Layers {
        Layers { l2: 0, l3, l4, l7 }
    }

    fn e(layer: Layer, error: ParseError) -> Option<ExtractError> {
        Some(ExtractError { layer, error })
    }

    const N: u16 = Layers::NONE;

    /// Ethernet header A -> B (dst B, src A) with `ty`.
    fn eth(ty: u16) -> Vec<u8> {
        let mut v = MAC_B.to_vec();
        v.extend_from_slice(&MAC_A);
        v.extend_from_slice(&ty.to_be_bytes());
        v
    }

    /// IPv4 header 10.0.0.1 -> 10.0.0.2, TOS 0xb9, TTL 63, no checksum
    /// (the extractor does not verify it), followed by `payload`.
    fn ipv4(proto: u8, frag_field: u16, payload: &[u8]) -> Vec<u8> {
        let tot = (20 + payload.len()) as u16;
        let mut v = vec![0x45, 0xb9];
        v.extend_from_slice(&tot.to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]);
        v.extend_from_slice(&frag_field.to_be_bytes());
        v.extend_from_slice(&[63, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        v.extend_from_slice(payload);
        v
    }

    /// IPv6 header 2001:db8::1 -> 2001:db8::2, TC 0xb9, label 0xabcde,
    /// hop limit 7, followed by `payload`.
    fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
        let tc_flow: u32 = 0x6000_0000 | (0xb9 << 20) | 0xabcde;
        let mut v = tc_flow.to_be_bytes().to_vec();
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[nh, 7]);
        v.extend_from_slice(&V6_SRC.octets());
        v.extend_from_slice(&V6_DST.octets());
        v.extend_from_slice(payload);
        v
    }

    const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// TCP header 1234 -> 80 with `flags` and `opt_words` 32-bit words of
    /// NOP options.
    fn tcp(flags: u16, opt_words: usize) -> Vec<u8> {
        let off = ((5 + opt_words) as u16) << 12;
        let mut v = vec![0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
        v.extend_from_slice(&(off | flags).to_be_bytes());
        v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        v.extend(std::iter::repeat_n(1u8, opt_words * 4));
        v
    }

    fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(data);
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Inner Ethernet frame of packet 1 of tcpdump-vxlan.pcap (after the
    /// outer Ethernet, IPv4, UDP and VXLAN headers): ICMP echo request
    /// 192.168.203.3 -> 192.168.203.5, id 0x050c seq 1, TTL 64.
    const VXLAN_1_ICMP: [u8; 98] = [
        0x00, 0x30, 0x88, 0x01, 0x00, 0x02, 0x00, 0x16, 0x3e, 0x37, 0xf6, 0x04, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x54, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x23, 0x4f, 0xc0, 0xa8, 0xcb, 0x03,
        0xc0, 0xa8, 0xcb, 0x05, 0x08, 0x00, 0xf6, 0xf2, 0x05, 0x0c, 0x00, 0x01, 0xfc, 0xe2, 0x97,
        0x51, 0x00, 0x00, 0x00, 0x00, 0xa6, 0xf8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11,
        0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// Inner Ethernet frame of packet 2 of tcpdump-vxlan.pcap: ARP request
    /// "who has 192.168.203.3? tell 192.168.203.5".
    const VXLAN_2_ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x30, 0x88, 0x01, 0x00, 0x02, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x30, 0x88, 0x01, 0x00, 0x02, 0xc0, 0xa8,
        0xcb, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0xcb, 0x03,
    ];

    /// Inner Ethernet frame of packet 3 of tcpdump-geneve.pcap (after outer
    /// Ethernet, IPv4, UDP and the 8-byte Geneve header, VNI 0xb, no
    /// options): TCP SYN 30.0.0.2:51225 -> 30.0.0.1:22 with 20 option bytes
    /// (MSS, SACK-permitted, timestamps, window scale).
    const GENEVE_3_TCP_SYN: [u8; 74] = [
        0xb6, 0x9e, 0xd2, 0x49, 0x51, 0x48, 0xfe, 0x71, 0xd8, 0x83, 0x72, 0x4f, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x5a, 0x11, 0x40, 0x00, 0x40, 0x06, 0xa4, 0xa8, 0x1e, 0x00, 0x00, 0x02,
        0x1e, 0x00, 0x00, 0x01, 0xc8, 0x19, 0x00, 0x16, 0x17, 0xb3, 0x0c, 0xaf, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0x39, 0x08, 0xe4, 0x37, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0xab, 0x6d, 0x56, 0xbe, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// The first 94 bytes of the inner Ethernet frame of the single packet
    /// of tcpdump-gso-ipv6-vxlan-ipv6.pcap (after outer Ethernet, IPv6, UDP
    /// and VXLAN): IPv6 fd00::2 -> fd00::1, flow label 0xb986b, hop limit
    /// 64, payload length 4106; TCP 43583 -> 44175 ACK with a 12-byte
    /// timestamp option, then 8 payload bytes.
    const GSO_V6_PREFIX: [u8; 94] = [
        0xfe, 0x36, 0xa5, 0x67, 0xe0, 0xac, 0x76, 0xbd, 0x91, 0x4a, 0x21, 0xf9, 0x86, 0xdd, 0x60,
        0x0b, 0x98, 0x6b, 0x10, 0x0a, 0x06, 0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xaa, 0x3f, 0xac, 0x8f, 0x6d, 0xad,
        0x05, 0x55, 0x3a, 0xf7, 0xd6, 0x4c, 0x80, 0x10, 0x00, 0xa6, 0x0a, 0x15, 0x00, 0x00, 0x01,
        0x01, 0x08, 0x0a, 0x59, 0x50, 0x36, 0x27, 0xee, 0xbe, 0x16, 0x2d, 0x6e, 0x65, 0x74, 0x70,
        0x65, 0x72, 0x66, 0x00,
    ];

    #[test]
    fn real_icmp_echo_request() {
        let (k, ex) = run(&VXLAN_1_ICMP, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(14, 34, 42));
        assert_eq!(
            k.dl_dst(),
            EthernetAddress([0x00, 0x30, 0x88, 0x01, 0x00, 0x02])
        );
        assert_eq!(
            k.dl_src(),
            EthernetAddress([0x00, 0x16, 0x3e, 0x37, 0xf6, 0x04])
        );
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.vlan0_tci(), 0);
        assert_eq!(k.nw_src(), Ipv4Addr::new(192, 168, 203, 3));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 203, 5));
        assert_eq!(
            (k.nw_proto(), k.nw_tos(), k.nw_ttl(), k.nw_frag()),
            (1, 0, 64, 0)
        );
        assert_eq!((k.tp_src(), k.tp_dst()), (8, 0));
        assert_eq!(k.tcp_flags(), 0);
    }

    #[test]
    fn real_arp_request() {
        let (k, ex) = run(&VXLAN_2_ARP_REQUEST, 1);
        assert_eq!(ex.error, None);
        // ARP has no L4 in OVS terms.
        assert_eq!(ex.layers, layers(14, N, N));
        assert_eq!(k.dl_dst(), EthernetAddress::BROADCAST);
        assert_eq!(k.dl_type(), 0x0806);
        assert_eq!(k.nw_proto(), 1);
        assert_eq!(k.nw_src(), Ipv4Addr::new(192, 168, 203, 5));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(192, 168, 203, 3));
        assert_eq!(
            k.arp_sha(),
            EthernetAddress([0x00, 0x30, 0x88, 0x01, 0x00, 0x02])
        );
        assert_eq!(k.arp_tha(), EthernetAddress::ZERO);
        assert_eq!((k.nw_ttl(), k.tp_src()), (0, 0));
    }

    #[test]
    fn real_tcp_syn_with_options() {
        let (k, ex) = run(&GENEVE_3_TCP_SYN, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(14, 34, 74));
        assert_eq!(
            k.dl_dst(),
            EthernetAddress([0xb6, 0x9e, 0xd2, 0x49, 0x51, 0x48])
        );
        assert_eq!(
            k.dl_src(),
            EthernetAddress([0xfe, 0x71, 0xd8, 0x83, 0x72, 0x4f])
        );
        assert_eq!(k.nw_src(), Ipv4Addr::new(30, 0, 0, 2));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(30, 0, 0, 1));
        assert_eq!((k.nw_proto(), k.nw_ttl(), k.nw_frag()), (6, 64, 0));
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (51225, 22, 0x002));
    }

    #[test]
    fn real_ipv6_tcp() {
        // As captured, the prefix is shorter than the payload length: L3
        // truncated, only L2 fields set.
        let (k, ex) = run(&GSO_V6_PREFIX, 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::Truncated));
        assert_eq!(ex.layers, layers(14, N, N));
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.ipv6_src(), Ipv6Addr::UNSPECIFIED);
        // With the payload length rewritten to what the prefix holds (40).
        let mut f = GSO_V6_PREFIX;
        f[18..20].copy_from_slice(&40u16.to_be_bytes());
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(14, 54, 86));
        assert_eq!(k.ipv6_src(), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
        assert_eq!(k.ipv6_dst(), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        assert_eq!(k.ipv6_label(), 0xb986b);
        assert_eq!(
            (k.nw_proto(), k.nw_tos(), k.nw_ttl(), k.nw_frag()),
            (6, 0, 64, 0)
        );
        assert_eq!(
            (k.tp_src(), k.tp_dst(), k.tcp_flags()),
            (43583, 44175, 0x010)
        );
    }

    #[test]
    fn keeps_metadata_and_clears_stale_fields() {
        let mut k = FlowKey::default();
        k.set_in_port(3);
        k.set_reg(5, 99);
        k.set_tun_id(100);
        k.set_nd_target(V6_DST);
        k.set_tp_src(7);
        extract(&VXLAN_2_ARP_REQUEST, &ExtractConfig::default(), &mut k);
        assert_eq!((k.in_port(), k.reg(5), k.tun_id()), (3, 99, 100));
        assert_eq!(k.nd_target(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(k.tp_src(), 0);
    }

    #[test]
    fn runt_frame() {
        for len in 0..14 {
            let mut k = FlowKey::default();
            k.set_in_port(9);
            k.set_metadata(0xfeed);
            k.set_dl_type(0x0800);
            let ex = extract(&VXLAN_1_ICMP[..len], &ExtractConfig::default(), &mut k);
            assert_eq!(ex.error, e(Layer::L2, ParseError::Truncated));
            assert_eq!(ex.layers, layers(N, N, N));
            let mut expect = FlowKey::default();
            expect.set_in_port(9);
            expect.set_metadata(0xfeed);
            assert_eq!(k, expect);
        }
    }

    fn vlan_frame(tags: &[(u16, u16)], inner: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = MAC_B.to_vec();
        v.extend_from_slice(&MAC_A);
        for (tpid, tci) in tags {
            v.extend_from_slice(&tpid.to_be_bytes());
            v.extend_from_slice(&tci.to_be_bytes());
        }
        v.extend_from_slice(&inner.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn single_vlan() {
        let ip = ipv4(17, 0, &udp(53, 5353, b"hi"));
        // PCP 5, DEI set, VID 100: the packet's DEI is folded into CFI.
        let f = vlan_frame(&[(0x8100, 0xb064)], 0x0800, &ip);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(18, 38, 46));
        assert_eq!((k.vlan0_tci(), k.vlan0_tpid()), (0xb064, 0x8100));
        assert_eq!((k.vlan1_tci(), k.vlan1_tpid()), (0, 0));
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!((k.tp_src(), k.tp_dst()), (53, 5353));
        // DEI clear: CFI added.
        let f = vlan_frame(&[(0x8100, 0xa064)], 0x0800, &ip);
        assert_eq!(run(&f, 1).0.vlan0_tci(), 0xb064);
        // VID 0 priority tag still marks "present".
        let f = vlan_frame(&[(0x8100, 0x0000)], 0x0800, &ip);
        assert_eq!(run(&f, 1).0.vlan0_tci(), VLAN_CFI);
    }

    #[test]
    fn qinq_and_vlan_limit() {
        let ip = ipv4(17, 0, &udp(1, 2, &[]));
        let f = vlan_frame(&[(0x88a8, 0x0064), (0x8100, 0x20c8)], 0x0800, &ip);
        // Limit 1: the inner tag is left; dl_type is its TPID, no L3 parse.
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(18, N, N));
        assert_eq!((k.vlan0_tci(), k.vlan0_tpid()), (0x1064, 0x88a8));
        assert_eq!((k.vlan1_tci(), k.vlan1_tpid()), (0, 0));
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!(k.nw_src(), Ipv4Addr::UNSPECIFIED);
        // Limit 2 and 0 (= as many as the key holds): both tags, then IP.
        for limit in [2, 0, 200] {
            let (k, ex) = run(&f, limit);
            assert_eq!(ex.error, None);
            assert_eq!(ex.layers, layers(22, 42, 50));
            assert_eq!((k.vlan0_tci(), k.vlan0_tpid()), (0x1064, 0x88a8));
            assert_eq!((k.vlan1_tci(), k.vlan1_tpid()), (0x30c8, 0x8100));
            assert_eq!(k.dl_type(), 0x0800);
            assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
            assert_eq!((k.tp_src(), k.tp_dst()), (1, 2));
        }
        // Three tags, limit 2: the third TPID is the dl_type.
        let f = vlan_frame(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], 0x0800, &ip);
        let (k, ex) = run(&f, 2);
        assert_eq!((ex.error, ex.layers), (None, layers(22, N, N)));
        assert_eq!(k.dl_type(), 0x8100);
    }

    #[test]
    fn vlan_truncated() {
        // TPID 0x8100 with only 3 bytes after it.
        let mut f = eth(0x8100);
        f.extend_from_slice(&[0, 5, 0x08]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::Vlan, ParseError::Truncated));
        assert_eq!(ex.layers, layers(14, N, N));
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!(k.vlan0_tci(), 0);
        assert_eq!(k.dl_src(), EthernetAddress(MAC_A));
    }

    #[test]
    fn llc_and_snap() {
        // 802.3 length field with an LLC (not SNAP) header: 0x05ff.
        let mut f = eth(0x0026);
        f.extend_from_slice(&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, N, N)));
        assert_eq!(k.dl_type(), DL_TYPE_NONE);
        // LLC/SNAP with OUI 0 and type IPv4: parsed as IPv4 after it.
        let mut f = eth(0x0030);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(&ipv4(17, 0, &udp(7, 9, &[])));
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(22, 42, 50)));
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.tp_dst(), 9);
        // Too short for LLC/SNAP: 0x05ff.
        let f = eth(0x0010);
        assert_eq!(run(&f, 1).0.dl_type(), DL_TYPE_NONE);
    }

    fn arp(htype: u16, op: u16) -> Vec<u8> {
        let mut v = htype.to_be_bytes().to_vec();
        v.extend_from_slice(&[0x08, 0x00, 6, 4]);
        v.extend_from_slice(&op.to_be_bytes());
        v.extend_from_slice(&MAC_A);
        v.extend_from_slice(&[10, 0, 0, 1]);
        v.extend_from_slice(&MAC_B);
        v.extend_from_slice(&[10, 0, 0, 2]);
        cat(&[&eth(0x0806), &v])
    }

    #[test]
    fn arp_reply_and_opcodes() {
        let (k, ex) = run(&arp(1, 2), 1);
        assert_eq!(ex.error, None);
        assert_eq!(k.nw_proto(), 2);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(k.arp_sha(), EthernetAddress(MAC_A));
        assert_eq!(k.arp_tha(), EthernetAddress(MAC_B));
        // Opcode above 0xff: nw_proto not set, the rest is.
        let (k, ex) = run(&arp(1, 0x0102), 1);
        assert_eq!(ex.error, None);
        assert_eq!(k.nw_proto(), 0);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        // RARP is parsed the same way.
        let mut f = arp(1, 3);
        f[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
        let (k, _) = run(&f, 1);
        assert_eq!((k.dl_type(), k.nw_proto()), (0x8035, 3));
    }

    #[test]
    fn arp_rejects() {
        // Hardware type not Ethernet.
        let (k, ex) = run(&arp(6, 1), 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::Unsupported));
        assert_eq!(
            (k.dl_type(), k.nw_src(), k.nw_proto()),
            (0x0806, Ipv4Addr::UNSPECIFIED, 0)
        );
        // Protocol length 16.
        let mut f = arp(1, 1);
        f[19] = 16;
        assert_eq!(run(&f, 1).1.error, e(Layer::L3, ParseError::Unsupported));
        // Truncated: 27 of 28 bytes.
        let f = arp(1, 1);
        let (k, ex) = run(&f[..41], 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::Truncated));
        assert_eq!(k.arp_sha(), EthernetAddress::ZERO);
    }

    #[test]
    fn icmpv4() {
        let f = cat(&[&eth(0x0800), &ipv4(1, 0, &[3, 13, 0, 0, 0, 0, 0, 0])]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, 42)));
        assert_eq!((k.tp_src(), k.tp_dst(), k.nw_proto()), (3, 13, 1));
        // 7 bytes of ICMP: type/code not set.
        let f = cat(&[&eth(0x0800), &ipv4(1, 0, &[3, 13, 0, 0, 0, 0, 0])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!((k.tp_src(), k.tp_dst(), k.nw_proto()), (0, 0, 1));
    }

    #[test]
    fn igmp() {
        let f = cat(&[&eth(0x0800), &ipv4(2, 0, &[0x16, 0, 0, 0, 224, 0, 0, 251])]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, 42)));
        assert_eq!((k.tp_src(), k.tp_dst()), (0x16, 0));
        let f = cat(&[&eth(0x0800), &ipv4(2, 0, &[0x16, 0, 0, 0, 224, 0, 0])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(
            (ex.error, k.tp_src()),
            (e(Layer::L4, ParseError::Truncated), 0)
        );
    }

    #[test]
    fn icmpv6_truncated() {
        let f = cat(&[&eth(0x86dd), &ipv6(58, &[128, 0, 0, 0, 0, 1, 0])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!(
            (ex.layers, k.nw_proto(), k.tp_src()),
            (layers(14, 54, N), 58, 0)
        );
    }

    #[test]
    fn sctp() {
        let mut s = vec![0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0];
        s.extend_from_slice(&[1, 0, 0, 4]);
        let f = cat(&[&eth(0x0800), &ipv4(132, 0, &s)]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, 46)));
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 2905, 2906));
        let f = cat(&[&eth(0x0800), &ipv4(132, 0, &s[..11])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!(k.tp_src(), 0);
    }

    #[test]
    fn udp_length_field_not_checked() {
        // A UDP length field of 3 (impossible): OVS still takes the ports.
        let mut u = udp(1000, 2000, b"abcd");
        u[4..6].copy_from_slice(&3u16.to_be_bytes());
        let f = cat(&[&eth(0x0800), &ipv4(17, 0, &u)]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!((k.tp_src(), k.tp_dst()), (1000, 2000));
        let f = cat(&[&eth(0x0800), &ipv4(17, 0, &u[..7])]);
        assert_eq!(run(&f, 1).1.error, e(Layer::L4, ParseError::Truncated));
    }

    #[test]
    fn tcp_flags_twelve_bits_and_options() {
        // NS|CWR|FIN plus the three reserved bits.
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &tcp(0x0f81, 2))]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, 62)));
        assert_eq!(k.tcp_flags(), 0x0f81);
        assert_eq!((k.tp_src(), k.tp_dst()), (1234, 80));
    }

    #[test]
    fn truncated_tcp() {
        let t = tcp(0x012, 0);
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &t[..19])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!(ex.layers, layers(14, 34, N));
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!((k.nw_proto(), k.nw_ttl(), k.nw_tos()), (6, 63, 0xb9));
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (0, 0, 0));
        // Data offset says 24 bytes, 20 present.
        let mut t = tcp(0x012, 0);
        t[12] = 0x60;
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &t)]);
        assert_eq!(run(&f, 1).1.error, e(Layer::L4, ParseError::Truncated));
        // Data offset 4 (< 5).
        t[12] = 0x40;
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &t)]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::BadLength));
        assert_eq!(k.tp_src(), 0);
    }

    #[test]
    fn ethernet_padding_is_not_l4() {
        // IPv4 total length covers 10 bytes of TCP; the frame is padded to
        // 60 bytes, so the bytes are there but not part of the packet.
        let t = tcp(0x002, 0);
        let mut ip = ipv4(6, 0, &t);
        ip[2..4].copy_from_slice(&30u16.to_be_bytes());
        let f = cat(&[&eth(0x0800), &ip]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!(k.tp_src(), 0);
        // A complete packet with trailing padding parses normally.
        let f = cat(&[&eth(0x0800), &ipv4(17, 0, &udp(1, 2, &[])), &[0u8; 18]]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(k.tp_dst(), 2);
    }

    #[test]
    fn ipv4_bad_lengths() {
        let good = cat(&[&eth(0x0800), &ipv4(17, 0, &udp(1, 2, &[]))]);
        let check = |f: &[u8], want: ParseError| {
            let (k, ex) = run(f, 1);
            assert_eq!(ex.error, e(Layer::L3, want));
            assert_eq!(ex.layers, layers(14, N, N));
            assert_eq!(k.dl_type(), 0x0800);
            assert_eq!(k.dl_src(), EthernetAddress(MAC_A));
            assert_eq!(
                (k.nw_src(), k.nw_proto(), k.nw_ttl()),
                (Ipv4Addr::UNSPECIFIED, 0, 0)
            );
        };
        // Bad IHL (4).
        let mut f = good.clone();
        f[14] = 0x44;
        check(&f, ParseError::BadLength);
        // IHL 15 (60 bytes) beyond the 28 bytes of IP in the frame.
        f[14] = 0x4f;
        check(&f, ParseError::Truncated);
        // Total length below the header length.
        let mut f = good.clone();
        f[16..18].copy_from_slice(&19u16.to_be_bytes());
        check(&f, ParseError::BadLength);
        // Total length beyond the frame.
        f[16..18].copy_from_slice(&29u16.to_be_bytes());
        check(&f, ParseError::Truncated);
        // Fewer than 20 bytes.
        check(&good[..33], ParseError::Truncated);
        // Padding beyond 65535 bytes (OVS's l2_pad_size is 16 bits).
        let mut f = good.clone();
        f.resize(good.len() + 65536, 0);
        check(&f, ParseError::BadLength);
    }

    #[test]
    fn ipv4_options_and_version_not_checked() {
        // IHL 6: one word of options (NOPs), then UDP.
        let u = udp(10, 20, &[]);
        let mut ip = ipv4(17, 0, &[&[1u8, 1, 1, 1][..], &u].concat());
        ip[0] = 0x46;
        let f = cat(&[&eth(0x0800), &ip]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 38, 46)));
        assert_eq!((k.tp_src(), k.tp_dst()), (10, 20));
        // Version 6 in an 0x0800 frame: OVS does not look; neither do we.
        let mut f = cat(&[&eth(0x0800), &ipv4(17, 0, &u)]);
        f[14] = 0x65;
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(k.tp_src(), 10);
    }

    #[test]
    fn ipv4_fragments() {
        let u = udp(5, 6, &[0; 8]);
        // First fragment: MF set, offset 0: L4 parsed.
        let f = cat(&[&eth(0x0800), &ipv4(17, 0x2000, &u)]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, 42)));
        assert_eq!(k.nw_frag(), NW_FRAG_ANY);
        assert_eq!((k.tp_src(), k.tp_dst()), (5, 6));
        // Later fragment (offset 2 * 8, DF noise): no L4.
        let f = cat(&[&eth(0x0800), &ipv4(17, 0x4002, &u)]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 34, N)));
        assert_eq!(k.nw_frag(), NW_FRAG_ANY | NW_FRAG_LATER);
        assert_eq!((k.nw_proto(), k.tp_src()), (17, 0));
        // DF alone is not a fragment.
        let f = cat(&[&eth(0x0800), &ipv4(17, 0x4000, &u)]);
        assert_eq!(run(&f, 1).0.nw_frag(), 0);
    }

    /// An 8-byte hop-by-hop / destination options header (PadN).
    fn ext8(nh: u8) -> [u8; 8] {
        [nh, 0, 1, 4, 0, 0, 0, 0]
    }

    #[test]
    fn ipv6_extension_headers_then_tcp() {
        // Hop-by-hop (8) -> routing (24) -> AH (16) -> dst opts (8) -> TCP.
        let mut rt = [0u8; 24];
        rt[0] = 51;
        rt[1] = 2;
        let mut ah = [0u8; 16];
        ah[0] = 60;
        ah[1] = 2; // (2 + 2) * 4 = 16 bytes
        let pl = cat(&[&ext8(43), &rt, &ah, &ext8(6), &tcp(0x018, 0)]);
        let f = cat(&[&eth(0x86dd), &ipv6(0, &pl)]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, None);
        assert_eq!(ex.layers, layers(14, 14 + 40 + 56, 14 + 40 + 56 + 20));
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!((k.ipv6_src(), k.ipv6_dst()), (V6_SRC, V6_DST));
        assert_eq!(k.ipv6_label(), 0xabcde);
        assert_eq!(
            (k.nw_proto(), k.nw_tos(), k.nw_ttl(), k.nw_frag()),
            (6, 0xb9, 7, 0)
        );
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (1234, 80, 0x018));
        // Unknown next header (ESP, 50): terminal, nw_proto = 50.
        let f = cat(&[&eth(0x86dd), &ipv6(0, &cat(&[&ext8(50), &[0u8; 8]]))]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 62, N)));
        assert_eq!(k.nw_proto(), 50);
    }

    #[test]
    fn ipv6_too_many_extension_headers() {
        // Eight destination-options headers are walked; a ninth is refused.
        let chain = |n: usize| {
            let mut v = Vec::new();
            for i in 0..n {
                v.extend_from_slice(&ext8(if i + 1 == n { 17 } else { 60 }));
            }
            v.extend_from_slice(&udp(1, 2, &[]));
            cat(&[&eth(0x86dd), &ipv6(60, &v)])
        };
        let (k, ex) = run(&chain(8), 1);
        assert_eq!((ex.error, k.nw_proto(), k.tp_dst()), (None, 17, 2));
        assert_eq!(ex.layers, layers(14, 14 + 40 + 64, 14 + 40 + 64 + 8));
        let (k, ex) = run(&chain(9), 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::TooManyHeaders));
        assert_eq!((k.nw_proto(), k.ipv6_dst()), (0, V6_DST));
    }

    #[test]
    fn ipv6_bad_lengths() {
        // Extension header cut short: addresses, label, TC and hop limit
        // stay; proto and frag are not written.
        let f = cat(&[&eth(0x86dd), &ipv6(0, &[6, 0, 0, 0])]);
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::Truncated));
        assert_eq!(ex.layers, layers(14, N, N));
        assert_eq!(
            (k.ipv6_src(), k.ipv6_label(), k.nw_ttl()),
            (V6_SRC, 0xabcde, 7)
        );
        assert_eq!(k.nw_proto(), 0);
        // Header length byte says 16 bytes, 8 present.
        let mut h = ext8(6);
        h[1] = 1;
        let f = cat(&[&eth(0x86dd), &ipv6(60, &h)]);
        assert_eq!(run(&f, 1).1.error, e(Layer::L3, ParseError::Truncated));
        // Fixed header truncated.
        let f = cat(&[&eth(0x86dd), &ipv6(59, &[])]);
        let (k, ex) = run(&f[..53], 1);
        assert_eq!(ex.error, e(Layer::L3, ParseError::Truncated));
        assert_eq!(k.ipv6_src(), Ipv6Addr::UNSPECIFIED);
        // Padding over 65535 bytes.
        let mut f = cat(&[&eth(0x86dd), &ipv6(59, &[])]);
        f.resize(54 + 65536, 0);
        assert_eq!(run(&f, 1).1.error, e(Layer::L3, ParseError::BadLength));
        // Padding after the payload is ignored.
        let mut f = cat(&[&eth(0x86dd), &ipv6(17, &udp(3, 4, &[]))]);
        f.extend_from_slice(&[0xee; 10]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, k.tp_dst()), (None, 4));
    }

    fn frag_hdr(nh: u8, offset_words: u16, more: bool) -> [u8; 8] {
        let offlg = (offset_words << 3) | u16::from(more);
        let o = offlg.to_be_bytes();
        [nh, 0, o[0], o[1], 0, 0, 0x12, 0x34]
    }

    #[test]
    fn ipv6_fragments() {
        let u = udp(7, 8, &[0; 8]);
        // First fragment.
        let f = cat(&[&eth(0x86dd), &ipv6(44, &cat(&[&frag_hdr(17, 0, true), &u]))]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 62, 70)));
        assert_eq!((k.nw_proto(), k.nw_frag()), (17, NW_FRAG_ANY));
        assert_eq!((k.tp_src(), k.tp_dst()), (7, 8));
        // Later fragment: nw_proto is the fragment header (OVS), no L4.
        let f = cat(&[&eth(0x86dd), &ipv6(44, &cat(&[&frag_hdr(17, 3, true), &u]))]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 62, N)));
        assert_eq!(
            (k.nw_proto(), k.nw_frag()),
            (44, NW_FRAG_ANY | NW_FRAG_LATER)
        );
        assert_eq!(k.tp_src(), 0);
        // Atomic fragment (offset 0, M clear): not a fragment.
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(44, &cat(&[&frag_hdr(17, 0, false), &u])),
        ]);
        let (k, _) = run(&f, 1);
        assert_eq!((k.nw_proto(), k.nw_frag(), k.tp_src()), (17, 0, 7));
    }

    const ND_TARGET: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99);

    fn nd(ty: u8, opts: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, 0, 0, 0, 0x60, 0, 0, 0];
        v.extend_from_slice(&ND_TARGET.octets());
        v.extend_from_slice(opts);
        cat(&[&eth(0x86dd), &ipv6(58, &v)])
    }

    fn lla(ty: u8, mac: [u8; 6]) -> Vec<u8> {
        cat(&[&[ty, 1], &mac])
    }

    #[test]
    fn nd_ns_with_sll() {
        // NS with a nonce option (type 14, 8 bytes) and a source LL option.
        let opts = cat(&[&[14u8, 1, 1, 2, 3, 4, 5, 6], &lla(1, MAC_A)]);
        let (k, ex) = run(&nd(135, &opts), 1);
        assert_eq!((ex.error, ex.layers), (None, layers(14, 54, 62)));
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (58, 135, 0));
        assert_eq!(k.nd_target(), ND_TARGET);
        assert_eq!(k.arp_sha(), EthernetAddress(MAC_A));
        assert_eq!(k.arp_tha(), EthernetAddress::ZERO);
    }

    #[test]
    fn nd_na_with_tll() {
        let (k, ex) = run(&nd(136, &lla(2, MAC_B)), 1);
        assert_eq!(ex.error, None);
        assert_eq!((k.tp_src(), k.nd_target()), (136, ND_TARGET));
        assert_eq!(k.arp_sha(), EthernetAddress::ZERO);
        assert_eq!(k.arp_tha(), EthernetAddress(MAC_B));
    }

    #[test]
    fn nd_malformed() {
        // Duplicate source LL option: all ND fields zero, type/code stay.
        let opts = cat(&[&lla(1, MAC_A), &lla(1, MAC_B)]);
        let (k, ex) = run(&nd(135, &opts), 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::BadField));
        assert_eq!((k.tp_src(), k.nd_target()), (135, Ipv6Addr::UNSPECIFIED));
        assert_eq!(
            (k.arp_sha(), k.arp_tha()),
            (EthernetAddress::ZERO, EthernetAddress::ZERO)
        );
        // Zero-length option after a good one: what was found stays.
        let opts = cat(&[&lla(2, MAC_B), &[1u8, 0, 0, 0, 0, 0, 0, 0]]);
        let (k, ex) = run(&nd(136, &opts), 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::BadLength));
        assert_eq!(
            (k.nd_target(), k.arp_tha()),
            (ND_TARGET, EthernetAddress(MAC_B))
        );
        // Option longer than what is left.
        let opts = [1u8, 2, 0, 0, 0, 0, 0, 0];
        let (k, ex) = run(&nd(135, &opts), 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!(k.nd_target(), ND_TARGET);
        // Target address cut short.
        let f = nd(135, &[]);
        let mut f = f[..f.len() - 1].to_vec();
        f[18..20].copy_from_slice(&23u16.to_be_bytes());
        let (k, ex) = run(&f, 1);
        assert_eq!(ex.error, e(Layer::L4, ParseError::Truncated));
        assert_eq!((k.tp_src(), k.nd_target()), (135, Ipv6Addr::UNSPECIFIED));
        // Trailing bytes shorter than an option are ignored.
        let opts = cat(&[&lla(1, MAC_A), &[0u8; 7]]);
        let (k, ex) = run(&nd(135, &opts), 1);
        assert_eq!((ex.error, k.arp_sha()), (None, EthernetAddress(MAC_A)));
    }

    #[test]
    fn icmpv6_not_nd() {
        // Echo request: type/code only; code != 0 NS is not ND either.
        let f = cat(&[&eth(0x86dd), &ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1])]);
        let (k, ex) = run(&f, 1);
        assert_eq!((ex.error, k.tp_src(), k.tp_dst()), (None, 128, 0));
        let mut f = nd(135, &lla(1, MAC_A));
        f[55] = 1;
        let (k, ex) = run(&f, 1);
        assert_eq!(
            (ex.error, k.tp_dst(), k.nd_target()),
            (None, 1, Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(k.arp_sha(), EthernetAddress::ZERO);
    }

    /// `extract` (fast path first) and `extract_general` give the same
    /// key, layers and error, from a key full of stale packet fields (the
    /// fast path must overwrite every one), on TCP/UDP/other IPv4 frames
    /// whose EtherType, version/IHL, lengths, fragment field, protocol,
    /// TCP data offset and frame length are mutated into the fast path's
    /// edge cases and out of it.
    #[test]
    fn fast_path_equals_general_path() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let frame = (
            0..3u8,
            prop::sample::select(vec![0x0800u16, 0x0800, 0x0800, 0x86dd, 0x8100, 0x0806]),
            prop::sample::select(vec![0x45u8, 0x45, 0x45, 0x46, 0x44, 0x65, 0x4f]),
            prop::sample::select(vec![6u8, 6, 17, 17, 1, 132, 2]),
            prop::sample::select(vec![0u16, 0, 0x4000, 0x2000, 0x0001, 0x6003]),
            any::<(u8, u16, [u8; 12])>(),
            0..40usize,
            -30i32..30,
            prop::collection::vec(any::<u8>(), 60..90),
        );
        let mut runner = TestRunner::new(Config::with_cases(4000));
        runner
            .run(
                &frame,
                |(kind, ty, vihl, proto, frag, (doff, tot_adj, rnd), pad, len_adj, noise)| {
                    let l4 = match kind {
                        0 => {
                            let mut t = tcp(u16::from(rnd[0]) << 4 | u16::from(rnd[1]), 0);
                            t[12] = (doff % 16) << 4 | (t[12] & 0x0f);
                            t.extend_from_slice(&noise[..usize::from(doff % 16) * 4]);
                            t
                        }
                        1 => udp(u16::from(rnd[2]), u16::from(rnd[3]), &rnd[4..]),
                        _ => noise[..20].to_vec(),
                    };
                    let mut ip = ipv4(proto, frag, &l4);
                    ip[0] = vihl;
                    ip[1] = rnd[5];
                    ip[8] = rnd[6];
                    ip[12..20].copy_from_slice(&noise[20..28]);
                    if tot_adj % 4 == 0 {
                        let t = (ip.len() as i32 + len_adj).max(0) as u16;
                        ip[2..4].copy_from_slice(&t.to_be_bytes());
                    }
                    let mut f = cat(&[&noise[28..40], &ty.to_be_bytes(), &ip]);
                    f.extend(std::iter::repeat_n(0u8, pad));
                    if tot_adj % 3 == 0 {
                        f.truncate(f.len().saturating_sub(usize::from(tot_adj % 64)));
                    }
                    let stale = FlowKey([!0; crate::flow::key::FLOW_WORDS]);
                    let cfg = ExtractConfig::default();
                    let (mut a, mut b) = (stale, stale);
                    let (fast, shaped) = extract_shaped(&f, &cfg, &mut a);
                    let general = extract_general(&f, &cfg, &mut b);
                    prop_assert_eq!(fast, general);
                    prop_assert_eq!(a, b);
                    // The promise of `extract_shaped`: only `FAST_WORDS`
                    // can be non-zero.
                    if shaped {
                        for (i, w) in
                            a.0.iter()
                                .enumerate()
                                .skip(crate::flow::key::FIRST_PACKET_WORD)
                        {
                            prop_assert!(FAST_WORDS.contains(&i) || *w == 0, "word {}", i);
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
        // The fast path is taken (the key words prove nothing about that).
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &tcp(0x012, 0))]);
        let mut k = FlowKey::default();
        assert_eq!(extract_fast(&f, &mut k).map(|l| l.l7), Some(54));
        assert!(extract_shaped(&f, &ExtractConfig::default(), &mut k).1);
        let f = cat(&[&eth(0x0800), &ipv4(17, 0x4000, &udp(1, 2, &[0; 20]))]);
        assert_eq!(extract_fast(&f, &mut k).map(|l| l.l7), Some(42));
    }

    #[test]
    fn error_display() {
        let x = ExtractError {
            layer: Layer::L4,
            error: ParseError::Truncated,
        };
        assert_eq!(x.to_string(), "l4: truncated packet");
        assert_eq!(ExtractConfig::default().vlan_limit, 1);
        assert_eq!(Layers::EMPTY.l3(), None);
        assert_eq!(layers(14, 34, N).l4(), Some(34));
    }
}
