//! Builds a packet from a flow key ([`packet_from_key`]), for `weftctl
//! trace --flow` and tests (OVS `flow_compose`).
//!
//! Written with the `protocol::wire` `Repr` emitters: Ethernet, up to two
//! VLAN tags, then by `dl_type` IPv4, IPv6 or ARP, and TCP, UDP, SCTP,
//! ICMP or ICMPv6 (neighbor solicitation/advertisement with the target and
//! link-layer address options from the key). Every checksum is correct.
//! Transport headers carry no payload; a TTL or hop limit of 0 in the key
//! becomes 64. IPv4 fragments: a first fragment gets MF with offset 0 and
//! its L4 header; a later fragment gets offset 1480 and 8 bytes of zeros
//! instead of an L4 header. IPv6 fragments are built unfragmented (not
//! supported). Other `dl_type`s get 46 bytes of zero payload.
//!
//! Allocates (tool path only).

use core::net::Ipv6Addr;

use protocol::flow::FlowKey;
use protocol::flow::key::{NW_FRAG_ANY, NW_FRAG_LATER, VLAN_CFI};
use protocol::wire::{
    EtherType, IpProtocol, arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, sctp, tcp, udp, vlan,
};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

fn ttl(k: &FlowKey) -> u8 {
    match k.nw_ttl() {
        0 => 64,
        t => t,
    }
}

/// The L4 header for `proto`, checksum still zero where a pseudo-header is
/// needed (filled by the caller); ICMPv4 is complete.
fn l4_bytes(k: &FlowKey, proto: u8, v6: bool) -> Vec<u8> {
    match proto {
        IPPROTO_TCP => {
            let mut b = vec![0u8; tcp::HEADER_LEN];
            tcp::Repr {
                src_port: k.tp_src(),
                dst_port: k.tp_dst(),
                seq_number: 1,
                ack_number: 0,
                flags: tcp::TcpFlags(k.tcp_flags() & 0x1ff),
                window_len: 65535,
                urgent_at: 0,
            }
            .emit(&mut tcp::Packet::new_unchecked(&mut b[..]));
            b
        }
        IPPROTO_UDP => {
            let mut b = vec![0u8; udp::HEADER_LEN];
            udp::Repr {
                src_port: k.tp_src(),
                dst_port: k.tp_dst(),
                payload_len: 0,
            }
            .emit(&mut udp::Packet::new_unchecked(&mut b[..]));
            b
        }
        IPPROTO_SCTP => {
            let mut b = vec![0u8; sctp::HEADER_LEN];
            let mut p = sctp::Packet::new_unchecked(&mut b[..]);
            p.set_src_port(k.tp_src());
            p.set_dst_port(k.tp_dst());
            p.set_verification_tag(1);
            p.fill_checksum();
            b
        }
        IPPROTO_ICMP if !v6 => {
            let data = [0u8; 0];
            let r = icmpv4::Repr {
                msg_type: icmpv4::Message::from(k.tp_src() as u8),
                code: k.tp_dst() as u8,
                rest: [0, 1, 0, 1],
                data: &data,
            };
            let mut b = vec![0u8; icmpv4::HEADER_LEN];
            r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
            b
        }
        IPPROTO_ICMPV6 if v6 => {
            let ty = k.tp_src() as u8;
            let mut data = Vec::new();
            let mut rest = [0u8; 4];
            if (ty == 135 || ty == 136) && k.tp_dst() == 0 {
                data.extend_from_slice(&k.nd_target().octets());
                if ty == 136 {
                    rest[0] = 0x60; // solicited, override
                }
                let sll = k.arp_sha();
                if ty == 135 && sll.to_u64() != 0 {
                    data.extend_from_slice(&[1, 1]);
                    data.extend_from_slice(sll.as_bytes());
                }
                let tll = k.arp_tha();
                if ty == 136 && tll.to_u64() != 0 {
                    data.extend_from_slice(&[2, 1]);
                    data.extend_from_slice(tll.as_bytes());
                }
            }
            let r = icmpv6::Repr {
                msg_type: icmpv6::Message::from(ty),
                code: k.tp_dst() as u8,
                rest,
                data: &data,
            };
            let mut b = vec![0u8; icmpv6::HEADER_LEN + data.len()];
            r.emit(&mut icmpv6::Packet::new_unchecked(&mut b[..]));
            b
        }
        _ => Vec::new(),
    }
}

fn fill_l4_v4(b: &mut [u8], proto: u8, k: &FlowKey) {
    match proto {
        IPPROTO_TCP => tcp::Packet::new_unchecked(b).fill_checksum_v4(k.nw_src(), k.nw_dst()),
        IPPROTO_UDP => udp::Packet::new_unchecked(b).fill_checksum_v4(k.nw_src(), k.nw_dst()),
        _ => {}
    }
}

fn fill_l4_v6(b: &mut [u8], proto: u8, src: Ipv6Addr, dst: Ipv6Addr) {
    match proto {
        IPPROTO_TCP => tcp::Packet::new_unchecked(b).fill_checksum_v6(src, dst),
        IPPROTO_UDP => udp::Packet::new_unchecked(b).fill_checksum_v6(src, dst),
        IPPROTO_ICMPV6 => icmpv6::Packet::new_unchecked(b).fill_checksum(src, dst),
        _ => {}
    }
}

/// A frame whose extracted key has the packet fields of `k` (see the
/// module doc for what is not representable).
pub fn packet_from_key(k: &FlowKey) -> Vec<u8> {
    let dl_type = k.dl_type();
    // L3 and up.
    let l3: Vec<u8> = match dl_type {
        0x0800 => {
            let proto = k.nw_proto();
            let frag = k.nw_frag();
            let later = frag & NW_FRAG_LATER != 0;
            let mut l4 = if later {
                vec![0u8; 8]
            } else {
                l4_bytes(k, proto, false)
            };
            if !later {
                fill_l4_v4(&mut l4, proto, k);
            }
            let r = ipv4::Repr {
                src_addr: k.nw_src(),
                dst_addr: k.nw_dst(),
                next_header: IpProtocol::from(proto),
                payload_len: l4.len(),
                ttl: ttl(k),
                dscp: k.nw_tos() >> 2,
                ecn: k.nw_tos() & 3,
                ident: 1,
                dont_frag: frag & NW_FRAG_ANY == 0,
                more_frags: frag & NW_FRAG_ANY != 0 && !later,
                frag_offset: if later { 1480 } else { 0 },
            };
            let mut b = vec![0u8; ipv4::HEADER_LEN + l4.len()];
            r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
            b[ipv4::HEADER_LEN..].copy_from_slice(&l4);
            b
        }
        0x86dd => {
            let proto = k.nw_proto();
            let mut l4 = l4_bytes(k, proto, true);
            fill_l4_v6(&mut l4, proto, k.ipv6_src(), k.ipv6_dst());
            let r = ipv6::Repr {
                src_addr: k.ipv6_src(),
                dst_addr: k.ipv6_dst(),
                next_header: IpProtocol::from(proto),
                payload_len: l4.len(),
                hop_limit: ttl(k),
                traffic_class: k.nw_tos(),
                flow_label: k.ipv6_label(),
            };
            let mut b = vec![0u8; ipv6::HEADER_LEN + l4.len()];
            r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]));
            b[ipv6::HEADER_LEN..].copy_from_slice(&l4);
            b
        }
        0x0806 | 0x8035 => {
            let r = arp::Repr {
                operation: arp::Operation::from(u16::from(k.nw_proto())),
                source_hardware_addr: k.arp_sha(),
                source_protocol_addr: k.nw_src(),
                target_hardware_addr: k.arp_tha(),
                target_protocol_addr: k.nw_dst(),
            };
            let mut b = vec![0u8; arp::HEADER_LEN];
            r.emit(&mut arp::Packet::new_unchecked(&mut b[..]));
            b
        }
        _ => vec![0u8; 46],
    };
    // L2.
    let tags: Vec<(u16, u16)> = [
        (k.vlan0_tpid(), k.vlan0_tci()),
        (k.vlan1_tpid(), k.vlan1_tci()),
    ]
    .into_iter()
    .take_while(|(_, tci)| tci & VLAN_CFI != 0)
    .map(|(tpid, tci)| (if tpid == 0 { 0x8100 } else { tpid }, tci))
    .collect();
    let mut out = vec![0u8; ethernet::HEADER_LEN + tags.len() * vlan::HEADER_LEN];
    let first_type = tags.first().map_or(dl_type, |t| t.0);
    ethernet::Repr {
        src_addr: k.dl_src(),
        dst_addr: k.dl_dst(),
        ethertype: EtherType::from(first_type),
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
    for (i, (_, tci)) in tags.iter().enumerate() {
        let next = tags.get(i + 1).map_or(dl_type, |t| t.0);
        let at = ethernet::HEADER_LEN - 2 + i * vlan::HEADER_LEN;
        // A vlan view starts at the TCI (the TPID is the previous type).
        let r = vlan::Repr {
            pcp: (tci >> 13) as u8,
            dei: false,
            vid: tci & 0x0fff,
            ethertype: EtherType::from(next),
        };
        r.emit(&mut vlan::Packet::new_unchecked(&mut out[at + 2..at + 6]));
    }
    out.extend_from_slice(&l3);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use protocol::flow::{ExtractConfig, extract};
    use protocol::text::{format_flow_key, parse_match};

    fn roundtrip(text: &str, vlan_limit: u8) {
        let m = parse_match(text).unwrap();
        let frame = packet_from_key(&m.key);
        let mut k = FlowKey::default();
        let ex = extract(&frame, &ExtractConfig { vlan_limit }, &mut k);
        assert_eq!(ex.error, None, "{text}");
        // Every field the match names has the same value in the packet.
        assert!(m.matches(&k), "{text}\n  got {}", format_flow_key(&k));
    }

    #[test]
    fn keys_roundtrip_through_packets() {
        for t in [
            "tcp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=9,nw_tos=32,tp_src=1234,tp_dst=80,tcp_flags=+syn",
            "udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=53,tp_dst=5353",
            "sctp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=2",
            "icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2,icmp_type=8,icmp_code=0",
            "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ipv6_label=0x12345,tp_src=1,tp_dst=443",
            "udp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_dst=53",
            "icmp6,ipv6_src=fe80::1,ipv6_dst=ff02::1:ff00:2,icmp_type=135,icmp_code=0,nd_target=fe80::2,nd_sll=02:00:00:00:00:01",
            "icmp6,ipv6_src=fe80::2,ipv6_dst=fe80::1,icmp_type=136,icmp_code=0,nd_target=fe80::2,nd_tll=02:00:00:00:00:02",
            "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=02:00:00:00:00:01",
            "dl_vlan=10,dl_vlan_pcp=3,tcp,nw_dst=10.0.0.2,tp_dst=22",
            "ip,nw_frag=first,nw_proto=6,tp_dst=80",
            "ip,nw_frag=later,nw_proto=17",
        ] {
            roundtrip(t, 1);
        }
    }

    #[test]
    fn checksums_are_valid() {
        let m = parse_match("tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=2").unwrap();
        let f = packet_from_key(&m.key);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
    }
}
