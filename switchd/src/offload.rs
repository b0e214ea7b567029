//! Checksum and segmentation offload metadata (`struct virtio_net_hdr`),
//! sans-IO: parse and build the header, complete partial checksums, and
//! segment TCP/UDP super-frames in software (GSO).
//!
//! # Where the metadata comes from and goes
//!
//! A port opened with offloads (`PACKET_VNET_HDR` on AF_PACKET,
//! `IFF_VNET_HDR` on TAP) receives every frame behind a 10-byte
//! `virtio_net_hdr` (legacy layout, host byte order, as the kernel writes it
//! for both: `vio_le()` / `tun_is_little_endian()` without `TUNSETVNETLE`):
//!
//! ```text
//! u8 flags         NEEDS_CSUM (1): the L4 checksum is partial, DATA_VALID (2)
//! u8 gso_type      NONE 0, TCPV4 1, UDP (UFO) 3, TCPV6 4, UDP_L4 5, | ECN 0x80
//! u16 hdr_len      bytes of headers (informational: we parse them)
//! u16 gso_size     payload bytes per segment (the MSS)
//! u16 csum_start   where checksumming starts (the L4 header)
//! u16 csum_offset  where, from csum_start, the result goes (16 TCP, 6 UDP)
//! ```
//!
//! The port turns it into an [`Offload`] kept with the packet in its
//! [`PacketBuf`](crate::buf::PacketBuf) (which moves `csum_start` when
//! bytes are inserted or removed in front of it: VLAN push/pop). A frame
//! with [`Offload::NONE`] is an ordinary frame.
//!
//! On output the worker looks at the port:
//!
//! * a port that speaks vnet headers gets the metadata back with
//!   [`Offload::build`], after [`refresh_partial`] rewrote the partial
//!   checksum field from the packet's current addresses and length. The
//!   partial-checksum convention (Linux `CHECKSUM_PARTIAL`): the field
//!   holds the folded, *un*-complemented pseudo-header sum for the whole
//!   L4 length of the (super-)frame; whoever finishes the checksum adds
//!   the L4 bytes from `csum_start` on. A `set_field` of an address or port
//!   updates the field incrementally as if it were a complete checksum,
//!   which is wrong for a partial one; recomputing the pseudo-header sum at
//!   output makes any rewrite come out right (ports lie in the part summed
//!   later, addresses in the pseudo-header).
//! * a port that does not (vnet off, memory ports, and tunnel ports: their
//!   outer UDP header would need UDP-tunnel GSO, not done yet, so the inner
//!   frame is segmented *before* encapsulation) gets plain frames from
//!   [`segment`]: a GSO super-frame is cut into `gso_size` pieces, each with
//!   its own IPv4 total length, identification (+1 per segment, as Linux's
//!   `inet_gso_segment`) and header checksum or IPv6 payload length, and TCP
//!   sequence number and flags (FIN/PSH only on the last segment, CWR only
//!   on the first, as `tcp_gso_segment`) or UDP length, and a complete L4
//!   checksum; a partial checksum without GSO is completed.
//!
//! What is refused ([`OffloadError`], counted as a drop by the caller):
//! UFO (`GSO_UDP`, fragmenting UDP: Linux itself no longer produces it);
//! GSO on anything but Ethernet, up to two VLAN tags, IPv4 (any IHL) or
//! IPv6 without extension headers, and TCP or UDP; a
//! `csum_start`/`csum_offset` outside the frame; and segments larger than
//! the scratch area.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// True when the daemon runs with `WEFT_OFFLOADS=off`: every port opens
/// without vnet headers whatever its `offloads` option says (the global
/// switch that came before the per-port option; kept for A/B runs).
pub fn disabled_by_env() -> bool {
    std::env::var("WEFT_OFFLOADS").as_deref() == Ok("off")
}

use protocol::wire::checksum;

/// Bytes of a `virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_ECN`.
const GSO_ECN: u8 = 0x80;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The kind of segmentation a super-frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gso {
    /// Not a super-frame.
    #[default]
    None,
    /// TCP over IPv4 (`VIRTIO_NET_HDR_GSO_TCPV4`).
    TcpV4,
    /// TCP over IPv6 (`VIRTIO_NET_HDR_GSO_TCPV6`).
    TcpV6,
    /// UDP segmentation, one datagram per segment (`VIRTIO_NET_HDR_GSO_UDP_L4`).
    UdpL4,
}

impl Gso {
    fn code(self) -> u8 {
        match self {
            Gso::None => 0,
            Gso::TcpV4 => 1,
            Gso::TcpV6 => 4,
            Gso::UdpL4 => 5,
        }
    }
}

/// Offload metadata carried with a packet (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// `NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
    pub needs_csum: bool,
    /// Start of the checksummed area, from the start of the frame.
    pub csum_start: u16,
    /// Position of the checksum field, from `csum_start`.
    pub csum_offset: u16,
    /// Segmentation requested.
    pub gso: Gso,
    /// The ECN flag of the GSO type (segments keep CWR only on the first).
    pub ecn: bool,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Header bytes, as the sender computed them (passed on unchanged
    /// except for bytes inserted or removed in front).
    pub hdr_len: u16,
}

/// Why offload metadata or the frame it describes was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Fewer than [`VNET_HDR_LEN`] bytes.
    Short,
    /// An unknown or unsupported `gso_type` (UFO).
    GsoType(u8),
    /// `gso_size` of zero on a super-frame.
    GsoSize,
    /// `csum_start`/`csum_offset` point outside the frame.
    CsumRange,
    /// The headers are not Ethernet/IP/TCP-or-UDP as the GSO type says.
    Headers,
    /// A segment would not fit the scratch area.
    TooBig,
}

impl OffloadError {
    /// A short, stable reason (drop counters).
    pub fn reason(self) -> &'static str {
        match self {
            OffloadError::Short => "vnet_hdr_short",
            OffloadError::GsoType(_) => "vnet_hdr_gso_type",
            OffloadError::GsoSize => "vnet_hdr_gso_size",
            OffloadError::CsumRange => "vnet_hdr_csum_range",
            OffloadError::Headers => "gso_headers",
            OffloadError::TooBig => "gso_segment_too_big",
        }
    }
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::Short => f.write_str("virtio_net_hdr: shorter than 10 bytes"),
            OffloadError::GsoType(t) => write!(f, "virtio_net_hdr: unsupported gso_type {t:#x}"),
            OffloadError::GsoSize => f.write_str("virtio_net_hdr: gso_size 0 on a GSO frame"),
            OffloadError::CsumRange => {
                f.write_str("virtio_net_hdr: csum_start/csum_offset outside the frame")
            }
            OffloadError::Headers => f.write_str(
                "GSO frame: headers are not Ethernet/IPv4|IPv6/TCP|UDP as gso_type says",
            ),
            OffloadError::TooBig => f.write_str("GSO frame: a segment exceeds the scratch area"),
        }
    }
}

impl std::error::Error for OffloadError {}

impl Offload {
    /// No offload: an ordinary frame.
    pub const NONE: Offload = Offload {
        needs_csum: false,
        csum_start: 0,
        csum_offset: 0,
        gso: Gso::None,
        ecn: false,
        gso_size: 0,
        hdr_len: 0,
    };

    /// True if the frame needs no work before leaving on any port.
    #[inline]
    pub fn is_none(&self) -> bool {
        !self.needs_csum && self.gso == Gso::None
    }

    /// Parses a `virtio_net_hdr` (the first [`VNET_HDR_LEN`] bytes of
    /// `hdr`). `DATA_VALID` is accepted and dropped (the switch does not
    /// verify checksums).
    pub fn parse(hdr: &[u8]) -> Result<Offload, OffloadError> {
        let h = hdr.get(..VNET_HDR_LEN).ok_or(OffloadError::Short)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        let flags = h[0];
        let gso = match h[1] & !GSO_ECN {
            0 => Gso::None,
            1 => Gso::TcpV4,
            4 => Gso::TcpV6,
            5 => Gso::UdpL4,
            t => return Err(OffloadError::GsoType(t)),
        };
        let off = Offload {
            needs_csum: flags & F_NEEDS_CSUM != 0,
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
            gso,
            ecn: h[1] & GSO_ECN != 0,
            gso_size: u16_at(4),
            hdr_len: u16_at(2),
        };
        if off.gso != Gso::None && off.gso_size == 0 {
            return Err(OffloadError::GsoSize);
        }
        Ok(off)
    }

    /// The `virtio_net_hdr` for this metadata.
    pub fn build(&self) -> [u8; VNET_HDR_LEN] {
        let mut h = [0u8; VNET_HDR_LEN];
        h[0] = if self.needs_csum { F_NEEDS_CSUM } else { 0 };
        h[1] = self.gso.code()
            | if self.ecn && self.gso != Gso::None {
                GSO_ECN
            } else {
                0
            };
        h[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        h[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        h[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        h[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        h
    }

    /// Checks the metadata against the frame it came with.
    pub fn check(&self, frame: &[u8]) -> Result<(), OffloadError> {
        if self.needs_csum {
            let end = usize::from(self.csum_start) + usize::from(self.csum_offset) + 2;
            if end > frame.len() {
                return Err(OffloadError::CsumRange);
            }
        }
        Ok(())
    }

    /// Bytes were inserted (`delta > 0`) or removed in front of offset
    /// `at`: moves `csum_start` and `hdr_len` along if they lie behind it.
    #[inline]
    pub fn shift(&mut self, at: usize, delta: isize) {
        if self.is_none() {
            return;
        }
        let mv = |v: &mut u16| {
            if usize::from(*v) >= at {
                let n = (*v as isize + delta).clamp(0, u16::MAX as isize);
                *v = n as u16;
            }
        };
        mv(&mut self.csum_start);
        if self.gso != Gso::None {
            mv(&mut self.hdr_len);
        }
    }
}

/// Where the IP and L4 headers are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    v6: bool,
    l4: usize,
    proto: u8,
    /// L4 header length (TCP data offset, 8 for UDP).
    l4_hdr: usize,
    /// End of the IP packet (frame length or the IP length, whichever is
    /// smaller).
    end: usize,
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn layout(frame: &[u8]) -> Option<Layout> {
    let mut et_at = 12;
    let mut et = be16(frame, et_at)?;
    let mut tags = 0;
    while (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ) && tags < 2 {
        et_at += 4;
        et = be16(frame, et_at)?;
        tags += 1;
    }
    let l3 = et_at + 2;
    let (v6, l4, proto, end) = match et {
        ETHERTYPE_IPV4 => {
            let vihl = *frame.get(l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            let total = usize::from(be16(frame, l3 + 2)?);
            (false, l3 + ihl, *frame.get(l3 + 9)?, l3 + total)
        }
        ETHERTYPE_IPV6 => {
            if frame.get(l3)? >> 4 != 6 {
                return None;
            }
            let plen = usize::from(be16(frame, l3 + 4)?);
            (true, l3 + 40, *frame.get(l3 + 6)?, l3 + 40 + plen)
        }
        _ => return None,
    };
    let end = end.min(frame.len());
    let l4_hdr = match proto {
        PROTO_TCP => usize::from(frame.get(l4 + 12)? >> 4) * 4,
        PROTO_UDP => 8,
        _ => return None,
    };
    if (proto == PROTO_TCP && l4_hdr < 20) || l4 + l4_hdr > end {
        return None;
    }
    Some(Layout {
        l3,
        v6,
        l4,
        proto,
        l4_hdr,
        end,
    })
}

fn v4_addrs(f: &[u8], l3: usize) -> (Ipv4Addr, Ipv4Addr) {
    let a = |i: usize| Ipv4Addr::new(f[i], f[i + 1], f[i + 2], f[i + 3]);
    (a(l3 + 12), a(l3 + 16))
}

fn v6_addrs(f: &[u8], l3: usize) -> (Ipv6Addr, Ipv6Addr) {
    let a = |i: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&f[i..i + 16]);
        Ipv6Addr::from(o)
    };
    (a(l3 + 8), a(l3 + 24))
}

/// The pseudo-header sum of the packet laid out by `lo`, for an L4 length
/// of `l4_len`.
fn pseudo(frame: &[u8], lo: &Layout, l4_len: usize) -> u16 {
    if lo.v6 {
        let (s, d) = v6_addrs(frame, lo.l3);
        checksum::pseudo_header_v6(s, d, lo.proto, l4_len as u32)
    } else {
        let (s, d) = v4_addrs(frame, lo.l3);
        checksum::pseudo_header_v4(s, d, lo.proto, l4_len as u16)
    }
}

fn csum_field(proto: u8) -> usize {
    if proto == PROTO_TCP { 16 } else { 6 }
}

/// Writes a complete L4 checksum for the TCP/UDP packet laid out by `lo`
/// (over `l4..end`).
fn fill_l4(frame: &mut [u8], lo: &Layout) {
    let at = lo.l4 + csum_field(lo.proto);
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let ph = pseudo(frame, lo, lo.end - lo.l4);
    let mut c = checksum::finish(ph, &frame[lo.l4..lo.end]);
    if lo.proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn fill_ipv4(frame: &mut [u8], l3: usize, l4: usize) {
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = !checksum::data(&frame[l3..l4]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// True if the partial checksum is the TCP/UDP one of an IP packet (so it
/// can be recomputed from the headers rather than trusted).
fn l4_partial(frame: &[u8], off: &Offload) -> Option<Layout> {
    let lo = layout(frame)?;
    (usize::from(off.csum_start) == lo.l4 && usize::from(off.csum_offset) == csum_field(lo.proto))
        .then_some(lo)
}

/// Rewrites the partial checksum of a `NEEDS_CSUM` TCP/UDP frame from its
/// current addresses and L4 length (see the module documentation), before
/// it leaves on a port that speaks vnet headers. Other frames are left
/// alone. Returns whether the field was rewritten.
pub fn refresh_partial(frame: &mut [u8], off: &Offload) -> bool {
    if !off.needs_csum {
        return false;
    }
    let Some(lo) = l4_partial(frame, off) else {
        return false;
    };
    let ph = pseudo(frame, &lo, lo.end - lo.l4);
    let at = lo.l4 + csum_field(lo.proto);
    frame[at..at + 2].copy_from_slice(&ph.to_be_bytes());
    true
}

/// Completes the partial checksum of a non-GSO `NEEDS_CSUM` frame in place.
/// TCP/UDP over IP is recomputed from the headers (a rewrite may have left
/// the partial field stale); anything else is finished the generic way,
/// trusting the field: the complement of the sum from `csum_start` to the
/// end goes to `csum_start + csum_offset`.
pub fn complete_csum(frame: &mut [u8], off: &Offload) -> Result<(), OffloadError> {
    if !off.needs_csum {
        return Ok(());
    }
    off.check(frame)?;
    if let Some(lo) = l4_partial(frame, off) {
        fill_l4(frame, &lo);
        return Ok(());
    }
    let start = usize::from(off.csum_start);
    let at = start + usize::from(off.csum_offset);
    let c = !checksum::data(&frame[start..]);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Makes `frame` (with metadata `off`) into plain frames for a port that
/// does not speak vnet headers, calling `emit` once per frame in order.
/// `scratch` receives each frame (it must hold the largest segment: headers
/// plus `gso_size`). Returns the number of frames emitted.
///
/// * no metadata: `frame` as it is (not copied);
/// * `NEEDS_CSUM` only: a copy with the checksum completed;
/// * GSO: the segments (see the module documentation).
pub fn segment(
    frame: &[u8],
    off: &Offload,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    if off.is_none() {
        emit(frame);
        return Ok(1);
    }
    off.check(frame)?;
    if off.gso == Gso::None {
        let out = scratch.get_mut(..frame.len()).ok_or(OffloadError::TooBig)?;
        out.copy_from_slice(frame);
        complete_csum(out, off)?;
        emit(out);
        return Ok(1);
    }
    let lo = layout(frame).ok_or(OffloadError::Headers)?;
    let want = match off.gso {
        Gso::TcpV4 => (false, PROTO_TCP),
        Gso::TcpV6 => (true, PROTO_TCP),
        Gso::UdpL4 => (lo.v6, PROTO_UDP),
        // Handled above; a frame never gets here without GSO.
        Gso::None => return Err(OffloadError::Headers),
    };
    if (lo.v6, lo.proto) != want {
        return Err(OffloadError::Headers);
    }
    let hdrs = lo.l4 + lo.l4_hdr;
    let payload = &frame[hdrs..lo.end];
    let mss = usize::from(off.gso_size);
    if hdrs + mss.min(payload.len()) > scratch.len() {
        return Err(OffloadError::TooBig);
    }
    if payload.len() <= mss {
        // Nothing to cut: one frame with a complete checksum.
        let out = &mut scratch[..lo.end];
        out.copy_from_slice(&frame[..lo.end]);
        let id = be16(frame, lo.l3 + 4).unwrap_or(0);
        fix_segment(out, &lo, 0, id, true, true, &frame[..hdrs]);
        emit(out);
        return Ok(1);
    }
    let ip_id = be16(frame, lo.l3 + 4).unwrap_or(0);
    let mut n = 0;
    let chunks = payload.chunks(mss);
    let count = chunks.len();
    for (i, chunk) in chunks.enumerate() {
        let len = hdrs + chunk.len();
        let out = &mut scratch[..len];
        out[..hdrs].copy_from_slice(&frame[..hdrs]);
        out[hdrs..].copy_from_slice(chunk);
        let seg_lo = Layout { end: len, ..lo };
        fix_segment(
            out,
            &seg_lo,
            i * mss,
            ip_id.wrapping_add(i as u16),
            i == 0,
            i + 1 == count,
            &frame[..hdrs],
        );
        emit(out);
        n += 1;
    }
    Ok(n)
}

/// Fixes the headers of one segment `out` (headers copied from `orig`):
/// IP length (and IPv4 id/checksum), TCP sequence/flags or UDP length, L4
/// checksum.
#[allow(clippy::too_many_arguments)]
fn fix_segment(
    out: &mut [u8],
    lo: &Layout,
    seq_add: usize,
    ip_id: u16,
    first: bool,
    last: bool,
    orig: &[u8],
) {
    let len = lo.end;
    if lo.v6 {
        let plen = (len - lo.l3 - 40) as u16;
        out[lo.l3 + 4..lo.l3 + 6].copy_from_slice(&plen.to_be_bytes());
    } else {
        let total = (len - lo.l3) as u16;
        out[lo.l3 + 2..lo.l3 + 4].copy_from_slice(&total.to_be_bytes());
        out[lo.l3 + 4..lo.l3 + 6].copy_from_slice(&ip_id.to_be_bytes());
        fill_ipv4(out, lo.l3, lo.l4);
    }
    if lo.proto == PROTO_TCP {
        let seq = u32::from_be_bytes([
            orig[lo.l4 + 4],
            orig[lo.l4 + 5],
            orig[lo.l4 + 6],
            orig[lo.l4 + 7],
        ])
        .wrapping_add(seq_add as u32);
        out[lo.l4 + 4..lo.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = orig[lo.l4 + 13];
        if !last {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if !first {
            flags &= !TCP_CWR;
        }
        out[lo.l4 + 13] = flags;
    } else {
        let ulen = (len - lo.l4) as u16;
        out[lo.l4 + 4..lo.l4 + 6].copy_from_slice(&ulen.to_be_bytes());
    }
    fill_l4(out, lo);
}

#[cfg(test)]
mod tests;
