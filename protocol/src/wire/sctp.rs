//! SCTP common header (RFC 9260 section 3.1) and the CRC32c checksum
//! (RFC 9260 section 6.8 and appendix A; RFC 3309).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Source Port Number        |     Destination Port Number   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Verification Tag                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Checksum (CRC32c, see below)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Chunk Type   |  Chunk Flags  |         Chunk Length          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  chunk value, further chunks ...              |
//! ```
//!
//! The view covers one whole SCTP packet (the IP payload). The checksum is
//! the CRC32c (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78,
//! initial value and final XOR 0xffffffff) of the whole packet with the
//! checksum field set to zero. RFC 9260 appendix A stores the CRC with its
//! least significant byte first, so [`Packet::checksum`] reads the field
//! little-endian and returns the CRC value itself. (Wireshark prints the
//! four bytes as a big-endian number: the field `25 9e f4 3f` is shown as
//! 0x259ef43f, the CRC value is 0x3ff49e25.) There is no pseudo-header.
//!
//! Only the common header and the first chunk's type, flags and length are
//! exposed (what a flow key and tshark-like summary need).
//!
//! Not supported: walking chunks, chunk bodies (INIT parameters, DATA),
//! bundling rules, association state, the zero-checksum extension
//! (RFC 9653).
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`Packet::verify_checksum`] always returns `true`.

use core::fmt;

use super::{ParseError, Result};

wire_enum! {
    /// Chunk types (RFC 9260 section 3.2; IANA "Chunk Types").
    pub enum ChunkType(u8) {
        /// Payload data.
        Data = 0,
        /// Initiation.
        Init = 1,
        /// Initiation acknowledgement.
        InitAck = 2,
        /// Selective acknowledgement.
        Sack = 3,
        /// Heartbeat request.
        Heartbeat = 4,
        /// Heartbeat acknowledgement.
        HeartbeatAck = 5,
        /// Abort.
        Abort = 6,
        /// Shutdown.
        Shutdown = 7,
        /// Shutdown acknowledgement.
        ShutdownAck = 8,
        /// Operation error.
        Error = 9,
        /// State cookie.
        CookieEcho = 10,
        /// Cookie acknowledgement.
        CookieAck = 11,
        /// Shutdown complete.
        ShutdownComplete = 14,
    }
}

impl fmt::Display for ChunkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkType::Data => "DATA",
            ChunkType::Init => "INIT",
            ChunkType::InitAck => "INIT_ACK",
            ChunkType::Sack => "SACK",
            ChunkType::Heartbeat => "HEARTBEAT",
            ChunkType::HeartbeatAck => "HEARTBEAT_ACK",
            ChunkType::Abort => "ABORT",
            ChunkType::Shutdown => "SHUTDOWN",
            ChunkType::ShutdownAck => "SHUTDOWN_ACK",
            ChunkType::Error => "ERROR",
            ChunkType::CookieEcho => "COOKIE_ECHO",
            ChunkType::CookieAck => "COOKIE_ACK",
            ChunkType::ShutdownComplete => "SHUTDOWN_COMPLETE",
            ChunkType::Unknown(v) => return write!(f, "0x{v:02x}"),
        })
    }
}

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const VERIFICATION_TAG: Range<usize> = 4..8;
    pub(super) const CHECKSUM: Range<usize> = 8..12;
    pub(super) const CHUNKS: usize = 12;
    pub(super) const CHUNK_TYPE: usize = 12;
    pub(super) const CHUNK_FLAGS: usize = 13;
    pub(super) const CHUNK_LENGTH: Range<usize> = 14..16;
}

/// Set under `cfg(fuzzing)` (cargo-fuzz): checksums then always verify.
#[allow(unexpected_cfgs)]
const FUZZING: bool = cfg!(fuzzing);

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = field::CHUNKS;

/// Length of a chunk header (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = 4;

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Byte-wise CRC32c lookup table for the reflected polynomial 0x82F63B78.
static CRC32C_TABLE: [u32; 256] = crc32c_table();

/// Feeds `data` into a running (pre-inverted) CRC32c state.
#[inline]
fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC32c (Castagnoli, RFC 3309 / RFC 9260 appendix A) of `data`:
/// reflected, initial value 0xffffffff, final XOR 0xffffffff.
///
/// `crc32c(b"123456789") == 0xe306_9283`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// A read/write view of an SCTP packet.
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

    /// Ensures the buffer holds the 12-byte common header
    /// ([`ParseError::Truncated`] otherwise). Chunks are not checked: the
    /// first-chunk accessors return `None` when the chunk header is absent.
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

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SRC_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::DST_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VERIFICATION_TAG];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The checksum field as the CRC32c value (read little-endian, as RFC
    /// 9260 appendix A stores it).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The CRC32c of the whole buffer with the checksum field read as zero.
    pub fn compute_checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        let crc = crc32c_update(!0, &b[..field::CHECKSUM.start]);
        let crc = crc32c_update(crc, &[0; 4]);
        !crc32c_update(crc, &b[field::CHECKSUM.end..])
    }

    /// True if the CRC32c checksum verifies over the whole buffer.
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum(&self) -> bool {
        if FUZZING {
            return true;
        }
        self.compute_checksum() == self.checksum()
    }

    /// The first chunk's type; `None` if the packet has no chunk header.
    #[inline]
    pub fn first_chunk_type(&self) -> Option<ChunkType> {
        self.buffer
            .as_ref()
            .get(field::CHUNK_TYPE)
            .map(|&t| ChunkType::from(t))
    }

    /// The first chunk's flags; `None` if the packet has no chunk header.
    #[inline]
    pub fn first_chunk_flags(&self) -> Option<u8> {
        self.buffer.as_ref().get(field::CHUNK_FLAGS).copied()
    }

    /// The first chunk's length field (chunk header and value, without
    /// padding); `None` if the packet has no chunk header.
    #[inline]
    pub fn first_chunk_len(&self) -> Option<u16> {
        self.buffer
            .as_ref()
            .get(field::CHUNK_LENGTH)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The chunk bytes after the common header.
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::CHUNKS..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the verification tag.
    #[inline]
    pub fn set_verification_tag(&mut self, value: u32) {
        self.buffer.as_mut()[field::VERIFICATION_TAG].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the checksum field to the CRC32c value `value` (written
    /// little-endian).
    #[inline]
    pub fn set_checksum(&mut self, value: u32) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_le_bytes())
    }

    /// The mutable chunk bytes after the common header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::CHUNKS..]
    }

    /// Computes and writes the CRC32c over the whole buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c)
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "SCTP ({e})");
        }
        write!(
            f,
            "SCTP src={} dst={} vtag=0x{:08x}",
            self.src_port(),
            self.dst_port(),
            self.verification_tag()
        )?;
        if let (Some(t), Some(l)) = (self.first_chunk_type(), self.first_chunk_len()) {
            write!(f, " chunk={t} chunk_len={l}")?;
        }
        write!(f, " len={}", self.buffer.as_ref().len())
    }
}

/// The high-level representation of the SCTP common header.
///
/// The checksum is not part of the `Repr`: [`Repr::emit`] writes zero and
/// the caller fills it with [`Packet::fill_checksum`] once the chunks are in
/// place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag (0 in an INIT).
    pub verification_tag: u32,
}

impl Repr {
    /// Parses a checked packet (the checksum is verified separately).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            verification_tag: packet.verification_tag(),
        })
    }

    /// The header length (12).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the header and `chunks_len` chunk bytes.
    #[inline]
    pub const fn buffer_len(&self, chunks_len: usize) -> usize {
        HEADER_LEN + chunks_len
    }

    /// Writes the common header (checksum zero) into the first 12 bytes of
    /// `packet`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_verification_tag(self.verification_tag);
        packet.set_checksum(0);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCTP src={} dst={} vtag=0x{:08x}",
            self.src_port, self.dst_port, self.verification_tag
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    /// An SCTP INIT, 192.168.1.142:33985 -> 192.168.1.143:6704 (ForCES),
    /// from packet 1 of `tests/forces2.pcap` in the tcpdump test suite
    /// (https://github.com/the-tcpdump-group/tcpdump, commit
    /// 39b50f76672bca4af7d7eb52604c5b692c6b6b2c; Linux cooked capture,
    /// SCTP starts at frame offset 36). tshark 4.0 with
    /// `-o sctp.checksum:CRC-32C` reports "Checksum (CRC32C): 0x259ef43f
    /// [correct]"; INIT chunk, flags 0, length 36.
    static INIT_BYTES: [u8; 48] = [
        0x84, 0xc1, 0x1a, 0x30, 0x00, 0x00, 0x00, 0x00, 0x25, 0x9e, 0xf4, 0x3f, 0x01, 0x00, 0x00,
        0x24, 0x94, 0xd0, 0x21, 0x98, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x01, 0x00, 0x01, 0xe5, 0x5c,
        0xe9, 0x46, 0x00, 0x0c, 0x00, 0x06, 0x00, 0x05, 0x00, 0x00, 0x80, 0x00, 0x00, 0x04, 0xc0,
        0x00, 0x00, 0x04,
    ];

    #[test]
    fn crc32c_check_values() {
        // The standard check value ("CRC-32C/ISCSI" in the Rocksoft catalogue).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 (iSCSI) appendix B.4: 32 bytes of zeros -> aa 36 91 8a
        // as transmitted (little-endian), i.e. CRC value 0x8a9136aa.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        // ... 32 bytes of 0xff -> 43 ab a8 62, CRC value 0x62a8ab43.
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&INIT_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 33985);
        assert_eq!(p.dst_port(), 6704);
        assert_eq!(p.verification_tag(), 0);
        assert_eq!(p.checksum(), 0x3ff4_9e25);
        assert_eq!(p.first_chunk_type(), Some(ChunkType::Init));
        assert_eq!(p.first_chunk_flags(), Some(0));
        assert_eq!(p.first_chunk_len(), Some(36));
        assert_eq!(p.payload().len(), 36);
        assert!(p.verify_checksum());
        assert_eq!(
            p.to_string(),
            "SCTP src=33985 dst=6704 vtag=0x00000000 chunk=INIT chunk_len=36 len=48"
        );
        // The checksum is the CRC32c of the packet with the field zeroed.
        let mut z = INIT_BYTES;
        z[8..12].copy_from_slice(&[0; 4]);
        assert_eq!(crc32c(&z), 0x3ff4_9e25);
    }

    #[test]
    fn bad_checksum() {
        let mut b = INIT_BYTES;
        b[20] ^= 0x01;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 48];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(33985);
        p.set_dst_port(6704);
        p.set_verification_tag(0);
        p.payload_mut().copy_from_slice(&INIT_BYTES[12..]);
        p.fill_checksum();
        assert_eq!(buf, INIT_BYTES);
    }

    #[test]
    fn parse_and_emit() {
        let p = Packet::new_checked(&INIT_BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 33985,
                dst_port: 6704,
                verification_tag: 0
            }
        );
        assert_eq!(r.buffer_len(36), 48);
        let mut buf = [0xa5u8; 48];
        let mut q = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut q);
        assert_eq!(q.checksum(), 0);
        q.payload_mut().copy_from_slice(&INIT_BYTES[12..]);
        q.fill_checksum();
        assert_eq!(buf, INIT_BYTES);
        assert_eq!(r.to_string(), "SCTP src=33985 dst=6704 vtag=0x00000000");
    }

    #[test]
    fn header_only() {
        let p = Packet::new_checked(&INIT_BYTES[..12]).unwrap();
        assert_eq!(p.first_chunk_type(), None);
        assert_eq!(p.first_chunk_flags(), None);
        assert_eq!(p.first_chunk_len(), None);
        assert_eq!(
            p.to_string(),
            "SCTP src=33985 dst=6704 vtag=0x00000000 len=12"
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&INIT_BYTES[..11]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_unchecked(&INIT_BYTES[..11]).to_string(),
            "SCTP (truncated packet)"
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(
            src_port: u16, dst_port: u16, verification_tag: u32,
            chunks in proptest::collection::vec(proptest::num::u8::ANY, 0..32),
        ) {
            let r = Repr { src_port, dst_port, verification_tag };
            let mut buf = [0xa5u8; 44];
            let buf = &mut buf[..r.buffer_len(chunks.len())];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.payload_mut().copy_from_slice(&chunks);
            p.fill_checksum();
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert!(p.verify_checksum());
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn crc_matches_bitwise(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            // A bit-at-a-time reference implementation of the same CRC.
            let mut c = !0u32;
            for &b in &data {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
                }
            }
            proptest::prop_assert_eq!(crc32c(&data), !c);
        }
    }
}
