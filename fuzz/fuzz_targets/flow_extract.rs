//! Flow extraction: for any frame, offsets stay inside the buffer and in
//! order, metadata words are untouched, extraction is deterministic, and
//! where the extractor says it parsed IPv4/IPv6/TCP/UDP, the wire views read
//! the same values at the same offsets (OVS flow_extract_target.c, with an
//! oracle).
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::flow::FlowKey;
use protocol::flow::extract::{ExtractConfig, Layers, extract};
use protocol::wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, frame)) = data.split_first() else { return };
    let cfg = ExtractConfig { vlan_limit: cfg_byte % 4 };
    let mut key = FlowKey::default();
    key.set_in_port(7);
    key.set_reg(3, 0xdead_beef);
    key.set_tun_id(42);
    let ex = extract(frame, &cfg, &mut key);
    assert_eq!((key.in_port(), key.reg(3), key.tun_id()), (7, 0xdead_beef, 42));

    let l = ex.layers;
    let mut last = 0usize;
    for off in [l.l2, l.l3, l.l4, l.l7] {
        if off != Layers::NONE {
            let off = usize::from(off);
            assert!(off <= frame.len(), "offset {off} beyond frame of {}", frame.len());
            assert!(off >= last, "offsets out of order: {l:?}");
            last = off;
        }
    }

    let mut again = FlowKey::default();
    again.set_in_port(7);
    again.set_reg(3, 0xdead_beef);
    again.set_tun_id(42);
    let ex2 = extract(frame, &cfg, &mut again);
    assert_eq!(key, again);
    assert_eq!(ex.error, ex2.error);

    // Cross-check with the wire views where the extractor reached L4 intact.
    if ex.error.is_some() {
        return;
    }
    let (Some(l3), Some(l4)) = (l.l3(), l.l4()) else { return };
    match key.dl_type() {
        0x0800 => {
            if let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) {
                assert_eq!(ip.src_addr(), key.nw_src());
                assert_eq!(ip.dst_addr(), key.nw_dst());
                assert_eq!(ip.ttl(), key.nw_ttl());
            }
        }
        0x86dd => {
            if let Ok(ip) = Ipv6Packet::new_checked(&frame[l3..]) {
                assert_eq!(ip.src_addr(), key.ipv6_src());
                assert_eq!(ip.dst_addr(), key.ipv6_dst());
            }
        }
        _ => return,
    }
    if key.nw_frag() & protocol::flow::key::NW_FRAG_LATER != 0 {
        return;
    }
    match key.nw_proto() {
        6 => {
            let t = TcpPacket::new_checked(&frame[l4..]).expect("extractor parsed TCP here");
            assert_eq!((t.src_port(), t.dst_port()), (key.tp_src(), key.tp_dst()));
        }
        17 => {
            let b = &frame[l4..];
            assert!(b.len() >= 8);
            let u = UdpPacket::new_unchecked(b);
            assert_eq!((u.src_port(), u.dst_port()), (key.tp_src(), key.tp_dst()));
        }
        _ => {}
    }
});
