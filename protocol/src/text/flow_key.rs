//! Printing an exact packet key as the `Flow:` line of `ofproto/trace`
//! (OVS `flow_format`): the fields a packet of this type has (OVS
//! `flow_wildcards_init_for_packet`), with port, registers and metadata
//! only when non-zero.

use super::match_::{Item, match_items, tun_present_slot};
use super::value::TUN_FLAG_NAMES;
use crate::flow::Match;
use crate::flow::field::Field;
use crate::flow::key::{
    FlowKey, FlowMask, NUM_REGS, NW_FRAG_LATER, TUN_FLAG_KEY, TUN_METADATA_SLOTS, slots,
};

/// The match that pins exactly the fields a packet with key `k` has.
pub(crate) fn packet_match(k: &FlowKey) -> Match {
    let mut m = FlowMask::default();
    let exact = |m: &mut FlowMask, f: Field| m.set_exact(f.info().slot);

    if k.tun_dst() != core::net::Ipv4Addr::UNSPECIFIED
        || k.tun_ipv6_dst() != core::net::Ipv6Addr::UNSPECIFIED
    {
        if k.tun_flags() & TUN_FLAG_KEY != 0 {
            exact(&mut m, Field::TunId);
        }
        for f in [
            Field::TunSrc,
            Field::TunDst,
            Field::TunIpv6Src,
            Field::TunIpv6Dst,
        ] {
            exact(&mut m, f);
        }
        m.set(
            Field::TunFlags.info().slot,
            (1u128 << TUN_FLAG_NAMES.len()) - 1,
        );
        for i in 0..TUN_METADATA_SLOTS {
            if k.tun_metadata_present() & (1 << i) != 0 {
                exact(&mut m, Field::TunMetadata(i as u8));
                m.set_exact(tun_present_slot(i));
            }
        }
    } else if k.tun_id() != 0 {
        exact(&mut m, Field::TunId);
    }
    if k.in_port() != 0 {
        exact(&mut m, Field::InPort);
    }
    for i in 0..NUM_REGS {
        if k.reg(i) != 0 {
            exact(&mut m, Field::Reg(i as u8));
        }
    }
    if k.metadata() != 0 {
        exact(&mut m, Field::Metadata);
    }
    for s in [
        slots::dl_dst,
        slots::dl_src,
        slots::dl_type,
        slots::vlan0_tci,
    ] {
        m.set_exact(s);
    }
    if k.vlan0_tci() != 0 {
        m.set_exact(slots::vlan1_tci);
    }
    let proto = k.nw_proto();
    match k.dl_type() {
        0x0800 => {
            exact(&mut m, Field::NwSrc);
            exact(&mut m, Field::NwDst);
        }
        0x86dd => {
            exact(&mut m, Field::Ipv6Src);
            exact(&mut m, Field::Ipv6Dst);
            exact(&mut m, Field::Ipv6Label);
            let nd = proto == 58 && matches!(k.tp_src(), 135 | 136) && k.tp_dst() == 0;
            if nd {
                for f in [Field::ArpSha, Field::ArpTha, Field::NdTarget] {
                    exact(&mut m, f);
                }
            }
        }
        0x0806 => {
            for s in [
                slots::nw_src,
                slots::nw_dst,
                slots::nw_proto,
                slots::arp_sha,
                slots::arp_tha,
            ] {
                m.set_exact(s);
            }
            return Match {
                key: k.masked(&m),
                mask: m,
            };
        }
        _ => {
            return Match {
                key: k.masked(&m),
                mask: m,
            };
        }
    }
    exact(&mut m, Field::NwFrag);
    for s in [slots::nw_tos, slots::nw_ttl, slots::nw_proto] {
        m.set_exact(s);
    }
    // OVS also shows tp_src/tp_dst for ICMP in IPv6 and ICMPv6 in IPv4;
    // we show them only where the extractor fills them, so that the line
    // always parses back as a match.
    let icmp = match k.dl_type() {
        0x0800 => 1,
        _ => 58,
    };
    if k.nw_frag() & NW_FRAG_LATER == 0 && (matches!(proto, 6 | 17 | 132) || proto == icmp) {
        m.set_exact(slots::tp_src);
        m.set_exact(slots::tp_dst);
        if proto == 6 {
            exact(&mut m, Field::TcpFlags);
        }
    }
    Match {
        key: k.masked(&m),
        mask: m,
    }
}

/// The `ofproto/trace` `Flow:` fields of a packet key as (name, value)
/// pairs, in printing order; a protocol shorthand (`tcp`) is given as the
/// `dl_type` and `nw_proto` pairs it stands for.
pub(crate) fn key_fields(k: &FlowKey) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for it in match_items(&packet_match(k)) {
        match it {
            Item::Word(_, dt, pr) => {
                out.push(("dl_type", format!("0x{dt:04x}")));
                if let Some(p) = pr {
                    out.push(("nw_proto", p.to_string()));
                }
            }
            Item::Pair(n, v) => out.push((n, v)),
        }
    }
    out
}
