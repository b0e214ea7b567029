//! Tunnel unit tests: encapsulated frames decoded by `protocol::wire` and by
//! etherparse (an independent decoder), encap -> decap round trips, the
//! TLV map, critical options, port choice and the MTU errors.

#![allow(clippy::unwrap_used)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use protocol::ctl::{TlvMapping, TunnelConfig};
use protocol::flow::key::{TUN_FLAG_CSUM, TUN_FLAG_DONT_FRAGMENT, TUN_FLAG_KEY};
use protocol::flow::{ExtractConfig, FlowKey, Layers, PortNo, extract};
use protocol::wire::{EthernetAddress, geneve, icmpv4, icmpv6, ipv4, ipv6, udp, vxlan};

use super::*;
use crate::buf::PacketBuf;

const LOCAL4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const REMOTE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
const LOCAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
const LOCAL_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const NH_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 7]);
const GENEVE: PortNo = PortNo(10);
const VXLAN: PortNo = PortNo(11);
const UNDERLAY: PortNo = PortNo(1);

fn underlay(mtu: u32) -> Underlay {
    Underlay {
        port: UNDERLAY,
        host_port: Some(PortNo::LOCAL),
        local_ipv4: Some(LOCAL4),
        local_ipv6: Some(LOCAL6),
        local_mac: LOCAL_MAC,
        mtu,
    }
}

fn tlv() -> TlvMap {
    TlvMap::new(&[
        TlvMapping {
            class: 0xff57,
            r#type: 0x80,
            len: 4,
            slot: 0,
        },
        TlvMapping {
            class: 0x0102,
            r#type: 0x05,
            len: 8,
            slot: 1,
        },
    ])
    .unwrap()
}

fn tunnels(mtu: u32) -> Tunnels {
    Tunnels::new(
        vec![
            TunnelPort::new(GENEVE, TunnelKind::Geneve, TunnelConfig::default()),
            TunnelPort::new(VXLAN, TunnelKind::Vxlan, TunnelConfig::default()),
        ],
        Some(underlay(mtu)),
        NextHops::from_entries([(IpAddr::V4(REMOTE4), NH_MAC), (IpAddr::V6(REMOTE6), NH_MAC)]),
        tlv(),
    )
    .unwrap()
}

/// `t` with another underlay, built through `Tunnels::new` (so the outer
/// header templates follow it).
fn with_underlay(t: &Tunnels, u: Underlay) -> Tunnels {
    Tunnels::new(
        t.ports().to_vec(),
        Some(u),
        t.next_hops().clone(),
        *t.tlv_map(),
    )
    .unwrap()
}

/// An Ethernet/IPv4/TCP frame with `payload` bytes, built by etherparse.
fn inner_tcp4(payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
        .ipv4([10, 244, 1, 2], [10, 244, 2, 3], 63)
        .tcp(40000, 80, 1, 65535)
        .syn();
    let data = vec![0x5a; payload];
    let mut v = Vec::new();
    b.write(&mut v, &data).unwrap();
    // DF, as Linux sets it on TCP.
    let mut ip = ipv4::Packet::new_unchecked(&mut v[14..]);
    ip.set_dont_frag(true);
    ip.fill_checksum();
    v
}

fn inner_udp6(payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
        .ipv6(
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
            64,
        )
        .udp(5000, 53);
    let mut v = Vec::new();
    b.write(&mut v, &vec![1; payload]).unwrap();
    v
}

fn key_of(frame: &[u8]) -> (FlowKey, Layers) {
    let mut k = FlowKey::default();
    let ex = extract(frame, &ExtractConfig::default(), &mut k);
    assert_eq!(ex.error, None);
    (k, ex.layers)
}

/// Encapsulates `inner` for `port` with the flow fields set by `f`;
/// returns the outer frame and checks the inner frame comes back intact.
fn encap(
    t: &Tunnels,
    port: PortNo,
    inner: &[u8],
    f: impl Fn(&mut FlowKey),
) -> Result<Vec<u8>, EncapError> {
    let (mut k, layers) = key_of(inner);
    f(&mut k);
    let mut pkt = PacketBuf::from_slice(inner);
    let tp = *t.port(port).unwrap();
    let n = t.encap(&tp, &k, &layers, &mut pkt)?;
    let out = pkt.data().to_vec();
    assert!(pkt.pull_front(n));
    assert_eq!(pkt.data(), inner, "inner frame changed");
    Ok(out)
}

#[test]
fn geneve_ipv4_encap_decoded_by_views_and_etherparse() {
    let t = tunnels(1500);
    let inner = inner_tcp4(100);
    let out = encap(&t, GENEVE, &inner, |k| {
        k.set_tun_dst(REMOTE4);
        k.set_tun_id(0x00ab_cdef);
        k.set_tun_metadata(0, 0x0001_0002);
        k.set_tun_metadata(1, 0x1122_3344_5566_7788);
    })
    .unwrap();

    // etherparse: outer Ethernet, IPv4, UDP.
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no Ethernet");
    };
    assert_eq!(eth.destination(), NH_MAC.0);
    assert_eq!(eth.source(), LOCAL_MAC.0);
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no IPv4");
    };
    let h = ip.header();
    assert_eq!(h.source_addr(), LOCAL4);
    assert_eq!(h.destination_addr(), REMOTE4);
    assert!(h.dont_fragment());
    assert_eq!(h.ttl(), 64);
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!("no UDP");
    };
    assert_eq!(u.destination_port(), 6081);
    assert!((SRC_PORT_MIN..=SRC_PORT_MAX).contains(&u.source_port()));
    assert_eq!(u.checksum(), 0, "IPv4 underlay: no UDP checksum by default");
    let opts_len = 8 + 12;
    assert_eq!(usize::from(u.length()), 8 + 8 + opts_len + inner.len());
    let gnv = u.payload();

    // Geneve by raw offsets (RFC 8926 3.4) and by our view.
    assert_eq!(gnv[0], (opts_len / 4) as u8, "version 0, opt len in words");
    assert_eq!(gnv[1], 0x40, "C flag: the 0x80 option type is critical");
    assert_eq!(&gnv[2..4], &[0x65, 0x58]);
    assert_eq!(&gnv[4..8], &[0xab, 0xcd, 0xef, 0]);
    assert_eq!(&gnv[8..16], &[0xff, 0x57, 0x80, 1, 0, 1, 0, 2]);
    assert_eq!(&gnv[16..20], &[0x01, 0x02, 0x05, 2]);
    assert_eq!(&gnv[20..28], &0x1122_3344_5566_7788u64.to_be_bytes());
    let g = geneve::Packet::new_checked(gnv).unwrap();
    let r = geneve::Repr::parse(&g).unwrap();
    assert_eq!(r.vni.get(), 0xab_cdef);
    assert!(r.critical && !r.oam);
    let o: Vec<_> = r.options_iter().map(Result::unwrap).collect();
    assert_eq!(o.len(), 2);
    assert_eq!(
        (o[0].class, o[0].kind, o[0].data),
        (0xff57, 0x80, &[0, 1, 0, 2][..])
    );
    assert_eq!(g.payload(), &inner[..]);
    // The inner frame, decoded by etherparse from the Geneve payload.
    let ip4 = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert!(ip4.verify_checksum());
    let pi = SlicedPacket::from_ethernet(g.payload()).unwrap();
    assert!(matches!(pi.transport, Some(TransportSlice::Tcp(_))));
}

#[test]
fn vxlan_ipv6_encap_has_valid_udp_checksum() {
    let t = tunnels(1500);
    let inner = inner_udp6(200);
    let out = encap(&t, VXLAN, &inner, |k| {
        k.set_tun_ipv6_dst(REMOTE6);
        k.set_tun_id(42);
        k.set_tun_ttl(9);
        k.set_tun_tos(0x28);
    })
    .unwrap();
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("no IPv6");
    };
    let h = ip.header();
    assert_eq!(h.source_addr(), LOCAL6);
    assert_eq!(h.destination_addr(), REMOTE6);
    assert_eq!(h.hop_limit(), 9);
    assert_eq!(h.traffic_class(), 0x28);
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!("no UDP");
    };
    assert_eq!(u.destination_port(), 4789);
    assert_ne!(u.checksum(), 0);
    let want = u
        .to_header()
        .calc_checksum_ipv6(&h.to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want, "etherparse agrees on the UDP checksum");
    let ours = udp::Packet::new_checked(&out[54..]).unwrap();
    assert!(ours.verify_checksum_v6(LOCAL6, REMOTE6));
    // VXLAN: I flag only, VNI 42, reserved zero (RFC 7348 5).
    assert_eq!(&u.payload()[..8], &[0x08, 0, 0, 0, 0, 0, 42, 0]);
    let v = vxlan::Packet::new_checked(u.payload()).unwrap();
    assert_eq!(v.payload(), &inner[..]);
}

#[test]
fn ipv4_csum_flag_computes_udp_checksum() {
    let t = tunnels(1500);
    let inner = inner_tcp4(10);
    let out = encap(&t, VXLAN, &inner, |k| {
        k.set_tun_dst(REMOTE4);
        k.set_tun_flags(TUN_FLAG_CSUM);
    })
    .unwrap();
    let u = udp::Packet::new_checked(&out[34..]).unwrap();
    assert_ne!(u.checksum(), 0);
    assert!(u.verify_checksum_v4(LOCAL4, REMOTE4));
}

#[test]
fn udp_source_port_follows_the_inner_flow() {
    let a = inner_tcp4(0);
    let (ka, _) = key_of(&a);
    let mut kb = ka;
    kb.set_tp_src(40001);
    let mut kc = ka;
    kc.set_nw_ttl(1);
    assert_ne!(flow_src_port(&ka), flow_src_port(&kb));
    assert_eq!(flow_src_port(&ka), flow_src_port(&kc), "TTL is not hashed");
    // Spread: 1000 flows use many distinct ports, all in range.
    let mut seen = std::collections::HashSet::new();
    for p in 0..1000u16 {
        let mut k = ka;
        k.set_tp_src(p);
        let s = flow_src_port(&k);
        assert!((SRC_PORT_MIN..=SRC_PORT_MAX).contains(&s));
        seen.insert(s);
    }
    assert!(seen.len() > 950, "{} distinct ports", seen.len());
}

/// The source-port hash spreads typical flow sweeps evenly: 4096 flows
/// varying one field (L4 port, IPv4 host, IPv6 host, source MAC, both
/// addresses together) fill 64 equal buckets of the port range with a
/// chi-square statistic below 130 (63 degrees of freedom: a uniform
/// hash exceeds 103 once in a thousand sweeps; a hash that ignores the
/// field, or uses only some of its bits, gives thousands), and give
/// nearly as many distinct ports as uniform random ports would (~3800).
/// The reverse direction of a flow gets another port.
#[test]
fn udp_source_port_spreads_evenly() {
    let (k0, _) = key_of(&inner_tcp4(0));
    let mut k6 = k0;
    k6.set_nw_src(Ipv4Addr::UNSPECIFIED);
    k6.set_nw_dst(Ipv4Addr::UNSPECIFIED);
    k6.set_dl_type(0x86dd);
    k6.set_ipv6_src("fd00:10:244:1::5".parse().unwrap());
    k6.set_ipv6_dst("fd00:10:244:2::7".parse().unwrap());
    let sweeps: [(&str, &dyn Fn(u32) -> FlowKey); 6] = [
        ("tp_src", &|i| {
            let mut k = k0;
            k.set_tp_src(32768 + i as u16);
            k
        }),
        ("tp_dst", &|i| {
            let mut k = k0;
            k.set_tp_dst(i as u16);
            k
        }),
        ("nw_src", &|i| {
            let mut k = k0;
            k.set_nw_src(Ipv4Addr::from(0x0af4_0000 + i));
            k
        }),
        ("nw_src+nw_dst", &|i| {
            let mut k = k0;
            k.set_nw_src(Ipv4Addr::from(0x0af4_0000 + (i & 63)));
            k.set_nw_dst(Ipv4Addr::from(0x0af4_1000 + (i >> 6)));
            k
        }),
        ("ipv6_src", &|i| {
            let mut k = k6;
            k.set_ipv6_src(Ipv6Addr::from(
                0xfd00_0010_0244_0001_0000_0000_0000_0000 + u128::from(i),
            ));
            k
        }),
        ("dl_src", &|i| {
            let mut k = k0;
            let b = i.to_be_bytes();
            k.set_dl_src(EthernetAddress([0x02, 0x42, 0x0a, b[1], b[2], b[3]]));
            k
        }),
    ];
    let range = u32::from(SRC_PORT_MAX - SRC_PORT_MIN) + 1;
    for (name, f) in sweeps {
        let mut buckets = [0u32; 64];
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096 {
            let s = flow_src_port(&f(i));
            assert!((SRC_PORT_MIN..=SRC_PORT_MAX).contains(&s), "{name}");
            buckets[(u32::from(s - SRC_PORT_MIN) * 64 / range) as usize] += 1;
            seen.insert(s);
        }
        let chi2: f64 = buckets
            .iter()
            .map(|&n| (f64::from(n) - 64.0).powi(2) / 64.0)
            .sum();
        assert!(chi2 < 130.0, "{name}: chi-square {chi2:.1}, {buckets:?}");
        assert!(seen.len() > 3600, "{name}: {} distinct ports", seen.len());
    }
    let mut rev = k0;
    rev.set_nw_src(k0.nw_dst());
    rev.set_nw_dst(k0.nw_src());
    rev.set_tp_src(k0.tp_dst());
    rev.set_tp_dst(k0.tp_src());
    assert_ne!(flow_src_port(&k0), flow_src_port(&rev));
}

#[test]
fn round_trip_geneve_and_vxlan_over_both_families() {
    let t = tunnels(1500);
    for (port, v6) in [
        (GENEVE, false),
        (GENEVE, true),
        (VXLAN, false),
        (VXLAN, true),
    ] {
        let inner = inner_tcp4(33);
        let out = encap(&t, port, &inner, |k| {
            if v6 {
                k.set_tun_ipv6_dst(REMOTE6);
            } else {
                k.set_tun_dst(REMOTE4);
            }
            k.set_tun_id(0x123456);
            k.set_tun_metadata(1, 0xdead_beef_0000_0001);
        })
        .unwrap();
        // The receiving node: its local IP is our remote.
        let rx = with_underlay(
            &tunnels(1500),
            Underlay {
                local_ipv4: Some(REMOTE4),
                local_ipv6: Some(REMOTE6),
                ..underlay(1500)
            },
        );
        let mut pkt = PacketBuf::from_slice(&out);
        let mut k = FlowKey::default();
        let d = rx.decap(&mut pkt, &mut k);
        let Decap::Inner {
            port: got, kind, ..
        } = d
        else {
            panic!("{port} v6={v6}: {d:?}");
        };
        assert_eq!(got, port);
        assert_eq!(kind, rx.port(port).unwrap().kind);
        assert_eq!(pkt.data(), &inner[..]);
        assert_eq!(k.tun_id(), 0x123456);
        if v6 {
            assert_eq!((k.tun_ipv6_src(), k.tun_ipv6_dst()), (LOCAL6, REMOTE6));
            assert_eq!(k.tun_flags(), TUN_FLAG_KEY | TUN_FLAG_CSUM);
        } else {
            assert_eq!((k.tun_src(), k.tun_dst()), (LOCAL4, REMOTE4));
            assert_eq!(k.tun_flags(), TUN_FLAG_KEY | TUN_FLAG_DONT_FRAGMENT);
        }
        assert_eq!(k.tun_ttl(), 64);
        if port == GENEVE {
            assert_eq!(k.tun_metadata_present(), 0b10);
            assert_eq!(k.tun_metadata(1), 0xdead_beef_0000_0001);
        } else {
            assert_eq!(k.tun_metadata_present(), 0);
        }
    }
}

/// A Geneve frame from REMOTE4 to LOCAL4 with `options`, VNI 5 and an
/// inner frame, built by hand.
fn geneve_frame(options: &[u8], proto: u16, inner: &[u8]) -> Vec<u8> {
    let glen = 8 + options.len();
    let mut g = vec![0u8; glen];
    g[0] = (options.len() / 4) as u8;
    g[2..4].copy_from_slice(&proto.to_be_bytes());
    g[6] = 5;
    g[8..].copy_from_slice(options);
    g.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2(NH_MAC.0, LOCAL_MAC.0)
        .ipv4(REMOTE4.octets(), LOCAL4.octets(), 64)
        .udp(50000, 6081);
    let mut v = Vec::new();
    b.write(&mut v, &g).unwrap();
    v
}

fn decap(t: &Tunnels, frame: &[u8]) -> (Decap, FlowKey, Vec<u8>) {
    let mut pkt = PacketBuf::from_slice(frame);
    let mut k = FlowKey::default();
    let d = t.decap(&mut pkt, &mut k);
    (d, k, pkt.data().to_vec())
}

#[test]
fn unknown_critical_option_is_dropped_other_unknown_ignored() {
    let t = tunnels(1500);
    let inner = inner_tcp4(0);
    // Unknown, critical (type 0x81).
    let crit = [0x12, 0x34, 0x81, 1, 0, 0, 0, 1];
    let (d, k, rest) = decap(&t, &geneve_frame(&crit, 0x6558, &inner));
    assert_eq!(d, Decap::Drop(TunnelDrop::CriticalOption));
    assert_eq!(k, FlowKey::default(), "key untouched on drop");
    assert_eq!(
        rest,
        geneve_frame(&crit, 0x6558, &inner),
        "packet untouched"
    );
    // Unknown, not critical: ignored. Known critical (0xff57/0x80, 4
    // bytes): mapped to slot 0.
    let opts = [
        0x12, 0x34, 0x01, 1, 0, 0, 0, 1, //
        0xff, 0x57, 0x80, 1, 0xa, 0xb, 0xc, 0xd,
    ];
    let (d, k, rest) = decap(&t, &geneve_frame(&opts, 0x6558, &inner));
    assert!(matches!(d, Decap::Inner { port: GENEVE, .. }), "{d:?}");
    assert_eq!(k.tun_metadata_present(), 1);
    assert_eq!(k.tun_metadata(0), 0x0a0b_0c0d);
    assert_eq!(rest, inner);
    // Known class/type but another length than mapped, critical: dropped.
    let wrong_len = [0xff, 0x57, 0x80, 2, 0, 0, 0, 1, 0, 0, 0, 2];
    let (d, ..) = decap(&t, &geneve_frame(&wrong_len, 0x6558, &inner));
    assert_eq!(d, Decap::Drop(TunnelDrop::CriticalOption));
}

#[test]
fn malformed_and_foreign_frames() {
    let t = tunnels(1500);
    let inner = inner_tcp4(0);
    // Option overrunning the options area.
    let bad = [0xff, 0x57, 0x80, 3, 0, 0, 0, 1];
    let (d, ..) = decap(&t, &geneve_frame(&bad, 0x6558, &inner));
    assert_eq!(d, Decap::Drop(TunnelDrop::Malformed));
    // Version 1.
    let mut f = geneve_frame(&[], 0x6558, &inner);
    f[42] |= 0x40;
    assert_eq!(decap(&t, &f).0, Decap::Drop(TunnelDrop::Malformed));
    // Unsupported protocol type (MPLS).
    let f = geneve_frame(&[], 0x8847, &inner);
    assert_eq!(decap(&t, &f).0, Decap::Drop(TunnelDrop::Unsupported));
    // Empty inner.
    let f = geneve_frame(&[], 0x6558, &[]);
    assert_eq!(decap(&t, &f).0, Decap::Drop(TunnelDrop::Malformed));
    // UDP length beyond the IP payload.
    let mut f = geneve_frame(&[], 0x6558, &inner);
    let l = u16::from_be_bytes([f[38], f[39]]) + 4;
    f[38..40].copy_from_slice(&l.to_be_bytes());
    assert_eq!(decap(&t, &f).0, Decap::Drop(TunnelDrop::Malformed));
    // Not for us: another destination IP, another UDP port, not IP.
    let mut f = geneve_frame(&[], 0x6558, &inner);
    f[33] = 99;
    assert_eq!(decap(&t, &f).0, Decap::NotTunnel);
    let mut f = geneve_frame(&[], 0x6558, &inner);
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    assert_eq!(decap(&t, &f).0, Decap::NotTunnel);
    assert_eq!(decap(&t, &inner).0, Decap::NotTunnel);
    // VXLAN without the I flag.
    let b = PacketBuilder::ethernet2(NH_MAC.0, LOCAL_MAC.0)
        .ipv4(REMOTE4.octets(), LOCAL4.octets(), 64)
        .udp(50000, 4789);
    let mut v = Vec::new();
    let mut payload = vec![0u8, 0, 0, 0, 0, 0, 1, 0];
    payload.extend_from_slice(&inner);
    b.write(&mut v, &payload).unwrap();
    assert_eq!(decap(&t, &v).0, Decap::Drop(TunnelDrop::Malformed));
}

#[test]
fn ip_payload_gets_a_dummy_ethernet_header() {
    let t = tunnels(1500);
    let inner = inner_tcp4(4);
    let f = geneve_frame(&[], 0x0800, &inner[14..]);
    let (d, k, rest) = decap(&t, &f);
    assert!(
        matches!(
            d,
            Decap::Inner {
                dummy_eth: true,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(&rest[..14], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0]);
    assert_eq!(&rest[14..], &inner[14..]);
    assert_eq!(k.tun_id(), 5);
}

#[test]
fn fixed_ports_win_over_the_flow_based_port() {
    let fixed_remote = PortNo(20);
    let fixed_both = PortNo(21);
    let fixed_key = PortNo(22);
    let t = Tunnels::new(
        vec![
            TunnelPort::new(GENEVE, TunnelKind::Geneve, TunnelConfig::default()),
            TunnelPort::new(
                fixed_remote,
                TunnelKind::Geneve,
                TunnelConfig {
                    remote_ip: Some(IpAddr::V4(REMOTE4)),
                    ..TunnelConfig::default()
                },
            ),
            TunnelPort::new(
                fixed_both,
                TunnelKind::Geneve,
                TunnelConfig {
                    remote_ip: Some(IpAddr::V4(REMOTE4)),
                    key: Some(9),
                    ..TunnelConfig::default()
                },
            ),
            TunnelPort::new(
                fixed_key,
                TunnelKind::Geneve,
                TunnelConfig {
                    key: Some(5),
                    ..TunnelConfig::default()
                },
            ),
        ],
        Some(underlay(1500)),
        NextHops::default(),
        TlvMap::default(),
    )
    .unwrap();
    let inner = inner_tcp4(0);
    // VNI 5 from REMOTE4: fixed remote (score 2) beats fixed key (1).
    let f = geneve_frame(&[], 0x6558, &inner);
    assert!(matches!(decap(&t, &f).0, Decap::Inner { port, .. } if port == fixed_remote));
    // VNI 9 from REMOTE4: both fixed.
    let mut f9 = f.clone();
    f9[48] = 9;
    assert!(matches!(decap(&t, &f9).0, Decap::Inner { port, .. } if port == fixed_both));
    // VNI 5 from another remote: fixed key.
    let mut g = geneve_frame(&[], 0x6558, &inner);
    g[29] = 8;
    assert!(matches!(decap(&t, &g).0, Decap::Inner { port, .. } if port == fixed_key));
    // VNI 6 from another remote: the flow-based port.
    g[48] = 6;
    assert!(matches!(decap(&t, &g).0, Decap::Inner { port: GENEVE, .. }));
}

/// The outer header checks decap does straight on the bytes: IPv4
/// options (IHL > 5) shift the UDP header, fragments and inconsistent
/// lengths are not tunnel traffic, a port's own `local_ip` is a local
/// endpoint next to the underlay's, and a VXLAN port on another UDP port
/// is recognised by that port (the precomputed listeners).
#[test]
fn outer_header_checks_and_listeners() {
    let inner = inner_tcp4(0);
    let t = tunnels(1500);
    // 4 bytes of IPv4 options (NOPs): IHL 6, total length + 4.
    let plain = geneve_frame(&[], 0x6558, &inner);
    let mut f = plain[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 1]);
    f.extend_from_slice(&plain[34..]);
    f[14] = 0x46;
    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    let (d, k, rest) = decap(&t, &f);
    assert!(
        matches!(
            d,
            Decap::Inner {
                port: GENEVE,
                outer_len: 54,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(rest, inner);
    assert_eq!(k.tun_src(), REMOTE4);
    assert_eq!(k.tun_id(), 5);
    // MF set, or a fragment offset: not ours (goes to the host).
    for (b6, b7) in [(0x20, 0), (0, 1), (0x40 | 0x20, 0)] {
        let mut g = plain.clone();
        g[20] = b6;
        g[21] = b7;
        assert_eq!(decap(&t, &g).0, Decap::NotTunnel, "frag {b6:#x} {b7:#x}");
    }
    // DF alone is fine and shows in tun_flags.
    let mut g = plain.clone();
    g[20] = 0x40;
    let (d, k, _) = decap(&t, &g);
    assert!(matches!(d, Decap::Inner { .. }));
    assert_ne!(k.tun_flags() & TUN_FLAG_DONT_FRAGMENT, 0);
    // IPv4 total length beyond the frame, IHL below 5, version 5: not ours.
    for (at, v) in [(16, 0xff), (14, 0x44), (14, 0x55)] {
        let mut g = plain.clone();
        g[at] = v;
        assert_eq!(decap(&t, &g).0, Decap::NotTunnel, "byte {at} = {v:#x}");
    }
    // IPv6 payload length beyond the frame: not ours.
    let (k6, l6) = key_of(&inner);
    let mut k6 = k6;
    k6.set_tun_ipv6_dst(REMOTE6);
    let mut pkt = PacketBuf::from_slice(&inner);
    let rx = Tunnels::new(
        t.ports().to_vec(),
        Some(Underlay {
            local_ipv4: Some(REMOTE4),
            local_ipv6: Some(REMOTE6),
            ..underlay(1500)
        }),
        NextHops::default(),
        tlv(),
    )
    .unwrap();
    let n = t
        .encap(t.port(GENEVE).unwrap(), &k6, &l6, &mut pkt)
        .unwrap();
    let v6 = pkt.data().to_vec();
    assert!(pkt.pull_front(n));
    assert!(matches!(
        decap(&rx, &v6).0,
        Decap::Inner { port: GENEVE, .. }
    ));
    let mut g = v6.clone();
    g[18] = 0xff;
    assert_eq!(decap(&rx, &g).0, Decap::NotTunnel);
    // A port with its own local_ip: that address and the underlay's are
    // both local endpoints; a VXLAN port on UDP 8472 is found by it.
    let own = Ipv4Addr::new(192, 0, 2, 50);
    let t2 = Tunnels::new(
        vec![
            TunnelPort::new(
                GENEVE,
                TunnelKind::Geneve,
                TunnelConfig {
                    local_ip: Some(IpAddr::V4(own)),
                    ..TunnelConfig::default()
                },
            ),
            TunnelPort::new(
                VXLAN,
                TunnelKind::Vxlan,
                TunnelConfig {
                    dst_port: Some(8472),
                    ..TunnelConfig::default()
                },
            ),
        ],
        Some(underlay(1500)),
        NextHops::default(),
        TlvMap::default(),
    )
    .unwrap();
    let mut g = plain.clone();
    g[30..34].copy_from_slice(&own.octets());
    assert!(matches!(
        decap(&t2, &g).0,
        Decap::Inner { port: GENEVE, .. }
    ));
    assert!(matches!(
        decap(&t2, &plain).0,
        Decap::Inner { port: GENEVE, .. }
    ));
    g[33] = 51;
    assert_eq!(decap(&t2, &g).0, Decap::NotTunnel);
    let b = PacketBuilder::ethernet2(NH_MAC.0, LOCAL_MAC.0)
        .ipv4(REMOTE4.octets(), LOCAL4.octets(), 64)
        .udp(50000, 8472);
    let mut v = Vec::new();
    let mut payload = vec![vxlan::FLAG_I, 0, 0, 0, 0, 0, 7, 0];
    payload.extend_from_slice(&inner);
    b.write(&mut v, &payload).unwrap();
    let (d, k, rest) = decap(&t2, &v);
    assert!(
        matches!(
            d,
            Decap::Inner {
                port: VXLAN,
                kind: TunnelKind::Vxlan,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(k.tun_id(), 7);
    assert_eq!(rest, inner);
    // The default VXLAN port is not listened on by t2.
    let b = PacketBuilder::ethernet2(NH_MAC.0, LOCAL_MAC.0)
        .ipv4(REMOTE4.octets(), LOCAL4.octets(), 64)
        .udp(50000, 4789);
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    assert_eq!(decap(&t2, &v).0, Decap::NotTunnel);
}

#[test]
fn tlv_map_and_config_validation() {
    let m = |class, t, len, slot| TlvMapping {
        class,
        r#type: t,
        len,
        slot,
    };
    assert!(
        TlvMap::new(&[m(1, 2, 4, 8)])
            .unwrap_err()
            .to_string()
            .contains("tun_metadata8")
    );
    assert!(TlvMap::new(&[m(1, 2, 12, 0)]).is_err());
    assert!(TlvMap::new(&[m(1, 2, 0, 0)]).is_err());
    assert!(TlvMap::new(&[m(1, 2, 4, 0), m(1, 2, 4, 1)]).is_err());
    assert!(TlvMap::new(&[m(1, 2, 4, 0), m(1, 3, 4, 0)]).is_err());
    let ok = TlvMap::new(&[m(1, 3, 8, 4), m(1, 2, 4, 0)]).unwrap();
    assert_eq!(ok.mappings(), vec![m(1, 2, 4, 0), m(1, 3, 8, 4)]);
    assert_eq!(ok.find(1, 3), Some((4, 8)));

    let g = |p| TunnelPort::new(PortNo(p), TunnelKind::Geneve, TunnelConfig::default());
    let e = Tunnels::new(
        vec![g(3), g(4)],
        None,
        NextHops::default(),
        TlvMap::default(),
    );
    assert!(e.unwrap_err().to_string().contains("second flow-based"));
    let e = Tunnels::new(
        vec![g(3), g(3)],
        None,
        NextHops::default(),
        TlvMap::default(),
    );
    assert!(e.unwrap_err().to_string().contains("twice"));
    let e = Tunnels::new(
        vec![g(1)],
        Some(underlay(1500)),
        NextHops::default(),
        TlvMap::default(),
    );
    assert!(e.unwrap_err().to_string().contains("also a tunnel port"));
    let e = Tunnels::new(
        vec![g(3)],
        Some(Underlay {
            local_ipv4: None,
            local_ipv6: None,
            ..underlay(1500)
        }),
        NextHops::default(),
        TlvMap::default(),
    );
    assert!(e.unwrap_err().to_string().contains("no local"));
}

#[test]
fn encap_drops() {
    let t = tunnels(1500);
    let inner = inner_tcp4(0);
    assert_eq!(
        encap(&t, GENEVE, &inner, |_| {}),
        Err(EncapError::Drop(TunnelDrop::NoRemote))
    );
    let other = Ipv4Addr::new(192, 0, 2, 99);
    assert_eq!(
        encap(&t, GENEVE, &inner, |k| k.set_tun_dst(other)),
        Err(EncapError::NoNextHop(IpAddr::V4(other)))
    );
    let no_v6 = with_underlay(
        &tunnels(1500),
        Underlay {
            local_ipv6: None,
            ..underlay(1500)
        },
    );
    assert_eq!(
        encap(&no_v6, GENEVE, &inner, |k| k.set_tun_ipv6_dst(REMOTE6)),
        Err(EncapError::Drop(TunnelDrop::NoLocalIp))
    );
}

#[test]
fn overhead_and_pod_mtu() {
    assert_eq!(pod_mtu(1500, TunnelKind::Vxlan, false, 0), 1450);
    assert_eq!(pod_mtu(1500, TunnelKind::Geneve, false, 8), 1442);
    assert_eq!(pod_mtu(1500, TunnelKind::Geneve, true, 0), 1430);
    let t = tunnels(1500);
    assert_eq!(t.pod_mtu_of(VXLAN, 0), Some(1450));
    assert_eq!(t.pod_mtu_of(GENEVE, 8), Some(1442));
    // The largest inner packet that fits is exactly the pod MTU.
    let fits = inner_tcp4(1450 - 40);
    assert!(encap(&t, VXLAN, &fits, |k| k.set_tun_dst(REMOTE4)).is_ok());
    let over = inner_tcp4(1450 - 40 + 1);
    assert_eq!(
        encap(&t, VXLAN, &over, |k| k.set_tun_dst(REMOTE4)),
        Err(EncapError::TooBig { inner_mtu: 1450 })
    );
}

#[test]
fn icmp_frag_needed_bytes() {
    let inner = inner_tcp4(1500);
    let (_, layers) = key_of(&inner);
    let mut out = [0u8; 1536];
    let n = too_big_reply(&inner, &layers, 1450, &mut out).unwrap();
    let f = &out[..n];
    assert_eq!(n, 14 + 576, "RFC 1812: at most 576 bytes of IP");
    assert_eq!(&f[..6], &inner[6..12]);
    assert_eq!(&f[6..12], &inner[..6]);
    let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 244, 2, 3));
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 244, 1, 2));
    let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((u8::from(icmp.msg_type()), icmp.msg_code()), (3, 4));
    assert_eq!(icmp.next_hop_mtu(), 1450);
    assert_eq!(&icmp.data()[..20], &inner[14..34], "original header quoted");
    // etherparse agrees.
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = p.transport else {
        panic!("no ICMP");
    };
    assert!(matches!(
        i.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1450 }
        )
    ));
    // No DF: no ICMP.
    let mut out = [0u8; 1536];
    let mut nodf = inner.clone();
    let mut ip = ipv4::Packet::new_unchecked(&mut nodf[14..]);
    ip.set_dont_frag(false);
    ip.fill_checksum();
    assert_eq!(
        too_big_reply(&nodf, &layers, 1450, &mut out),
        Err(IcmpError::NoDontFragment)
    );
}

#[test]
fn icmpv6_packet_too_big_bytes() {
    let inner = inner_udp6(1600);
    let (_, layers) = key_of(&inner);
    let mut out = [0u8; 1536];
    let n = too_big_reply(&inner, &layers, 1430, &mut out).unwrap();
    let f = &out[..n];
    assert_eq!(n, 14 + 1280, "RFC 4443: at most the minimum MTU");
    let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    assert_eq!(dst, "fd00::2".parse::<Ipv6Addr>().unwrap());
    let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(src, dst));
    assert_eq!(u8::from(icmp.msg_type()), 2);
    assert_eq!(icmp.rest_of_header(), 1430u32.to_be_bytes());
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Icmpv6(i)) = p.transport else {
        panic!("no ICMPv6");
    };
    assert!(matches!(
        i.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1430 }
    ));
    // Below the IPv6 minimum, 1280 is reported.
    let mut out = [0u8; 1536];
    let n = too_big_reply(&inner, &layers, 1000, &mut out).unwrap();
    let ip = ipv6::Packet::new_checked(&out[14..n]).unwrap();
    assert_eq!(&ip.payload()[4..8], &1280u32.to_be_bytes());
}

#[test]
fn one_kind_per_udp_port() {
    let e = Tunnels::new(
        vec![
            TunnelPort::new(PortNo(3), TunnelKind::Geneve, TunnelConfig::default()),
            TunnelPort::new(
                PortNo(4),
                TunnelKind::Vxlan,
                TunnelConfig {
                    dst_port: Some(6081),
                    ..TunnelConfig::default()
                },
            ),
        ],
        None,
        NextHops::default(),
        TlvMap::default(),
    );
    assert!(e.unwrap_err().to_string().contains("other kind"));
}

proptest::proptest! {
    /// Encap then decap on the receiving node gives back the inner frame
    /// and the tunnel fields, for random VNIs, options, TTL/TOS, inner
    /// sizes, kinds and underlay families.
    #[test]
    fn encap_decap_round_trip(
        vni in 0u32..=0xff_ffff,
        present in 0u8..4,
        m0 in proptest::prelude::any::<u32>(),
        m1 in proptest::prelude::any::<u64>(),
        ttl in 1u8..=255,
        tos in proptest::prelude::any::<u8>(),
        payload in 0usize..1400,
        geneve in proptest::prelude::any::<bool>(),
        v6 in proptest::prelude::any::<bool>(),
    ) {
        let t = tunnels(9000);
        let port = if geneve { GENEVE } else { VXLAN };
        let inner = inner_tcp4(payload);
        let out = encap(&t, port, &inner, |k| {
            if v6 { k.set_tun_ipv6_dst(REMOTE6) } else { k.set_tun_dst(REMOTE4) }
            k.set_tun_id(u64::from(vni));
            k.set_tun_ttl(ttl);
            k.set_tun_tos(tos);
            if present & 1 != 0 { k.set_tun_metadata(0, u64::from(m0)); }
            if present & 2 != 0 { k.set_tun_metadata(1, m1); }
        }).unwrap();
        let rx = with_underlay(&tunnels(9000), Underlay {
            local_ipv4: Some(REMOTE4),
            local_ipv6: Some(REMOTE6),
            ..underlay(9000)
        });
        // Outer checksums (the IPv4 one patched from the template's sum
        // for this TOS, TTL and length; IPv6's UDP one over everything).
        if v6 {
            let u = udp::Packet::new_checked(&out[54..]).unwrap();
            proptest::prop_assert!(u.verify_checksum_v6(LOCAL6, REMOTE6));
        } else {
            proptest::prop_assert!(ipv4::Packet::new_checked(&out[14..]).unwrap().verify_checksum());
        }
        let (d, k, rest) = decap(&rx, &out);
        let is_inner = matches!(d, Decap::Inner { port: p, .. } if p == port);
        proptest::prop_assert!(is_inner, "{:?}", d);
        proptest::prop_assert_eq!(rest, inner);
        proptest::prop_assert_eq!(k.tun_id(), u64::from(vni));
        proptest::prop_assert_eq!((k.tun_ttl(), k.tun_tos()), (ttl, tos));
        let want = if geneve { present } else { 0 };
        proptest::prop_assert_eq!(k.tun_metadata_present(), want);
        if want & 1 != 0 { proptest::prop_assert_eq!(k.tun_metadata(0), u64::from(m0)); }
        if want & 2 != 0 { proptest::prop_assert_eq!(k.tun_metadata(1), m1); }
    }
}

/// The outer header templates follow the next hops: after
/// `with_next_hops` (what the daemon publishes when the kernel's neighbour
/// entry changes) the very next encapsulated frame carries the new MAC,
/// for both families; a removed next hop is a `NoNextHop` drop again.
#[test]
fn changed_neighbour_mac_shows_in_the_next_frame() {
    let t = tunnels(1500);
    let inner = inner_tcp4(20);
    let v4 = |k: &mut FlowKey| k.set_tun_dst(REMOTE4);
    let v6 = |k: &mut FlowKey| k.set_tun_ipv6_dst(REMOTE6);
    assert_eq!(encap(&t, GENEVE, &inner, v4).unwrap()[..6], NH_MAC.0);
    let new_mac = EthernetAddress([2, 0, 0, 0, 0, 0x77]);
    let t2 = t.with_next_hops(NextHops::from_entries([
        (IpAddr::V4(REMOTE4), new_mac),
        (IpAddr::V6(REMOTE6), new_mac),
    ]));
    for port in [GENEVE, VXLAN] {
        assert_eq!(encap(&t2, port, &inner, v4).unwrap()[..6], new_mac.0);
        assert_eq!(encap(&t2, port, &inner, v6).unwrap()[..6], new_mac.0);
    }
    // The old snapshot is untouched (workers still on it send the old MAC).
    assert_eq!(encap(&t, VXLAN, &inner, v6).unwrap()[..6], NH_MAC.0);
    let t3 = t2.with_next_hops(NextHops::from_entries([(IpAddr::V6(REMOTE6), new_mac)]));
    assert_eq!(
        encap(&t3, GENEVE, &inner, v4),
        Err(EncapError::NoNextHop(IpAddr::V4(REMOTE4)))
    );
    assert_eq!(encap(&t3, GENEVE, &inner, v6).unwrap()[..6], new_mac.0);
}

/// A port value that is not the snapshot's (no cached template) is
/// encapsulated through a template built for the packet: the same bytes
/// as the cached path, for every kind, family, and option count.
#[test]
fn uncached_port_gives_the_same_bytes_as_the_template() {
    let t = tunnels(1500);
    let inner = inner_tcp4(50);
    for (port, kind) in [(GENEVE, TunnelKind::Geneve), (VXLAN, TunnelKind::Vxlan)] {
        for v6 in [false, true] {
            for opts in [false, true] {
                let (mut k, layers) = key_of(&inner);
                if v6 {
                    k.set_tun_ipv6_dst(REMOTE6);
                } else {
                    k.set_tun_dst(REMOTE4);
                }
                k.set_tun_id(0x12_3456);
                k.set_tun_ttl(17);
                k.set_tun_tos(0xb8);
                if opts {
                    k.set_tun_metadata(0, 7);
                    k.set_tun_metadata(1, 0x0102_0304_0506_0708);
                }
                let cached = encap(&t, port, &inner, |x| *x = k).unwrap();
                // Same kind and options, but a different value than the
                // snapshot's port under that number.
                let other = TunnelPort::new(
                    port,
                    kind,
                    TunnelConfig {
                        dst_port: Some(kind.default_port()),
                        ..TunnelConfig::default()
                    },
                );
                assert!(t.template(&other, IpAddr::V4(REMOTE4)).is_none());
                let mut pkt = PacketBuf::from_slice(&inner);
                let n = t.encap(&other, &k, &layers, &mut pkt).unwrap();
                assert_eq!(pkt.data(), &cached[..], "{kind} v6={v6} opts={opts}");
                assert!(pkt.pull_front(n));
            }
        }
    }
}

/// The next-hop index finds every entry among many, and nothing else.
#[test]
fn next_hop_index_finds_every_entry() {
    let entries: Vec<(IpAddr, EthernetAddress)> = (0..700u32)
        .map(|i| {
            let ip = if i % 3 == 0 {
                IpAddr::V6(Ipv6Addr::from_bits(0x2001_0db8_u128 << 96 | u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | i << 4))
            };
            (
                ip,
                EthernetAddress([2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
            )
        })
        .collect();
    let h = NextHops::from_entries(entries.iter().copied());
    for (ip, mac) in &entries {
        assert_eq!(h.get(*ip), Some(*mac), "{ip}");
    }
    assert_eq!(h.get(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), None);
    assert_eq!(h.get(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    assert_eq!(NextHops::default().get(IpAddr::V4(REMOTE4)), None);
}
