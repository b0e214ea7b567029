//! Decoding a frame with OUR wire views and Reprs into tshark field names
//! and tshark's textual value forms.

use core::net::{Ipv4Addr, Ipv6Addr};

use protocol::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, GenevePacket, GeneveRepr, IpProtocol,
    ParseError, VxlanPacket, VxlanRepr, arp, icmpv4, icmpv6, ipv4, ipv6, sctp, tcp, udp, vlan,
};

/// One decoded header, named like tshark's layer.
pub(crate) struct Layer {
    pub(crate) proto: &'static str,
    pub(crate) fields: Vec<(&'static str, String)>,
}

/// The whole decode.
#[derive(Default)]
pub(crate) struct Decoded {
    pub(crate) layers: Vec<Layer>,
    /// The layer index (into `layers`) our decoder rejected, and why.
    pub(crate) error: Option<(usize, &'static str, ParseError)>,
    /// Disagreements between two of our own APIs (e.g. the extension
    /// header walk against the header views).
    pub(crate) internal: Vec<String>,
}

impl Decoded {
    fn push(&mut self, proto: &'static str) -> &mut Vec<(&'static str, String)> {
        self.layers.push(Layer {
            proto,
            fields: vec![],
        });
        &mut self.layers.last_mut().unwrap().fields
    }
    fn fail(&mut self, proto: &'static str, e: ParseError) {
        // The failing layer is the last one pushed if it has the same
        // name, else a new (empty) one.
        if self.layers.last().map(|l| l.proto) != Some(proto) {
            self.push(proto);
        }
        self.error = Some((self.layers.len() - 1, proto, e));
    }
}

#[derive(Clone, Copy)]
enum Net {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

fn mac(a: EthernetAddress) -> String {
    a.to_string()
}

fn status(ok: bool) -> String {
    if ok { "1" } else { "0" }.into()
}

fn b(v: bool) -> String {
    if v { "1" } else { "0" }.into()
}

/// Decodes an Ethernet frame.
pub(crate) fn decode(frame: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    ethernet(frame, &mut d);
    d
}

fn ethernet(bytes: &[u8], d: &mut Decoded) {
    let frame = match EthernetFrame::new_checked(bytes) {
        Ok(f) => f,
        Err(e) => return d.fail("eth", e),
    };
    let repr = match EthernetRepr::parse(&frame) {
        Ok(r) => r,
        Err(e) => return d.fail("eth", e),
    };
    let f = d.push("eth");
    f.push(("eth.dst", mac(repr.dst_addr)));
    f.push(("eth.src", mac(repr.src_addr)));
    f.push(("eth.type", format!("{:#06x}", u16::from(repr.ethertype))));
    ethertype_payload(repr.ethertype, frame.payload(), d);
}

fn ethertype_payload(et: EtherType, payload: &[u8], d: &mut Decoded) {
    match et {
        EtherType::Vlan | EtherType::QinQ => vlan_tag(et, payload, d),
        EtherType::Arp => arp_packet(payload, d),
        EtherType::Ipv4 => ipv4_packet(payload, d),
        EtherType::Ipv6 => ipv6_packet(payload, d),
        _ => {}
    }
}

fn vlan_tag(tpid: EtherType, bytes: &[u8], d: &mut Decoded) {
    // tshark: 802.1Q tags are "vlan"; an 802.1ad S-tag is "ieee8021ad".
    let proto = if tpid == EtherType::QinQ {
        "ieee8021ad"
    } else {
        "vlan"
    };
    let p = match vlan::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail(proto, e),
    };
    let repr = match vlan::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail(proto, e),
    };
    let f = d.push(proto);
    if proto == "vlan" {
        f.push(("vlan.priority", repr.pcp.to_string()));
        f.push(("vlan.dei", b(repr.dei)));
        f.push(("vlan.id", repr.vid.to_string()));
        f.push(("vlan.etype", format!("{:#06x}", u16::from(repr.ethertype))));
    } else {
        f.push(("ieee8021ad.priority", repr.pcp.to_string()));
        f.push(("ieee8021ad.dei", b(repr.dei)));
        f.push(("ieee8021ad.id", repr.vid.to_string()));
        // (sic: tshark 4.0 names the S-tag's EtherType field this way)
        f.push((
            "ieee8021ah.etype",
            format!("{:#06x}", u16::from(repr.ethertype)),
        ));
    }
    ethertype_payload(repr.ethertype, p.payload(), d);
}

fn arp_packet(bytes: &[u8], d: &mut Decoded) {
    let p = match arp::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("arp", e),
    };
    let repr = match arp::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("arp", e),
    };
    let f = d.push("arp");
    f.push(("arp.opcode", u16::from(repr.operation).to_string()));
    f.push(("arp.src.hw_mac", mac(repr.source_hardware_addr)));
    f.push(("arp.src.proto_ipv4", repr.source_protocol_addr.to_string()));
    f.push(("arp.dst.hw_mac", mac(repr.target_hardware_addr)));
    f.push(("arp.dst.proto_ipv4", repr.target_protocol_addr.to_string()));
}

fn ipv4_packet(bytes: &[u8], d: &mut Decoded) {
    let p = match ipv4::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("ip", e),
    };
    let csum_ok = p.verify_checksum();
    let repr = match ipv4::Repr::parse(&p) {
        Ok(r) => r,
        Err(ParseError::BadChecksum) => ipv4::Repr::parse_unverified(&p).unwrap(),
        Err(e) => return d.fail("ip", e),
    };
    let f = d.push("ip");
    f.push(("ip.version", p.version().to_string()));
    f.push(("ip.hdr_len", p.header_len().to_string()));
    f.push(("ip.len", p.total_len().to_string()));
    f.push(("ip.id", format!("{:#06x}", repr.ident)));
    f.push(("ip.flags.df", b(repr.dont_frag)));
    f.push(("ip.flags.mf", b(repr.more_frags)));
    // tshark shows the raw field (8-byte units); our Repr holds bytes.
    f.push(("ip.frag_offset", (repr.frag_offset / 8).to_string()));
    f.push(("ip.ttl", repr.ttl.to_string()));
    f.push(("ip.proto", u8::from(repr.next_header).to_string()));
    f.push(("ip.dsfield.dscp", repr.dscp.to_string()));
    f.push(("ip.dsfield.ecn", repr.ecn.to_string()));
    f.push(("ip.checksum.status", status(csum_ok)));
    f.push(("ip.src", repr.src_addr.to_string()));
    f.push(("ip.dst", repr.dst_addr.to_string()));
    if repr.frag_offset != 0 {
        return; // a later fragment: tshark shows data
    }
    let fragmented = repr.more_frags;
    l4(
        repr.next_header,
        p.payload(),
        Net::V4(repr.src_addr, repr.dst_addr),
        fragmented,
        d,
    );
}

fn ipv6_packet(bytes: &[u8], d: &mut Decoded) {
    let p = match ipv6::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("ipv6", e),
    };
    let repr = match ipv6::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("ipv6", e),
    };
    let f = d.push("ipv6");
    f.push(("ipv6.version", p.version().to_string()));
    f.push(("ipv6.tclass", format!("{:#010x}", repr.traffic_class)));
    f.push(("ipv6.tclass.dscp", p.dscp().to_string()));
    f.push(("ipv6.tclass.ecn", p.ecn().to_string()));
    f.push(("ipv6.flow", format!("{:#08x}", repr.flow_label)));
    f.push(("ipv6.plen", repr.payload_len.to_string()));
    f.push(("ipv6.nxt", u8::from(repr.next_header).to_string()));
    f.push(("ipv6.hlim", repr.hop_limit.to_string()));
    f.push(("ipv6.src", repr.src_addr.to_string()));
    f.push(("ipv6.dst", repr.dst_addr.to_string()));
    let payload = p.payload();
    // Walk the extension headers ourselves with the header views (to
    // report their fields), and cross-check `walk_extension_headers`.
    let walk = ipv6::walk_extension_headers(repr.next_header, payload);
    let mut next = repr.next_header;
    let mut rest = payload;
    let mut fragment = None;
    let mut later_fragment = false;
    loop {
        let f = &mut d.layers.last_mut().unwrap().fields;
        match next {
            IpProtocol::HopByHop | IpProtocol::Ipv6Opts | IpProtocol::Ipv6Route => {
                let h = match ipv6::ExtHeader::new_checked(rest) {
                    Ok(h) => h,
                    Err(e) => return d.fail("ipv6", e),
                };
                let name = match next {
                    IpProtocol::HopByHop => ["ipv6.hopopts.nxt", "ipv6.hopopts.len"],
                    IpProtocol::Ipv6Opts => ["ipv6.dstopts.nxt", "ipv6.dstopts.len"],
                    _ => ["ipv6.routing.nxt", "ipv6.routing.len"],
                };
                f.push((name[0], u8::from(h.next_header()).to_string()));
                f.push((name[1], h.hdr_ext_len().to_string()));
                if next == IpProtocol::Ipv6Route {
                    f.push(("ipv6.routing.type", h.data()[0].to_string()));
                    f.push(("ipv6.routing.segleft", h.data()[1].to_string()));
                }
                next = h.next_header();
                rest = h.payload();
            }
            IpProtocol::Ipv6Frag => {
                let h = match ipv6::FragmentHeader::new_checked(rest) {
                    Ok(h) => h,
                    Err(e) => return d.fail("ipv6", e),
                };
                let r = match ipv6::FragmentRepr::parse(&h) {
                    Ok(r) => r,
                    Err(e) => return d.fail("ipv6", e),
                };
                f.push(("ipv6.fraghdr.nxt", u8::from(r.next_header).to_string()));
                f.push(("ipv6.fraghdr.offset", (r.frag_offset / 8).to_string()));
                f.push(("ipv6.fraghdr.more", b(r.more_frags)));
                f.push(("ipv6.fraghdr.ident", format!("{:#010x}", r.ident)));
                next = r.next_header;
                rest = h.payload();
                fragment = Some(r);
                if r.frag_offset != 0 {
                    later_fragment = true;
                    break;
                }
            }
            _ => break,
        }
    }
    match walk {
        Ok(w) if w.protocol == next && w.offset == payload.len() - rest.len() => {}
        other => d.internal.push(format!(
            "walk_extension_headers gives {other:?}, header views give {next:?} at {}",
            payload.len() - rest.len()
        )),
    }
    if later_fragment {
        return;
    }
    l4(
        next,
        rest,
        Net::V6(repr.src_addr, repr.dst_addr),
        fragment.is_some_and(|f| f.more_frags),
        d,
    );
}

fn l4(proto: IpProtocol, bytes: &[u8], net: Net, fragmented: bool, d: &mut Decoded) {
    match proto {
        IpProtocol::Tcp => tcp_segment(bytes, net, fragmented, d),
        IpProtocol::Udp => udp_datagram(bytes, net, fragmented, d),
        IpProtocol::Icmp => icmpv4_message(bytes, fragmented, d),
        IpProtocol::Icmpv6 => {
            if let Net::V6(s, dd) = net {
                icmpv6_message(bytes, s, dd, fragmented, d)
            }
        }
        IpProtocol::Sctp => sctp_packet(bytes, fragmented, d),
        _ => {}
    }
}

fn tcp_segment(bytes: &[u8], net: Net, fragmented: bool, d: &mut Decoded) {
    let p = match tcp::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("tcp", e),
    };
    let repr = match tcp::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("tcp", e),
    };
    let f = d.push("tcp");
    f.push(("tcp.srcport", repr.src_port.to_string()));
    f.push(("tcp.dstport", repr.dst_port.to_string()));
    f.push(("tcp.seq_raw", repr.seq_number.to_string()));
    f.push(("tcp.ack_raw", repr.ack_number.to_string()));
    f.push(("tcp.hdr_len", p.header_len().to_string()));
    f.push(("tcp.flags", format!("{:#06x}", repr.flags.0)));
    f.push(("tcp.window_size_value", repr.window_len.to_string()));
    if !fragmented {
        let ok = match net {
            Net::V4(s, dd) => p.verify_checksum_v4(s, dd),
            Net::V6(s, dd) => p.verify_checksum_v6(s, dd),
        };
        f.push(("tcp.checksum.status", status(ok)));
    }
}

fn udp_datagram(bytes: &[u8], net: Net, fragmented: bool, d: &mut Decoded) {
    let p = match udp::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("udp", e),
    };
    let repr = match udp::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("udp", e),
    };
    let f = d.push("udp");
    f.push(("udp.srcport", repr.src_port.to_string()));
    f.push(("udp.dstport", repr.dst_port.to_string()));
    f.push(("udp.length", p.len().to_string()));
    if !fragmented {
        let st = match net {
            // Zero over IPv4: "no checksum" (tshark status 3, not present).
            Net::V4(..) if p.checksum() == 0 => "3".to_string(),
            Net::V4(s, dd) => status(p.verify_checksum_v4(s, dd)),
            Net::V6(s, dd) => status(p.verify_checksum_v6(s, dd)),
        };
        f.push(("udp.checksum.status", st));
    }
    if fragmented {
        return;
    }
    match repr.dst_port {
        protocol::wire::VXLAN_UDP_PORT => vxlan_header(p.payload(), d),
        protocol::wire::GENEVE_UDP_PORT => geneve_header(p.payload(), d),
        _ => {}
    }
}

fn icmpv4_message(bytes: &[u8], fragmented: bool, d: &mut Decoded) {
    let p = match icmpv4::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("icmp", e),
    };
    let repr = match icmpv4::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("icmp", e),
    };
    let f = d.push("icmp");
    f.push(("icmp.type", u8::from(repr.msg_type).to_string()));
    f.push(("icmp.code", repr.code.to_string()));
    if !fragmented {
        f.push(("icmp.checksum.status", status(p.verify_checksum())));
    }
    match repr.msg_type {
        icmpv4::Message::EchoRequest | icmpv4::Message::EchoReply => {
            f.push(("icmp.ident", p.echo_ident().to_string()));
            f.push(("icmp.seq", p.echo_seq_no().to_string()));
        }
        icmpv4::Message::DstUnreachable if repr.code == 4 => {
            f.push(("icmp.mtu", p.next_hop_mtu().to_string()));
        }
        _ => {}
    }
}

fn icmpv6_message(bytes: &[u8], src: Ipv6Addr, dst: Ipv6Addr, fragmented: bool, d: &mut Decoded) {
    let p = match icmpv6::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("icmpv6", e),
    };
    let repr = match icmpv6::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("icmpv6", e),
    };
    let f = d.push("icmpv6");
    f.push(("icmpv6.type", u8::from(repr.msg_type).to_string()));
    f.push(("icmpv6.code", repr.code.to_string()));
    if !fragmented {
        f.push((
            "icmpv6.checksum.status",
            status(p.verify_checksum(src, dst)),
        ));
    }
    match repr.msg_type {
        icmpv6::Message::EchoRequest | icmpv6::Message::EchoReply => {
            f.push(("icmpv6.echo.identifier", format!("{:#06x}", p.echo_ident())));
            f.push(("icmpv6.echo.sequence_number", p.echo_seq_no().to_string()));
        }
        icmpv6::Message::NeighborSolicit | icmpv6::Message::NeighborAdvert => {
            let nd = match icmpv6::NdiscRepr::parse(&p) {
                Ok(r) => r,
                Err(e) => return d.fail("icmpv6", e),
            };
            let f = &mut d.layers.last_mut().unwrap().fields;
            match nd {
                icmpv6::NdiscRepr::NeighborSolicit {
                    target_addr,
                    lladdr,
                } => {
                    f.push(("icmpv6.nd.ns.target_address", target_addr.to_string()));
                    if let Some(a) = lladdr {
                        f.push(("icmpv6.opt.linkaddr", mac(a)));
                    }
                }
                icmpv6::NdiscRepr::NeighborAdvert {
                    flags,
                    target_addr,
                    lladdr,
                } => {
                    f.push(("icmpv6.nd.na.flag.r", b(flags.router)));
                    f.push(("icmpv6.nd.na.flag.s", b(flags.solicited)));
                    f.push(("icmpv6.nd.na.flag.o", b(flags.override_)));
                    f.push(("icmpv6.nd.na.target_address", target_addr.to_string()));
                    if let Some(a) = lladdr {
                        f.push(("icmpv6.opt.linkaddr", mac(a)));
                    }
                }
            }
        }
        _ => {}
    }
}

fn sctp_packet(bytes: &[u8], fragmented: bool, d: &mut Decoded) {
    let p = match sctp::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("sctp", e),
    };
    let repr = match sctp::Repr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("sctp", e),
    };
    let f = d.push("sctp");
    f.push(("sctp.srcport", repr.src_port.to_string()));
    f.push(("sctp.dstport", repr.dst_port.to_string()));
    f.push((
        "sctp.verification_tag",
        format!("{:#010x}", repr.verification_tag),
    ));
    if !fragmented {
        f.push(("sctp.checksum.status", status(p.verify_checksum())));
    }
    if let (Some(t), Some(fl), Some(l)) = (
        p.first_chunk_type(),
        p.first_chunk_flags(),
        p.first_chunk_len(),
    ) {
        f.push(("sctp.chunk_type", u8::from(t).to_string()));
        f.push(("sctp.chunk_flags", format!("{fl:#04x}")));
        f.push(("sctp.chunk_length", l.to_string()));
    }
}

fn vxlan_header(bytes: &[u8], d: &mut Decoded) {
    let p = match VxlanPacket::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("vxlan", e),
    };
    let repr = match VxlanRepr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("vxlan", e),
    };
    let f = d.push("vxlan");
    f.push(("vxlan.vni", repr.vni.get().to_string()));
    f.push(("vxlan.flag_i", b(p.i_flag())));
    ethernet(p.payload(), d);
}

fn geneve_header(bytes: &[u8], d: &mut Decoded) {
    let p = match GenevePacket::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => return d.fail("geneve", e),
    };
    let repr = match GeneveRepr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.fail("geneve", e),
    };
    let f = d.push("geneve");
    f.push(("geneve.version", p.version().to_string()));
    f.push(("geneve.options_length", p.options_len().to_string()));
    f.push(("geneve.flags.oam", b(repr.oam)));
    f.push(("geneve.flags.critical", b(repr.critical)));
    f.push((
        "geneve.proto_type",
        format!("{:#06x}", u16::from(repr.protocol_type)),
    ));
    f.push(("geneve.vni", format!("{:#08x}", repr.vni.get())));
    for o in repr.options_iter() {
        let o = match o {
            Ok(o) => o,
            Err(e) => return d.fail("geneve", e),
        };
        let f = &mut d.layers.last_mut().unwrap().fields;
        f.push(("geneve.option.class", format!("{:#06x}", o.class)));
        f.push(("geneve.option.type", format!("{:#04x}", o.kind)));
        f.push(("geneve.option.type.critical", b(o.critical)));
        f.push(("geneve.option.length", o.encoded_len().to_string()));
    }
    let payload = p.payload();
    match repr.protocol_type {
        EtherType::TransparentEthernet => ethernet(payload, d),
        EtherType::Ipv4 | EtherType::Ipv6 => ethertype_payload(repr.protocol_type, payload, d),
        _ => {}
    }
}

/// The outer headers as [`protocol::flow::extract`] sees them, as tshark
/// fields (the extractor does not enter tunnels, as OVS does not). Returns
/// the layers and the extractor's error, if any.
pub(crate) fn flow(frame: &[u8]) -> (Decoded, Option<protocol::flow::ExtractError>) {
    use protocol::flow::key::{NW_FRAG_LATER, VLAN_CFI};
    use protocol::flow::{ExtractConfig, FlowKey, Layer as XLayer, extract};

    let mut key = FlowKey::default();
    let x = extract(frame, &ExtractConfig { vlan_limit: 2 }, &mut key);
    let mut d = Decoded::default();
    let reached = |l: XLayer| x.error.is_none_or(|e| e.layer > l);
    if !reached(XLayer::L2) {
        return (d, x.error);
    }
    let f = d.push("eth");
    f.push(("eth.dst", mac(key.dl_dst())));
    f.push(("eth.src", mac(key.dl_src())));
    let mut etype_field = "eth.type";
    for (tci, tpid) in [
        (key.vlan0_tci(), key.vlan0_tpid()),
        (key.vlan1_tci(), key.vlan1_tpid()),
    ] {
        if tci & VLAN_CFI == 0 {
            break;
        }
        // OVS keeps the CFI bit as "tag present", so DEI is not in the key.
        let (proto, id, prio, et) = if tpid == 0x88a8 {
            (
                "ieee8021ad",
                "ieee8021ad.id",
                "ieee8021ad.priority",
                "ieee8021ah.etype",
            )
        } else {
            ("vlan", "vlan.id", "vlan.priority", "vlan.etype")
        };
        let f = d.push(proto);
        f.push((id, (tci & 0x0fff).to_string()));
        f.push((prio, (tci >> 13).to_string()));
        etype_field = et;
    }
    if !reached(XLayer::Vlan) {
        return (d, x.error);
    }
    let dl_type = key.dl_type();
    d.layers
        .last_mut()
        .unwrap()
        .fields
        .push((etype_field, format!("{dl_type:#06x}")));
    if !reached(XLayer::L3) {
        return (d, x.error);
    }
    let later = key.nw_frag() & NW_FRAG_LATER != 0;
    match dl_type {
        0x0806 => {
            let f = d.push("arp");
            f.push(("arp.opcode", key.nw_proto().to_string()));
            f.push(("arp.src.hw_mac", mac(key.arp_sha())));
            f.push(("arp.src.proto_ipv4", key.nw_src().to_string()));
            f.push(("arp.dst.hw_mac", mac(key.arp_tha())));
            f.push(("arp.dst.proto_ipv4", key.nw_dst().to_string()));
            return (d, x.error);
        }
        0x0800 => {
            let f = d.push("ip");
            f.push(("ip.src", key.nw_src().to_string()));
            f.push(("ip.dst", key.nw_dst().to_string()));
            f.push(("ip.proto", key.nw_proto().to_string()));
            f.push(("ip.dsfield.dscp", (key.nw_tos() >> 2).to_string()));
            f.push(("ip.dsfield.ecn", (key.nw_tos() & 3).to_string()));
            f.push(("ip.ttl", key.nw_ttl().to_string()));
        }
        0x86dd => {
            let f = d.push("ipv6");
            f.push(("ipv6.src", key.ipv6_src().to_string()));
            f.push(("ipv6.dst", key.ipv6_dst().to_string()));
            f.push(("ipv6.flow", format!("{:#08x}", key.ipv6_label())));
            f.push(("ipv6.tclass", format!("{:#010x}", key.nw_tos())));
            f.push(("ipv6.hlim", key.nw_ttl().to_string()));
        }
        _ => return (d, x.error),
    }
    if later || x.layers.l7().is_none() {
        return (d, x.error);
    }
    let (sp, dp) = (key.tp_src(), key.tp_dst());
    match (dl_type, key.nw_proto()) {
        (_, 6) => {
            let f = d.push("tcp");
            f.push(("tcp.srcport", sp.to_string()));
            f.push(("tcp.dstport", dp.to_string()));
            f.push(("tcp.flags", format!("{:#06x}", key.tcp_flags())));
        }
        (_, 17) => {
            let f = d.push("udp");
            f.push(("udp.srcport", sp.to_string()));
            f.push(("udp.dstport", dp.to_string()));
        }
        (_, 132) => {
            let f = d.push("sctp");
            f.push(("sctp.srcport", sp.to_string()));
            f.push(("sctp.dstport", dp.to_string()));
        }
        (0x0800, 1) => {
            let f = d.push("icmp");
            f.push(("icmp.type", sp.to_string()));
            f.push(("icmp.code", dp.to_string()));
        }
        (0x86dd, 58) => {
            let f = d.push("icmpv6");
            f.push(("icmpv6.type", sp.to_string()));
            f.push(("icmpv6.code", dp.to_string()));
            match sp {
                135 => {
                    f.push(("icmpv6.nd.ns.target_address", key.nd_target().to_string()));
                    f.push(("icmpv6.opt.linkaddr", mac(key.arp_sha())));
                }
                136 => {
                    f.push(("icmpv6.nd.na.target_address", key.nd_target().to_string()));
                    f.push(("icmpv6.opt.linkaddr", mac(key.arp_tha())));
                }
                _ => {}
            }
        }
        _ => {}
    }
    (d, x.error)
}
