//! The Address Resolution Protocol (RFC 826) for Ethernet and IPv4.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |       hardware type (1)       |     protocol type (0x0800)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  hw len (6)   | proto len (4) |           operation           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               sender hardware address (6 bytes)               |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |  sender protocol address ...  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  ... (4 bytes)                |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |               target hardware address (6 bytes)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               target protocol address (4 bytes)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view reads the fixed-size fields of any ARP packet, but its address
//! getters assume the Ethernet/IPv4 layout (hardware length 6, protocol
//! length 4), which is also what `check_len` guarantees room for (28 bytes).
//! [`Repr::parse`] returns [`ParseError::Unsupported`] for any other hardware
//! type, protocol type or address length.
//!
//! Not supported: other hardware or protocol types, RARP and InARP (their
//! operation codes parse as [`Operation::Unknown`] and round-trip). Bytes
//! after the 28-byte packet (Ethernet padding) are ignored.

use core::fmt;
use core::net::Ipv4Addr;

use super::{EtherType, EthernetAddress, ParseError, Result};

wire_enum! {
    /// ARP hardware types (IANA "Hardware Types").
    pub enum Hardware(u16) {
        /// Ethernet (10Mb).
        Ethernet = 1,
    }
}

wire_enum! {
    /// ARP operation codes (RFC 826).
    pub enum Operation(u16) {
        /// Request ("who-has").
        Request = 1,
        /// Reply ("is-at").
        Reply = 2,
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Request => f.write_str("request"),
            Operation::Reply => f.write_str("reply"),
            Operation::Unknown(v) => write!(f, "op=0x{v:04x}"),
        }
    }
}

mod field {
    use core::ops::Range;
    pub(super) const HTYPE: Range<usize> = 0..2;
    pub(super) const PTYPE: Range<usize> = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Range<usize> = 6..8;
    // Ethernet/IPv4 layout (hlen = 6, plen = 4).
    pub(super) const SHA: Range<usize> = 8..14;
    pub(super) const SPA: Range<usize> = 14..18;
    pub(super) const THA: Range<usize> = 18..24;
    pub(super) const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

/// A read/write view of an ARP packet (Ethernet/IPv4 address layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<B> {
    buffer: B,
}

#[inline]
fn ipv4_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
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

    /// Ensures the buffer holds 28 bytes, the Ethernet/IPv4 packet size
    /// (the length fields are not looked at; see [`Repr::parse`]).
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

    #[inline]
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The hardware type.
    #[inline]
    pub fn hardware_type(&self) -> Hardware {
        Hardware::from(self.u16_at(field::HTYPE))
    }

    /// The protocol type (an EtherType).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(self.u16_at(field::PTYPE))
    }

    /// The hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(self.u16_at(field::OPER))
    }

    /// The sender hardware address (Ethernet layout).
    #[inline]
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// The sender protocol address (IPv4 layout).
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::SPA])
    }

    /// The target hardware address (Ethernet layout).
    #[inline]
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// The target protocol address (IPv4 layout).
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::TPA])
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, value: Hardware) {
        self.set_u16_at(field::HTYPE, value.into())
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.set_u16_at(field::PTYPE, value.into())
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, value: Operation) {
        self.set_u16_at(field::OPER, value.into())
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0)
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets())
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0)
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets())
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "ARP ({e})");
        }
        match Repr::parse(&Packet::new_unchecked(self.buffer.as_ref())) {
            Ok(r) => r.fmt(f),
            Err(_) => write!(
                f,
                "ARP htype={} ptype={} hlen={} plen={} {}",
                u16::from(self.hardware_type()),
                self.protocol_type(),
                self.hardware_len(),
                self.protocol_len(),
                self.operation()
            ),
        }
    }
}

/// The high-level representation of an Ethernet/IPv4 ARP packet.
///
/// Any operation code is accepted (unknown ones are kept as
/// [`Operation::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The operation.
    pub operation: Operation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Parses a packet.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] if shorter than 28 bytes;
    /// [`ParseError::Unsupported`] unless hardware type 1 (Ethernet),
    /// protocol type 0x0800 (IPv4), hardware length 6 and protocol length 4.
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != Hardware::Ethernet
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(ParseError::Unsupported);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The packet length (28).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The buffer length needed by [`emit`](Self::emit) (28).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the whole packet into the first 28 bytes of `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_hardware_type(Hardware::Ethernet);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::Request => write!(
                f,
                "ARP request who-has {} tell {} ({})",
                self.target_protocol_addr, self.source_protocol_addr, self.source_hardware_addr
            ),
            Operation::Reply => write!(
                f,
                "ARP reply {} is-at {}",
                self.source_protocol_addr, self.source_hardware_addr
            ),
            op @ Operation::Unknown(_) => write!(
                f,
                "ARP {} sha={} spa={} tha={} tpa={}",
                op,
                self.source_hardware_addr,
                self.source_protocol_addr,
                self.target_hardware_addr,
                self.target_protocol_addr
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (see PREAMBLE)
mod tests {
    use super::*;

    /// An ARP request 10.8.0.1 -> who-has 10.8.0.2, captured with tcpdump on
    /// a veth pair between two network namespaces (`weft-h-l23a`/`b`) while
    /// writing these tests; the 28 bytes after the Ethernet header.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x92, 0x19, 0x3c, 0x33, 0xb8, 0xdf, 0x0a,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00, 0x02,
    ];

    /// The reply to [`REQUEST`] from the same capture.
    static REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0xe2, 0x78, 0x73, 0x06, 0xb6, 0x33, 0x0a,
        0x08, 0x00, 0x02, 0x92, 0x19, 0x3c, 0x33, 0xb8, 0xdf, 0x0a, 0x08, 0x00, 0x01,
    ];

    /// Packet 2 of `802.1ad_QinQ.pcap` from the tcpdump test suite
    /// (https://github.com/the-tcpdump-group/tcpdump, commit
    /// 39b50f76672bca4af7d7eb52604c5b692c6b6b2c): the ARP reply after the two
    /// VLAN tags, with the frame's 24 bytes of Ethernet padding (the buffer
    /// is longer than the packet; the padding is ignored).
    static QINQ_REPLY_PADDED: [u8; 42] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x00, 0x80, 0xea, 0x81, 0x88, 0x63, 0xac,
        0x15, 0x4f, 0x64, 0x00, 0x20, 0xd2, 0x5a, 0xfb, 0x3f, 0xac, 0x15, 0x4f, 0x61, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const MAC_A: EthernetAddress = EthernetAddress([0x92, 0x19, 0x3c, 0x33, 0xb8, 0xdf]);
    const MAC_B: EthernetAddress = EthernetAddress([0xe2, 0x78, 0x73, 0x06, 0xb6, 0x33]);

    fn request_repr() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: MAC_A,
            source_protocol_addr: Ipv4Addr::new(10, 8, 0, 1),
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 8, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), Hardware::Ethernet);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), MAC_A);
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(10, 8, 0, 1));
        assert_eq!(p.target_hardware_addr(), EthernetAddress::ZERO);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 8, 0, 2));
        assert_eq!(
            p.to_string(),
            "ARP request who-has 10.8.0.2 tell 10.8.0.1 (92:19:3c:33:b8:df)"
        );
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_hardware_type(Hardware::Ethernet);
        p.set_protocol_type(EtherType::Ipv4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(Operation::Reply);
        p.set_source_hardware_addr(MAC_B);
        p.set_source_protocol_addr(Ipv4Addr::new(10, 8, 0, 2));
        p.set_target_hardware_addr(MAC_A);
        p.set_target_protocol_addr(Ipv4Addr::new(10, 8, 0, 1));
        assert_eq!(buf, REPLY);
    }

    #[test]
    fn repr_parse_emit() {
        let r = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        assert_eq!(r, request_repr());
        assert_eq!((r.header_len(), r.buffer_len()), (28, 28));
        let mut buf = [0xa5u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);

        let reply = Repr::parse(&Packet::new_checked(&REPLY[..]).unwrap()).unwrap();
        assert_eq!(reply.operation, Operation::Reply);
        assert_eq!(
            reply.to_string(),
            "ARP reply 10.8.0.2 is-at e2:78:73:06:b6:33"
        );
    }

    #[test]
    fn padded_reply_from_qinq() {
        let p = Packet::new_checked(&QINQ_REPLY_PADDED[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                operation: Operation::Reply,
                source_hardware_addr: EthernetAddress([0x00, 0x80, 0xea, 0x81, 0x88, 0x63]),
                source_protocol_addr: Ipv4Addr::new(172, 21, 79, 100),
                target_hardware_addr: EthernetAddress([0x00, 0x20, 0xd2, 0x5a, 0xfb, 0x3f]),
                target_protocol_addr: Ipv4Addr::new(172, 21, 79, 97),
            }
        );
    }

    #[test]
    fn unknown_operation_roundtrips() {
        let mut bytes = REQUEST;
        bytes[7] = 3; // RARP request code, on an ARP-shaped packet
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::Unknown(3));
        let mut buf = [0xa5u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, bytes);
        assert_eq!(
            r.to_string(),
            "ARP op=0x0003 sha=92:19:3c:33:b8:df spa=10.8.0.1 tha=00:00:00:00:00:00 tpa=10.8.0.2"
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&REQUEST[..27]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "ARP (truncated packet)");
    }

    #[test]
    fn unsupported_hardware_type() {
        let mut b = REQUEST;
        b[1] = 6; // IEEE 802
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.hardware_type(), Hardware::Unknown(6));
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Unsupported);
        assert_eq!(
            p.to_string(),
            "ARP htype=6 ptype=IPv4 hlen=6 plen=4 request"
        );
    }

    #[test]
    fn unsupported_protocol_type() {
        let mut b = REQUEST;
        b[2..4].copy_from_slice(&[0x86, 0xdd]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Unsupported);
    }

    #[test]
    fn unsupported_hardware_len() {
        let mut b = REQUEST;
        b[4] = 8;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Unsupported);
    }

    #[test]
    fn unsupported_protocol_len() {
        let mut b = REQUEST;
        b[5] = 16;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Unsupported);
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(op: u16, sha: [u8; 6], spa: u32, tha: [u8; 6], tpa: u32) {
            let r = Repr {
                operation: Operation::from(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut buf = [0xa5u8; HEADER_LEN];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
