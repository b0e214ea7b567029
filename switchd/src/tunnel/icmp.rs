//! ICMP "fragmentation needed" and ICMPv6 "packet too big" errors for
//! packets too large for a tunnel (see the [module documentation](super)
//! for the addresses and limits used).

use protocol::flow::Layers;
use protocol::wire::{IpProtocol, icmpv4, icmpv6, ipv4, ipv6};

use super::{DEFAULT_TTL, IPV4_LEN, IPV6_LEN};

/// Size of the per-worker scratch buffer: two VLAN tags of L2, an IPv6
/// header, and a 1280-byte IPv6 error.
pub(crate) const SCRATCH_LEN: usize = 1536;
/// Largest IPv4 error datagram (RFC 1812 4.3.2.3).
const IPV4_ERROR_MAX: usize = 576;
/// Largest IPv6 error packet (RFC 4443 2.4 (c): the minimum MTU).
const IPV6_ERROR_MAX: usize = 1280;
/// ICMP and ICMPv6 header length.
const ICMP_LEN: usize = 8;
/// DSCP of ICMP errors (CS6, "internetwork control", as Linux sends them).
const DSCP_CS6: u8 = 48;

/// Why no ICMP error is sent for an oversized packet (the drop is still
/// counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpError {
    /// Not IPv4 or IPv6 (or unreadable).
    NotIp,
    /// IPv4 without DF (may be fragmented by the sender's policy; we drop).
    NoDontFragment,
    /// The packet is itself an ICMP error (RFC 1122 3.2.2, RFC 4443 2.4).
    AboutError,
    /// The source is multicast, broadcast or unspecified.
    BadSource,
    /// The scratch buffer or L2 header is unusable.
    NoRoom,
    /// The packet came from a tunnel or reserved port: there is no pod to
    /// send the error to directly.
    NoReturnPort,
}

fn is_icmpv4_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// Builds the ICMP/ICMPv6 "too big" error for `frame` (whose L3 starts at
/// `layers.l3`) into `out`, as a frame to send back out of the port the
/// packet came in on; returns its length. `inner_mtu` is the next-hop MTU
/// reported (clamped to 68 for IPv4 and 1280 for IPv6, the protocol
/// minimums).
///
/// # Errors
/// [`IcmpError`]: why no error is sent.
pub fn too_big_reply(
    frame: &[u8],
    layers: &Layers,
    inner_mtu: u32,
    out: &mut [u8],
) -> Result<usize, IcmpError> {
    let l3 = layers.l3().ok_or(IcmpError::NotIp)?;
    let l2 = frame.get(..l3).ok_or(IcmpError::NotIp)?;
    let ip_bytes = frame.get(l3..).ok_or(IcmpError::NotIp)?;
    if l2.len() < 14 {
        return Err(IcmpError::NotIp);
    }
    let ethertype = u16::from_be_bytes([l2[l2.len() - 2], l2[l2.len() - 1]]);
    match ethertype {
        0x0800 => v4(l2, ip_bytes, inner_mtu, out),
        0x86dd => v6(l2, ip_bytes, inner_mtu, out),
        _ => Err(IcmpError::NotIp),
    }
}

/// Copies the L2 header with the MACs swapped.
fn write_l2(l2: &[u8], out: &mut [u8]) -> Result<(), IcmpError> {
    let dst = out.get_mut(..l2.len()).ok_or(IcmpError::NoRoom)?;
    dst.copy_from_slice(l2);
    dst[..6].copy_from_slice(&l2[6..12]);
    dst[6..12].copy_from_slice(&l2[..6]);
    Ok(())
}

fn v4(l2: &[u8], ip_bytes: &[u8], inner_mtu: u32, out: &mut [u8]) -> Result<usize, IcmpError> {
    let ip = ipv4::Packet::new_checked(ip_bytes).map_err(|_| IcmpError::NotIp)?;
    if !ip.dont_frag() {
        return Err(IcmpError::NoDontFragment);
    }
    let src = ip.src_addr();
    if src.is_multicast() || src.is_broadcast() || src.is_unspecified() {
        return Err(IcmpError::BadSource);
    }
    let hl = usize::from(ip.header_len());
    if ip.next_header() == IpProtocol::Icmp
        && ip.frag_offset() == 0
        && ip_bytes.get(hl).is_some_and(|t| is_icmpv4_error(*t))
    {
        return Err(IcmpError::AboutError);
    }
    let total = usize::from(ip.total_len());
    let quote_len = total.min(IPV4_ERROR_MAX - IPV4_LEN - ICMP_LEN);
    let quote = ip_bytes.get(..quote_len).ok_or(IcmpError::NotIp)?;
    let mtu = u16::try_from(inner_mtu.max(68)).unwrap_or(u16::MAX);
    let icmp = icmpv4::Repr::frag_needed(mtu, quote);
    let len = l2.len() + IPV4_LEN + icmp.buffer_len();
    let out = out.get_mut(..len).ok_or(IcmpError::NoRoom)?;
    write_l2(l2, out)?;
    let (_, rest) = out.split_at_mut(l2.len());
    let (iph, icmph) = rest.split_at_mut(IPV4_LEN);
    ipv4::Repr {
        src_addr: ip.dst_addr(),
        dst_addr: src,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        ttl: DEFAULT_TTL,
        dscp: DSCP_CS6,
        ecn: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut ipv4::Packet::new_unchecked(iph));
    icmp.emit(&mut icmpv4::Packet::new_unchecked(icmph));
    Ok(len)
}

fn v6(l2: &[u8], ip_bytes: &[u8], inner_mtu: u32, out: &mut [u8]) -> Result<usize, IcmpError> {
    let ip = ipv6::Packet::new_checked(ip_bytes).map_err(|_| IcmpError::NotIp)?;
    let src = ip.src_addr();
    if src.is_multicast() || src.is_unspecified() {
        return Err(IcmpError::BadSource);
    }
    if ip.next_header() == IpProtocol::Icmpv6 && ip_bytes.get(IPV6_LEN).is_some_and(|t| *t < 128) {
        return Err(IcmpError::AboutError);
    }
    let total = IPV6_LEN + usize::from(ip.payload_len());
    let quote_len = total.min(IPV6_ERROR_MAX - IPV6_LEN - ICMP_LEN);
    let quote = ip_bytes.get(..quote_len).ok_or(IcmpError::NotIp)?;
    let icmp = icmpv6::Repr::pkt_too_big(inner_mtu.max(1280), quote);
    let len = l2.len() + IPV6_LEN + icmp.buffer_len();
    let out = out.get_mut(..len).ok_or(IcmpError::NoRoom)?;
    write_l2(l2, out)?;
    let (_, rest) = out.split_at_mut(l2.len());
    let (iph, icmph) = rest.split_at_mut(IPV6_LEN);
    let dst = ip.dst_addr();
    ipv6::Repr {
        src_addr: dst,
        dst_addr: src,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: DEFAULT_TTL,
        traffic_class: DSCP_CS6 << 2,
        flow_label: 0,
    }
    .emit(&mut ipv6::Packet::new_unchecked(iph));
    let mut p = icmpv6::Packet::new_unchecked(icmph);
    icmp.emit(&mut p);
    p.fill_checksum(dst, src);
    Ok(len)
}
