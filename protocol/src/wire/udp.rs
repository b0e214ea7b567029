//! UDP datagrams (RFC 768; IPv6 checksum rules from RFC 8200 section 8.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          payload ...                          |
//! ```
//!
//! The view trusts the length field: bytes after `len` (e.g. Ethernet
//! padding) are not part of the payload and are not checksummed.
//!
//! Checksums: a zero checksum field means "no checksum" over IPv4 (RFC 768)
//! and verifies as valid; over IPv6 a zero checksum is invalid (RFC 8200
//! section 8.1). A computed checksum of 0 is sent as 0xffff.
//!
//! Not supported: IPv6 jumbograms (RFC 2675, length field 0: rejected as
//! [`ParseError::BadLength`]), the RFC 6935/6936 zero-checksum exception for
//! tunnels over IPv6 (callers that accept it must test
//! `checksum() == 0` themselves), UDP-Lite.
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`Packet::verify_checksum_v4`] and
//! [`Packet::verify_checksum_v6`] always return `true`.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::ip::IpProtocol;
use super::{ParseError, Result, checksum};

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
    pub(super) const PAYLOAD: usize = 8;
}

/// Set under `cfg(fuzzing)` (cargo-fuzz): checksums then always verify.
#[allow(unexpected_cfgs)]
const FUZZING: bool = cfg!(fuzzing);

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of a UDP datagram.
///
/// Setters that can break the [`check_len`](Packet::check_len) guarantee:
/// [`set_len`](Packet::set_len).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<B> {
    buffer: B,
}

#[allow(clippy::len_without_is_empty)] // `len` is the RFC 768 field name.
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

    /// Ensures the buffer holds a header and the `len` bytes the length
    /// field announces.
    ///
    /// Errors: [`ParseError::Truncated`] if the buffer is shorter than 8
    /// bytes or than the length field; [`ParseError::BadLength`] if the
    /// length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            Err(ParseError::BadLength)
        } else if buf_len < len {
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

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field (header plus payload).
    #[inline]
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The datagram bytes the length field covers (header and payload).
    #[inline]
    fn datagram(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(self.len()).min(b.len())]
    }

    /// True if the checksum verifies over the IPv4 pseudo-header, or the
    /// checksum field is zero ("no checksum", RFC 768).
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if FUZZING {
            return true;
        }
        if self.checksum() == 0 {
            return true;
        }
        let d = self.datagram();
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        checksum::combine(&[pseudo, checksum::data(d)]) == 0xffff
    }

    /// True if the checksum verifies over the IPv6 pseudo-header. A zero
    /// checksum field is invalid over IPv6 (RFC 8200 section 8.1).
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if FUZZING {
            return true;
        }
        if self.checksum() == 0 {
            return false;
        }
        let d = self.datagram();
        let pseudo =
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        checksum::combine(&[pseudo, checksum::data(d)]) == 0xffff
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The payload: bytes 8 up to the length field (trailing bytes in the
    /// buffer are excluded).
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[field::PAYLOAD..usize::from(self.len())]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value)
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value)
    }

    /// Sets the length field (can break the `check_len` guarantee).
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// The mutable payload: bytes 8 up to the length field, clamped to the
    /// buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let b = self.buffer.as_mut();
        let end = len.clamp(field::PAYLOAD, b.len());
        &mut b[field::PAYLOAD..end]
    }

    fn fill_with(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = checksum::finish(pseudo, self.datagram());
        // A computed zero is sent as all ones (RFC 768).
        self.set_checksum(if c == 0 { 0xffff } else { c })
    }

    /// Computes and writes the checksum over the IPv4 pseudo-header and the
    /// `len` bytes of the datagram.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        self.fill_with(pseudo)
    }

    /// Computes and writes the checksum over the IPv6 pseudo-header and the
    /// `len` bytes of the datagram.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let pseudo =
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        self.fill_with(pseudo)
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "UDP src={} dst={} len={}",
                self.src_port(),
                self.dst_port(),
                self.len()
            ),
            Err(e) => write!(f, "UDP ({e})"),
        }
    }
}

/// The high-level representation of a UDP header.
///
/// The checksum is not part of the `Repr`: [`Repr::emit`] writes zero and
/// the caller fills it with [`Packet::fill_checksum_v4`] /
/// [`Packet::fill_checksum_v6`] once the payload is in place (the
/// pseudo-header needs the IP addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes; at most `65535 - 8`.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked datagram (the checksum is verified separately).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the header and the payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header (ports, length, zero checksum) into the first 8
    /// bytes of `packet`. A `payload_len` above 65527 is written as length
    /// 0xffff (an invalid state; debug builds assert).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UDP src={} dst={} len={}",
            self.src_port,
            self.dst_port,
            self.buffer_len()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    /// UDP/IPv4 10.99.0.1:40000 -> 10.99.0.2:5353, payload "hello weft",
    /// checksum 0x180c. Captured with tcpdump on a veth pair between two
    /// network namespaces (`weft-h-l4a`/`weft-h-l4b`, transmit checksum
    /// offload switched off with the `ETHTOOL_STXCSUM` ioctl so the capture
    /// holds the final checksum), sent by a Python `SOCK_DGRAM` socket;
    /// bytes from offset 34 of the Ethernet frame.
    static UDP4_BYTES: [u8; 18] = [
        0x9c, 0x40, 0x14, 0xe9, 0x00, 0x12, 0x18, 0x0c, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x77,
        0x65, 0x66, 0x74,
    ];
    const SRC4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const DST4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    /// UDP/IPv6 [fd00::1]:40001 -> [fd00::2]:5353, payload "hello weft6",
    /// checksum 0xfccc; same capture as [`UDP4_BYTES`] (offset 54).
    static UDP6_BYTES: [u8; 19] = [
        0x9c, 0x41, 0x14, 0xe9, 0x00, 0x13, 0xfc, 0xcc, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x77,
        0x65, 0x66, 0x74, 0x36,
    ];
    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&UDP4_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 5353);
        assert_eq!(p.len(), 18);
        assert_eq!(p.checksum(), 0x180c);
        assert_eq!(p.payload(), b"hello weft");
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert!(!p.verify_checksum_v4(SRC4, Ipv4Addr::new(10, 99, 0, 3)));
        assert_eq!(p.to_string(), "UDP src=40000 dst=5353 len=18");

        let p6 = Packet::new_checked(&UDP6_BYTES[..]).unwrap();
        assert_eq!(p6.src_port(), 40001);
        assert_eq!(p6.payload(), b"hello weft6");
        assert!(p6.verify_checksum_v6(SRC6, DST6));
        assert!(!p6.verify_checksum_v6(DST6, DST6));
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 18];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(5353);
        p.set_len(18);
        p.set_checksum(0);
        p.payload_mut().copy_from_slice(b"hello weft");
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(buf, UDP4_BYTES);
    }

    #[test]
    fn parse_and_emit() {
        let p = Packet::new_checked(&UDP6_BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 40001,
                dst_port: 5353,
                payload_len: 11
            }
        );
        assert_eq!(r.buffer_len(), 19);
        let mut buf = [0xa5u8; 19];
        let mut q = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut q);
        assert_eq!(q.checksum(), 0);
        q.payload_mut().copy_from_slice(b"hello weft6");
        q.fill_checksum_v6(SRC6, DST6);
        assert_eq!(buf, UDP6_BYTES);
        assert_eq!(r.to_string(), "UDP src=40001 dst=5353 len=19");
    }

    #[test]
    fn longer_buffer_excludes_trailer() {
        let mut buf = [0u8; 24];
        buf[..18].copy_from_slice(&UDP4_BYTES);
        buf[18..].copy_from_slice(&[0xde; 6]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"hello weft");
        assert!(p.verify_checksum_v4(SRC4, DST4));
    }

    #[test]
    fn zero_checksum() {
        let mut buf = UDP4_BYTES;
        buf[6..8].copy_from_slice(&[0, 0]);
        assert!(
            Packet::new_checked(&buf[..])
                .unwrap()
                .verify_checksum_v4(SRC4, DST4)
        );
        let mut buf6 = UDP6_BYTES;
        buf6[6..8].copy_from_slice(&[0, 0]);
        assert!(
            !Packet::new_checked(&buf6[..])
                .unwrap()
                .verify_checksum_v6(SRC6, DST6)
        );
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose payload bytes so that the complement of the sum is zero:
        // the header sum plus pseudo sum plus the payload word must be 0xffff.
        let mut buf = [0u8; 10];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        let pseudo = checksum::pseudo_header_v4(SRC4, DST4, 17, 10);
        let partial = checksum::combine(&[pseudo, checksum::data(&[0, 1, 0, 2, 0, 10])]);
        p.payload_mut().copy_from_slice(&(!partial).to_be_bytes());
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(SRC4, DST4));
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            Packet::new_checked(&UDP4_BYTES[..7]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn length_field_too_small() {
        let mut buf = UDP4_BYTES;
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            ParseError::BadLength
        );
    }

    #[test]
    fn buffer_shorter_than_length_field() {
        assert_eq!(
            Packet::new_checked(&UDP4_BYTES[..17]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_unchecked(&UDP4_BYTES[..17]).to_string(),
            "UDP (truncated packet)"
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(src_port: u16, dst_port: u16, payload_len in 0usize..64) {
            let r = Repr { src_port, dst_port, payload_len };
            let mut buf = [0xa5u8; 72];
            let buf = &mut buf[..r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let p = Packet::new_unchecked(&bytes[..]);
            if let Ok(r) = Repr::parse(&p) {
                proptest::prop_assert_eq!(r.buffer_len(), usize::from(p.len()));
                let _ = p.payload();
                let _ = p.verify_checksum_v4(SRC4, DST4);
                let _ = p.verify_checksum_v6(SRC6, DST6);
            }
        }
    }
}
