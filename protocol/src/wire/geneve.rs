//! Geneve headers and options (RFC 8926, sections 3.4 and 3.5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Variable-Length Options                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Each option (Opt Len counts 4-byte words of options, at most 252 bytes):
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Option Class         |      Type     |R|R|R| Length  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Variable-Length Option Data (Length words)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Geneve runs over UDP port [`UDP_PORT`] (6081). The protocol type is an
//! EtherType: 0x6558 ([`EtherType::TransparentEthernet`]) means an inner
//! Ethernet frame; other values (e.g. 0x0800, an IPv4 packet without an
//! Ethernet header, as Google Cloud sends) are legal and kept as they are.
//! The high bit of an option's Type marks it *critical*.
//!
//! Where checks happen:
//! * [`Packet::check_len`] checks only lengths: the 8-byte base header and
//!   the options area that Opt Len announces. It does not look at the
//!   version, so a view can still show a header of an unknown version.
//! * [`Repr::parse`] rejects a version other than 0
//!   ([`ParseError::BadVersion`]) and walks every option, so a parsed `Repr`
//!   holds a well-formed options area.
//!
//! Options are never copied: [`Options`] walks the raw bytes, yielding
//! borrowed [`GeneveOption`]s; [`emit_option`] and [`OptionsBuilder`] write
//! them without allocating.
//!
//! Not supported / not enforced: the meaning of any option class (options are
//! opaque bytes); consistency of the C flag with the options actually present
//! (RFC 8926 says the sender sets C when a critical option is present; we
//! keep the flag as received so that transit round-trips are exact). The
//! reserved bits (base header and option R bits) are ignored on receipt and
//! written as zero.

use core::fmt;

use super::ethernet::EtherType;
use super::vxlan::Vni;
use super::{ParseError, Result};

/// The IANA-assigned UDP destination port for Geneve.
pub const UDP_PORT: u16 = 6081;

/// The O flag (control / OAM packet), in byte 1.
const FLAG_OAM: u8 = 0x80;
/// The C flag (critical options present), in byte 1.
const FLAG_CRITICAL: u8 = 0x40;
/// The critical bit of an option's Type.
pub const OPTION_TYPE_CRITICAL: u8 = 0x80;

mod field {
    use core::ops::Range;
    pub(super) const VER_OPTLEN: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const PROTOCOL: Range<usize> = 2..4;
    pub(super) const VNI: Range<usize> = 4..7;
    pub(super) const RESERVED: usize = 7;
    pub(super) const OPTIONS: usize = 8;

    /// The options area for an options length of `opt_len` bytes.
    pub(super) const fn options(opt_len: usize) -> Range<usize> {
        OPTIONS..OPTIONS + opt_len
    }

    // Inside one option.
    pub(super) const OPT_CLASS: Range<usize> = 0..2;
    pub(super) const OPT_TYPE: usize = 2;
    pub(super) const OPT_LEN: usize = 3;
    pub(super) const OPT_DATA: usize = 4;
}

/// Length of the fixed Geneve base header (without options).
pub const HEADER_LEN: usize = field::OPTIONS;
/// The largest options area (Opt Len is 6 bits of 4-byte words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// Length of an option header (class, type, length).
pub const OPTION_HEADER_LEN: usize = field::OPT_DATA;
/// The largest option data (Length is 5 bits of 4-byte words).
pub const MAX_OPTION_DATA_LEN: usize = 31 * 4;

/// A read/write view of a Geneve header, its options and its payload.
///
/// [`set_options_len`](Self::set_options_len) can make a checked view
/// unsafe to read: call [`check_len`](Self::check_len) again after it.
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

    /// Ensures the buffer holds the base header and the whole options area.
    ///
    /// The version is not checked here (see [`Repr::parse`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + self.options_len() {
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

    /// The version (2 bits; only 0 is defined).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> 6
    }

    /// The options length in bytes (Opt Len × 4, at most 252).
    ///
    /// Readable on any non-empty buffer, since `check_len` needs it.
    #[inline]
    pub fn options_len(&self) -> usize {
        match self.buffer.as_ref().get(field::VER_OPTLEN) {
            Some(b) => usize::from(b & 0x3f) * 4,
            None => 0,
        }
    }

    /// The O flag: a control (OAM) packet.
    #[inline]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_OAM != 0
    }

    /// The C flag: critical options are present.
    #[inline]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_CRITICAL != 0
    }

    /// The protocol type of the payload (0x6558 is inner Ethernet).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::PROTOCOL];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The virtual network identifier.
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni::from_be_bytes([b[0], b[1], b[2]])
    }

    /// Total header length: base header plus options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The raw options area (`options_len()` bytes).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::options(self.options_len())]
    }

    /// An iterator over the options.
    #[inline]
    pub fn options_iter(&self) -> Options<'a> {
        Options::new(self.options())
    }

    /// The bytes after the options.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN + self.options_len()..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    /// Sets the version (low 2 bits of `value`), keeping Opt Len.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & 0x3f) | ((value & 0x03) << 6);
    }

    /// Sets the options length in bytes, keeping the version.
    ///
    /// `len` is rounded down to a multiple of 4 and capped at 252. This can
    /// invalidate an earlier length check.
    #[inline]
    pub fn set_options_len(&mut self, len: usize) {
        let words = (len.min(MAX_OPTIONS_LEN) / 4) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_OPTLEN];
        *b = (*b & 0xc0) | words;
    }

    /// Sets the whole flags byte to O and C as given, reserved bits zero.
    #[inline]
    pub fn set_flags(&mut self, oam: bool, critical: bool) {
        let mut v = 0;
        if oam {
            v |= FLAG_OAM;
        }
        if critical {
            v |= FLAG_CRITICAL;
        }
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets or clears the O flag.
    #[inline]
    pub fn set_oam(&mut self, value: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = if value { *b | FLAG_OAM } else { *b & !FLAG_OAM };
    }

    /// Sets or clears the C flag.
    #[inline]
    pub fn set_critical(&mut self, value: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = if value {
            *b | FLAG_CRITICAL
        } else {
            *b & !FLAG_CRITICAL
        };
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: EtherType) {
        let v: u16 = value.into();
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the VNI.
    #[inline]
    pub fn set_vni(&mut self, value: Vni) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&value.to_be_bytes())
    }

    /// Zeroes the reserved byte after the VNI.
    #[inline]
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED] = 0;
    }

    /// The mutable options area.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let r = field::options(self.options_len());
        &mut self.buffer.as_mut()[r]
    }

    /// The mutable bytes after the options.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = HEADER_LEN + self.options_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "Geneve ({e})");
        }
        let p = Packet::new_unchecked(self.buffer.as_ref());
        match Repr::parse(&p) {
            Ok(r) => fmt::Display::fmt(&r, f),
            Err(e) => write!(f, "Geneve ver={} vni={} ({e})", p.version(), p.vni()),
        }
    }
}

/// One Geneve option, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveOption<'a> {
    /// Option class (namespace of the type, e.g. 0x0132 for Google).
    pub class: u16,
    /// The whole 8-bit Type, critical bit included.
    pub kind: u8,
    /// True if the critical bit (high bit of `kind`) is set.
    pub critical: bool,
    /// The option data (a multiple of 4 bytes, at most 124).
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// The encoded length: 4-byte option header plus data.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }
}

impl fmt::Display for GeneveOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[0x{:04x}/0x{:02x} len={}]",
            self.class,
            self.kind,
            self.data.len()
        )
    }
}

/// An allocation-free iterator over an encoded options area.
///
/// Yields each option in order. An option whose header or data overruns the
/// area yields `Err(ParseError::Truncated)` once, then the iterator ends.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates over the options encoded in `options`.
    #[inline]
    pub const fn new(options: &'a [u8]) -> Options<'a> {
        Options { rest: options }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        // On any error, stop after reporting it.
        self.rest = &[];
        let (Some(class), Some(&kind), Some(&len)) = (
            rest.get(field::OPT_CLASS),
            rest.get(field::OPT_TYPE),
            rest.get(field::OPT_LEN),
        ) else {
            return Some(Err(ParseError::Truncated));
        };
        let end = OPTION_HEADER_LEN + usize::from(len & 0x1f) * 4;
        let Some(data) = rest.get(OPTION_HEADER_LEN..end) else {
            return Some(Err(ParseError::Truncated));
        };
        self.rest = &rest[end..];
        Some(Ok(GeneveOption {
            class: u16::from_be_bytes([class[0], class[1]]),
            kind,
            critical: kind & OPTION_TYPE_CRITICAL != 0,
            data,
        }))
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// Checks that `options` is a valid options area: at most 252 bytes, a
/// multiple of 4, and a sequence of whole options.
pub fn check_options(options: &[u8]) -> Result<()> {
    if options.len() > MAX_OPTIONS_LEN || !options.len().is_multiple_of(4) {
        return Err(ParseError::BadLength);
    }
    for o in Options::new(options) {
        o?;
    }
    Ok(())
}

/// Writes one option (header with zero R bits, then `data`) at the start of
/// `buf` and returns the number of bytes written (`4 + data.len()`).
///
/// `kind` is the whole Type: set [`OPTION_TYPE_CRITICAL`] in it for a
/// critical option. Errors: [`ParseError::BadLength`] if `data.len()` is
/// not a multiple of 4 or exceeds 124; [`ParseError::Truncated`] if `buf` is
/// too short. Nothing is written on error.
pub fn emit_option(buf: &mut [u8], class: u16, kind: u8, data: &[u8]) -> Result<usize> {
    if !data.len().is_multiple_of(4) || data.len() > MAX_OPTION_DATA_LEN {
        return Err(ParseError::BadLength);
    }
    let total = OPTION_HEADER_LEN + data.len();
    let Some(out) = buf.get_mut(..total) else {
        return Err(ParseError::Truncated);
    };
    out[field::OPT_CLASS].copy_from_slice(&class.to_be_bytes());
    out[field::OPT_TYPE] = kind;
    out[field::OPT_LEN] = (data.len() / 4) as u8;
    out[field::OPT_DATA..].copy_from_slice(data);
    Ok(total)
}

/// A fixed-capacity (no heap) accumulator of encoded options.
///
/// Holds up to `min(N, 252)` bytes of options. Use
/// [`as_bytes`](Self::as_bytes) as [`Repr::options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionsBuilder<const N: usize> {
    buf: [u8; N],
    len: usize,
    critical: bool,
}

impl<const N: usize> OptionsBuilder<N> {
    /// An empty builder.
    #[inline]
    pub const fn new() -> Self {
        OptionsBuilder {
            buf: [0; N],
            len: 0,
            critical: false,
        }
    }

    /// Appends one option (see [`emit_option`]).
    ///
    /// Errors: [`ParseError::BadLength`] for bad data lengths or if the
    /// options would exceed 252 bytes; [`ParseError::Truncated`] if they
    /// would exceed the capacity `N`. The builder is unchanged on error.
    pub fn push(&mut self, class: u16, kind: u8, data: &[u8]) -> Result<()> {
        if self.len + OPTION_HEADER_LEN + data.len() > MAX_OPTIONS_LEN {
            return Err(ParseError::BadLength);
        }
        let Some(rest) = self.buf.get_mut(self.len..) else {
            return Err(ParseError::Truncated);
        };
        self.len += emit_option(rest, class, kind, data)?;
        self.critical |= kind & OPTION_TYPE_CRITICAL != 0;
        Ok(())
    }

    /// The encoded options so far (a valid options area).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The encoded length in bytes.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True if no option was pushed.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if any pushed option is critical (set [`Repr::critical`] then).
    #[inline]
    pub const fn has_critical(&self) -> bool {
        self.critical
    }

    /// Removes all options.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.critical = false;
    }
}

impl<const N: usize> Default for OptionsBuilder<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The high-level representation of a Geneve header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// The virtual network identifier.
    pub vni: Vni,
    /// What the payload is (0x6558: inner Ethernet).
    pub protocol_type: EtherType,
    /// The O flag (control packet).
    pub oam: bool,
    /// The C flag (critical options present).
    pub critical: bool,
    /// Raw encoded options: a multiple of 4 bytes, at most 252, whole
    /// options (see [`check_options`]; [`OptionsBuilder`] builds them).
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a header: checks lengths, version 0 ([`ParseError::BadVersion`])
    /// and that every option fits in the options area
    /// ([`ParseError::Truncated`]).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a B>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(ParseError::BadVersion);
        }
        let options = packet.options();
        check_options(options)?;
        Ok(Repr {
            vni: packet.vni(),
            protocol_type: packet.protocol_type(),
            oam: packet.oam(),
            critical: packet.critical(),
            options,
        })
    }

    /// The options bytes [`emit`](Self::emit) writes: `options` cut to the
    /// largest length Opt Len can express (equal to `options` when valid).
    #[inline]
    fn emitted_options(&self) -> &'a [u8] {
        let n = self.options.len().min(MAX_OPTIONS_LEN) & !3;
        &self.options[..n]
    }

    /// An iterator over the options.
    #[inline]
    pub fn options_iter(&self) -> Options<'a> {
        Options::new(self.options)
    }

    /// The header length: 8 plus the options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.emitted_options().len()
    }

    /// Length of a buffer holding the header and `payload_len` bytes.
    #[inline]
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header and options (reserved bits zero) into `packet`.
    ///
    /// `options` must be valid (see the field); an invalid length is cut to
    /// what the header can express rather than panicking (a debug build
    /// asserts).
    ///
    /// # Panics
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        debug_assert!(
            check_options(self.options).is_ok(),
            "invalid Geneve options"
        );
        let options = self.emitted_options();
        packet.buffer.as_mut()[field::VER_OPTLEN] = 0;
        packet.set_options_len(options.len());
        packet.set_flags(self.oam, self.critical);
        packet.set_protocol_type(self.protocol_type);
        packet.set_vni(self.vni);
        packet.clear_reserved();
        packet.options_mut().copy_from_slice(options);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Geneve vni={} proto={} opts={}",
            self.vni,
            self.protocol_type,
            self.options_iter().count()
        )?;
        for o in self.options_iter() {
            match o {
                Ok(o) => write!(f, " {o}")?,
                Err(e) => write!(f, " [{e}]")?,
            }
        }
        if self.oam {
            f.write_str(" O")?;
        }
        if self.critical {
            f.write_str(" C")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Geneve header (16 bytes) and the first 4 bytes of the inner frame
    /// of packet 1 of `tcpdump-geneve.pcap` (the tcpdump test suite, see
    /// `shared/pcaps/README.md`; frame offset 0x2a): C flag, TEB, VNI 0xa,
    /// one critical option class 0 type 0x80 data 0000000c.
    static PACKET_OPT: [u8; 20] = [
        0x02, 0x40, 0x65, 0x58, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00,
        0x0c, 0xfe, 0x71, 0xd8, 0x83,
    ];

    /// The Geneve header and the first 4 inner bytes of packet 2 of
    /// `tcpdump-geneve.pcap` (frame offset 0x2a): VNI 0xb, no options.
    static PACKET_NOOPT: [u8; 12] = [
        0x00, 0x00, 0x65, 0x58, 0x00, 0x00, 0x0b, 0x00, 0xb6, 0x9e, 0xd2, 0x49,
    ];

    /// The Geneve header (48 bytes) and the first 4 inner bytes of the only
    /// packet of `tcpdump-geneve-gcp.pcap` (frame offset 0x2a): protocol
    /// 0x0800 (IPv4, no inner Ethernet), VNI 0, three class-0x0132 options.
    static PACKET_GCP: [u8; 52] = [
        0x0a, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // base header
        0x01, 0x32, 0x01, 0x01, 0x80, 0x00, 0x00, 0xd1, // type 1, 4 bytes
        0x01, 0x32, 0x02, 0x04, 0x08, 0x00, 0x00, 0x0d, // type 2, 16 bytes
        0xc0, 0xa8, 0x64, 0x02, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, //
        0x01, 0x32, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, // type 3, 8 bytes
        0x00, 0x00, 0x12, 0x34, //
        0x45, 0x00, 0x00, 0x28, // inner IPv4
    ];

    fn vni(v: u32) -> Vni {
        Vni::new(v).unwrap()
    }

    #[test]
    fn deconstruct_with_option() {
        let p = Packet::new_checked(&PACKET_OPT[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert_eq!(p.options_len(), 8);
        assert_eq!(p.header_len(), 16);
        assert!(!p.oam());
        assert!(p.critical());
        assert_eq!(p.protocol_type(), EtherType::TransparentEthernet);
        assert_eq!(p.vni(), vni(0xa));
        assert_eq!(p.options(), &PACKET_OPT[8..16]);
        assert_eq!(p.payload(), &[0xfe, 0x71, 0xd8, 0x83]);
        let mut it = p.options_iter();
        assert_eq!(
            it.next(),
            Some(Ok(GeneveOption {
                class: 0,
                kind: 0x80,
                critical: true,
                data: &[0, 0, 0, 0x0c],
            }))
        );
        assert_eq!(it.next(), None);
        assert_eq!(
            p.to_string(),
            "Geneve vni=10 proto=TEB opts=1 [0x0000/0x80 len=4] C"
        );
    }

    #[test]
    fn deconstruct_without_options() {
        let p = Packet::new_checked(&PACKET_NOOPT[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert_eq!(p.options_len(), 0);
        assert!(!p.oam());
        assert!(!p.critical());
        assert_eq!(p.protocol_type(), EtherType::TransparentEthernet);
        assert_eq!(p.vni(), vni(0xb));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.options_iter().next(), None);
        assert_eq!(p.payload(), &[0xb6, 0x9e, 0xd2, 0x49]);
        assert_eq!(p.to_string(), "Geneve vni=11 proto=TEB opts=0");
    }

    #[test]
    fn deconstruct_gcp() {
        let p = Packet::new_checked(&PACKET_GCP[..]).unwrap();
        assert_eq!(p.options_len(), 40);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!(p.vni(), vni(0));
        assert!(!p.critical());
        let opts: [GeneveOption<'_>; 3] = {
            let mut it = p.options_iter().map(|o| o.unwrap());
            let a = [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()];
            assert!(it.next().is_none());
            a
        };
        assert_eq!(opts[0].class, 0x0132);
        assert_eq!(opts[0].kind, 0x01);
        assert!(!opts[0].critical);
        assert_eq!(opts[0].data, &[0x80, 0x00, 0x00, 0xd1]);
        assert_eq!(opts[0].encoded_len(), 8);
        assert_eq!(opts[1].kind, 0x02);
        assert_eq!(opts[1].data, &PACKET_GCP[20..36]);
        assert_eq!(opts[2].kind, 0x03);
        assert_eq!(opts[2].data, &[0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(p.payload(), &[0x45, 0x00, 0x00, 0x28]);
        assert_eq!(
            p.to_string(),
            "Geneve vni=0 proto=IPv4 opts=3 [0x0132/0x01 len=4] [0x0132/0x02 len=16] \
             [0x0132/0x03 len=8]"
        );
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(0);
        p.set_options_len(8);
        p.set_flags(false, false);
        p.set_critical(true);
        p.set_oam(false);
        p.set_protocol_type(EtherType::TransparentEthernet);
        p.set_vni(vni(0xa));
        p.clear_reserved();
        let n = emit_option(p.options_mut(), 0, 0x80, &[0, 0, 0, 0x0c]).unwrap();
        assert_eq!(n, 8);
        p.payload_mut().copy_from_slice(&[0xfe, 0x71, 0xd8, 0x83]);
        assert_eq!(buf, PACKET_OPT);
    }

    #[test]
    fn repr_parse_emit_real_packets() {
        for bytes in [&PACKET_OPT[..], &PACKET_NOOPT[..], &PACKET_GCP[..]] {
            let p = Packet::new_checked(bytes).unwrap();
            let r = Repr::parse(&p).unwrap();
            let hl = r.header_len();
            assert_eq!(r.buffer_len(4), bytes.len());
            let mut buf = [0xa5u8; 64];
            r.emit(&mut Packet::new_unchecked(&mut buf[..hl]));
            assert_eq!(&buf[..hl], &bytes[..hl]);
        }
        let r = Repr::parse(&Packet::new_checked(&PACKET_OPT[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            Repr {
                vni: vni(0xa),
                protocol_type: EtherType::TransparentEthernet,
                oam: false,
                critical: true,
                options: &[0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c],
            }
        );
        assert_eq!(
            r.to_string(),
            "Geneve vni=10 proto=TEB opts=1 [0x0000/0x80 len=4] C"
        );
    }

    #[test]
    fn emit_two_options_into_junk_and_reparse() {
        let mut opts = OptionsBuilder::<64>::new();
        opts.push(0x0102, 0x03, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        opts.push(0xffff, 0x85, &[]).unwrap();
        assert!(opts.has_critical());
        assert_eq!(opts.len(), 16);
        let r = Repr {
            vni: vni(0x12_3456),
            protocol_type: EtherType::Ipv6,
            oam: true,
            critical: opts.has_critical(),
            options: opts.as_bytes(),
        };
        let mut buf = [0xa5u8; 26];
        assert_eq!(r.buffer_len(2), 26);
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            &buf[..],
            &[
                0x04, 0xc0, 0x86, 0xdd, 0x12, 0x34, 0x56, 0x00, // base
                0x01, 0x02, 0x03, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, // option 1
                0xff, 0xff, 0x85, 0x00, // option 2
                0xa5, 0xa5, // payload untouched
            ]
        );
        let p = Packet::new_checked(&buf[..]).unwrap();
        let parsed = Repr::parse(&p).unwrap();
        assert_eq!(parsed, r);
        let mut it = parsed.options_iter();
        let o1 = it.next().unwrap().unwrap();
        assert_eq!(
            (o1.class, o1.kind, o1.critical, o1.data),
            (0x0102, 0x03, false, &[1, 2, 3, 4, 5, 6, 7, 8][..])
        );
        let o2 = it.next().unwrap().unwrap();
        assert_eq!(
            (o2.class, o2.kind, o2.critical, o2.data),
            (0xffff, 0x85, true, &[][..])
        );
        assert!(it.next().is_none());
        assert_eq!(
            parsed.to_string(),
            "Geneve vni=1193046 proto=IPv6 opts=2 [0x0102/0x03 len=8] [0xffff/0x85 len=0] O C"
        );
        assert_eq!(p.payload(), &[0xa5, 0xa5]);
    }

    #[test]
    fn truncated_base_header() {
        assert_eq!(
            Packet::new_checked(&PACKET_NOOPT[..7]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[][..]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&PACKET_NOOPT[..7]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "Geneve (truncated packet)");
    }

    #[test]
    fn options_area_overruns_buffer() {
        // Opt Len says 8 bytes; only 7 follow the base header.
        assert_eq!(
            Packet::new_checked(&PACKET_OPT[..15]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&PACKET_OPT[..15]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        // Exactly the header, no payload: fine.
        assert!(Packet::new_checked(&PACKET_OPT[..16]).is_ok());
    }

    #[test]
    fn option_overruns_options_area() {
        // Option Length says 2 words of data but the area holds only 1.
        let mut bytes = PACKET_OPT;
        bytes[11] = 0x02;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let mut it = p.options_iter();
        assert_eq!(it.next(), Some(Err(ParseError::Truncated)));
        assert_eq!(it.next(), None);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "Geneve ver=0 vni=10 (truncated packet)");
    }

    #[test]
    fn truncated_option_header() {
        // A bare 2-byte fragment of an option header.
        let mut it = Options::new(&[0x00, 0x01]);
        assert_eq!(it.next(), Some(Err(ParseError::Truncated)));
        assert_eq!(it.next(), None);
        // After a good option.
        let area = [0x00, 0x01, 0x02, 0x00, 0xaa, 0xbb];
        let mut it = Options::new(&area);
        assert_eq!(it.next().unwrap().unwrap().kind, 0x02);
        assert_eq!(it.next(), Some(Err(ParseError::Truncated)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn bad_version() {
        let mut bytes = PACKET_NOOPT;
        bytes[0] = 0x40;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::BadVersion);
        assert_eq!(p.to_string(), "Geneve ver=1 vni=11 (unsupported version)");
    }

    #[test]
    fn reserved_bits_ignored_and_zeroed() {
        let mut bytes = PACKET_OPT;
        bytes[1] |= 0x3f; // flag reserved bits
        bytes[7] = 0xee; // reserved byte
        bytes[11] |= 0xe0; // option R bits
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert!(r.critical && !r.oam);
        assert_eq!(
            r.options_iter().next().unwrap().unwrap().data,
            &[0, 0, 0, 0x0c]
        );
        let mut buf = [0xa5u8; 16];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        // The option bytes are copied as received (R bits included); the
        // base header's reserved bits are zeroed.
        assert_eq!(&buf[..8], &PACKET_OPT[..8]);
    }

    #[test]
    fn emit_option_errors() {
        let mut buf = [0xa5u8; 16];
        assert_eq!(
            emit_option(&mut buf, 1, 2, &[1, 2, 3]),
            Err(ParseError::BadLength)
        );
        assert_eq!(
            emit_option(&mut buf, 1, 2, &[0; 128]),
            Err(ParseError::BadLength)
        );
        assert_eq!(
            emit_option(&mut buf, 1, 2, &[0; 16]),
            Err(ParseError::Truncated)
        );
        assert_eq!(buf, [0xa5u8; 16]);
        let mut big = [0u8; 128];
        assert_eq!(emit_option(&mut big, 1, 2, &[7; 124]), Ok(128));
        assert_eq!(&big[..4], &[0x00, 0x01, 0x02, 0x1f]);
    }

    #[test]
    fn builder_limits() {
        let mut small = OptionsBuilder::<8>::default();
        assert!(small.is_empty());
        small.push(1, 1, &[0; 4]).unwrap();
        assert_eq!(small.push(1, 1, &[]), Err(ParseError::Truncated));
        assert_eq!(small.len(), 8);
        assert!(!small.has_critical());
        small.clear();
        assert!(small.is_empty());

        let mut big = OptionsBuilder::<512>::new();
        big.push(1, 1, &[0; 124]).unwrap();
        big.push(1, 1, &[0; 120]).unwrap(); // 128 + 124 = 252
        assert_eq!(big.len(), MAX_OPTIONS_LEN);
        assert_eq!(big.push(1, 0x80, &[]), Err(ParseError::BadLength));
        assert!(!big.has_critical());
        assert_eq!(check_options(big.as_bytes()), Ok(()));
    }

    #[test]
    fn check_options_errors() {
        assert_eq!(check_options(&[0; 6]), Err(ParseError::BadLength));
        assert_eq!(check_options(&[0; 256]), Err(ParseError::BadLength));
        assert_eq!(check_options(&[0, 0, 0, 1]), Err(ParseError::Truncated));
        assert_eq!(check_options(&[]), Ok(()));
    }

    fn arb_options() -> impl Strategy<Value = OptionsBuilder<252>> {
        prop::collection::vec(
            (
                any::<u16>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..=12usize),
            ),
            0..6,
        )
        .prop_map(|opts| {
            let mut b = OptionsBuilder::<252>::new();
            for (class, kind, words) in opts {
                let mut data = [0u8; 48];
                let n = words.len() * 4;
                for (i, w) in words.iter().enumerate() {
                    data[i * 4..i * 4 + 4].fill(*w);
                }
                b.push(class, kind, &data[..n]).unwrap();
            }
            b
        })
    }

    proptest! {
        #[test]
        fn roundtrip(
            v in 0u32..=0xff_ffff,
            proto in any::<u16>(),
            oam in any::<bool>(),
            opts in arb_options(),
            junk in any::<u8>(),
        ) {
            let r = Repr {
                vni: Vni::new(v).unwrap(),
                protocol_type: EtherType::from(proto),
                oam,
                critical: opts.has_critical(),
                options: opts.as_bytes(),
            };
            let mut buf = [junk; HEADER_LEN + MAX_OPTIONS_LEN];
            let len = r.buffer_len(0);
            r.emit(&mut Packet::new_unchecked(&mut buf[..len]));
            let p = Packet::new_checked(&buf[..len]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = p.to_string();
            if let Ok(r) = Repr::parse(&p) {
                prop_assert!(r.header_len() <= bytes.len());
                let _ = r.to_string();
            }
            for o in Options::new(&bytes).flatten() {
                let _ = o.to_string();
            }
        }
    }
}
