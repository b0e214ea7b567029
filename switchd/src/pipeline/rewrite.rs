//! In-place header rewrites of packet bytes, with incremental checksum
//! updates (RFC 1624, `protocol::wire::checksum`), as OVS
//! `lib/packets.c` (`packet_set_ipv4_addr`, `packet_set_tcp_port`, ...)
//! and `lib/odp-execute.c` do.
//!
//! The flow key is the truth the pipeline matches on; after an action
//! changes a header field in the key, [`commit_field`] writes that field's
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
