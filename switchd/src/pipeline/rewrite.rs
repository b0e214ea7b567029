//! In-place header rewrites of packet bytes, with incremental checksum
//! updates (RFC 1624, `protocol::wire::checksum`), as OVS
//! `lib/packets.c` (`packet_set_ipv4_addr`, `packet_set_tcp_port`, ...)
//! and `lib/odp-execute.c` do.
//!
//! The flow key is the truth the pipeline matches on; after an action
//! changes a header field in the key, `commit_field` writes that field's
//! new value into the bytes. Old values are always read from the bytes (not
//! the key), so checksums stay right even where the key deliberately
//! differs from the bytes (L4 ports of fragments under `frag_mode normal`).
//!
//! Checksums:
//! * IPv4 header checksum on address, TOS and TTL changes.
//! * TCP and UDP checksums on L4 port changes and on IPv4/IPv6 address
//!   changes (pseudo-header); a zero UDP checksum ("none") stays zero, and
//!   an update that yields zero is written as `0xffff` (RFC 768).
//! * ICMPv4 on type/code; ICMPv6 on type/code, ND target, ND link-layer
//!   options, and IPv6 address changes (pseudo-header).
//! * SCTP: the CRC32c is recomputed over the SCTP packet after a port
//!   change (CRC32c has no incremental form; OVS does the same).
//!
//! Transport checksums are left alone for later fragments (no L4 header).
//! Every write checks its bounds first: a packet too short for a field is
//! left unchanged.

use protocol::flow::key::{NW_FRAG_LATER, VLAN_CFI};
use protocol::flow::{Field, FlowKey, Layers};
use protocol::wire::checksum;

use crate::buf::PacketBuf;

const ETH_TYPE_IPV4: u16 = 0x0800;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_RARP: u16 = 0x8035;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// Offset of the TCI of the outer VLAN tag, if any.
const VLAN_TCI_OFS: usize = 14;
const VLAN_TPID_OFS: usize = 12;

#[inline]
fn rd16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

#[inline]
fn wr16(d: &mut [u8], at: usize, v: u16) {
    if let Some(b) = d.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Updates the 16-bit checksum field at `at` for a 16-bit word changing
/// from `old` to `new`.
#[inline]
fn csum16(d: &mut [u8], at: usize, old: u16, new: u16) {
    if let Some(c) = rd16(d, at) {
        wr16(d, at, checksum::update16(c, old, new));
    }
}

/// Like [`csum16`] for a run of bytes.
#[inline]
fn csum_bytes(d: &mut [u8], at: usize, old: &[u8], new: &[u8]) {
    if let Some(c) = rd16(d, at) {
        wr16(d, at, checksum::update_bytes(c, old, new));
    }
}

/// The UDP form: zero stays zero, a computed zero becomes `0xffff`.
#[inline]
fn csum_udp_bytes(d: &mut [u8], at: usize, old: &[u8], new: &[u8]) {
    if let Some(c) = rd16(d, at)
        && c != 0
    {
        let n = checksum::update_bytes(c, old, new);
        wr16(d, at, if n == 0 { 0xffff } else { n });
    }
}

/// Where the transport checksum of the packet is, and whether it follows
/// the UDP zero rule. `pseudo`: whether it covers the IP pseudo-header.
fn l4_csum_ofs(key: &FlowKey, layers: &Layers, pseudo: bool) -> Option<(usize, bool)> {
    if key.nw_frag() & NW_FRAG_LATER != 0 {
        return None;
    }
    let l4 = layers.l4()?;
    match key.nw_proto() {
        IPPROTO_TCP => Some((l4 + 16, false)),
        IPPROTO_UDP => Some((l4 + 6, true)),
        IPPROTO_ICMPV6 if key.dl_type() == ETH_TYPE_IPV6 => Some((l4 + 2, false)),
        IPPROTO_ICMP if !pseudo && key.dl_type() == ETH_TYPE_IPV4 => Some((l4 + 2, false)),
        _ => None,
    }
}

/// Writes `new` over `len` bytes at `at`, updating the transport checksum
/// (pseudo-header change) and, if `ip_csum` is given, the IPv4 header
/// checksum at that offset.
fn replace_bytes(
    d: &mut [u8],
    key: &FlowKey,
    layers: &Layers,
    at: usize,
    new: &[u8],
    ip_csum: Option<usize>,
    l4_pseudo: bool,
) {
    let n = new.len();
    let mut old = [0u8; 16];
    let Some(cur) = d.get(at..at + n) else {
        return;
    };
    old[..n].copy_from_slice(cur);
    if old[..n] == *new {
        return;
    }
    if let Some(c) = ip_csum {
        csum_bytes(d, c, &old[..n], new);
    }
    if l4_pseudo
        && let Some((c, udp)) = l4_csum_ofs(key, layers, true)
        && c + 2 <= d.len()
    {
        if udp {
            csum_udp_bytes(d, c, &old[..n], new);
        } else {
            csum_bytes(d, c, &old[..n], new);
        }
    }
    if let Some(b) = d.get_mut(at..at + n) {
        b.copy_from_slice(new);
    }
}

/// End of the IP payload (start of Ethernet padding).
fn ip_end(d: &[u8], key: &FlowKey, layers: &Layers) -> Option<usize> {
    let l3 = layers.l3()?;
    let end = match key.dl_type() {
        ETH_TYPE_IPV4 => l3 + usize::from(rd16(d, l3 + 2)?),
        ETH_TYPE_IPV6 => l3 + 40 + usize::from(rd16(d, l3 + 4)?),
        _ => return None,
    };
    Some(end.min(d.len()))
}

/// Writes the key's current value of `field` into the packet bytes (see
/// the module doc). Metadata fields (registers, `metadata`, tunnel,
/// `in_port`) have no bytes: nothing happens. VLAN fields are handled by
/// [`commit_vlan`].
pub(crate) fn commit_field(field: Field, d: &mut [u8], key: &FlowKey, layers: &Layers) {
    let dl_type = key.dl_type();
    let is4 = dl_type == ETH_TYPE_IPV4;
    let is6 = dl_type == ETH_TYPE_IPV6;
    let is_arp = matches!(dl_type, ETH_TYPE_ARP | ETH_TYPE_RARP);
    let l3 = layers.l3();
    match field {
        Field::DlDst => replace_bytes(d, key, layers, 0, key.dl_dst().as_bytes(), None, false),
        Field::DlSrc => replace_bytes(d, key, layers, 6, key.dl_src().as_bytes(), None, false),
        Field::NwSrc | Field::NwDst if is4 => {
            let Some(l3) = l3 else { return };
            let (at, v) = if field == Field::NwSrc {
                (l3 + 12, key.nw_src())
            } else {
                (l3 + 16, key.nw_dst())
            };
            replace_bytes(d, key, layers, at, &v.octets(), Some(l3 + 10), true);
        }
        Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha | Field::ArpOp if is_arp => {
            let Some(l3) = l3 else { return };
            match field {
                Field::ArpOp => {
                    if let Some(op) = rd16(d, l3 + 6) {
                        wr16(d, l3 + 6, (op & 0xff00) | u16::from(key.nw_proto()));
                    }
                }
                Field::ArpSha => replace_bytes(
                    d,
                    key,
                    layers,
                    l3 + 8,
                    key.arp_sha().as_bytes(),
                    None,
                    false,
                ),
                Field::ArpSpa => {
                    replace_bytes(d, key, layers, l3 + 14, &key.nw_src().octets(), None, false)
                }
                Field::ArpTha => replace_bytes(
                    d,
                    key,
                    layers,
                    l3 + 18,
                    key.arp_tha().as_bytes(),
                    None,
                    false,
                ),
                _ => replace_bytes(d, key, layers, l3 + 24, &key.nw_dst().octets(), None, false),
            }
        }
        Field::Ipv6Src | Field::Ipv6Dst if is6 => {
            let Some(l3) = l3 else { return };
            let (at, v) = if field == Field::Ipv6Src {
                (l3 + 8, key.ipv6_src())
            } else {
                (l3 + 24, key.ipv6_dst())
            };
            replace_bytes(d, key, layers, at, &v.octets(), None, true);
        }
        Field::Ipv6Label if is6 => {
            let Some(l3) = l3 else { return };
            if let Some(b) = d.get_mut(l3 + 1..l3 + 4) {
                let lbl = key.ipv6_label() & 0x000f_ffff;
                b[0] = (b[0] & 0xf0) | (lbl >> 16) as u8;
                b[1] = (lbl >> 8) as u8;
                b[2] = lbl as u8;
            }
        }
        Field::NwTos | Field::IpDscp | Field::NwEcn => {
            let Some(l3) = l3 else { return };
            let tos = key.nw_tos();
            if is4 {
                if let Some(w) = rd16(d, l3) {
                    let new = (w & 0xff00) | u16::from(tos);
                    wr16(d, l3, new);
                    csum16(d, l3 + 10, w, new);
                }
            } else if is6 && let Some(w) = rd16(d, l3) {
                wr16(d, l3, (w & 0xf00f) | (u16::from(tos) << 4));
            }
        }
        Field::NwTtl => {
            let Some(l3) = l3 else { return };
            let ttl = key.nw_ttl();
            if is4 {
                if let Some(w) = rd16(d, l3 + 8) {
                    let new = (w & 0x00ff) | (u16::from(ttl) << 8);
                    wr16(d, l3 + 8, new);
                    csum16(d, l3 + 10, w, new);
                }
            } else if is6 && let Some(b) = d.get_mut(l3 + 7) {
                *b = ttl;
            }
        }
        Field::TpSrc | Field::TpDst => commit_l4_port(field == Field::TpSrc, d, key, layers),
        Field::IcmpType | Field::IcmpCode => {
            if key.nw_frag() & NW_FRAG_LATER != 0 {
                return;
            }
            let proto_ok = (is4 && key.nw_proto() == IPPROTO_ICMP)
                || (is6 && key.nw_proto() == IPPROTO_ICMPV6);
            let Some(l4) = layers.l4() else { return };
            if !proto_ok {
                return;
            }
            if let Some(w) = rd16(d, l4) {
                let new = ((key.tp_src() & 0xff) << 8) | (key.tp_dst() & 0xff);
                wr16(d, l4, new);
                csum16(d, l4 + 2, w, new);
            }
        }
        Field::NdTarget if is6 => {
            let Some(l4) = layers.l4() else { return };
            replace_nd(d, l4 + 8, &key.nd_target().octets(), l4 + 2);
        }
        Field::NdSll | Field::NdTll if is6 => {
            let Some(l4) = layers.l4() else { return };
            let Some(end) = ip_end(d, key, layers) else {
                return;
            };
            let (want, mac) = if field == Field::NdSll {
                (1u8, key.arp_sha())
            } else {
                (2u8, key.arp_tha())
            };
            // Walk the ND options after the 24-byte fixed part; rewrite the
            // first option of the wanted type holding one MAC (OVS
            // `packet_set_nd` also only rewrites existing options).
            let mut at = l4 + 24;
            while at + 8 <= end {
                let (Some(&ty), Some(&len)) = (d.get(at), d.get(at + 1)) else {
                    return;
                };
                if len == 0 {
                    return;
                }
                if ty == want && len == 1 {
                    replace_nd(d, at + 2, mac.as_bytes(), l4 + 2);
                    return;
                }
                at += usize::from(len) * 8;
            }
        }
        _ => {}
    }
}

fn replace_nd(d: &mut [u8], at: usize, new: &[u8], csum_at: usize) {
    let n = new.len();
    let mut old = [0u8; 16];
    let Some(cur) = d.get(at..at + n) else {
        return;
    };
    old[..n].copy_from_slice(cur);
    csum_bytes(d, csum_at, &old[..n], new);
    if let Some(b) = d.get_mut(at..at + n) {
        b.copy_from_slice(new);
    }
}

fn commit_l4_port(src: bool, d: &mut [u8], key: &FlowKey, layers: &Layers) {
    if !matches!(key.dl_type(), ETH_TYPE_IPV4 | ETH_TYPE_IPV6) || key.nw_frag() & NW_FRAG_LATER != 0
    {
        return;
    }
    let Some(l4) = layers.l4() else { return };
    let at = if src { l4 } else { l4 + 2 };
    let new = if src { key.tp_src() } else { key.tp_dst() };
    let Some(old) = rd16(d, at) else { return };
    if old == new {
        return;
    }
    match key.nw_proto() {
        IPPROTO_TCP => {
            if l4 + 18 > d.len() {
                return;
            }
            wr16(d, at, new);
            csum16(d, l4 + 16, old, new);
        }
        IPPROTO_UDP => {
            if l4 + 8 > d.len() {
                return;
            }
            wr16(d, at, new);
            csum_udp_bytes(d, l4 + 6, &old.to_be_bytes(), &new.to_be_bytes());
        }
        IPPROTO_SCTP => {
            let Some(end) = ip_end(d, key, layers) else {
                return;
            };
            if l4 + 12 > end {
                return;
            }
            wr16(d, at, new);
            if let Some(b) = d.get_mut(l4..end) {
                let mut p = protocol::wire::sctp::Packet::new_unchecked(b);
                p.fill_checksum();
            }
        }
        _ => {}
    }
}

/// Brings the packet's outer VLAN tag in line with the key after a write
/// to `vlan0` (key TCI `old_tci` before the write): push a tag if the key
/// gained one, pop it if it lost one, else rewrite TCI and TPID. Returns
/// `false` if the packet had no room (headroom) or no tag to edit.
pub(crate) fn commit_vlan(
    old_tci: u16,
    pkt: &mut PacketBuf,
    key: &mut FlowKey,
    layers: &mut Layers,
) -> bool {
    let had = old_tci & VLAN_CFI != 0;
    let has = key.vlan0_tci() & VLAN_CFI != 0;
    match (had, has) {
        (false, false) => true,
        (false, true) => {
            if key.vlan0_tpid() == 0 {
                key.set_vlan0_tpid(0x8100);
            }
            insert_tag(pkt, key.vlan0_tpid(), key.vlan0_tci(), layers)
        }
        (true, false) => {
            // The tag is gone: the inner tag (if any) becomes the outer.
            key.set_vlan0_tci(key.vlan1_tci());
            key.set_vlan0_tpid(key.vlan1_tpid());
            key.set_vlan1_tci(0);
            key.set_vlan1_tpid(0);
            remove_tag(pkt, layers)
        }
        (true, true) => {
            let d = pkt.data_mut();
            if !is_tag(d) {
                return false;
            }
            wr16(d, VLAN_TPID_OFS, key.vlan0_tpid());
            wr16(d, VLAN_TCI_OFS, key.vlan0_tci() & !VLAN_CFI);
            true
        }
    }
}

fn is_tag(d: &[u8]) -> bool {
    d.len() >= 18 && matches!(rd16(d, VLAN_TPID_OFS), Some(0x8100 | 0x88a8))
}

fn shift_layers(layers: &mut Layers, grow: bool) {
    for v in [&mut layers.l3, &mut layers.l4, &mut layers.l7] {
        if *v != Layers::NONE {
            *v = if grow {
                v.saturating_add(4)
            } else {
                v.saturating_sub(4)
            };
        }
    }
}

/// Inserts a tag (TPID, TCI without the present bit) behind the MAC
/// addresses.
pub(crate) fn insert_tag(pkt: &mut PacketBuf, tpid: u16, tci: u16, layers: &mut Layers) -> bool {
    if pkt.len() < 12 {
        return false;
    }
    let Some(b) = pkt.insert(12, 4) else {
        return false;
    };
    b[..2].copy_from_slice(&tpid.to_be_bytes());
    b[2..4].copy_from_slice(&(tci & !VLAN_CFI).to_be_bytes());
    shift_layers(layers, true);
    true
}

/// Removes the second (inner) tag from the bytes: the one after the outer
/// tag. `false` if the bytes do not hold two tags there.
pub(crate) fn remove_inner_tag(pkt: &mut PacketBuf, layers: &mut Layers) -> bool {
    let d = pkt.data();
    if !is_tag(d) || d.len() < 22 || !matches!(rd16(d, VLAN_TPID_OFS + 4), Some(0x8100 | 0x88a8)) {
        return false;
    }
    if !pkt.remove(VLAN_TPID_OFS + 4, 4) {
        return false;
    }
    shift_layers(layers, false);
    true
}

/// Removes the outer tag from the bytes.
pub(crate) fn remove_tag(pkt: &mut PacketBuf, layers: &mut Layers) -> bool {
    if !is_tag(pkt.data()) {
        return false;
    }
    if !pkt.remove(12, 4) {
        return false;
    }
    shift_layers(layers, false);
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Each rewrite: build a packet from flow text, change one field in the
    //! key, commit it, then re-parse the bytes with `protocol::wire` views,
    //! check the new value and verify every checksum.
    use super::*;
    use crate::pipeline::packet::packet_from_key;
    use protocol::flow::{ExtractConfig, extract};
    use protocol::text::parse_match;
    use protocol::wire::{
        ArpPacket, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet, SctpPacket, TcpPacket,
        UdpPacket,
    };

    /// Builds the packet for `m`, sets `field` to `v` in the key, commits,
    /// and returns (bytes, re-extracted key).
    fn rewrite(m: &str, field: Field, v: u128) -> (Vec<u8>, FlowKey) {
        rewrite_bytes(packet_from_key(&parse_match(m).unwrap().key), field, v)
    }

    fn rewrite_bytes(bytes: Vec<u8>, field: Field, v: u128) -> (Vec<u8>, FlowKey) {
        let mut pkt = PacketBuf::from_slice(&bytes);
        let mut key = FlowKey::default();
        let ex = extract(pkt.data(), &ExtractConfig::default(), &mut key);
        assert_eq!(ex.error, None);
        let mut layers = ex.layers;
        if matches!(
            field,
            Field::VlanTci | Field::DlVlan | Field::VlanVid | Field::VlanPcp
        ) {
            let old = key.vlan0_tci();
            field.set(&mut key, v);
            assert!(commit_vlan(old, &mut pkt, &mut key, &mut layers));
        } else {
            field.set(&mut key, v);
            commit_field(field, pkt.data_mut(), &key, &layers);
        }
        let out = pkt.data().to_vec();
        let mut k2 = FlowKey::default();
        assert_eq!(
            extract(&out, &ExtractConfig::default(), &mut k2).error,
            None
        );
        // The bytes say what the key says.
        assert_eq!(k2, key, "re-extracted key differs");
        (out, k2)
    }

    fn v4(b: &[u8]) -> Ipv4Packet<&[u8]> {
        let ip = Ipv4Packet::new_checked(&b[14..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        ip
    }

    fn tcp4_ok(b: &[u8]) {
        let ip = v4(b);
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(
            t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
            "TCP checksum"
        );
    }

    fn udp4_ok(b: &[u8]) -> u16 {
        let ip = v4(b);
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        if u.checksum() != 0 {
            assert!(
                u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
                "UDP checksum"
            );
        }
        u.checksum()
    }

    fn v6_l4_ok(b: &[u8]) {
        let ip = Ipv6Packet::new_checked(&b[14..]).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        let l4 = &b[54..];
        match u8::from(ip.next_header()) {
            6 => assert!(TcpPacket::new_checked(l4).unwrap().verify_checksum_v6(s, d)),
            17 => assert!(UdpPacket::new_checked(l4).unwrap().verify_checksum_v6(s, d)),
            58 => assert!(Icmpv6Packet::new_checked(l4).unwrap().verify_checksum(s, d)),
            _ => {}
        }
    }

    const TCP4: &str = "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=4,tp_src=1234,tp_dst=80";
    const UDP4: &str = "udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1000,tp_dst=53";
    const TCP6: &str = "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_src=1,tp_dst=443";

    #[test]
    fn ethernet_addresses() {
        let (b, k) = rewrite(TCP4, Field::DlSrc, 0x0a00_0000_0009);
        assert_eq!(&b[6..12], &[10, 0, 0, 0, 0, 9]);
        assert_eq!(k.dl_src().to_u64(), 0x0a00_0000_0009);
        let (b, _) = rewrite(TCP4, Field::DlDst, 0x0a00_0000_0008);
        assert_eq!(&b[..6], &[10, 0, 0, 0, 0, 8]);
        tcp4_ok(&b);
    }

    #[test]
    fn ipv4_addresses_update_ip_and_tcp_checksums() {
        let (b, k) = rewrite(TCP4, Field::NwSrc, 0xc0a8_0101);
        assert_eq!(k.nw_src().octets(), [192, 168, 1, 1]);
        tcp4_ok(&b);
        let (b, k) = rewrite(TCP4, Field::NwDst, 0x0808_0808);
        assert_eq!(k.nw_dst().octets(), [8, 8, 8, 8]);
        tcp4_ok(&b);
    }

    #[test]
    fn ipv4_address_udp_and_zero_udp_checksum() {
        let (b, _) = rewrite(UDP4, Field::NwDst, 0x0a09_0909);
        assert_ne!(udp4_ok(&b), 0);
        let mut zero = packet_from_key(&parse_match(UDP4).unwrap().key);
        zero[40] = 0;
        zero[41] = 0;
        let (b, _) = rewrite_bytes(zero, Field::NwDst, 0x0a09_0909);
        assert_eq!(udp4_ok(&b), 0, "a zero UDP checksum stays zero");
    }

    #[test]
    fn ipv4_address_leaves_icmp_checksum() {
        let (b, _) = rewrite(
            "icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2,icmp_type=8",
            Field::NwSrc,
            0x0a00_0063,
        );
        let ip = v4(&b);
        assert!(
            Icmpv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum()
        );
    }

    #[test]
    fn tos_ttl_dscp_ecn() {
        let (b, k) = rewrite(TCP4, Field::NwTos, 0xb8);
        assert_eq!(k.nw_tos(), 0xb8);
        tcp4_ok(&b);
        let (b, k) = rewrite(TCP4, Field::NwTtl, 7);
        assert_eq!(v4(&b).ttl(), 7);
        assert_eq!(k.nw_ttl(), 7);
        let (_, k) = rewrite(TCP4, Field::IpDscp, 46);
        assert_eq!(k.nw_tos() >> 2, 46);
        let (b, k) = rewrite(TCP4, Field::NwEcn, 3);
        assert_eq!(k.nw_tos() & 3, 3);
        tcp4_ok(&b);
    }

    #[test]
    fn l4_ports() {
        let (b, k) = rewrite(TCP4, Field::TpSrc, 4321);
        assert_eq!(k.tp_src(), 4321);
        tcp4_ok(&b);
        let (b, k) = rewrite(UDP4, Field::TpDst, 5353);
        assert_eq!(k.tp_dst(), 5353);
        assert_ne!(udp4_ok(&b), 0);
        let (b, k) = rewrite(
            "sctp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=2",
            Field::TpDst,
            9,
        );
        assert_eq!(k.tp_dst(), 9);
        let ip = v4(&b);
        assert!(
            SctpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(),
            "SCTP CRC32c"
        );
    }

    #[test]
    fn icmp_type_code() {
        let (b, k) = rewrite(
            "icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2,icmp_type=8",
            Field::IcmpType,
            0,
        );
        assert_eq!(k.tp_src(), 0);
        let ip = v4(&b);
        assert!(
            Icmpv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum()
        );
        let (b, k) = rewrite(
            "icmp6,ipv6_src=::1,ipv6_dst=::2,icmp_type=128",
            Field::IcmpCode,
            3,
        );
        assert_eq!(k.tp_dst(), 3);
        v6_l4_ok(&b);
    }

    #[test]
    fn ipv6_fields() {
        let (b, k) = rewrite(
            TCP6,
            Field::Ipv6Src,
            0x2001_0db8_0000_0000_0000_0000_0000_0099,
        );
        assert_eq!(k.ipv6_src().segments()[7], 0x99);
        v6_l4_ok(&b);
        let (b, _) = rewrite(
            "udp6,ipv6_src=::1,ipv6_dst=::2,tp_dst=53",
            Field::Ipv6Dst,
            7,
        );
        v6_l4_ok(&b);
        let (b, _) = rewrite(
            "icmp6,ipv6_src=::1,ipv6_dst=::2,icmp_type=128",
            Field::Ipv6Dst,
            7,
        );
        v6_l4_ok(&b);
        let (_, k) = rewrite(TCP6, Field::Ipv6Label, 0xabcde);
        assert_eq!(k.ipv6_label(), 0xabcde);
        let (_, k) = rewrite(TCP6, Field::NwTos, 0x48);
        assert_eq!(k.nw_tos(), 0x48);
        let (b, k) = rewrite(TCP6, Field::NwTtl, 3);
        assert_eq!(k.nw_ttl(), 3);
        v6_l4_ok(&b);
    }

    #[test]
    fn neighbor_discovery() {
        let ns = "icmp6,ipv6_src=fe80::1,ipv6_dst=ff02::1:ff00:2,icmp_type=135,icmp_code=0,nd_target=fe80::2,nd_sll=02:00:00:00:00:01";
        let (b, k) = rewrite(
            ns,
            Field::NdTarget,
            0xfe80_0000_0000_0000_0000_0000_0000_0077,
        );
        assert_eq!(k.nd_target().segments()[7], 0x77);
        v6_l4_ok(&b);
        let (b, k) = rewrite(ns, Field::NdSll, 0x0200_0000_00aa);
        assert_eq!(k.arp_sha().to_u64(), 0x0200_0000_00aa);
        v6_l4_ok(&b);
        let na = "icmp6,ipv6_src=fe80::2,ipv6_dst=fe80::1,icmp_type=136,icmp_code=0,nd_target=fe80::2,nd_tll=02:00:00:00:00:02";
        let (b, k) = rewrite(na, Field::NdTll, 0x0200_0000_00bb);
        assert_eq!(k.arp_tha().to_u64(), 0x0200_0000_00bb);
        v6_l4_ok(&b);
    }

    #[test]
    fn arp_fields() {
        let arp = "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=02:00:00:00:00:01";
        let (b, k) = rewrite(arp, Field::ArpOp, 2);
        assert_eq!(k.nw_proto(), 2);
        let a = ArpPacket::new_checked(&b[14..]).unwrap();
        assert_eq!(u16::from(a.operation()), 2);
        let (b, _) = rewrite(arp, Field::ArpSpa, 0x0a00_0005);
        assert_eq!(&b[28..32], &[10, 0, 0, 5]);
        let (b, _) = rewrite(arp, Field::ArpTpa, 0x0a00_0006);
        assert_eq!(&b[38..42], &[10, 0, 0, 6]);
        let (b, _) = rewrite(arp, Field::ArpSha, 0x0200_0000_0055);
        assert_eq!(&b[22..28], &[2, 0, 0, 0, 0, 0x55]);
        let (b, _) = rewrite(arp, Field::ArpTha, 0x0200_0000_0066);
        assert_eq!(&b[32..38], &[2, 0, 0, 0, 0, 0x66]);
    }

    #[test]
    fn vlan_push_modify_pop() {
        // Untagged -> tagged (set_field vlan_vid with the present bit).
        let (b, k) = rewrite(TCP4, Field::VlanVid, 0x1000 | 42);
        assert_eq!(&b[12..16], &[0x81, 0x00, 0x00, 42]);
        assert_eq!(k.vlan0_tci(), 0x1000 | 42);
        tcp4_ok(&[&b[..12], &b[16..]].concat());
        // Tagged: modify PCP.
        let (b, _) = rewrite(&format!("dl_vlan=42,{TCP4}"), Field::VlanPcp, 5);
        assert_eq!(&b[14..16], &[0xa0, 42]);
        // Tagged -> untagged (vlan_tci=0).
        let (b, k) = rewrite(&format!("dl_vlan=42,{TCP4}"), Field::VlanTci, 0);
        assert_eq!(b, packet_from_key(&parse_match(TCP4).unwrap().key));
        assert!(!k.has_vlan());
    }

    #[test]
    fn short_packets_are_left_alone() {
        // A key claiming TCP over a frame that ends after the IP header.
        let full = packet_from_key(&parse_match(TCP4).unwrap().key);
        let mut key = FlowKey::default();
        let ex = extract(&full, &ExtractConfig::default(), &mut key);
        let cut = &full[..34];
        let mut d = cut.to_vec();
        key.set_tp_src(9);
        commit_field(Field::TpSrc, &mut d, &key, &ex.layers);
        key.set_nw_src(core::net::Ipv4Addr::new(1, 2, 3, 4));
        commit_field(Field::NwSrc, &mut d, &key, &ex.layers);
        assert_eq!(&d[26..30], &[1, 2, 3, 4]);
        assert_eq!(d.len(), 34);
    }
}
