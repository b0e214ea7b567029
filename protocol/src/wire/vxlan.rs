//! VXLAN headers (RFC 7348, section 5) and the shared 24-bit [`Vni`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  inner Ethernet frame ...
//! ```
//!
//! The header sits in a UDP datagram to port [`UDP_PORT`] (4789; Linux used
//! 8472 before IANA assigned 4789: the port is the caller's business, this
//! module only reads the 8 bytes). The I flag (0x08) MUST be set for the VNI
//! to be valid, so [`Repr::parse`] rejects a header without it
//! ([`ParseError::BadField`]). All reserved bits are ignored on receipt and
//! written as zero by [`Repr::emit`].
//!
//! Not supported: the extensions that reuse reserved bits (VXLAN-GPE's next
//! protocol, VXLAN-GBP's group policy id): their bits are ignored, so such a
//! header parses as plain VXLAN with an inner Ethernet frame.
//!
//! [`Vni`] lives here and is shared with [`geneve`](super::geneve), whose VNI
//! is also 24 bits.

use core::fmt;

use super::{ParseError, Result};

/// A 24-bit virtual network identifier (VXLAN and Geneve VNI).
///
/// Holds only values `0..=0xff_ffff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 0xff_ffff.
    pub const MAX: Vni = Vni(0x00ff_ffff);

    /// A VNI from `value`, or `None` if it does not fit in 24 bits.
    #[inline]
    pub const fn new(value: u32) -> Option<Vni> {
        if value > Self::MAX.0 {
            None
        } else {
            Some(Vni(value))
        }
    }

    /// A VNI from the low 24 bits of `value` (the high 8 bits are dropped).
    #[inline]
    pub const fn new_masked(value: u32) -> Vni {
        Vni(value & Self::MAX.0)
    }

    /// The VNI as an integer (`<= 0xff_ffff`).
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The VNI from its three network-order bytes.
    #[inline]
    pub const fn from_be_bytes(b: [u8; 3]) -> Vni {
        Vni(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// The three network-order bytes of the VNI.
    #[inline]
    pub const fn to_be_bytes(self) -> [u8; 3] {
        let b = self.0.to_be_bytes();
        [b[1], b[2], b[3]]
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Vni> for u32 {
    #[inline]
    fn from(v: Vni) -> u32 {
        v.0
    }
}

/// The IANA-assigned UDP destination port for VXLAN.
pub const UDP_PORT: u16 = 4789;

/// The I flag: "the VNI is valid" (MUST be set).
pub const FLAG_I: u8 = 0x08;

mod field {
    use core::ops::Range;
    pub(super) const FLAGS: usize = 0;
    pub(super) const RESERVED1: Range<usize> = 1..4;
    pub(super) const VNI: Range<usize> = 4..7;
    pub(super) const RESERVED2: usize = 7;
    pub(super) const PAYLOAD: usize = 8;
}

/// Length of a VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of a VXLAN header and its payload.
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

    /// Ensures the buffer holds at least the 8-byte header.
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

    /// The whole flags byte (reserved bits included).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The I flag (VNI valid).
    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The VNI (meaningful only if [`i_flag`](Self::i_flag) is set).
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni::from_be_bytes([b[0], b[1], b[2]])
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The bytes after the 8-byte header (normally an Ethernet frame).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    /// Sets the whole flags byte.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value
    }

    /// Sets or clears the I flag, keeping the other flag bits.
    #[inline]
    pub fn set_i_flag(&mut self, value: bool) {
        let f = self.flags();
        self.set_flags(if value { f | FLAG_I } else { f & !FLAG_I })
    }

    /// Sets the VNI.
    #[inline]
    pub fn set_vni(&mut self, value: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&value.to_be_bytes())
    }

    /// Zeroes the 24 reserved bits after the flags and the last reserved byte.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[field::RESERVED1].fill(0);
        b[field::RESERVED2] = 0;
    }

    /// The mutable bytes after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(f, "VXLAN flags=0x{:02x} vni={}", self.flags(), self.vni()),
            Err(e) => write!(f, "VXLAN ({e})"),
        }
    }
}

/// The high-level representation of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The virtual network identifier.
    pub vni: Vni,
}

impl Repr {
    /// Parses a header; [`ParseError::BadField`] if the I flag is clear.
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.i_flag() {
            return Err(ParseError::BadField);
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// The header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the header and `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header (I flag set, reserved bits zero) into the first 8
    /// bytes of `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VXLAN vni={}", self.vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The VXLAN header and the first 6 bytes of the inner frame of packet 1
    /// of `tcpdump-vxlan.pcap` (the tcpdump test suite, see
    /// `shared/pcaps/README.md`; frame offset 0x2a): I flag, VNI 100.
    static PACKET_BYTES: [u8; 14] = [
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x30, 0x88, 0x01, 0x00, 0x02,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.flags(), 0x08);
        assert!(p.i_flag());
        assert_eq!(p.vni(), Vni::new(100).unwrap());
        assert_eq!(p.payload(), &[0x00, 0x30, 0x88, 0x01, 0x00, 0x02]);
        assert_eq!(p.to_string(), "VXLAN flags=0x08 vni=100");
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 14];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_flags(0);
        p.set_i_flag(true);
        p.clear_reserved();
        p.set_vni(Vni::new(100).unwrap());
        p.payload_mut().copy_from_slice(&PACKET_BYTES[8..]);
        assert_eq!(buf, PACKET_BYTES);
    }

    #[test]
    fn repr_parse_emit() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                vni: Vni::new(100).unwrap()
            }
        );
        assert_eq!(r.header_len(), 8);
        assert_eq!(r.buffer_len(6), 14);
        let mut buf = [0xa5u8; 8];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &PACKET_BYTES[..8]);
        assert_eq!(r.to_string(), "VXLAN vni=100");
    }

    #[test]
    fn reserved_bits_ignored_on_receipt_zeroed_on_emit() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0xff;
        bytes[1..4].copy_from_slice(&[0x12, 0x34, 0x56]);
        bytes[7] = 0x9a;
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(r.vni.get(), 100);
        let mut buf = [0xffu8; 8];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &PACKET_BYTES[..8]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&PACKET_BYTES[..7]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&PACKET_BYTES[..7]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "VXLAN (truncated packet)");
    }

    #[test]
    fn i_flag_clear_is_bad_field() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0xf7;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.i_flag());
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::BadField);
    }

    #[test]
    fn vni_bounds() {
        assert_eq!(Vni::new(0xff_ffff), Some(Vni::MAX));
        assert_eq!(Vni::new(0x100_0000), None);
        assert_eq!(Vni::new_masked(0x1234_5678).get(), 0x34_5678);
        assert_eq!(Vni::from_be_bytes([0x12, 0x34, 0x56]).get(), 0x12_3456);
        assert_eq!(
            Vni::new(0x12_3456).unwrap().to_be_bytes(),
            [0x12, 0x34, 0x56]
        );
        assert_eq!(Vni::new(5001).unwrap().to_string(), "5001");
        assert_eq!(u32::from(Vni::new(7).unwrap()), 7);
    }

    proptest! {
        #[test]
        fn roundtrip(vni in 0u32..=0xff_ffff, junk in any::<u8>()) {
            let r = Repr { vni: Vni::new(vni).unwrap() };
            let mut buf = [junk; HEADER_LEN];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
