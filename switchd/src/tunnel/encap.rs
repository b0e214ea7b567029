//! Encapsulation: the outer headers written into the packet's headroom
//! (see the [module documentation](super) for every policy).

use core::net::IpAddr;

use protocol::flow::key::{TUN_FLAG_CSUM, TUN_FLAG_OAM};
use protocol::flow::{FlowKey, Layers};
use protocol::wire::{EtherType, IpProtocol, checksum, geneve, udp, vxlan, vxlan::Vni};

use super::{
    DEFAULT_TTL, ETH_LEN, IPV4_LEN, IPV6_LEN, SRC_PORT_MAX, SRC_PORT_MIN, TunnelDrop, TunnelKind,
    TunnelPort, Tunnels, UDP_LEN,
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
#[inline]
pub fn flow_src_port(key: &FlowKey) -> u16 {
    let w = &key.0;
    // dl_dst+dl_type, dl_src, nw_src/dst, ipv6 src/dst, nw_proto (word 33
    // bits 32..40), tp_src/tp_dst (word 34 low 32 bits).
    let parts = [
        w[25],
        w[26],
        w[28],
        w[29],
        w[30],
        w[31],
        w[32],
        (w[33] >> 32) & 0xff,
        w[34] & 0xffff_ffff,
    ];
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for p in parts {
        h = (h ^ p).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 32;
    }
    let h32 = (h ^ (h >> 29)) as u32;
    let range = u64::from(SRC_PORT_MAX - SRC_PORT_MIN + 1);
    // (hash * range) >> 32 < range <= 28232: fits in u16.
    SRC_PORT_MIN + ((u64::from(h32) * range) >> 32) as u16
}

impl Tunnels {
    /// Encapsulates `pkt` (an Ethernet frame whose extracted key is `key`
    /// and layer offsets `layers`) for tunnel port `tp`: the outer headers
    /// are pushed into the headroom and their length returned. The caller
    /// sends `pkt.data()` out of the underlay port and then calls
    /// `pkt.pull_front(len)` to get the inner frame back unchanged.
    ///
    /// # Errors
    /// [`EncapError`]: nothing was pushed.
    pub fn encap(
        &self,
        tp: &TunnelPort,
        key: &FlowKey,
        layers: &Layers,
        pkt: &mut PacketBuf,
    ) -> Result<usize, EncapError> {
        let u = self
            .underlay
            .as_ref()
            .ok_or(EncapError::Drop(TunnelDrop::NoUnderlay))?;
        let remote = match tp.config.remote_ip {
            Some(ip) => ip,
            None if key.tun_dst().octets() != [0; 4] => IpAddr::V4(key.tun_dst()),
            None if !key.tun_ipv6_dst().is_unspecified() => IpAddr::V6(key.tun_ipv6_dst()),
            None => return Err(EncapError::Drop(TunnelDrop::NoRemote)),
        };
        let local = match (tp.config.local_ip, remote) {
            (Some(l), r) if l.is_ipv4() == r.is_ipv4() => l,
            (Some(_), _) => return Err(EncapError::Drop(TunnelDrop::NoLocalIp)),
            (None, IpAddr::V4(_)) => IpAddr::V4(
                u.local_ipv4
                    .ok_or(EncapError::Drop(TunnelDrop::NoLocalIp))?,
            ),
            (None, IpAddr::V6(_)) => IpAddr::V6(
                u.local_ipv6
                    .ok_or(EncapError::Drop(TunnelDrop::NoLocalIp))?,
            ),
        };
        let vni = Vni::new_masked(tp.config.key.unwrap_or(key.tun_id() as u32));
        let flags = key.tun_flags();

        // Geneve options from the present, mapped tun_metadata slots: the
        // length first (for the MTU check), written after the push.
        let present = if tp.kind == TunnelKind::Geneve {
            key.tun_metadata_present()
        } else {
            0
        };
        // Precomputed TLV layout (`TlvMap::new`): no per-slot decoding.
        let (slots, opt_len, critical) = if present != 0 {
            self.tlv.encap_layout(present)
        } else {
            (0, 0, false)
        };

        let ip_len = if remote.is_ipv4() { IPV4_LEN } else { IPV6_LEN };
        let tun_len = tp.kind.header_len() + opt_len;
        let inner_len = pkt.len();
        let outer_ip_total = ip_len + UDP_LEN + tun_len + inner_len;
        if outer_ip_total > u.mtu as usize {
            let l3 = layers.l3().unwrap_or(ETH_LEN);
            let before_inner_ip = ip_len + UDP_LEN + tun_len + l3;
            let inner_mtu = u.mtu.saturating_sub(before_inner_ip as u32);
            return Err(EncapError::TooBig { inner_mtu });
        }
        let (Ok(udp_total), Ok(ip_total)) = (
            u16::try_from(UDP_LEN + tun_len + inner_len),
            u16::try_from(outer_ip_total),
        ) else {
            return Err(EncapError::TooBig { inner_mtu: 0 });
        };
        let nh = self
            .next_hops
            .get(remote)
            .ok_or(EncapError::NoNextHop(remote))?;
        let hdr_len = ETH_LEN + ip_len + UDP_LEN + tun_len;
        let src_port = flow_src_port(key);
        let ttl = match key.tun_ttl() {
            0 => DEFAULT_TTL,
            t => t,
        };
        let tos = key.tun_tos();
        let vni = vni.to_be_bytes();
        let b = pkt
            .push_front(hdr_len)
            .ok_or(EncapError::Drop(TunnelDrop::NoHeadroom))?;
        // Fixed-size header writes straight into the buffer (the `Repr`
        // emitters cost store-forwarding stalls here; the unit tests decode
        // every field with the wire views and with etherparse).
        let (eth, rest) = b.split_at_mut(ETH_LEN);
        eth[..6].copy_from_slice(&nh.0);
        eth[6..12].copy_from_slice(&u.local_mac.0);
        let (iph, rest) = rest.split_at_mut(ip_len);
        let (udph, rest) = rest.split_at_mut(UDP_LEN);
        let (tunh, _inner) = rest.split_at_mut(tun_len);
        udph[..2].copy_from_slice(&src_port.to_be_bytes());
        udph[2..4].copy_from_slice(&tp.udp_port().to_be_bytes());
        udph[4..6].copy_from_slice(&udp_total.to_be_bytes());
        udph[6..8].fill(0);
        match tp.kind {
            TunnelKind::Geneve => {
                // Version 0, options length in words; O and C flags.
                tunh[0] = (opt_len / 4) as u8;
                tunh[1] = if flags & TUN_FLAG_OAM != 0 { 0x80 } else { 0 }
                    | if critical { 0x40 } else { 0 };
                tunh[2..4]
                    .copy_from_slice(&u16::from(EtherType::TransparentEthernet).to_be_bytes());
                tunh[4..7].copy_from_slice(&vni);
                tunh[7] = 0;
                // Options in slot order: the prebuilt 4-byte header, then
                // the low `len` bytes of the slot value.
                let mut at = geneve::HEADER_LEN;
                let mut bits = slots;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let h = self.tlv.header(i);
                    let len = 4 * usize::from(h[3]);
                    let v = key.tun_metadata(i).to_be_bytes();
                    if let (Some(dst), Some(data)) =
                        (tunh.get_mut(at..at + 4 + len), v.get(8 - len..))
                    {
                        dst[..4].copy_from_slice(&h);
                        dst[4..].copy_from_slice(data);
                    }
                    at += 4 + len;
                }
            }
            TunnelKind::Vxlan => {
                // RFC 7348 5: flags = I, reserved zero.
                tunh[..4].copy_from_slice(&[vxlan::FLAG_I, 0, 0, 0]);
                tunh[4..7].copy_from_slice(&vni);
                tunh[7] = 0;
            }
        }
        match (local, remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                eth[12..14].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());
                iph[0] = 0x45;
                iph[1] = tos;
                iph[2..4].copy_from_slice(&ip_total.to_be_bytes());
                // Id 0, DF, offset 0 (RFC 6864 atomic datagram).
                iph[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
                iph[8] = ttl;
                iph[9] = u8::from(IpProtocol::Udp);
                iph[10..12].fill(0);
                iph[12..16].copy_from_slice(&src.octets());
                iph[16..20].copy_from_slice(&dst.octets());
                let c = !checksum::data(iph);
                iph[10..12].copy_from_slice(&c.to_be_bytes());
                if flags & TUN_FLAG_CSUM != 0 {
                    let udp_ofs = ETH_LEN + IPV4_LEN;
                    if let Some(seg) = pkt.data_mut().get_mut(udp_ofs..) {
                        udp::Packet::new_unchecked(seg).fill_checksum_v4(src, dst);
                    }
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                eth[12..14].copy_from_slice(&u16::from(EtherType::Ipv6).to_be_bytes());
                // Version 6, traffic class, flow label 0.
                iph[0] = 0x60 | (tos >> 4);
                iph[1] = (tos & 0x0f) << 4;
                iph[2..4].fill(0);
                iph[4..6].copy_from_slice(&udp_total.to_be_bytes());
                iph[6] = u8::from(IpProtocol::Udp);
                iph[7] = ttl;
                iph[8..24].copy_from_slice(&src.octets());
                iph[24..40].copy_from_slice(&dst.octets());
                let udp_ofs = ETH_LEN + IPV6_LEN;
                if let Some(seg) = pkt.data_mut().get_mut(udp_ofs..) {
                    udp::Packet::new_unchecked(seg).fill_checksum_v6(src, dst);
                }
            }
            // `local` was chosen in the remote's family above.
            _ => {
                pkt.pull_front(hdr_len);
                return Err(EncapError::Drop(TunnelDrop::NoLocalIp));
            }
        }
        Ok(hdr_len)
    }
}
