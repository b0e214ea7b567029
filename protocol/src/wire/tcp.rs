//! TCP segments (RFC 9293 section 3.1; ECE/CWR from RFC 3168, NS from
//! RFC 3540).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |     |N|C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsv |S|W|C|R|C|S|S|Y|I|            Window             |
//! |       |     | |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (0..40 bytes)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          payload ...                          |
//! ```
//!
//! The view covers one whole segment (the IP payload): the payload runs
//! from the data offset to the end of the buffer, and the checksum covers
//! the whole buffer.
//!
//! Design: options are skipped, not interpreted ([`Packet::options`] returns
//! the raw bytes). [`Repr`] therefore carries no options, and
//! [`Repr::emit`] always writes a 20-byte header (data offset 5, reserved
//! bits zero). A switch that must keep options edits the segment in place
//! through the view's setters instead of re-emitting it.
//!
//! Not supported: option parsing (MSS, window scale, SACK, timestamps),
//! sequence-number arithmetic, RFC 9293 state. The three reserved bits are
//! ignored on parse and written as zero. NS (RFC 3540, historic since
//! RFC 8311) is exposed as a plain flag bit (AccECN calls it AE).
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`Packet::verify_checksum_v4`] and
//! [`Packet::verify_checksum_v6`] always return `true`.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops;

use super::ip::IpProtocol;
use super::{ParseError, Result, checksum};

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUM: Range<usize> = 4..8;
    pub(super) const ACK_NUM: Range<usize> = 8..12;
    pub(super) const FLAGS: Range<usize> = 12..14;
    pub(super) const WIN_SIZE: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
    pub(super) const OPTIONS: usize = 20;
}

/// Set under `cfg(fuzzing)` (cargo-fuzz): checksums then always verify.
#[allow(unexpected_cfgs)]
const FUZZING: bool = cfg!(fuzzing);

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// The nine TCP control bits, in their wire positions (the low 9 bits of
/// header bytes 12..14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN-nonce concealment protection (RFC 3540, historic).
    pub const NS: TcpFlags = TcpFlags(0x100);
    /// No flag set.
    pub const EMPTY: TcpFlags = TcpFlags(0);
    /// All nine flag bits.
    pub const ALL: TcpFlags = TcpFlags(0x1ff);

    /// True if every bit of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set in `self`.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// True if no bit is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }
}

impl ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0
    }
}

impl ops::BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl ops::BitAndAssign for TcpFlags {
    #[inline]
    fn bitand_assign(&mut self, rhs: TcpFlags) {
        self.0 &= rhs.0
    }
}

impl ops::Not for TcpFlags {
    type Output = TcpFlags;
    /// The complement within the nine flag bits.
    #[inline]
    fn not(self) -> TcpFlags {
        TcpFlags(!self.0 & TcpFlags::ALL.0)
    }
}

impl fmt::Display for TcpFlags {
    /// Names joined by `|` in bit order (`SYN|ACK`); `none` when empty; bits
    /// above the nine flags as a trailing hex value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TcpFlags, &str); 9] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
            (TcpFlags::NS, "NS"),
        ];
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut sep = "";
        for (flag, name) in NAMES {
            if self.contains(flag) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        let extra = self.0 & !TcpFlags::ALL.0;
        if extra != 0 {
            write!(f, "{sep}0x{extra:x}")?;
        }
        Ok(())
    }
}

/// A read/write view of a TCP segment.
///
/// Setters that can break the [`check_len`](Packet::check_len) guarantee:
/// [`set_header_len`](Packet::set_header_len).
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

    /// Ensures the buffer holds the fixed header and the options the data
    /// offset announces.
    ///
    /// Errors: [`ParseError::Truncated`] if the buffer is shorter than 20
    /// bytes or than the data offset; [`ParseError::BadLength`] if the data
    /// offset is below 5.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            Err(ParseError::BadLength)
        } else if len < header_len {
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
    fn u16_at(&self, r: ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline]
    fn u32_at(&self, r: ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
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

    /// The sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ_NUM)
    }

    /// The acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK_NUM)
    }

    /// The header length in bytes (data offset times 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }

    /// The nine control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.u16_at(field::FLAGS) & TcpFlags::ALL.0)
    }

    /// The window field.
    #[inline]
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// True if the checksum verifies over the IPv4 pseudo-header and the
    /// whole buffer (false for a buffer longer than 65535 bytes).
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if FUZZING {
            return true;
        }
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp.into(), len);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
    }

    /// True if the checksum verifies over the IPv6 pseudo-header and the
    /// whole buffer.
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if FUZZING {
            return true;
        }
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp.into(), len);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The raw option bytes (20 up to the data offset); not interpreted.
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The bytes after the header, to the end of the buffer.
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_u16_at(&mut self, r: ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    #[inline]
    fn set_u32_at(&mut self, r: ops::Range<usize>, v: u32) {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        self.set_u32_at(field::SEQ_NUM, value)
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        self.set_u32_at(field::ACK_NUM, value)
    }

    /// Sets the data offset to `value / 4` (can break the `check_len`
    /// guarantee), keeping the reserved bits and flags.
    ///
    /// `value` should be a multiple of 4 in 20..=60; other values are
    /// truncated to the 4-bit field.
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        let b = self.buffer.as_mut();
        let off = ((value / 4) & 0x0f) as u8;
        b[field::FLAGS.start] = (b[field::FLAGS.start] & 0x0f) | (off << 4);
    }

    /// Sets the nine control bits, keeping the data offset; the three
    /// reserved bits are cleared and bits above the nine flags ignored.
    #[inline]
    pub fn set_flags(&mut self, value: TcpFlags) {
        let b = self.buffer.as_mut();
        let [hi, lo] = (value.0 & TcpFlags::ALL.0).to_be_bytes();
        b[field::FLAGS.start] = (b[field::FLAGS.start] & 0xf0) | hi;
        b[field::FLAGS.start + 1] = lo;
    }

    /// Sets the window field.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        self.set_u16_at(field::WIN_SIZE, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        self.set_u16_at(field::URGENT, value)
    }

    /// The mutable option bytes (20 up to the data offset, clamped to the
    /// buffer).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        let b = self.buffer.as_mut();
        let end = end.clamp(field::OPTIONS, b.len());
        &mut b[field::OPTIONS..end]
    }

    /// The mutable bytes after the header (clamped to the buffer).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let b = self.buffer.as_mut();
        let start = start.clamp(field::OPTIONS, b.len());
        &mut b[start..]
    }

    /// Computes and writes the checksum over the IPv4 pseudo-header and the
    /// whole buffer (header, options, payload).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. A buffer longer than
    /// 65535 bytes cannot be checksummed over IPv4; its length is then
    /// truncated in the pseudo-header (debug builds assert).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        debug_assert!(b.len() <= usize::from(u16::MAX));
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp.into(), b.len() as u16);
        let c = checksum::finish(pseudo, b);
        self.set_checksum(c)
    }

    /// Computes and writes the checksum over the IPv6 pseudo-header and the
    /// whole buffer (header, options, payload).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp.into(), len);
        let c = checksum::finish(pseudo, b);
        self.set_checksum(c)
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "TCP src={} dst={} flags={} seq={} ack={} win={} len={}",
                self.src_port(),
                self.dst_port(),
                self.flags(),
                self.seq_number(),
                self.ack_number(),
                self.window_len(),
                self.buffer.as_ref().len() - self.header_len()
            ),
            Err(e) => write!(f, "TCP ({e})"),
        }
    }
}

/// The high-level representation of a TCP header without options.
///
/// The checksum is not part of the `Repr`: [`Repr::emit`] writes zero and
/// the caller fills it with [`Packet::fill_checksum_v4`] /
/// [`Packet::fill_checksum_v6`] once the payload is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack_number: u32,
    /// Control bits; only the low nine bits are emitted.
    pub flags: TcpFlags,
    /// Window field (unscaled).
    pub window_len: u16,
    /// Urgent pointer (meaningful when `flags` has URG).
    pub urgent_at: u16,
}

impl Repr {
    /// Parses a checked segment; options are skipped (the checksum is
    /// verified separately).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
        })
    }

    /// The emitted header length (always 20: no options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the header and `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes a 20-byte header (data offset 5, reserved bits zero, checksum
    /// zero) into the start of `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::FLAGS.start] = 0;
        packet.set_header_len(HEADER_LEN);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP src={} dst={} flags={} seq={} ack={} win={}",
            self.src_port,
            self.dst_port,
            self.flags,
            self.seq_number,
            self.ack_number,
            self.window_len
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    // All segments below were captured with tcpdump on a veth pair between
    // two network namespaces (`weft-h-l4a` 10.99.0.1/fd00::1 and
    // `weft-h-l4b` 10.99.0.2/fd00::2), with transmit checksum offload
    // switched off (`ETHTOOL_STXCSUM` ioctl) so the capture holds final
    // checksums. Traffic: Python `socket.create_connection` to a listener,
    // Linux TCP stack. Bytes start at the TCP header.

    const SRC4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const DST4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    /// SYN 10.99.0.1:47384 -> 10.99.0.2:8080, seq 777129216, win 64240,
    /// options MSS=1460, SACK_PERM, TS, NOP, WS=10 (20 option bytes).
    static SYN_BYTES: [u8; 40] = [
        0xb9, 0x18, 0x1f, 0x90, 0x2e, 0x52, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xd7, 0xcc, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x59, 0x28,
        0xf3, 0x53, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// PSH|ACK from the same connection carrying "GET" (12 option bytes:
    /// NOP, NOP, TS).
    static PSH_BYTES: [u8; 35] = [
        0xb9, 0x18, 0x1f, 0x90, 0x2e, 0x52, 0x0d, 0x01, 0xea, 0xd8, 0x53, 0x2a, 0x80, 0x18, 0x00,
        0x3f, 0x74, 0xed, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x59, 0x28, 0xf3, 0x53, 0xfc, 0x2b,
        0xb6, 0xd0, 0x47, 0x45, 0x54,
    ];

    /// PSH|ACK over IPv6 [fd00::1]:49544 -> [fd00::2]:8080 carrying "GET6".
    static PSH6_BYTES: [u8; 36] = [
        0xc1, 0x88, 0x1f, 0x90, 0xba, 0x3d, 0xb1, 0xcd, 0xf7, 0x02, 0x52, 0xf8, 0x80, 0x18, 0x00,
        0x40, 0x3f, 0x5d, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x2e, 0x9f, 0x5e, 0x6c, 0xb1, 0x49,
        0xcc, 0x1f, 0x47, 0x45, 0x54, 0x36,
    ];

    /// ECN setup SYN (SYN|ECE|CWR) 10.99.0.1:42846 -> 10.99.0.2:8081, with
    /// `net.ipv4.tcp_ecn=1` in both namespaces.
    static SYN_ECN_BYTES: [u8; 40] = [
        0xa7, 0x5e, 0x1f, 0x91, 0xf9, 0x6c, 0xa2, 0x56, 0x00, 0x00, 0x00, 0x00, 0xa0, 0xc2, 0xfa,
        0xf0, 0x31, 0x8b, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x75, 0x35,
        0x2e, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// Its ECN setup SYN-ACK (SYN|ACK|ECE), 10.99.0.2 -> 10.99.0.1.
    static SYN_ACK_ECN_BYTES: [u8; 40] = [
        0x1f, 0x91, 0xa7, 0x5e, 0xe4, 0xf5, 0xde, 0x8f, 0xf9, 0x6c, 0xa2, 0x57, 0xa0, 0x52, 0xfe,
        0x88, 0xa2, 0xe6, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x83, 0x65,
        0x44, 0x90, 0x75, 0x35, 0x2e, 0x10, 0x01, 0x03, 0x03, 0x0a,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PSH_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 47384);
        assert_eq!(p.dst_port(), 8080);
        assert_eq!(p.seq_number(), 0x2e52_0d01);
        assert_eq!(p.ack_number(), 0xead8_532a);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(p.window_len(), 63);
        assert_eq!(p.checksum(), 0x74ed);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &PSH_BYTES[20..32]);
        assert_eq!(p.payload(), b"GET");
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert!(!p.verify_checksum_v4(DST4, DST4));
        assert_eq!(
            p.to_string(),
            "TCP src=47384 dst=8080 flags=PSH|ACK seq=777129217 ack=3940045610 win=63 len=3"
        );

        let s = Packet::new_checked(&SYN_BYTES[..]).unwrap();
        assert_eq!(s.flags(), TcpFlags::SYN);
        assert_eq!(s.header_len(), 40);
        assert_eq!(&s.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert!(s.payload().is_empty());
        assert!(s.verify_checksum_v4(SRC4, DST4));

        let p6 = Packet::new_checked(&PSH6_BYTES[..]).unwrap();
        assert_eq!(p6.payload(), b"GET6");
        assert!(p6.verify_checksum_v6(SRC6, DST6));
        assert!(!p6.verify_checksum_v6(DST6, DST6));
    }

    #[test]
    fn ecn_flags() {
        let s = Packet::new_checked(&SYN_ECN_BYTES[..]).unwrap();
        assert_eq!(s.flags(), TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR);
        assert_eq!(s.flags().to_string(), "SYN|ECE|CWR");
        assert!(s.verify_checksum_v4(SRC4, DST4));
        let sa = Packet::new_checked(&SYN_ACK_ECN_BYTES[..]).unwrap();
        assert_eq!(sa.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
        assert!(sa.verify_checksum_v4(DST4, SRC4));
    }

    #[test]
    fn flags_ops_and_display() {
        let f = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(f.0, 0x012);
        assert!(f.contains(TcpFlags::SYN));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert_eq!(f & TcpFlags::ACK, TcpFlags::ACK);
        assert_eq!((!f).0, 0x1ed);
        let mut g = TcpFlags::EMPTY;
        g |= TcpFlags::NS;
        g |= TcpFlags::FIN;
        g &= TcpFlags::NS;
        assert_eq!(g, TcpFlags::NS);
        assert_eq!(f.to_string(), "SYN|ACK");
        assert_eq!(
            TcpFlags::ALL.to_string(),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR|NS"
        );
        assert_eq!(TcpFlags::EMPTY.to_string(), "none");
        assert_eq!(TcpFlags(0x202).to_string(), "SYN|0x200");
    }

    #[test]
    fn ns_flag_and_reserved_bits() {
        let mut buf = PSH_BYTES;
        buf[12] |= 0x0f; // three reserved bits and NS
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.flags(), TcpFlags::NS | TcpFlags::PSH | TcpFlags::ACK);
        let mut q = Packet::new_unchecked(&mut buf[..]);
        q.set_flags(TcpFlags::ACK);
        assert_eq!(buf[12], 0x80);
        assert_eq!(buf[13], 0x10);
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 35];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(47384);
        p.set_dst_port(8080);
        p.set_seq_number(0x2e52_0d01);
        p.set_ack_number(0xead8_532a);
        p.set_header_len(32);
        p.set_flags(TcpFlags::PSH | TcpFlags::ACK);
        p.set_window_len(63);
        p.set_urgent_at(0);
        p.options_mut().copy_from_slice(&PSH_BYTES[20..32]);
        p.payload_mut().copy_from_slice(b"GET");
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(buf, PSH_BYTES);
    }

    #[test]
    fn parse_and_emit() {
        let p = Packet::new_checked(&SYN_ECN_BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 42846,
                dst_port: 8081,
                seq_number: 0xf96c_a256,
                ack_number: 0,
                flags: TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR,
                window_len: 64240,
                urgent_at: 0,
            }
        );
        assert_eq!(
            r.to_string(),
            "TCP src=42846 dst=8081 flags=SYN|ECE|CWR seq=4184646230 ack=0 win=64240"
        );
        // Options are not carried: the emitted header is the first 20 bytes
        // with data offset 5 and the checksum recomputed over them.
        let mut buf = [0xa5u8; 20];
        let mut q = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut q);
        q.fill_checksum_v4(SRC4, DST4);
        let mut expected = [0u8; 20];
        expected.copy_from_slice(&SYN_ECN_BYTES[..20]);
        expected[12] = 0x50;
        let mut e = Packet::new_unchecked(&mut expected[..]);
        e.fill_checksum_v4(SRC4, DST4);
        assert_eq!(buf, expected);
        assert!(
            Packet::new_checked(&buf[..])
                .unwrap()
                .verify_checksum_v4(SRC4, DST4)
        );

        // A real option-less layout: the PSH segment's payload behind a
        // 20-byte header round-trips through emit.
        let r6 = Repr::parse(&Packet::new_checked(&PSH6_BYTES[..]).unwrap()).unwrap();
        let mut buf6 = [0xa5u8; 24];
        assert_eq!(r6.buffer_len(4), 24);
        let mut q6 = Packet::new_unchecked(&mut buf6[..]);
        r6.emit(&mut q6);
        q6.payload_mut().copy_from_slice(b"GET6");
        q6.fill_checksum_v6(SRC6, DST6);
        let back = Packet::new_checked(&buf6[..]).unwrap();
        assert!(back.verify_checksum_v6(SRC6, DST6));
        assert_eq!(back.payload(), b"GET6");
        assert_eq!(Repr::parse(&back).unwrap(), r6);
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            Packet::new_checked(&SYN_BYTES[..19]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn data_offset_too_small() {
        let mut buf = SYN_BYTES;
        buf[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            ParseError::BadLength
        );
    }

    #[test]
    fn buffer_shorter_than_data_offset() {
        assert_eq!(
            Packet::new_checked(&SYN_BYTES[..39]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_unchecked(&SYN_BYTES[..39]).to_string(),
            "TCP (truncated packet)"
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(
            src_port: u16, dst_port: u16, seq_number: u32, ack_number: u32,
            flags in 0u16..0x200, window_len: u16, urgent_at: u16,
        ) {
            let r = Repr {
                src_port, dst_port, seq_number, ack_number,
                flags: TcpFlags(flags), window_len, urgent_at,
            };
            let mut buf = [0xa5u8; 20];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let p = Packet::new_unchecked(&bytes[..]);
            if Repr::parse(&p).is_ok() {
                proptest::prop_assert_eq!(p.options().len() + p.payload().len() + 20, bytes.len());
                let _ = p.verify_checksum_v4(SRC4, DST4);
                let _ = p.verify_checksum_v6(SRC6, DST6);
            }
        }
    }
}
