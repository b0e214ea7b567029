//! Ethernet II frames (IEEE 802.3 clause 3, DIX framing).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  destination MAC (6 bytes)                    |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                    source MAC (6 bytes)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        EtherType / TPID       |  payload ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Not supported: 802.3 length-field frames with LLC/SNAP (an EtherType
//! below 0x0600 is kept as [`EtherType::Unknown`]; the flow extractor maps it
//! to OVS's `0x05ff` "802.2" value), the frame check sequence (ports strip
//! it). VLAN tags are in [`vlan`](super::vlan).

use core::fmt;

use super::{ParseError, Result, wire_enum};

/// A six-byte IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);

    /// Reads an address from the first six bytes of `b`.
    ///
    /// # Panics
    /// If `b` is shorter than six bytes.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        EthernetAddress(a)
    }

    /// The address bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// True for the all-ones broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True if the group bit (I/G, least significant bit of the first byte)
    /// is set: multicast or broadcast.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for a unicast address.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The address as a 48-bit integer (first byte most significant).
    #[inline]
    pub const fn to_u64(&self) -> u64 {
        let b = self.0;
        (b[0] as u64) << 40
            | (b[1] as u64) << 32
            | (b[2] as u64) << 24
            | (b[3] as u64) << 16
            | (b[4] as u64) << 8
            | b[5] as u64
    }

    /// The address from the low 48 bits of `v`.
    #[inline]
    pub const fn from_u64(v: u64) -> EthernetAddress {
        let b = v.to_be_bytes();
        EthernetAddress([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

wire_enum! {
    /// EtherType registry (the values Weft acts on).
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// IEEE 802.1Q customer VLAN tag (C-TAG).
        Vlan = 0x8100,
        /// IEEE 802.1ad service VLAN tag (S-TAG, QinQ outer tag).
        QinQ = 0x88a8,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// Transparent Ethernet bridging (Geneve protocol type for an inner
        /// Ethernet frame).
        TransparentEthernet = 0x6558,
        /// MPLS unicast (recognised, not parsed).
        Mpls = 0x8847,
        /// LLDP (recognised, not parsed).
        Lldp = 0x88cc,
    }
}

impl EtherType {
    /// True for the TPIDs that start a VLAN tag (0x8100 and 0x88a8).
    #[inline]
    pub fn is_vlan_tpid(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::QinQ => f.write_str("802.1ad"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::TransparentEthernet => f.write_str("TEB"),
            EtherType::Mpls => f.write_str("MPLS"),
            EtherType::Lldp => f.write_str("LLDP"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

mod field {
    use core::ops::Range;
    pub(super) const DESTINATION: Range<usize> = 0..6;
    pub(super) const SOURCE: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    pub(super) const PAYLOAD: usize = 14;
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<B> {
    buffer: B,
}

impl<B: AsRef<[u8]>> Frame<B> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: B) -> Frame<B> {
        Frame { buffer }
    }

    /// Wraps a buffer and checks that the accessors will not panic.
    #[inline]
    pub fn new_checked(buffer: B) -> Result<Frame<B>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensures the buffer holds at least a full header.
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

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The EtherType (or the TPID of a first VLAN tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Frame<&'a B> {
    /// The bytes after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Frame<B> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0)
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        let v: u16 = value.into();
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&v.to_be_bytes())
    }

    /// The mutable bytes after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Frame<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "EthernetII src={} dst={} type={}",
                self.src_addr(),
                self.dst_addr(),
                self.ethertype()
            ),
            Err(e) => write!(f, "EthernetII ({e})"),
        }
    }
}

/// The high-level representation of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType (or TPID of a following VLAN tag).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a checked frame.
    pub fn parse<B: AsRef<[u8]> + ?Sized>(frame: &Frame<&B>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// The header length (14).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the header and `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header into the first 14 bytes of `frame`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<B>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EthernetII src={} dst={} type={}",
            self.src_addr, self.dst_addr, self.ethertype
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 18 bytes of packet 1 of `tcpdump-vxlan.pcap` (the tcpdump
    /// test suite, see `shared/pcaps/README.md`): the outer Ethernet header
    /// of a VXLAN frame and the start of its IPv4 header.
    static FRAME_BYTES: [u8; 18] = [
        0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf, 0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x86,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(
            f.dst_addr(),
            EthernetAddress([0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf])
        );
        assert_eq!(
            f.src_addr(),
            EthernetAddress([0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40])
        );
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x86]);
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(EthernetAddress([0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf]));
        f.set_src_addr(EthernetAddress([0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40]));
        f.set_ethertype(EtherType::Ipv4);
        f.payload_mut().copy_from_slice(&[0x45, 0x00, 0x00, 0x86]);
        assert_eq!(buf, FRAME_BYTES);
    }

    #[test]
    fn repr_roundtrip() {
        let f = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        let r = Repr::parse(&f).unwrap();
        let mut buf = [0xa5u8; 14];
        r.emit(&mut Frame::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &FRAME_BYTES[..14]);
        assert_eq!(
            r.to_string(),
            "EthernetII src=36:dc:85:1e:b3:40 dst=00:16:3e:08:71:cf type=IPv4"
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&FRAME_BYTES[..13]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn unknown_ethertype_roundtrips() {
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert_eq!(u16::from(EtherType::Unknown(0x1234)), 0x1234);
        assert_eq!(u16::from(EtherType::from(0x88a8)), 0x88a8);
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_unicast());
        let a = EthernetAddress([1, 2, 3, 4, 5, 6]);
        assert_eq!(EthernetAddress::from_u64(a.to_u64()), a);
    }
}
