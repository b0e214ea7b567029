//! parse -> emit -> parse is stable for every header with a Repr: the first
//! input byte picks the header, the rest is parsed; whatever parses is
//! emitted into a 0xa5-filled buffer, parsed again (same Repr), and emitted
//! again (same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::wire::*;

macro_rules! roundtrip {
    ($bytes:expr, $view:ident, $repr:ident, $len:expr) => {{
        let Ok(p) = $view::new_checked($bytes) else { return };
        let Ok(r) = $repr::parse(&p) else { return };
        let len = $len(&r);
        let mut b1 = vec![0xa5u8; len];
        r.emit(&mut $view::new_unchecked(&mut b1[..]));
        let p2 = $view::new_checked(&b1[..]).expect("emitted header is long enough");
        let r2 = $repr::parse(&p2).expect("emitted header parses");
        assert_eq!(r, r2);
        let mut b2 = vec![0x5au8; len];
        r2.emit(&mut $view::new_unchecked(&mut b2[..]));
        // Junk in the buffer never reaches emitted header bytes.
        assert_eq!(&b1[..r.header_len()], &b2[..r.header_len()]);
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 14 {
        0 => roundtrip!(bytes, EthernetFrame, EthernetRepr, |r: &EthernetRepr| r.buffer_len(0)),
        1 => roundtrip!(bytes, VlanPacket, VlanRepr, |r: &VlanRepr| r.buffer_len(0)),
        2 => roundtrip!(bytes, ArpPacket, ArpRepr, |r: &ArpRepr| r.buffer_len()),
        3 => roundtrip!(bytes, Ipv4Packet, Ipv4Repr, |r: &Ipv4Repr| r.buffer_len()),
        4 => roundtrip!(bytes, Ipv6Packet, Ipv6Repr, |r: &Ipv6Repr| r.buffer_len()),
        5 => roundtrip!(bytes, TcpPacket, TcpRepr, |r: &TcpRepr| r.buffer_len(0)),
        6 => roundtrip!(bytes, UdpPacket, UdpRepr, |r: &UdpRepr| r.buffer_len()),
        7 => roundtrip!(bytes, SctpPacket, SctpRepr, |r: &SctpRepr| r.buffer_len(0)),
        8 => roundtrip!(bytes, Icmpv4Packet, Icmpv4Repr, |r: &Icmpv4Repr| r.buffer_len()),
        9 => roundtrip!(bytes, Icmpv6Packet, Icmpv6Repr, |r: &Icmpv6Repr| r.buffer_len()),
        10 => {
            let Ok(p) = Icmpv6Packet::new_checked(bytes) else { return };
            let Ok(r) = NdiscRepr::parse(&p) else { return };
            let mut b1 = vec![0xa5u8; r.buffer_len()];
            r.emit(&mut Icmpv6Packet::new_unchecked(&mut b1[..]));
            let p2 = Icmpv6Packet::new_checked(&b1[..]).expect("emitted ND is long enough");
            assert_eq!(NdiscRepr::parse(&p2).expect("emitted ND parses"), r);
        }
        11 => roundtrip!(bytes, VxlanPacket, VxlanRepr, |r: &VxlanRepr| r.buffer_len(0)),
        12 => roundtrip!(bytes, GenevePacket, GeneveRepr, |r: &GeneveRepr| r.buffer_len(0)),
        _ => {
            let Ok(h) = Ipv6FragmentHeader::new_checked(bytes) else { return };
            let Ok(r) = Ipv6FragmentRepr::parse(&h) else { return };
            let mut b1 = vec![0xa5u8; r.buffer_len(0)];
            r.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut b1[..]));
            let h2 = Ipv6FragmentHeader::new_checked(&b1[..]).expect("long enough");
            assert_eq!(Ipv6FragmentRepr::parse(&h2).expect("parses"), r);
        }
    }
});
