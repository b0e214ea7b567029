//! Encapsulation: the outer headers written into the packet's headroom
//! (see the [module documentation](super) for every policy).

use core::net::IpAddr;

use protocol::flow::key::{TUN_FLAG_CSUM, TUN_FLAG_OAM};
use protocol::flow::{FlowKey, Layers};
use protocol::wire::{EtherType, EthernetAddress, IpProtocol, checksum, vxlan, vxlan::Vni};

use super::{
    DEFAULT_TTL, ETH_LEN, IPV4_LEN, IPV6_LEN, NextHops, SRC_PORT_MAX, SRC_PORT_MIN, TunnelDrop,
    TunnelKind, TunnelPort, Tunnels, UDP_LEN, Underlay,
};
use crate::buf::PacketBuf;

/// Why a packet could not be encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapError {
    /// A counted drop with no further action.
    Drop(TunnelDrop),
    /// No next-hop MAC for this remote (counted drop; the caller reports a
    /// `TunnelEvent::MissingNextHop`).
    NoNextHop(IpAddr),
    /// The outer packet would exceed the underlay MTU; `inner_mtu` is the
    /// largest inner IP packet that fits (the next-hop MTU of the ICMP
    /// error).
    TooBig {
        /// Largest inner IP packet length that fits.
        inner_mtu: u32,
    },
}

impl EncapError {
    /// The counted drop reason.
    pub fn drop_reason(self) -> TunnelDrop {
        match self {
            EncapError::Drop(d) => d,
            EncapError::NoNextHop(_) => TunnelDrop::NoNextHop,
            EncapError::TooBig { .. } => TunnelDrop::TooBig,
        }
    }
}

/// The UDP source port for an inner flow: a hash of its addresses,
/// EtherType, IP protocol and L4 ports mapped into
/// [`SRC_PORT_MIN`]..=[`SRC_PORT_MAX`] (Linux `udp_flow_src_port`'s
/// multiply-shift mapping).
///
/// ECMP entropy, not a table hash: the L3 words (the IPv4 pair is one
/// word, the IPv6 pair four) and the L2/L4 words (MACs, EtherType,
/// protocol, ports) are each folded into one 64-bit word with rotations
/// (never a plain XOR of equal-sized fields, which would give both
/// directions of a flow, or swapped halves, the same value), and the two
/// words go through one folded 64x64->128-bit multiply (the wyhash "mum"
/// step). An IPv4 5-tuple reaches the multiply without loss. (The
/// previous version had four multiplies and a final one.) Spread tested by
/// `udp_source_port_spreads_evenly` (chi-square over 64 buckets for port,
/// address and MAC sweeps, both directions differ).
#[inline]
pub fn flow_src_port(key: &FlowKey) -> u16 {
    // Odd constants (wyhash's secrets).
    const S0: u64 = 0xa076_1d64_78bd_642f;
    const S1: u64 = 0xe703_7ed1_a0b4_28db;
    let w = &key.0;
    // nw_src/nw_dst (word 28), ipv6_src (29, 30), ipv6_dst (31, 32).
    let l3 = w[28]
        ^ w[29].rotate_left(17)
        ^ w[30].rotate_left(31)
        ^ w[31].rotate_left(47)
        ^ w[32].rotate_left(8);
    // nw_proto (word 33 bits 32..40) with tp_src/tp_dst (word 34 low 32
    // bits) in bits 0..40; dl_dst+dl_type (25) and dl_src (26) rotated
    // so that the MACs' low (vendor-random) bytes land apart.
    let l4 = ((w[33] >> 32) & 0xff) << 32 | (w[34] & 0xffff_ffff);
    let l2 = l4 ^ w[25].rotate_left(24) ^ w[26].rotate_left(44);
    let p = u128::from(l3 ^ S0) * u128::from(l2 ^ S1);
    let h = (p as u64) ^ ((p >> 64) as u64);
    let h32 = (h ^ (h >> 32)) as u32;
    let range = u64::from(SRC_PORT_MAX - SRC_PORT_MIN + 1);
    // (hash * range) >> 32 < range <= 28232: fits in u16.
    SRC_PORT_MIN + ((u64::from(h32) * range) >> 32) as u16
}

/// Length of an outer header template: Ethernet, IPv6 (the longer IP
/// header), UDP and the 8-byte Geneve/VXLAN base header. An IPv4 template
/// uses the first [`TEMPLATE_LEN_V4`] bytes.
pub(crate) const TEMPLATE_LEN: usize = ETH_LEN + IPV6_LEN + UDP_LEN + 8;
/// Length of an IPv4 outer header template.
pub(crate) const TEMPLATE_LEN_V4: usize = ETH_LEN + IPV4_LEN + UDP_LEN + 8;

/// The outer headers for one (tunnel port, remote endpoint) pair, built
/// once per snapshot and copied in front of every packet, as OVS's
/// `netdev_tnl_push_udp_header` copies the header it built per flow and
/// neighbour. Per packet only the lengths, TOS/TTL, the IPv4 checksum,
/// the UDP source port (and checksum where one is sent), the VNI and
/// Geneve's option length, flags and options are written.
///
/// In `bytes`: next hop and local MACs, EtherType; IPv4 with version/IHL,
/// DF, protocol UDP and the addresses (TOS, total length, TTL and
/// checksum zero) or IPv6 with version, next header UDP and the addresses
/// (traffic class, payload length, hop limit zero); UDP destination port
/// (the rest zero); Geneve protocol type 0x6558 or the VXLAN I flag (the
/// rest zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Template {
    bytes: [u8; TEMPLATE_LEN],
    v6: bool,
    /// IPv4: the one's complement sum of the 20 header bytes as in
    /// `bytes`, so the checksum is this plus TOS, total length and TTL.
    ip_sum: u16,
    /// The UDP checksum's constant part, not folded: the pseudo-header sum
    /// of the addresses and protocol plus the sum of the template's UDP
    /// and tunnel base header (16 bytes); per packet the UDP length (twice:
    /// pseudo-header and header), the written fields by value (not read
    /// back: a store-forwarding stall), the options and the inner frame
    /// are added.
    csum_base: u32,
}

impl Template {
    /// The template for port `tp` from `local` to `remote` (same family)
    /// through next hop `mac`.
    pub(crate) fn new(
        tp: &TunnelPort,
        local_mac: EthernetAddress,
        local: IpAddr,
        remote: IpAddr,
        mac: EthernetAddress,
    ) -> Option<Template> {
        let mut b = [0u8; TEMPLATE_LEN];
        b[..6].copy_from_slice(&mac.0);
        b[6..12].copy_from_slice(&local_mac.0);
        let (v6, ip_sum, pseudo_sum, udp_ofs) = match (local, remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                b[12..14].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());
                let ip = &mut b[ETH_LEN..ETH_LEN + IPV4_LEN];
                ip[0] = 0x45;
                // Id 0, DF, offset 0 (RFC 6864 atomic datagram).
                ip[6] = 0x40;
                ip[9] = u8::from(IpProtocol::Udp);
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                let ip_sum = checksum::data(ip);
                let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), 0);
                (false, ip_sum, pseudo, ETH_LEN + IPV4_LEN)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                b[12..14].copy_from_slice(&u16::from(EtherType::Ipv6).to_be_bytes());
                let ip = &mut b[ETH_LEN..ETH_LEN + IPV6_LEN];
                ip[0] = 0x60;
                ip[6] = u8::from(IpProtocol::Udp);
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
                let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), 0);
                (true, 0, pseudo, ETH_LEN + IPV6_LEN)
            }
            _ => return None,
        };
        b[udp_ofs + 2..udp_ofs + 4].copy_from_slice(&tp.udp_port().to_be_bytes());
        let tun = udp_ofs + UDP_LEN;
        match tp.kind {
            TunnelKind::Geneve => b[tun + 2..tun + 4]
                .copy_from_slice(&u16::from(EtherType::TransparentEthernet).to_be_bytes()),
            // RFC 7348 5: flags = I, reserved zero.
            TunnelKind::Vxlan => b[tun] = vxlan::FLAG_I,
        }
        let udp_tun_sum = checksum::data(&b[udp_ofs..udp_ofs + UDP_LEN + 8]);
        Some(Template {
            bytes: b,
            v6,
            ip_sum,
            csum_base: u32::from(pseudo_sum) + u32::from(udp_tun_sum),
        })
    }
}

/// The templates of every (port, next hop) pair, row by port (in the
/// order of `ports`), column by next-hop entry; `None` where the port
/// cannot send to that remote (a fixed `remote_ip` elsewhere, no local
/// address of the remote's family, no underlay).
pub(crate) fn build_templates(
    ports: &[TunnelPort],
    underlay: Option<&Underlay>,
    next_hops: &NextHops,
) -> Box<[Option<Template>]> {
    let hops = next_hops.entries();
    let mut v = Vec::with_capacity(ports.len() * hops.len());
    for tp in ports {
        for &(remote, mac) in hops {
            let t = underlay.and_then(|u| {
                if tp.config.remote_ip.is_some_and(|r| r != remote) {
                    return None;
                }
                let local = local_ip(u, tp, remote)?;
                Template::new(tp, u.local_mac, local, remote, mac)
            });
            v.push(t);
        }
    }
    v.into_boxed_slice()
}

/// The local endpoint for `remote` on port `tp`: the port's `local_ip`,
/// else the underlay's address of the remote's family.
#[inline]
fn local_ip(u: &Underlay, tp: &TunnelPort, remote: IpAddr) -> Option<IpAddr> {
    match (tp.config.local_ip, remote) {
        (Some(l), r) if l.is_ipv4() == r.is_ipv4() => Some(l),
        (Some(_), _) => None,
        (None, IpAddr::V4(_)) => u.local_ipv4.map(IpAddr::V4),
        (None, IpAddr::V6(_)) => u.local_ipv6.map(IpAddr::V6),
    }
}

impl Tunnels {
    /// Encapsulates `pkt` (an Ethernet frame whose extracted key is `key`
    /// and layer offsets `layers`) for tunnel port `tp`: the outer headers
    /// are pushed into the headroom and their length returned. The caller
    /// sends `pkt.data()` out of the underlay port and then calls
    /// `pkt.pull_front(len)` to get the inner frame back unchanged.
    ///
    /// The outer headers come from the snapshot's template for (`tp`,
    /// remote) (see `Template`); a port that is not this snapshot's
    /// (another value under the same number) gets a template built for
    /// this packet, with the same result.
    ///
    /// # Errors
    /// [`EncapError`]: nothing was pushed.
    #[inline]
    pub fn encap(
        &self,
        tp: &TunnelPort,
        key: &FlowKey,
        layers: &Layers,
        pkt: &mut PacketBuf,
    ) -> Result<usize, EncapError> {
        let remote = match tp.config.remote_ip {
            Some(ip) => ip,
            None if key.tun_dst().octets() != [0; 4] => IpAddr::V4(key.tun_dst()),
            None if !key.tun_ipv6_dst().is_unspecified() => IpAddr::V6(key.tun_ipv6_dst()),
            None => return self.encap_slow(tp, None, key, layers, pkt),
        };
        // A template exists only with an underlay (`build_templates`).
        if let (Some(t), Some(u)) = (self.template(tp, remote), self.underlay.as_ref()) {
            return self.encap_with(t, u, tp, key, layers, pkt);
        }
        self.encap_slow(tp, Some(remote), key, layers, pkt)
    }

    /// [`Tunnels::encap`] without a cached template for (`tp`, `remote`):
    /// the errors in the documented order (no underlay, no remote, no
    /// local address, too big, no next hop), or a port value that is not
    /// this snapshot's (its template is built for this packet).
    #[cold]
    #[inline(never)]
    fn encap_slow(
        &self,
        tp: &TunnelPort,
        remote: Option<IpAddr>,
        key: &FlowKey,
        layers: &Layers,
        pkt: &mut PacketBuf,
    ) -> Result<usize, EncapError> {
        let u = self
            .underlay
            .as_ref()
            .ok_or(EncapError::Drop(TunnelDrop::NoUnderlay))?;
        let remote = remote.ok_or(EncapError::Drop(TunnelDrop::NoRemote))?;
        let local = local_ip(u, tp, remote).ok_or(EncapError::Drop(TunnelDrop::NoLocalIp))?;
        let ip_len = if remote.is_ipv4() { IPV4_LEN } else { IPV6_LEN };
        let opt_len = if tp.kind == TunnelKind::Geneve {
            self.tlv.encap_layout(key.tun_metadata_present()).1
        } else {
            0
        };
        fits(u, ip_len, tp.kind.header_len() + opt_len, pkt.len(), layers)?;
        let mac = self
            .next_hops
            .get(remote)
            .ok_or(EncapError::NoNextHop(remote))?;
        let t = Template::new(tp, u.local_mac, local, remote, mac)
            .ok_or(EncapError::Drop(TunnelDrop::NoLocalIp))?;
        self.encap_with(&t, u, tp, key, layers, pkt)
    }

    /// The cached template for (`tp`, `remote`): the port's row from its
    /// address (the pipeline passes a reference into this snapshot's
    /// `ports`: no search), else, for an equal port value from elsewhere,
    /// by number; then one hash probe of the next hops.
    #[inline]
    pub(crate) fn template(&self, tp: &TunnelPort, remote: IpAddr) -> Option<&Template> {
        let pi = self.port_index(tp)?;
        let hi = self.next_hops.position(remote)?;
        let n = self.next_hops.entries().len();
        self.templates.get(pi * n + hi)?.as_ref()
    }

    /// The index of `tp` in `ports`: by address if it is one of them,
    /// else by number if the value there is equal.
    #[inline(always)]
    fn port_index(&self, tp: &TunnelPort) -> Option<usize> {
        let at = core::ptr::from_ref(tp).addr();
        let i = at.wrapping_sub(self.ports.as_ptr().addr()) / size_of::<TunnelPort>();
        match self.ports.get(i) {
            Some(mine) if core::ptr::eq(mine, tp) => Some(i),
            _ => self.port_index_by_value(tp),
        }
    }

    #[cold]
    #[inline(never)]
    fn port_index_by_value(&self, tp: &TunnelPort) -> Option<usize> {
        let i = self.ports.binary_search_by_key(&tp.port, |t| t.port).ok()?;
        (self.ports.get(i)? == tp).then_some(i)
    }

    /// Copies template `t` in front of `pkt` and writes the per-packet
    /// fields. Inlined into the template path of [`Tunnels::encap`] (no
    /// call with nine arguments and a second register save sequence).
    #[inline(always)]
    fn encap_with(
        &self,
        t: &Template,
        u: &Underlay,
        tp: &TunnelPort,
        key: &FlowKey,
        layers: &Layers,
        pkt: &mut PacketBuf,
    ) -> Result<usize, EncapError> {
        let flags = key.tun_flags();
        // Geneve options from the present, mapped tun_metadata slots
        // (precomputed TLV layout, `TlvMap::new`).
        let present = if tp.kind == TunnelKind::Geneve {
            key.tun_metadata_present()
        } else {
            0
        };
        let (slots, opt_len, critical, opt_hdr_sum) = if present != 0 {
            self.tlv.encap_layout(present)
        } else {
            (0, 0, false, 0)
        };
        let ip_len = if t.v6 { IPV6_LEN } else { IPV4_LEN };
        let (udp_total, ip_total) = fits(u, ip_len, 8 + opt_len, pkt.len(), layers)?;
        // The 24-bit VNI in the top three bytes of the header's second
        // word, the reserved byte zero (RFC 7348, RFC 8926).
        let vni = tp.config.key.unwrap_or(key.tun_id() as u32) & Vni::MAX.get();
        let src_port = flow_src_port(key);
        let ttl = match key.tun_ttl() {
            0 => DEFAULT_TTL,
            t => t,
        };
        let tos = key.tun_tos();
        let udp_ofs = ETH_LEN + ip_len;
        let base = udp_ofs + UDP_LEN + 8;
        let b = pkt
            .push_front(base + opt_len)
            .ok_or(EncapError::Drop(TunnelDrop::NoHeadroom))?;
        let Some((hdr, rest)) = b.split_at_mut_checked(base) else {
            return Err(EncapError::Drop(TunnelDrop::NoHeadroom));
        };
        if t.v6 {
            let Some(h) = hdr.first_chunk_mut::<TEMPLATE_LEN>() else {
                return Err(EncapError::Drop(TunnelDrop::NoHeadroom));
            };
            *h = t.bytes;
            // Version 6, traffic class, flow label 0.
            h[14] = 0x60 | (tos >> 4);
            h[15] = (tos & 0x0f) << 4;
            h[18..20].copy_from_slice(&udp_total.to_be_bytes());
            h[21] = ttl;
        } else {
            let (Some(h), Some(tb)) = (
                hdr.first_chunk_mut::<TEMPLATE_LEN_V4>(),
                t.bytes.first_chunk::<TEMPLATE_LEN_V4>(),
            ) else {
                return Err(EncapError::Drop(TunnelDrop::NoHeadroom));
            };
            *h = *tb;
            h[15] = tos;
            h[16..18].copy_from_slice(&ip_total.to_be_bytes());
            h[22] = ttl;
            // The template's sum plus the three fields that change.
            let sum =
                u32::from(t.ip_sum) + u32::from(tos) + u32::from(ip_total) + (u32::from(ttl) << 8);
            let c = !fold2(sum);
            h[24..26].copy_from_slice(&c.to_be_bytes());
        }
        let Some((_, tail)) = hdr.split_at_mut_checked(udp_ofs) else {
            return Err(EncapError::Drop(TunnelDrop::NoHeadroom));
        };
        let Some(ut) = tail.first_chunk_mut::<{ UDP_LEN + 8 }>() else {
            return Err(EncapError::Drop(TunnelDrop::NoHeadroom));
        };
        ut[..2].copy_from_slice(&src_port.to_be_bytes());
        ut[4..6].copy_from_slice(&udp_total.to_be_bytes());
        ut[12..16].copy_from_slice(&(vni << 8).to_be_bytes());
        // Geneve: version 0, options length in words; O and C flags.
        let (len_words, oc) = if tp.kind == TunnelKind::Geneve {
            let oc =
                if flags & TUN_FLAG_OAM != 0 { 0x80 } else { 0 } | if critical { 0x40 } else { 0 };
            let len_words = (opt_len / 4) as u8;
            ut[8..10].copy_from_slice(&[len_words, oc]);
            (len_words, oc)
        } else {
            (0, 0)
        };
        // The UDP checksum's terms known so far.
        let hsum = t.csum_base
            + u32::from(src_port)
            + 2 * u32::from(udp_total)
            + (vni >> 8)
            + ((vni & 0xff) << 8)
            + (u32::from(len_words) << 8 | u32::from(oc))
            + opt_hdr_sum;
        // UDP checksum: always over IPv6 (RFC 8200), over IPv4 only with
        // `tun_flags` `csum`: the template's pseudo-header sum, the
        // length, the header fields just written (by value, not read
        // back), the option headers' sum from the layout, the option
        // values (summed as they are written) and the inner frame.
        if t.v6 || flags & TUN_FLAG_CSUM != 0 {
            // The option values' sum folded to 17 bits (only with options).
            let opt_val_sum = if slots != 0 {
                let s = self.write_options::<true>(slots, key, rest);
                // s <= 2^64 - 1 -> <= 2^33 - 2 -> < 2^32 -> < 2^17.
                let s = (s >> 32) + (s & 0xffff_ffff);
                let s = ((s >> 32) + (s & 0xffff_ffff)) as u32;
                (s >> 16) + (s & 0xffff)
            } else {
                0
            };
            let inner = rest.get(opt_len..).unwrap_or_default();
            // One fold at the end (a dozen terms below 2^18: no overflow).
            let sum = hsum + opt_val_sum + u32::from(checksum::data(inner));
            let c = !fold2(sum);
            // A computed zero is sent as all ones (RFC 768).
            let c = if c == 0 { 0xffff } else { c };
            ut[6..8].copy_from_slice(&c.to_be_bytes());
        } else if slots != 0 {
            self.write_options::<false>(slots, key, rest);
        }
        Ok(base + opt_len)
    }

    /// Writes the Geneve options of the mapped, present `slots` at the
    /// start of `out` in slot order: the prebuilt 4-byte header, then the
    /// slot value's low 4 or 8 bytes (`TlvMap::new` allows only these), as
    /// fixed-size writes. With `SUM`, returns the values' one's
    /// complement sum as 64-bit words with end-around carry (the same sum
    /// as over their 16-bit words, RFC 1071 2(B)); the headers' sum comes
    /// with the layout.
    #[inline(never)]
    fn write_options<const SUM: bool>(&self, slots: u8, key: &FlowKey, out: &mut [u8]) -> u64 {
        let mut sum = 0u64;
        let mut out = out;
        let mut bits = slots;
        while bits != 0 {
            // Slot numbers are 0..8 (`u8` bits): masked, no bounds checks.
            let i = (bits.trailing_zeros() & 7) as usize;
            bits &= bits - 1;
            let h = self.tlv.header(i);
            let v = key.tun_metadata(i);
            // The options area was sized from the same slots
            // (`encap_layout`): it always has room.
            if h[3] == 1 {
                let Some((d, tail)) = core::mem::take(&mut out).split_first_chunk_mut::<8>() else {
                    break;
                };
                d[..4].copy_from_slice(&h);
                d[4..].copy_from_slice(&(v as u32).to_be_bytes());
                out = tail;
                if SUM {
                    sum = add_carry(sum, v & 0xffff_ffff);
                }
            } else {
                let Some((d, tail)) = core::mem::take(&mut out).split_first_chunk_mut::<12>()
                else {
                    break;
                };
                d[..4].copy_from_slice(&h);
                d[4..].copy_from_slice(&v.to_be_bytes());
                out = tail;
                if SUM {
                    sum = add_carry(sum, v);
                }
            }
        }
        sum
    }
}

/// Folds a one's complement sum to 16 bits: two steps suffice for any
/// `u32` (the first leaves at most 0x1_fffe).
#[inline(always)]
fn fold2(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// `a + b` with the carry out added back in (one's complement addition
/// of 64-bit words).
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// The UDP and outer IP lengths if the outer packet fits the underlay
/// MTU; else [`EncapError::TooBig`] with the inner MTU that would fit.
#[inline]
fn fits(
    u: &Underlay,
    ip_len: usize,
    tun_len: usize,
    inner_len: usize,
    layers: &Layers,
) -> Result<(u16, u16), EncapError> {
    let outer_ip_total = ip_len + UDP_LEN + tun_len + inner_len;
    if outer_ip_total > u.mtu as usize {
        let l3 = layers.l3().unwrap_or(ETH_LEN);
        let before_inner_ip = ip_len + UDP_LEN + tun_len + l3;
        let inner_mtu = u.mtu.saturating_sub(before_inner_ip as u32);
        return Err(EncapError::TooBig { inner_mtu });
    }
    match (
        u16::try_from(UDP_LEN + tun_len + inner_len),
        u16::try_from(outer_ip_total),
    ) {
        (Ok(udp_total), Ok(ip_total)) => Ok((udp_total, ip_total)),
        _ => Err(EncapError::TooBig { inner_mtu: 0 }),
    }
}
