//! IPv4 (RFC 791; DSCP/ECN per RFC 2474 and RFC 3168).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |0|D|M|     Fragment Offset     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (IHL > 5) ...                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! IHL counts 32-bit words; the fragment offset counts 8-byte units (this
//! module converts it to bytes: [`Packet::frag_offset`]). D = don't
//! fragment, M = more fragments; the first flag bit is reserved (ignored on
//! parse, written as zero by [`Repr::emit`]).
//!
//! `check_len` also checks the version (a view over a non-IPv4 packet is not
//! useful, and the IHL of a non-IPv4 packet means nothing). The payload ends
//! at the total length: bytes after it (Ethernet padding of short frames)
//! are allowed and excluded from [`Packet::payload`].
//!
//! Not supported: options are skipped (their length is honoured, their
//! contents are not interpreted; [`Packet::options`] exposes the bytes, and
//! [`Repr::emit`] never writes options); reassembly (fragments are
//! recognised, see [`Packet::is_fragment`]).
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)`, [`Packet::verify_checksum`] always returns `true`.

use core::fmt;
use core::net::Ipv4Addr;

use super::checksum;
use super::{IpProtocol, ParseError, Result};

mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FLAGS_MASK: u16 = 0xe000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
///
/// Setters that can make a checked view fail `check_len` (and so make
/// `payload`/`options` panic): [`set_version`](Self::set_version),
/// [`set_header_len`](Self::set_header_len),
/// [`set_total_len`](Self::set_total_len).
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

    /// Checks the buffer against the header's own length fields.
    ///
    /// # Errors
    /// * [`ParseError::Truncated`]: fewer than 20 bytes;
    /// * [`ParseError::BadVersion`]: the version is not 4;
    /// * [`ParseError::BadLength`]: IHL below 5, or total length below the
    ///   header length;
    /// * [`ParseError::Truncated`]: the buffer is shorter than the header
    ///   length or the total length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 4 {
            return Err(ParseError::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || total_len < header_len {
            return Err(ParseError::BadLength);
        }
        if len < header_len || len < total_len {
            return Err(ParseError::Truncated);
        }
        Ok(())
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

    /// The version field (4 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The explicit congestion notification bits (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// The "don't fragment" flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// True if this packet is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// True for the first fragment of a fragmented packet (offset 0, MF
    /// set): it carries the upper-layer header.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.more_frags() && self.frag_offset() == 0
    }

    /// True for a fragment other than the first (non-zero offset): it does
    /// not carry the upper-layer header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.frag_offset() != 0
    }

    /// The time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Same as [`next_header`](Self::next_header).
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.next_header()
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// True if the header checksum verifies. Never panics: a header length
    /// beyond the buffer yields `false`.
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    // `fuzzing` is set by cargo-fuzz; allowed here until the workspace
    // declares it in `check-cfg`.
    #[allow(unexpected_cfgs)]
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        match self.buffer.as_ref().get(..usize::from(self.header_len())) {
            Some(h) if h.len() >= HEADER_LEN => checksum::data(h) == 0xffff,
            _ => false,
        }
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The option bytes (between the fixed header and `header_len`).
    ///
    /// # Panics
    /// If the view did not pass `check_len`.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload: bytes from `header_len` to `total_len` (trailing
    /// padding excluded).
    ///
    /// # Panics
    /// If the view did not pass `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the version (low 4 bits of `value`).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (`value / 4` is stored in IHL;
    /// values above 60 are truncated to 4 bits).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the DSCP (low 6 bits of `value`).
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Sets the ECN bits (low 2 bits of `value`).
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value)
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value)
    }

    #[inline]
    fn flg_off(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLG_OFF];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Clears all three flag bits (reserved, DF, MF).
    #[inline]
    pub fn clear_flags(&mut self) {
        let v = self.flg_off() & !FLAGS_MASK;
        self.set_u16_at(field::FLG_OFF, v)
    }

    /// Sets the "don't fragment" flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = if value {
            self.flg_off() | FLAG_DF
        } else {
            self.flg_off() & !FLAG_DF
        };
        self.set_u16_at(field::FLG_OFF, v)
    }

    /// Sets the "more fragments" flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = if value {
            self.flg_off() | FLAG_MF
        } else {
            self.flg_off() & !FLAG_MF
        };
        self.set_u16_at(field::FLG_OFF, v)
    }

    /// Sets the fragment offset in bytes (`value / 8` is stored; the low 3
    /// bits of `value` are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let v = (self.flg_off() & FLAGS_MASK) | (value >> 3);
        self.set_u16_at(field::FLG_OFF, v)
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value
    }

    /// Sets the protocol of the payload.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into()
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// Computes the header checksum (over `header_len` bytes, options
    /// included) and stores it.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len`.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(!sum)
    }

    /// The mutable option bytes.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len`.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The mutable payload (from `header_len` to `total_len`).
    ///
    /// # Panics
    /// If the buffer is shorter than `total_len` or `total_len <
    /// header_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        let tl = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

fn fmt_tail(
    f: &mut fmt::Formatter<'_>,
    ident: u16,
    dont_frag: bool,
    more_frags: bool,
    frag_offset: u16,
) -> fmt::Result {
    write!(f, " id={ident}")?;
    if dont_frag {
        f.write_str(" DF")?;
    }
    if more_frags {
        f.write_str(" MF")?;
    }
    write!(f, " frag_off={frag_offset}")
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "IPv4 ({e})");
        }
        write!(
            f,
            "IPv4 src={} dst={} proto={} ttl={} len={}",
            self.src_addr(),
            self.dst_addr(),
            self.next_header(),
            self.ttl(),
            self.total_len()
        )?;
        fmt_tail(
            f,
            self.ident(),
            self.dont_frag(),
            self.more_frags(),
            self.frag_offset(),
        )
    }
}

/// The high-level representation of an IPv4 header (options are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (6 bits).
    pub dscp: u8,
    /// ECN (2 bits).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
}

impl Repr {
    /// Parses a packet and verifies its header checksum.
    ///
    /// Options are skipped: `payload_len` is the total length minus the
    /// real header length, but the options themselves are dropped.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`], and [`ParseError::BadChecksum`].
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(ParseError::BadChecksum);
        }
        Self::parse_unverified(packet)
    }

    /// Like [`parse`](Self::parse) but does not verify the checksum (for
    /// packets whose checksum was offloaded or already checked).
    ///
    /// # Errors
    /// Those of [`Packet::check_len`].
    pub fn parse_unverified<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// The emitted header length (20: no options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the emitted packet: header plus `payload_len`.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options) with a correct checksum into
    /// the start of `packet`; the payload bytes are not touched.
    ///
    /// `dscp` and `ecn` are masked to 6 and 2 bits; `frag_offset` is
    /// rounded down to a multiple of 8; a `payload_len` above 65515 is
    /// clamped so that the total length field saturates at 65535.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        let total = u16::try_from(HEADER_LEN.saturating_add(self.payload_len)).unwrap_or(u16::MAX);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_frag_offset(self.frag_offset);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_ttl(self.ttl);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr {
    /// `len` is the total length [`emit`](Repr::emit) would write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 src={} dst={} proto={} ttl={} len={}",
            self.src_addr,
            self.dst_addr,
            self.next_header,
            self.ttl,
            self.buffer_len()
        )?;
        fmt_tail(
            f,
            self.ident,
            self.dont_frag,
            self.more_frags,
            self.frag_offset,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (see PREAMBLE)
mod tests {
    use super::*;

    // All packets below were captured with tcpdump on a veth pair between
    // two network namespaces (`weft-h-l23a` 10.8.0.1 and `weft-h-l23b`
    // 10.8.0.2) while writing these tests, sending UDP to port 9999 from
    // Python; bytes after the 14-byte Ethernet header.

    /// A small UDP datagram with DF set (payload "weft-l23 ipv4 udp").
    static UDP_DF: [u8; 45] = [
        0x45, 0x00, 0x00, 0x2d, 0xdb, 0x64, 0x40, 0x00, 0x40, 0x11, 0x4b, 0x49, 0x0a, 0x08, 0x00,
        0x01, 0x0a, 0x08, 0x00, 0x02, 0x87, 0x8a, 0x27, 0x0f, 0x00, 0x19, 0x14, 0x3d, 0x77, 0x65,
        0x66, 0x74, 0x2d, 0x6c, 0x32, 0x33, 0x20, 0x69, 0x70, 0x76, 0x34, 0x20, 0x75, 0x64, 0x70,
    ];

    /// First fragment of a 2000-byte UDP datagram sent without DF: header,
    /// UDP header, then 1472 bytes of `b'F'` (total length 1500).
    static FIRST_FRAG_HEAD: [u8; 28] = [
        0x45, 0x00, 0x05, 0xdc, 0xdb, 0x65, 0x20, 0x00, 0x40, 0x11, 0x65, 0x99, 0x0a, 0x08, 0x00,
        0x01, 0x0a, 0x08, 0x00, 0x02, 0xe7, 0x35, 0x27, 0x0f, 0x07, 0xd8, 0x4b, 0x64,
    ];

    /// Second (last) fragment of the same datagram: header (offset 1480),
    /// then 528 bytes of `b'F'` (total length 548).
    static LATER_FRAG_HEAD: [u8; 20] = [
        0x45, 0x00, 0x02, 0x24, 0xdb, 0x65, 0x00, 0xb9, 0x40, 0x11, 0x88, 0x98, 0x0a, 0x08, 0x00,
        0x01, 0x0a, 0x08, 0x00, 0x02,
    ];

    fn first_frag() -> Vec<u8> {
        let mut v = FIRST_FRAG_HEAD.to_vec();
        v.resize(1500, b'F');
        v
    }

    fn later_frag() -> Vec<u8> {
        let mut v = LATER_FRAG_HEAD.to_vec();
        v.resize(548, b'F');
        v
    }

    fn udp_df_repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(10, 8, 0, 1),
            dst_addr: Ipv4Addr::new(10, 8, 0, 2),
            next_header: IpProtocol::Udp,
            payload_len: 25,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0xdb64,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&UDP_DF[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp(), 0);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 45);
        assert_eq!(p.ident(), 0xdb64);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert!(!p.is_first_fragment());
        assert!(!p.is_later_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.checksum(), 0x4b49);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 8, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 8, 0, 2));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), &UDP_DF[20..]);
        assert_eq!(
            p.to_string(),
            "IPv4 src=10.8.0.1 dst=10.8.0.2 proto=UDP ttl=64 len=45 id=56164 DF frag_off=0"
        );
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 45];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp(0);
        p.set_ecn(0);
        p.set_total_len(45);
        p.set_ident(0xdb64);
        p.clear_flags();
        p.set_frag_offset(0);
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_ttl(64);
        p.set_next_header(IpProtocol::Udp);
        p.set_src_addr(Ipv4Addr::new(10, 8, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 8, 0, 2));
        p.fill_checksum();
        p.payload_mut().copy_from_slice(&UDP_DF[20..]);
        assert_eq!(buf, UDP_DF);
    }

    #[test]
    fn repr_parse_emit() {
        let r = Repr::parse(&Packet::new_checked(&UDP_DF[..]).unwrap()).unwrap();
        assert_eq!(r, udp_df_repr());
        assert_eq!((r.header_len(), r.buffer_len()), (20, 45));
        let mut buf = [0xa5u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &UDP_DF[..20]);
        assert_eq!(
            r.to_string(),
            "IPv4 src=10.8.0.1 dst=10.8.0.2 proto=UDP ttl=64 len=45 id=56164 DF frag_off=0"
        );
    }

    #[test]
    fn first_fragment() {
        let bytes = first_frag();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(p.is_fragment() && p.is_first_fragment() && !p.is_later_fragment());
        assert_eq!(p.payload().len(), 1480);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            (r.more_frags, r.frag_offset, r.payload_len),
            (true, 0, 1480)
        );
        let mut buf = [0xa5u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &FIRST_FRAG_HEAD[..20]);
        assert_eq!(
            p.to_string(),
            "IPv4 src=10.8.0.1 dst=10.8.0.2 proto=UDP ttl=64 len=1500 id=56165 MF frag_off=0"
        );
    }

    #[test]
    fn later_fragment() {
        let bytes = later_frag();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment() && !p.is_first_fragment() && p.is_later_fragment());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            (r.more_frags, r.frag_offset, r.payload_len),
            (false, 1480, 528)
        );
        let mut buf = [0xa5u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, LATER_FRAG_HEAD);
    }

    /// Ethernet pads frames to 60 bytes: the padding is not payload.
    #[test]
    fn trailing_padding_excluded() {
        let mut padded = [0u8; 46];
        padded[..45].copy_from_slice(&UDP_DF);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &UDP_DF[20..]);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 25);
    }

    /// The same datagram with a 4-byte option (NOP, NOP, NOP, EOL) added by
    /// hand: options are exposed by the view and skipped by `Repr`.
    #[test]
    fn options_skipped() {
        let mut b = [0u8; 49];
        b[..20].copy_from_slice(&UDP_DF[..20]);
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..].copy_from_slice(&UDP_DF[20..]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_header_len(24);
        p.set_total_len(49);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &UDP_DF[20..]);
        assert_eq!(Repr::parse(&p).unwrap(), udp_df_repr());
    }

    #[test]
    fn reserved_flag_ignored_and_cleared() {
        let mut b = UDP_DF;
        b[6] |= 0x80;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r, udp_df_repr());
        let mut buf = [0xa5u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &UDP_DF[..20]);
    }

    #[test]
    fn truncated_fixed_header() {
        assert_eq!(
            Packet::new_checked(&UDP_DF[..19]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&UDP_DF[..19]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "IPv4 (truncated packet)");
    }

    #[test]
    fn bad_version() {
        let mut b = UDP_DF;
        b[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            ParseError::BadVersion
        );
    }

    #[test]
    fn ihl_below_five() {
        let mut b = UDP_DF;
        b[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            ParseError::BadLength
        );
    }

    #[test]
    fn total_len_below_header_len() {
        let mut b = UDP_DF;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            ParseError::BadLength
        );
    }

    #[test]
    fn truncated_options() {
        let mut b = [0u8; 40];
        b[..20].copy_from_slice(&UDP_DF[..20]);
        b[0] = 0x4f; // 60-byte header
        b[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn truncated_payload() {
        assert_eq!(
            Packet::new_checked(&UDP_DF[..44]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn bad_checksum() {
        let mut b = UDP_DF;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::BadChecksum);
        assert_eq!(Repr::parse_unverified(&p).unwrap(), udp_df_repr());
    }

    #[test]
    fn verify_checksum_on_unchecked_view_does_not_panic() {
        let mut b = UDP_DF;
        b[0] = 0x4f;
        assert!(!Packet::new_unchecked(&b[..]).verify_checksum());
        assert!(!Packet::new_unchecked(&b[..3]).verify_checksum());
    }

    #[test]
    fn emit_clamps_and_masks() {
        let r = Repr {
            payload_len: 100_000,
            dscp: 0xff,
            ecn: 0xff,
            frag_offset: 13,
            ..udp_df_repr()
        };
        let mut buf = [0xa5u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let p = Packet::new_unchecked(&buf[..]);
        assert_eq!(
            (p.total_len(), p.dscp(), p.ecn(), p.frag_offset()),
            (65535, 63, 3, 8)
        );
        assert!(p.verify_checksum());
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(
            src: u32, dst: u32, proto: u8, payload_len in 0usize..1500, ttl: u8,
            dscp in 0u8..64, ecn in 0u8..4, ident: u16, dont_frag: bool, more_frags: bool,
            frag_units in 0u16..8192,
        ) {
            let r = Repr {
                src_addr: Ipv4Addr::from(src),
                dst_addr: Ipv4Addr::from(dst),
                next_header: IpProtocol::from(proto),
                payload_len, ttl, dscp, ecn, ident, dont_frag, more_frags,
                frag_offset: frag_units * 8,
            };
            let mut buf = vec![0xa5u8; r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }
}
