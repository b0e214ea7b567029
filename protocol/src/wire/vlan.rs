//! IEEE 802.1Q VLAN tags: customer tags (C-TAG, TPID 0x8100) and IEEE
//! 802.1ad service tags (S-TAG, TPID 0x88a8, the outer tag of "QinQ").
//!
//! The view starts *after* the TPID: the TPID is the EtherType field of the
//! preceding header (Ethernet or an outer tag), so a tag is the 2-byte TCI
//! followed by the 2-byte EtherType (or TPID) of what comes next.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | PCP |D|         VID           |   inner EtherType / TPID      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  <------------ TCI ------------>
//! ```
//!
//! PCP: priority code point (3 bits); D: drop eligible indicator (DEI,
//! formerly CFI); VID: VLAN identifier (12 bits).
//!
//! C-TAG and S-TAG share this layout, so one type serves both; which one a
//! tag is depends on the TPID before it. `Display` always says `802.1Q`.
//!
//! Not interpreted: the reserved VIDs 0 (priority tag) and 0xfff are parsed
//! and emitted like any other value; the number of stacked tags is the
//! caller's business.

use core::fmt;

use super::{EtherType, ParseError, Result};

mod field {
    use core::ops::Range;
    pub(super) const TCI: Range<usize> = 0..2;
    pub(super) const ETHERTYPE: Range<usize> = 2..4;
    pub(super) const PAYLOAD: usize = 4;
}

/// Length of a VLAN tag after its TPID (TCI + inner EtherType).
pub const HEADER_LEN: usize = field::PAYLOAD;

const PCP_SHIFT: u16 = 13;
const DEI_BIT: u16 = 0x1000;
const VID_MASK: u16 = 0x0fff;

/// A read/write view of a VLAN tag (the 4 bytes after the TPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<B> {
    buffer: B,
}

impl<B: AsRef<[u8]>> Packet<B> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: B) -> Packet<B> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks that the accessors will not panic.
    #[inline]
    pub fn new_checked(buffer: B) -> Result<Packet<B>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the buffer holds at least a full tag ([`HEADER_LEN`] bytes).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consumes the view and returns the buffer.
    #[inline]
    pub fn into_inner(self) -> B {
        self.buffer
    }

    /// The 16-bit tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The priority code point (0..=7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        // At most 7 after the shift.
        (self.tci() >> PCP_SHIFT) as u8
    }

    /// The drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & DEI_BIT != 0
    }

    /// The VLAN identifier (0..=4095).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// The EtherType of the encapsulated payload (or the TPID of an inner
    /// tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The bytes after the 4-byte tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    /// Sets the whole tag control information.
    #[inline]
    pub fn set_tci(&mut self, value: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the priority code point (only the low 3 bits of `value` are used).
    #[inline]
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & !(0x7 << PCP_SHIFT)) | (u16::from(value & 0x7) << PCP_SHIFT);
        self.set_tci(tci)
    }

    /// Sets the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, value: bool) {
        let tci = if value {
            self.tci() | DEI_BIT
        } else {
            self.tci() & !DEI_BIT
        };
        self.set_tci(tci)
    }

    /// Sets the VLAN identifier (only the low 12 bits of `value` are used).
    #[inline]
    pub fn set_vid(&mut self, value: u16) {
        let tci = (self.tci() & !VID_MASK) | (value & VID_MASK);
        self.set_tci(tci)
    }

    /// Sets the inner EtherType (or TPID).
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        let v: u16 = value.into();
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&v.to_be_bytes())
    }

    /// The mutable bytes after the tag.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "802.1Q vid={} pcp={} dei={} type={}",
                self.vid(),
                self.pcp(),
                u8::from(self.dei()),
                self.ethertype()
            ),
            Err(e) => write!(f, "802.1Q ({e})"),
        }
    }
}

/// The high-level representation of a VLAN tag.
///
/// `parse` accepts every 4-byte tag (all field values are legal). `emit`
/// masks `pcp` to 3 bits and `vid` to 12 bits, so out-of-range values in a
/// hand-built `Repr` cannot corrupt neighbouring fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (0..=4095).
    pub vid: u16,
    /// EtherType of the payload (or TPID of an inner tag).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a tag; fails only if it is shorter than [`HEADER_LEN`].
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vid: packet.vid(),
            ethertype: packet.ethertype(),
        })
    }

    /// The tag length (4).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the tag and `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the tag into the first 4 bytes of `packet` (`pcp` and `vid`
    /// masked to their field widths).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        let tci = (u16::from(self.pcp & 0x7) << PCP_SHIFT)
            | if self.dei { DEI_BIT } else { 0 }
            | (self.vid & VID_MASK);
        packet.set_tci(tci);
        packet.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "802.1Q vid={} pcp={} dei={} type={}",
            self.vid,
            self.pcp,
            u8::from(self.dei),
            self.ethertype
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (see PREAMBLE)
mod tests {
    use super::*;
    use crate::wire::{EthernetAddress, EthernetFrame, EthernetRepr};

    /// Packet 1 of `802.1ad_QinQ.pcap` from the tcpdump test suite
    /// (https://github.com/the-tcpdump-group/tcpdump, commit
    /// 39b50f76672bca4af7d7eb52604c5b692c6b6b2c, `tests/802.1ad_QinQ.pcap`),
    /// the whole 64-byte frame: Ethernet (TPID 0x88a8) -> S-TAG vid 200 ->
    /// (TPID 0x8100) -> C-TAG vid 2001 -> ARP request "who-has
    /// 172.21.79.100 tell 172.21.79.97", then Ethernet padding.
    static QINQ_ARP_FRAME: [u8; 64] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x20, 0xd2, 0x5a, 0xfb, 0x3f, 0x88, 0xa8, 0x00,
        0xc8, 0x81, 0x00, 0x07, 0xd1, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x00, 0x20, 0xd2, 0x5a, 0xfb, 0x3f, 0xac, 0x15, 0x4f, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xac, 0x15, 0x4f, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    /// The IPv4/UDP packet 10.8.0.1:34698 -> 10.8.0.2:9999 ("weft-l23 ipv4
    /// udp") captured with tcpdump on a veth pair between two network
    /// namespaces (`weft-h-l23a`/`b`) while writing these tests; bytes after
    /// the Ethernet header.
    static IPV4_UDP: [u8; 45] = [
        0x45, 0x00, 0x00, 0x2d, 0xdb, 0x64, 0x40, 0x00, 0x40, 0x11, 0x4b, 0x49, 0x0a, 0x08, 0x00,
        0x01, 0x0a, 0x08, 0x00, 0x02, 0x87, 0x8a, 0x27, 0x0f, 0x00, 0x19, 0x14, 0x3d, 0x77, 0x65,
        0x66, 0x74, 0x2d, 0x6c, 0x32, 0x33, 0x20, 0x69, 0x70, 0x76, 0x34, 0x20, 0x75, 0x64, 0x70,
    ];

    #[test]
    fn deconstruct_qinq() {
        let eth = EthernetFrame::new_checked(&QINQ_ARP_FRAME[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::QinQ);
        let outer = Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(outer.tci(), 0x00c8);
        assert_eq!(outer.pcp(), 0);
        assert!(!outer.dei());
        assert_eq!(outer.vid(), 200);
        assert_eq!(outer.ethertype(), EtherType::Vlan);
        let inner = Packet::new_checked(outer.payload()).unwrap();
        assert_eq!(inner.tci(), 0x07d1);
        assert_eq!(inner.vid(), 2001);
        assert_eq!(inner.ethertype(), EtherType::Arp);
        assert_eq!(inner.payload().len(), 64 - 14 - 4 - 4);
        assert_eq!(&inner.payload()[..4], &[0x00, 0x01, 0x08, 0x00]);
        assert_eq!(outer.to_string(), "802.1Q vid=200 pcp=0 dei=0 type=802.1Q");
        assert_eq!(inner.to_string(), "802.1Q vid=2001 pcp=0 dei=0 type=ARP");
    }

    #[test]
    fn construct_qinq_into_junk() {
        let mut buf = [0xa5u8; 8];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_pcp(0);
        p.set_dei(false);
        p.set_vid(200);
        p.set_ethertype(EtherType::Vlan);
        let mut q = Packet::new_unchecked(p.payload_mut());
        q.set_tci(0x07d1);
        q.set_ethertype(EtherType::Arp);
        assert_eq!(&buf[..], &QINQ_ARP_FRAME[14..22]);
    }

    #[test]
    fn repr_parse_emit() {
        let p = Packet::new_checked(&QINQ_ARP_FRAME[14..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                pcp: 0,
                dei: false,
                vid: 200,
                ethertype: EtherType::Vlan
            }
        );
        assert_eq!(r.header_len(), 4);
        assert_eq!(r.buffer_len(10), 14);
        let mut buf = [0xa5u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &QINQ_ARP_FRAME[14..18]);
    }

    /// Ethernet(0x88a8) -> S-TAG -> (0x8100) -> C-TAG -> IPv4, built with the
    /// Reprs around a real IPv4 packet, then parsed back hop by hop.
    #[test]
    fn qinq_ipv4_chain() {
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x92, 0x19, 0x3c, 0x33, 0xb8, 0xdf]),
            dst_addr: EthernetAddress([0xe2, 0x78, 0x73, 0x06, 0xb6, 0x33]),
            ethertype: EtherType::QinQ,
        };
        let s_tag = Repr {
            pcp: 3,
            dei: false,
            vid: 100,
            ethertype: EtherType::Vlan,
        };
        let c_tag = Repr {
            pcp: 5,
            dei: true,
            vid: 10,
            ethertype: EtherType::Ipv4,
        };
        let mut buf = [0xa5u8; 14 + 4 + 4 + 45];
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        s_tag.emit(&mut Packet::new_unchecked(&mut buf[14..]));
        c_tag.emit(&mut Packet::new_unchecked(&mut buf[18..]));
        buf[22..].copy_from_slice(&IPV4_UDP);
        assert_eq!(
            &buf[12..22],
            &[0x88, 0xa8, 0x60, 0x64, 0x81, 0x00, 0xb0, 0x0a, 0x08, 0x00]
        );

        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert!(f.ethertype().is_vlan_tpid());
        let outer = Packet::new_checked(f.payload()).unwrap();
        assert_eq!(Repr::parse(&outer).unwrap(), s_tag);
        assert!(outer.ethertype().is_vlan_tpid());
        let inner = Packet::new_checked(outer.payload()).unwrap();
        assert_eq!(Repr::parse(&inner).unwrap(), c_tag);
        assert_eq!(inner.payload(), &IPV4_UDP[..]);
        assert_eq!(c_tag.to_string(), "802.1Q vid=10 pcp=5 dei=1 type=IPv4");
    }

    #[test]
    fn setters_keep_other_fields() {
        let mut buf = [0u8; 4];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_vid(0xfff);
        p.set_pcp(7);
        p.set_dei(true);
        assert_eq!(p.tci(), 0xffff);
        p.set_dei(false);
        p.set_pcp(0xff); // only 3 bits used
        p.set_vid(0x1234); // only 12 bits used
        assert_eq!(p.tci(), 0xe234);
        assert_eq!((p.pcp(), p.dei(), p.vid()), (7, false, 0x234));
    }

    #[test]
    fn emit_masks_out_of_range_values() {
        let r = Repr {
            pcp: 0xf9,
            dei: false,
            vid: 0xf00a,
            ethertype: EtherType::Ipv6,
        };
        let mut buf = [0xa5u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [0x20, 0x0a, 0x86, 0xdd]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&QINQ_ARP_FRAME[14..17]).unwrap_err(),
            ParseError::Truncated
        );
        let short = Packet::new_unchecked(&QINQ_ARP_FRAME[14..17]);
        assert_eq!(Repr::parse(&short).unwrap_err(), ParseError::Truncated);
        assert_eq!(short.to_string(), "802.1Q (truncated packet)");
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(pcp in 0u8..8, dei: bool, vid in 0u16..4096, et: u16) {
            let r = Repr { pcp, dei, vid, ethertype: EtherType::from(et) };
            let mut buf = [0xa5u8; 4];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
