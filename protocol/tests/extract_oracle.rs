//! Differential test of `protocol::flow::extract` against etherparse.
//!
//! Packets (Ethernet, 0 to 2 VLAN tags, IPv4 or IPv6, TCP/UDP/ICMP with
//! random fields and payload) are built with etherparse's `PacketBuilder`,
//! extracted with ours and decoded with etherparse's `SlicedPacket` (or
//! `LaxSlicedPacket` where the strict slicer refuses a packet, e.g. an ICMP
//! type whose body it wants longer). Every field both decoders report must
//! agree. A second property feeds arbitrary bytes: `extract` must not panic
//! and every layer offset must lie inside the frame.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use core::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpDscp, IpEcn, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header,
    LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, LinkExtSlice, LinkSlice, NetSlice,
    PacketBuilder, SingleVlanHeader, SingleVlanSlice, SlicedPacket, TcpHeader, TransportSlice,
    VlanHeader, VlanId, VlanPcp,
};
use proptest::prelude::*;
use protocol::flow::{ExtractConfig, FlowKey, Layers, extract};
use protocol::wire::EthernetAddress;

#[derive(Debug, Clone)]
struct Tag {
    pcp: u8,
    dei: bool,
    vid: u16,
}

#[derive(Debug, Clone)]
enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        dscp: u8,
        ecn: u8,
        df: bool,
        ident: u16,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        hop: u8,
        tc: u8,
        label: u32,
    },
}

#[derive(Debug, Clone)]
enum L4 {
    Tcp {
        sp: u16,
        dp: u16,
        seq: u32,
        win: u16,
        flags: u16,
    },
    Udp {
        sp: u16,
        dp: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
    },
}

#[derive(Debug, Clone)]
struct Spec {
    src: [u8; 6],
    dst: [u8; 6],
    tags: Vec<Tag>,
    ip: Ip,
    l4: L4,
    payload: Vec<u8>,
}

fn tag() -> impl Strategy<Value = Tag> {
    (0u8..8, any::<bool>(), 0u16..4096).prop_map(|(pcp, dei, vid)| Tag { pcp, dei, vid })
}

fn ip() -> impl Strategy<Value = Ip> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0u8..64,
            0u8..4,
            any::<bool>(),
            any::<u16>()
        )
            .prop_map(|(src, dst, ttl, dscp, ecn, df, ident)| Ip::V4 {
                src,
                dst,
                ttl,
                dscp,
                ecn,
                df,
                ident
            }),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            any::<u8>(),
            0u32..(1 << 20)
        )
            .prop_map(|(src, dst, hop, tc, label)| Ip::V6 {
                src,
                dst,
                hop,
                tc,
                label
            }),
    ]
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            0u16..0x200
        )
            .prop_map(|(sp, dp, seq, win, flags)| L4::Tcp {
                sp,
                dp,
                seq,
                win,
                flags
            }),
        (any::<u16>(), any::<u16>()).prop_map(|(sp, dp)| L4::Udp { sp, dp }),
        (any::<u8>(), any::<u8>(), any::<[u8; 4]>()).prop_map(|(ty, code, rest)| L4::Icmp {
            ty,
            code,
            rest
        }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        prop::collection::vec(tag(), 0..=2),
        ip(),
        l4(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(src, dst, tags, ip, l4, payload)| Spec {
            src,
            dst,
            tags,
            ip,
            l4,
            payload,
        })
}

fn vlan_hdr(t: &Tag) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::try_new(t.pcp).unwrap(),
        drop_eligible_indicator: t.dei,
        vlan_id: VlanId::try_new(t.vid).unwrap(),
        ether_type: etherparse::EtherType(0),
    }
}

fn build(s: &Spec) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(s.src, s.dst);
    let ip_headers = match &s.ip {
        Ip::V4 {
            src,
            dst,
            ttl,
            dscp,
            ecn,
            df,
            ident,
        } => {
            let mut h = Ipv4Header::new(0, *ttl, IpNumber::UDP, *src, *dst).unwrap();
            h.dscp = IpDscp::try_new(*dscp).unwrap();
            h.ecn = IpEcn::try_new(*ecn).unwrap();
            h.dont_fragment = *df;
            h.identification = *ident;
            h.fragment_offset = IpFragOffset::ZERO;
            IpHeaders::Ipv4(h, Default::default())
        }
        Ip::V6 {
            src,
            dst,
            hop,
            tc,
            label,
        } => IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: *tc,
                flow_label: Ipv6FlowLabel::try_new(*label).unwrap(),
                payload_length: 0,
                next_header: IpNumber::UDP,
                hop_limit: *hop,
                source: *src,
                destination: *dst,
            },
            Default::default(),
        ),
    };
    let is_v6 = matches!(s.ip, Ip::V6 { .. });
    let ipb = match s.tags.as_slice() {
        [] => eth.ip(ip_headers),
        [t] => eth.vlan(VlanHeader::Single(vlan_hdr(t))).ip(ip_headers),
        [o, i] => eth
            .vlan(VlanHeader::Double(etherparse::DoubleVlanHeader {
                outer: vlan_hdr(o),
                inner: vlan_hdr(i),
            }))
            .ip(ip_headers),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    match &s.l4 {
        L4::Tcp {
            sp,
            dp,
            seq,
            win,
            flags,
        } => {
            let mut h = TcpHeader::new(*sp, *dp, *seq, *win);
            h.fin = flags & 0x001 != 0;
            h.syn = flags & 0x002 != 0;
            h.rst = flags & 0x004 != 0;
            h.psh = flags & 0x008 != 0;
            h.ack = flags & 0x010 != 0;
            h.urg = flags & 0x020 != 0;
            h.ece = flags & 0x040 != 0;
            h.cwr = flags & 0x080 != 0;
            h.ns = flags & 0x100 != 0;
            ipb.tcp_header(h).write(&mut out, &s.payload).unwrap();
        }
        L4::Udp { sp, dp } => ipb.udp(*sp, *dp).write(&mut out, &s.payload).unwrap(),
        L4::Icmp { ty, code, rest } if is_v6 => ipb
            .icmpv6_raw(*ty, *code, *rest)
            .write(&mut out, &s.payload)
            .unwrap(),
        L4::Icmp { ty, code, rest } => ipb
            .icmpv4_raw(*ty, *code, *rest)
            .write(&mut out, &s.payload)
            .unwrap(),
    }
    out
}

/// What etherparse says, reduced to the fields the flow key has.
#[derive(Debug, Default)]
struct Decoded {
    dst: [u8; 6],
    src: [u8; 6],
    /// (TPID, PCP, DEI, VID) per tag.
    tags: Vec<(u16, u8, bool, u16)>,
    ether_type: u16,
    v4: Option<(Ipv4Addr, Ipv4Addr, u8, u8, u8, u8)>,
    v6: Option<(Ipv6Addr, Ipv6Addr, u8, u8, u8, u32)>,
    ports: Option<(u16, u16)>,
    tcp_flags: Option<u16>,
    icmp: Option<(u8, u8)>,
}

fn tcp_flags(t: &etherparse::TcpSlice<'_>) -> u16 {
    [
        t.fin(),
        t.syn(),
        t.rst(),
        t.psh(),
        t.ack(),
        t.urg(),
        t.ece(),
        t.cwr(),
        t.ns(),
    ]
    .iter()
    .enumerate()
    .map(|(i, b)| u16::from(*b) << i)
    .sum()
}

fn link_part<'a>(
    d: &mut Decoded,
    link: &Option<LinkSlice<'_>>,
    vlans: impl Iterator<Item = &'a SingleVlanSlice<'a>>,
) -> Option<()> {
    let Some(LinkSlice::Ethernet2(e)) = link else {
        return None;
    };
    d.dst = e.destination();
    d.src = e.source();
    let mut tpid = e.ether_type().0;
    for v in vlans {
        d.tags.push((
            tpid,
            v.priority_code_point().value(),
            v.drop_eligible_indicator(),
            v.vlan_identifier().value(),
        ));
        tpid = v.ether_type().0;
    }
    d.ether_type = tpid;
    Some(())
}

fn transport_part(d: &mut Decoded, t: &Option<TransportSlice<'_>>) {
    match t {
        Some(TransportSlice::Tcp(t)) => {
            d.ports = Some((t.source_port(), t.destination_port()));
            d.tcp_flags = Some(tcp_flags(t));
        }
        Some(TransportSlice::Udp(u)) => {
            d.ports = Some((u.source_port(), u.destination_port()));
        }
        Some(TransportSlice::Icmpv4(i)) => d.icmp = Some((i.type_u8(), i.code_u8())),
        Some(TransportSlice::Icmpv6(i)) => d.icmp = Some((i.type_u8(), i.code_u8())),
        _ => {}
    }
}

fn v4_part(h: &etherparse::Ipv4HeaderSlice<'_>, proto: u8) -> (Ipv4Addr, Ipv4Addr, u8, u8, u8, u8) {
    (
        h.source_addr(),
        h.destination_addr(),
        proto,
        h.ttl(),
        h.dcp().value(),
        h.ecn().value(),
    )
}

fn v6_part(
    h: &etherparse::Ipv6HeaderSlice<'_>,
    proto: u8,
) -> (Ipv6Addr, Ipv6Addr, u8, u8, u8, u32) {
    (
        h.source_addr(),
        h.destination_addr(),
        proto,
        h.hop_limit(),
        h.traffic_class(),
        h.flow_label().value(),
    )
}

fn decode(frame: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    if let Ok(p) = SlicedPacket::from_ethernet(frame) {
        let vlans = p.link_exts.iter().filter_map(|x| match x {
            LinkExtSlice::Vlan(v) => Some(v),
            _ => None,
        });
        link_part(&mut d, &p.link, vlans).unwrap();
        match &p.net {
            Some(NetSlice::Ipv4(s)) => d.v4 = Some(v4_part(&s.header(), s.payload().ip_number.0)),
            Some(NetSlice::Ipv6(s)) => d.v6 = Some(v6_part(&s.header(), s.payload().ip_number.0)),
            _ => {}
        }
        transport_part(&mut d, &p.transport);
    } else {
        let p = LaxSlicedPacket::from_ethernet(frame).unwrap();
        let vlans = p.link_exts.iter().filter_map(|x| match x {
            LaxLinkExtSlice::Vlan(v) => Some(v),
            _ => None,
        });
        link_part(&mut d, &p.link, vlans).unwrap();
        match &p.net {
            Some(LaxNetSlice::Ipv4(s)) => {
                d.v4 = Some(v4_part(&s.header(), s.payload().ip_number.0))
            }
            Some(LaxNetSlice::Ipv6(s)) => {
                d.v6 = Some(v6_part(&s.header(), s.payload().ip_number.0))
            }
            _ => {}
        }
        transport_part(&mut d, &p.transport);
    }
    d
}

fn check(s: &Spec) -> Result<(), TestCaseError> {
    let frame = build(s);
    let d = decode(&frame);
    let mut k = FlowKey::default();
    k.set_in_port(42);
    let ex = extract(&frame, &ExtractConfig { vlan_limit: 2 }, &mut k);
    // Well-formed packets extract without error, to the end of L4.
    prop_assert_eq!(ex.error, None);
    prop_assert_eq!(k.in_port(), 42);
    prop_assert_eq!(k.dl_dst(), EthernetAddress(d.dst));
    prop_assert_eq!(k.dl_src(), EthernetAddress(d.src));
    prop_assert_eq!(k.dl_type(), d.ether_type);
    prop_assert_eq!(d.tags.len(), s.tags.len());
    let ours = [
        (k.vlan0_tpid(), k.vlan0_tci()),
        (k.vlan1_tpid(), k.vlan1_tci()),
    ];
    for (i, (tpid, pcp, _dei, vid)) in d.tags.iter().enumerate() {
        // The packet's DEI is replaced by the "present" bit.
        let tci = (u16::from(*pcp) << 13) | 0x1000 | vid;
        prop_assert_eq!(ours[i], (*tpid, tci));
    }
    for o in ours.iter().skip(d.tags.len()) {
        prop_assert_eq!(*o, (0, 0));
    }
    prop_assert_eq!(ex.layers.l2, 0);
    prop_assert_eq!(usize::from(ex.layers.l3), 14 + 4 * d.tags.len());
    if let Some((src, dst, proto, ttl, dscp, ecn)) = d.v4 {
        prop_assert_eq!(k.nw_src(), src);
        prop_assert_eq!(k.nw_dst(), dst);
        prop_assert_eq!(k.nw_proto(), proto);
        prop_assert_eq!(k.nw_ttl(), ttl);
        prop_assert_eq!(k.nw_tos(), (dscp << 2) | ecn);
        prop_assert_eq!(k.nw_frag(), 0);
        prop_assert_eq!(usize::from(ex.layers.l4), usize::from(ex.layers.l3) + 20);
    } else if let Some((src, dst, proto, hop, tc, label)) = d.v6 {
        prop_assert_eq!(k.ipv6_src(), src);
        prop_assert_eq!(k.ipv6_dst(), dst);
        prop_assert_eq!(k.nw_proto(), proto);
        prop_assert_eq!(k.nw_ttl(), hop);
        prop_assert_eq!(k.nw_tos(), tc);
        prop_assert_eq!(k.ipv6_label(), label);
        prop_assert_eq!(usize::from(ex.layers.l4), usize::from(ex.layers.l3) + 40);
    } else {
        prop_assert!(false, "etherparse found no IP header");
    }
    let mut checked_l4 = false;
    if let Some((sp, dp)) = d.ports {
        prop_assert_eq!((k.tp_src(), k.tp_dst()), (sp, dp));
        checked_l4 = true;
    }
    if let Some(f) = d.tcp_flags {
        prop_assert_eq!(k.tcp_flags(), f);
    } else {
        prop_assert_eq!(k.tcp_flags(), 0);
    }
    if let Some((ty, code)) = d.icmp {
        prop_assert_eq!((k.tp_src(), k.tp_dst()), (u16::from(ty), u16::from(code)));
        checked_l4 = true;
    }
    prop_assert!(checked_l4, "etherparse found no transport header");
    prop_assert!(ex.layers.l7 != Layers::NONE);
    prop_assert!(usize::from(ex.layers.l7) <= frame.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn agrees_with_etherparse(s in spec()) {
        check(&s)?;
    }

    #[test]
    fn never_panics_offsets_in_frame(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        vlan_limit in 0u8..4,
    ) {
        let mut k = FlowKey::default();
        k.set_reg(3, 7);
        let ex = extract(&bytes, &ExtractConfig { vlan_limit }, &mut k);
        for o in [ex.layers.l2, ex.layers.l3, ex.layers.l4, ex.layers.l7] {
            prop_assert!(o == Layers::NONE || usize::from(o) <= bytes.len());
        }
        prop_assert_eq!(k.reg(3), 7);
    }

    /// Arbitrary bytes after a valid Ethernet + IP prefix, so the fuzzing
    /// reaches L3/L4 parsing far more often than fully random bytes do.
    #[test]
    fn never_panics_structured_prefix(
        ty in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x0020]),
        first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x00]),
        rest in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ty.to_be_bytes());
        f.push(first);
        f.extend_from_slice(&rest);
        let mut k = FlowKey::default();
        let ex = extract(&f, &ExtractConfig { vlan_limit: 2 }, &mut k);
        for o in [ex.layers.l2, ex.layers.l3, ex.layers.l4, ex.layers.l7] {
            prop_assert!(o == Layers::NONE || usize::from(o) <= f.len());
        }
        // Offsets are ordered.
        let present: Vec<u16> = [ex.layers.l3, ex.layers.l4, ex.layers.l7]
            .into_iter()
            .filter(|o| *o != Layers::NONE)
            .collect();
        prop_assert!(present.windows(2).all(|w| w[0] <= w[1]));
    }
}
