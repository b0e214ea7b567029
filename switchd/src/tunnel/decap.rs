//! Decapsulation of frames received on the underlay port (see the
//! [module documentation](super) for what counts as tunnel traffic and
//! how the key is filled).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use protocol::flow::FlowKey;
use protocol::flow::PortNo;
use protocol::flow::key::{
    TUN_FLAG_CSUM, TUN_FLAG_DONT_FRAGMENT, TUN_FLAG_KEY, TUN_FLAG_OAM, slots,
};
use protocol::wire::{EtherType, IpProtocol, geneve, vxlan};

use super::{ETH_LEN, IPV4_LEN, IPV6_LEN, TunnelDrop, TunnelKind, TunnelPort, Tunnels, UDP_LEN};
use crate::buf::PacketBuf;

/// The outcome of [`Tunnels::decap`].
/// The key word of `tun_metadata0` (slot `i` is the word after `i`).
const META_WORD: usize = FlowKey::tun_metadata_slot(0).word as usize;

/// The key layout `decap` writes whole words of: `tun_src`/`tun_dst` as
/// the low/high halves of one word; `tun_flags`, `tun_tos`, `tun_ttl`,
/// `tun_metadata_present` at bits 0, 16, 24, 32 of one word; the option
/// slots in consecutive words.
const _: () = {
    assert!(slots::tun_src.word == slots::tun_dst.word);
    assert!(slots::tun_src.shift == 0 && slots::tun_dst.shift == 32);
    assert!(slots::tun_flags.word == slots::tun_tos.word);
    assert!(slots::tun_flags.word == slots::tun_ttl.word);
    assert!(slots::tun_flags.word == slots::tun_metadata_present.word);
    assert!(slots::tun_flags.shift == 0 && slots::tun_flags.width == 16);
    assert!(slots::tun_tos.shift == 16 && slots::tun_ttl.shift == 24);
    assert!(slots::tun_metadata_present.shift == 32);
    assert!(slots::tun_metadata_present.width == 8);
    let mut i = 0;
    while i < protocol::flow::key::TUN_METADATA_SLOTS {
        assert!(FlowKey::tun_metadata_slot(i).word as usize == META_WORD + i);
        i += 1;
    }
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decap {
    /// Not tunnel traffic for a local endpoint: the packet is unchanged.
    NotTunnel,
    /// Decapsulated: the buffer holds the inner Ethernet frame and the
    /// key's tunnel fields are set; the packet enters the pipeline on
    /// `port`.
    Inner {
        /// The tunnel port it arrived on.
        port: PortNo,
        /// Its kind.
        kind: TunnelKind,
        /// Outer bytes removed.
        outer_len: usize,
        /// The inner packet was IP without Ethernet; a dummy Ethernet
        /// header (zero MACs) was put in front.
        dummy_eth: bool,
    },
    /// Tunnel traffic for us that is dropped (counted by the caller); the
    /// packet is unchanged.
    Drop(TunnelDrop),
}

/// A UDP port the tunnel ports listen on, precomputed by
/// [`Tunnels::new`] so that decap finds the kind and, in the usual
/// configuration, the port without scanning the ports per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    udp: u16,
    /// The kind on this UDP port (`Tunnels::new` allows one).
    kind: TunnelKind,
    /// The port every packet on this UDP port belongs to when the only
    /// port on it is the flow-based one; `None` if some port on it has a
    /// fixed `remote_ip` or `key` (then `find_port` chooses per packet).
    only: Option<PortNo>,
}

/// The listeners of `ports` (sorted by port number), one per UDP port.
pub(crate) fn build_listeners(ports: &[TunnelPort]) -> Box<[Listener]> {
    let mut v: Vec<Listener> = Vec::new();
    for p in ports {
        if v.iter().any(|l| l.udp == p.udp_port()) {
            continue;
        }
        let mut on_port = ports.iter().filter(|q| q.udp_port() == p.udp_port());
        let only = match (on_port.next(), on_port.next()) {
            (Some(q), None) if q.config.remote_ip.is_none() && q.config.key.is_none() => {
                Some(q.port)
            }
            _ => None,
        };
        v.push(Listener {
            udp: p.udp_port(),
            kind: p.kind,
            only,
        });
    }
    v.into_boxed_slice()
}

/// What the outer headers said, before the buffer is changed.
struct Outer {
    remote: IpAddr,
    local: IpAddr,
    tos: u8,
    ttl: u8,
    df: bool,
    /// Offset of the UDP header.
    udp_ofs: usize,
    /// UDP length field (validated against the IP payload).
    udp_len: usize,
    udp_dst: u16,
    csum: bool,
    listener: Listener,
}

impl Tunnels {
    /// True if `dst` is a local endpoint: the underlay's address, or a
    /// port's own `local_ip` (only looked at when some port has one).
    #[inline]
    fn is_local(&self, dst: IpAddr, underlay: Option<IpAddr>) -> bool {
        underlay == Some(dst)
            || (self.port_local_ip && self.ports.iter().any(|p| p.config.local_ip == Some(dst)))
    }

    /// Returns the outer headers if `frame` is IPv4/IPv6 + UDP addressed to
    /// a local endpoint and a listening UDP port, with the UDP header
    /// readable; `Err` if it is ours but its UDP length is wrong.
    ///
    /// The headers are read straight from the bytes with the same checks
    /// as `ipv4::Packet::check_len` / `ipv6::Packet::check_len` (version,
    /// IHL >= 5, total length between the header length and the buffer;
    /// IPv6 payload within the buffer), in one pass.
    #[inline]
    fn outer(&self, frame: &[u8]) -> Option<Result<Outer, TunnelDrop>> {
        let u = self.underlay.as_ref()?;
        let eth = frame.first_chunk::<ETH_LEN>()?;
        let l3 = frame.get(ETH_LEN..)?;
        let (remote, local, tos, ttl, df, udp_ofs, ip_payload_len) =
            match u16::from_be_bytes([eth[12], eth[13]]) {
                0x0800 => {
                    let h = l3.first_chunk::<IPV4_LEN>()?;
                    let hl = usize::from(h[0] & 0x0f) * 4;
                    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                    if h[0] >> 4 != 4 || hl < IPV4_LEN || total < hl || l3.len() < total {
                        return None;
                    }
                    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
                    let frag = u16::from_be_bytes([h[6], h[7]]);
                    // Not UDP, or a fragment (MF or an offset): not ours.
                    if h[9] != u8::from(IpProtocol::Udp)
                        || frag & 0x3fff != 0
                        || !self.is_local(dst, u.local_ipv4.map(IpAddr::V4))
                    {
                        return None;
                    }
                    (
                        IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                        dst,
                        h[1],
                        h[8],
                        frag & 0x4000 != 0,
                        ETH_LEN + hl,
                        total - hl,
                    )
                }
                0x86dd => {
                    let h = l3.first_chunk::<IPV6_LEN>()?;
                    let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
                    if h[0] >> 4 != 6 || l3.len() < IPV6_LEN + payload {
                        return None;
                    }
                    let (Some(src), Some(dst)) =
                        (h[8..24].first_chunk::<16>(), h.last_chunk::<16>())
                    else {
                        return None;
                    };
                    let dst = IpAddr::V6(Ipv6Addr::from(*dst));
                    if h[6] != u8::from(IpProtocol::Udp)
                        || !self.is_local(dst, u.local_ipv6.map(IpAddr::V6))
                    {
                        return None;
                    }
                    (
                        IpAddr::V6(Ipv6Addr::from(*src)),
                        dst,
                        h[0] << 4 | h[1] >> 4,
                        h[7],
                        false,
                        ETH_LEN + IPV6_LEN,
                        payload,
                    )
                }
                _ => return None,
            };
        let seg = frame.get(udp_ofs..)?;
        let uh = seg.first_chunk::<UDP_LEN>()?;
        let udp_dst = u16::from_be_bytes([uh[2], uh[3]]);
        let listener = *self.listeners.iter().find(|l| l.udp == udp_dst)?;
        let udp_len = usize::from(u16::from_be_bytes([uh[4], uh[5]]));
        if udp_len < UDP_LEN || udp_len > ip_payload_len || udp_len > seg.len() {
            return Some(Err(TunnelDrop::Malformed));
        }
        Some(Ok(Outer {
            remote,
            local,
            tos,
            ttl,
            df,
            udp_ofs,
            udp_len,
            udp_dst,
            csum: uh[6] | uh[7] != 0,
            listener,
        }))
    }

    /// The port a packet from `remote` with `vni` on UDP port `udp`
    /// belongs to (module doc: fixed remote and key first).
    fn find_port(
        &self,
        kind: TunnelKind,
        udp: u16,
        remote: IpAddr,
        vni: u32,
    ) -> Option<&TunnelPort> {
        let mut best: Option<(u8, &TunnelPort)> = None;
        for p in self.ports.iter() {
            if p.kind != kind || p.udp_port() != udp {
                continue;
            }
            let r = match p.config.remote_ip {
                Some(ip) if ip == remote => 2,
                Some(_) => continue,
                None => 0,
            };
            let k = match p.config.key {
                Some(k) if k == vni => 1,
                Some(_) => continue,
                None => 0,
            };
            let score = r + k;
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, p));
            }
        }
        best.map(|b| b.1)
    }

    /// Decapsulates `pkt` if it is tunnel traffic for a local endpoint
    /// (received on the underlay port). On [`Decap::Inner`] the buffer
    /// holds the inner frame and `key`'s tunnel fields (`tun_*`,
    /// `tun_metadataN`) are set; the caller sets `in_port` and extracts.
    /// Otherwise neither is changed.
    pub fn decap(&self, pkt: &mut PacketBuf, key: &mut FlowKey) -> Decap {
        let frame = pkt.data();
        let o = match self.outer(frame) {
            None => return Decap::NotTunnel,
            Some(Err(d)) => return Decap::Drop(d),
            Some(Ok(o)) => o,
        };
        let tun_start = o.udp_ofs + UDP_LEN;
        let end = o.udp_ofs + o.udp_len;
        let Some(payload) = frame.get(tun_start..end) else {
            return Decap::Drop(TunnelDrop::Malformed);
        };
        let kind = o.listener.kind;
        let mut flags = TUN_FLAG_KEY;
        if o.csum {
            flags |= TUN_FLAG_CSUM;
        }
        if o.df {
            flags |= TUN_FLAG_DONT_FRAGMENT;
        }
        // Options: mapped ones to their slots as they are walked (one
        // pass, which also validates the area); an unknown critical one
        // is remembered and dropped below, after the port checks.
        let mut meta = [0u64; protocol::flow::key::TUN_METADATA_SLOTS];
        let mut found: u8 = 0;
        let mut unknown_critical = false;
        let (vni, tun_len, proto) = match kind {
            TunnelKind::Vxlan => {
                // RFC 7348: the I flag must be set; VNI in bytes 4..7.
                let Some(h) = payload.first_chunk::<{ vxlan::HEADER_LEN }>() else {
                    return Decap::Drop(TunnelDrop::Malformed);
                };
                if h[0] & vxlan::FLAG_I == 0 {
                    return Decap::Drop(TunnelDrop::Malformed);
                }
                let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
                (vni, vxlan::HEADER_LEN, EtherType::TransparentEthernet)
            }
            TunnelKind::Geneve => {
                // Version 0, options length in words, O flag, protocol
                // type, VNI (RFC 8926 3.4); the options area whole.
                let Some(h) = payload.first_chunk::<{ geneve::HEADER_LEN }>() else {
                    return Decap::Drop(TunnelDrop::Malformed);
                };
                if h[0] >> 6 != 0 {
                    return Decap::Drop(TunnelDrop::Malformed);
                }
                let opt_len = usize::from(h[0] & 0x3f) * 4;
                let Some(mut rest) = payload.get(geneve::HEADER_LEN..geneve::HEADER_LEN + opt_len)
                else {
                    return Decap::Drop(TunnelDrop::Malformed);
                };
                if h[1] & 0x80 != 0 {
                    // The O (OAM) flag.
                    flags |= TUN_FLAG_OAM;
                }
                while let Some(&[c0, c1, ty, l]) = rest.first_chunk::<4>() {
                    let end = 4 + usize::from(l & 0x1f) * 4;
                    let Some(data) = rest.get(4..end) else {
                        return Decap::Drop(TunnelDrop::Malformed);
                    };
                    match self.tlv.find(u16::from_be_bytes([c0, c1]), ty) {
                        Some((slot, len)) if usize::from(len) == data.len() => {
                            let v = match *data {
                                [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
                                [a, b, c, d, e, f, g, h] => {
                                    u64::from_be_bytes([a, b, c, d, e, f, g, h])
                                }
                                _ => 0,
                            };
                            if let Some(m) = meta.get_mut(slot) {
                                *m = v;
                                found |= 1 << slot;
                            }
                        }
                        _ if ty & geneve::OPTION_TYPE_CRITICAL != 0 => unknown_critical = true,
                        _ => {}
                    }
                    rest = rest.get(end..).unwrap_or_default();
                }
                // A 1..3-byte tail cannot happen (the area is whole words).
                let proto = EtherType::from(u16::from_be_bytes([h[2], h[3]]));
                let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
                (vni, geneve::HEADER_LEN + opt_len, proto)
            }
        };
        // The port: precomputed when the flow-based port is alone on this
        // UDP port, else chosen among the fixed ones.
        let port = match o.listener.only {
            Some(p) => p,
            None => match self.find_port(kind, o.udp_dst, o.remote, vni) {
                Some(tp) => tp.port,
                None => return Decap::Drop(TunnelDrop::NoPort),
            },
        };
        let dummy_eth = match proto {
            EtherType::TransparentEthernet => false,
            EtherType::Ipv4 | EtherType::Ipv6 => true,
            _ => return Decap::Drop(TunnelDrop::Unsupported),
        };
        let inner_len = payload.len().saturating_sub(tun_len);
        if inner_len == 0 || (!dummy_eth && inner_len < ETH_LEN) {
            return Decap::Drop(TunnelDrop::Malformed);
        }
        if unknown_critical {
            return Decap::Drop(TunnelDrop::CriticalOption);
        }

        // Committed: fill the key and strip the outer headers. Fields
        // that share a key word are written as that word (one store
        // instead of a read-modify-write per field; the layout is checked
        // at compile time below `META_WORD`): the IPv4 pair, and flags,
        // TOS, TTL and the present bits (ORed in, as `set_tun_metadata`
        // does; the word's unused top bits kept).
        match (o.remote, o.local) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                key.0[usize::from(slots::tun_src.word)] =
                    u64::from(u32::from(s)) | u64::from(u32::from(d)) << 32;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                key.set_tun_ipv6_src(s);
                key.set_tun_ipv6_dst(d);
            }
            _ => {}
        }
        key.set_tun_id(u64::from(vni));
        let w = &mut key.0[usize::from(slots::tun_flags.word)];
        *w = (*w & !0xffff_ffff)
            | u64::from(found) << 32
            | u64::from(o.ttl) << 24
            | u64::from(o.tos) << 16
            | u64::from(flags);
        let mut bits = found;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let (Some(v), Some(m)) = (meta.get(i), key.0.get_mut(META_WORD + i)) {
                *m = *v;
            }
        }
        let outer_len = tun_start + tun_len;
        pkt.truncate(end);
        pkt.pull_front(outer_len);
        if dummy_eth {
            let ty = u16::from(proto).to_be_bytes();
            if let Some(b) = pkt.push_front(ETH_LEN) {
                b[..12].fill(0);
                b[12..14].copy_from_slice(&ty);
            }
        }
        Decap::Inner {
            port,
            kind,
            outer_len,
            dummy_eth,
        }
    }
}
