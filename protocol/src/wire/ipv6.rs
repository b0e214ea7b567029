//! IPv6 (RFC 8200): the fixed header, the extension-header chain walk, and
//! views of the fragment header and of the generic (TLV-style) extension
//! headers.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |              Flow Label               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Source Address (16 bytes)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Destination Address (16 bytes)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The traffic class holds DSCP (6 bits) and ECN (2 bits), as in IPv4.
//! `check_len` also checks the version. The payload is the `payload_len`
//! bytes after the fixed header; a longer buffer (Ethernet padding) is
//! allowed and the extra bytes are excluded.
//!
//! # Extension headers
//!
//! [`walk_extension_headers`] walks the chain that starts with the fixed
//! header's next header, over the payload, without allocating:
//!
//! ```text
//! hop-by-hop (0), routing (43), destination options (60):
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Hdr Ext Len  |  data ... ((len + 1) * 8 bytes in all)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! fragment (44), always 8 bytes:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |   Reserved    |    Fragment Offset      |Res|M|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Identification                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! authentication header (51, RFC 4302): length = (Payload Len + 2) * 4
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Payload Len  |   Reserved ... SPI, sequence, ICV
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The walk stops at the first other next header (the upper layer, ESP,
//! "no next header", or anything unknown), or right after a fragment header
//! with a non-zero offset (a later fragment does not hold the upper-layer
//! header). At most [`MAX_EXTENSION_HEADERS`] are walked.
//!
//! Not supported: jumbograms (RFC 2675: a payload length of 0 with a
//! hop-by-hop header; [`Repr::parse`] returns [`ParseError::Unsupported`]);
//! option TLVs inside hop-by-hop/destination options and routing header
//! contents are not interpreted (the views expose their bytes); the walk
//! does not enforce header order (e.g. hop-by-hop only first) or forbid
//! repeated headers; reassembly; Mobility (135), HIP (139), Shim6 (140)
//! stop the walk like any unknown protocol.

use core::fmt;
use core::net::Ipv6Addr;

use super::{IpProtocol, ParseError, Result};

mod field {
    use core::ops::Range;
    pub(super) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Range<usize> = 8..24;
    pub(super) const DST_ADDR: Range<usize> = 24..40;

    // Fragment header.
    pub(super) const FRAG_NXT_HDR: usize = 0;
    pub(super) const FRAG_RESERVED: usize = 1;
    pub(super) const FRAG_OFF_M: Range<usize> = 2..4;
    pub(super) const FRAG_IDENT: Range<usize> = 4..8;

    // Generic extension header (hop-by-hop, routing, destination options).
    pub(super) const EXT_NXT_HDR: usize = 0;
    pub(super) const EXT_LEN: usize = 1;
    pub(super) const EXT_DATA: usize = 2;

    /// Total length of a generic extension header from its length byte.
    pub(super) const fn ext_header_len(hdr_ext_len: u8) -> usize {
        (hdr_ext_len as usize + 1) * 8
    }

    /// Total length of an authentication header from its length byte.
    pub(super) const fn ah_header_len(payload_len: u8) -> usize {
        (payload_len as usize + 2) * 4
    }
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Length of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = field::FRAG_IDENT.end;

/// The most extension headers [`walk_extension_headers`] walks before
/// failing with [`ParseError::TooManyHeaders`]. Real traffic rarely has more
/// than three; the bound caps the per-packet work.
pub const MAX_EXTENSION_HEADERS: u8 = 8;

const FLOW_MASK: u32 = 0x000f_ffff;

/// A read/write view of an IPv6 fixed header and its payload.
///
/// Setters that can make a checked view fail `check_len` (and so make
/// `payload` panic): [`set_version`](Self::set_version),
/// [`set_payload_len`](Self::set_payload_len).
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

    /// Checks the buffer against the header.
    ///
    /// # Errors
    /// * [`ParseError::Truncated`]: fewer than 40 bytes;
    /// * [`ParseError::BadVersion`]: the version is not 6;
    /// * [`ParseError::Truncated`]: fewer than `40 + payload_len` bytes.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 6 {
            return Err(ParseError::BadVersion);
        }
        if len < HEADER_LEN + usize::from(self.payload_len()) {
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
    fn first_word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The DSCP (high 6 bits of the traffic class).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// The ECN bits (low 2 bits of the traffic class).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// The flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & FLOW_MASK
    }

    /// The payload length (everything after the fixed header, extension
    /// headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The next header (first extension header or upper-layer protocol).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(&self.buffer.as_ref()[field::DST_ADDR])
    }
}

#[inline]
fn ipv6_at(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The payload: `payload_len` bytes after the fixed header (trailing
    /// padding excluded).
    ///
    /// # Panics
    /// If the view did not pass `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_first_word(&mut self, v: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the version (low 4 bits of `value`).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let w = (self.first_word() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_first_word(w)
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let w = (self.first_word() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_first_word(w)
    }

    /// Sets the DSCP (low 6 bits of `value`), keeping the ECN bits.
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let tc = (self.traffic_class() & 0x03) | (value << 2);
        self.set_traffic_class(tc)
    }

    /// Sets the ECN bits (low 2 bits of `value`), keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let tc = (self.traffic_class() & 0xfc) | (value & 0x03);
        self.set_traffic_class(tc)
    }

    /// Sets the flow label (low 20 bits of `value`).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let w = (self.first_word() & !FLOW_MASK) | (value & FLOW_MASK);
        self.set_first_word(w)
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into()
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// The mutable payload (`payload_len` bytes after the fixed header).
    ///
    /// # Panics
    /// If the buffer is shorter than `40 + payload_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "IPv6 ({e})");
        }
        write!(
            f,
            "IPv6 src={} dst={} next={} hlim={} len={} tc=0x{:02x} flow=0x{:05x}",
            self.src_addr(),
            self.dst_addr(),
            self.next_header(),
            self.hop_limit(),
            self.payload_len(),
            self.traffic_class(),
            self.flow_label()
        )
    }
}

/// The high-level representation of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (first extension header or upper-layer protocol).
    pub next_header: IpProtocol,
    /// Payload length in bytes (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Parses a fixed header.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`], and [`ParseError::Unsupported`] for
    /// a jumbogram (payload length 0 followed by a hop-by-hop header, RFC
    /// 2675). A payload length of 0 with any other next header is an empty
    /// payload and parses.
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<Repr> {
        packet.check_len()?;
        if packet.payload_len() == 0 && packet.next_header() == IpProtocol::HopByHop {
            return Err(ParseError::Unsupported);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The fixed header length (40).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the emitted packet: fixed header plus `payload_len`.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte fixed header into the start of `packet`.
    ///
    /// `flow_label` is masked to 20 bits; a `payload_len` above 65535 is
    /// clamped to 65535 (jumbograms are not emitted).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_first_word(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & FLOW_MASK),
        );
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv6 src={} dst={} next={} hlim={} len={} tc=0x{:02x} flow=0x{:05x}",
            self.src_addr,
            self.dst_addr,
            self.next_header,
            self.hop_limit,
            self.payload_len,
            self.traffic_class,
            self.flow_label
        )
    }
}

// ---------------------------------------------------------------------------
// Extension-header walk.

/// What a fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of this fragment's data in the original payload, in bytes (a
    /// multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification shared by all fragments of a packet.
    pub ident: u32,
}

/// The result of [`walk_extension_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtWalk {
    /// The upper-layer protocol reached, or the next header where the walk
    /// stopped (for a later fragment: the fragment header's next header).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header (or of the fragment data, for a
    /// later fragment) within the walked payload.
    pub offset: usize,
    /// The last fragment header seen, if any.
    pub fragment: Option<FragmentInfo>,
    /// How many extension headers were walked.
    pub count: u8,
}

impl ExtWalk {
    /// True if the walk reached the upper-layer header (it did not stop at a
    /// later fragment).
    #[inline]
    pub fn has_upper_layer(&self) -> bool {
        !matches!(self.fragment, Some(f) if f.offset != 0)
    }
}

/// True for the next-header values [`walk_extension_headers`] steps over:
/// hop-by-hop, routing, fragment, destination options and AH.
#[inline]
pub fn is_extension_header(protocol: IpProtocol) -> bool {
    matches!(
        protocol,
        IpProtocol::HopByHop
            | IpProtocol::Ipv6Route
            | IpProtocol::Ipv6Frag
            | IpProtocol::Ipv6Opts
            | IpProtocol::Ah
    )
}

/// Walks the extension-header chain of an IPv6 payload.
///
/// `first` is the fixed header's next header and `payload` the bytes after
/// the fixed header (usually [`Packet::payload`]). Steps over hop-by-hop
/// (0), routing (43), destination options (60), fragment (44; 8 bytes) and
/// AH (51; `(len + 2) * 4` bytes); stops at any other next header. After a
/// fragment header with a non-zero offset (a later fragment) it stops right
/// away, reporting the fragment header's next header and the offset of the
/// fragment data.
///
/// # Errors
/// * [`ParseError::Truncated`]: an extension header runs past `payload`;
/// * [`ParseError::TooManyHeaders`]: more than [`MAX_EXTENSION_HEADERS`]
///   extension headers.
pub fn walk_extension_headers(first: IpProtocol, payload: &[u8]) -> Result<ExtWalk> {
    let mut walk = ExtWalk {
        protocol: first,
        offset: 0,
        fragment: None,
        count: 0,
    };
    while is_extension_header(walk.protocol) {
        if walk.count >= MAX_EXTENSION_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        let rest = payload.get(walk.offset..).ok_or(ParseError::Truncated)?;
        let len = match walk.protocol {
            IpProtocol::Ipv6Frag => FRAGMENT_HEADER_LEN,
            IpProtocol::Ah => field::ah_header_len(*rest.get(1).ok_or(ParseError::Truncated)?),
            _ => field::ext_header_len(*rest.get(1).ok_or(ParseError::Truncated)?),
        };
        let hdr = rest.get(..len).ok_or(ParseError::Truncated)?;
        let current = walk.protocol;
        walk.protocol = IpProtocol::from(hdr[0]);
        walk.offset += len;
        walk.count += 1;
        if current == IpProtocol::Ipv6Frag {
            let info = FragmentRepr::parse(&FragmentHeader::new_unchecked(hdr))?.info();
            walk.fragment = Some(info);
            if info.offset != 0 {
                break;
            }
        }
    }
    Ok(walk)
}

// ---------------------------------------------------------------------------
// Fragment header.

/// A read/write view of an IPv6 fragment header (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader<B> {
    buffer: B,
}

impl<B: AsRef<[u8]>> FragmentHeader<B> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: B) -> FragmentHeader<B> {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer and checks that the accessors will not panic.
    #[inline]
    pub fn new_checked(buffer: B) -> Result<FragmentHeader<B>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the buffer holds 8 bytes.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
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
    fn off_m(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FRAG_OFF_M];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The next header of the fragmentable part.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::FRAG_NXT_HDR])
    }

    /// The fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.off_m() & 0xfff8
    }

    /// The "more fragments" flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.off_m() & 0x1 != 0
    }

    /// The identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FRAG_IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> FragmentHeader<&'a B> {
    /// The bytes after the 8-byte fragment header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[FRAGMENT_HEADER_LEN..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<B> {
    #[inline]
    fn set_off_m(&mut self, v: u16) {
        self.buffer.as_mut()[field::FRAG_OFF_M].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::FRAG_NXT_HDR] = value.into()
    }

    /// Zeroes the reserved byte and the two reserved bits.
    #[inline]
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::FRAG_RESERVED] = 0;
        let v = self.off_m() & 0xfff9;
        self.set_off_m(v)
    }

    /// Sets the fragment offset in bytes (the low 3 bits of `value` are
    /// dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let v = (self.off_m() & 0x0007) | (value & 0xfff8);
        self.set_off_m(v)
    }

    /// Sets the "more fragments" flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = (self.off_m() & !1) | u16::from(value);
        self.set_off_m(v)
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u32) {
        self.buffer.as_mut()[field::FRAG_IDENT].copy_from_slice(&value.to_be_bytes())
    }
}

impl<B: AsRef<[u8]>> fmt::Display for FragmentHeader<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => fmt_fragment(
                f,
                self.next_header(),
                self.frag_offset(),
                self.more_frags(),
                self.ident(),
            ),
            Err(e) => write!(f, "IPv6-Frag ({e})"),
        }
    }
}

fn fmt_fragment(
    f: &mut fmt::Formatter<'_>,
    next: IpProtocol,
    offset: u16,
    more: bool,
    ident: u32,
) -> fmt::Result {
    write!(f, "IPv6-Frag next={next} off={offset}")?;
    if more {
        f.write_str(" MF")?;
    }
    write!(f, " id=0x{ident:08x}")
}

/// The high-level representation of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    /// Next header of the fragmentable part.
    pub next_header: IpProtocol,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Parses a fragment header (reserved fields are ignored).
    ///
    /// # Errors
    /// [`ParseError::Truncated`] if shorter than 8 bytes.
    pub fn parse<B: AsRef<[u8]> + ?Sized>(header: &FragmentHeader<&B>) -> Result<FragmentRepr> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            frag_offset: header.frag_offset(),
            more_frags: header.more_frags(),
            ident: header.ident(),
        })
    }

    /// The fragment header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// Length of a buffer holding the header and `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        FRAGMENT_HEADER_LEN + payload_len
    }

    /// The fields the extension walk reports.
    #[inline]
    pub const fn info(&self) -> FragmentInfo {
        FragmentInfo {
            offset: self.frag_offset,
            more_frags: self.more_frags,
            ident: self.ident,
        }
    }

    /// Writes the 8-byte header (reserved fields zero; `frag_offset`
    /// rounded down to a multiple of 8).
    ///
    /// # Panics
    /// If the buffer is shorter than [`FRAGMENT_HEADER_LEN`].
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut FragmentHeader<B>) {
        header.set_next_header(self.next_header);
        header.buffer.as_mut()[field::FRAG_RESERVED] = 0;
        header.set_off_m((self.frag_offset & 0xfff8) | u16::from(self.more_frags));
        header.set_ident(self.ident);
    }
}

impl fmt::Display for FragmentRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_fragment(
            f,
            self.next_header,
            self.frag_offset,
            self.more_frags,
            self.ident,
        )
    }
}

// ---------------------------------------------------------------------------
// Generic extension header (hop-by-hop, routing, destination options).

/// A read/write view of a hop-by-hop, routing or destination-options
/// header: next header, length in 8-byte units not counting the first 8,
/// and the data (options, or the routing type-specific fields).
///
/// [`set_hdr_ext_len`](Self::set_hdr_ext_len) can make a checked view fail
/// `check_len` (and so make `data` panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader<B> {
    buffer: B,
}

impl<B: AsRef<[u8]>> ExtHeader<B> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: B) -> ExtHeader<B> {
        ExtHeader { buffer }
    }

    /// Wraps a buffer and checks that the accessors will not panic.
    #[inline]
    pub fn new_checked(buffer: B) -> Result<ExtHeader<B>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the buffer holds the length byte and then the whole header.
    ///
    /// # Errors
    /// [`ParseError::Truncated`] if shorter than 2 bytes or than
    /// [`header_len`](Self::header_len).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::EXT_DATA || len < self.header_len() {
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

    /// The next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::EXT_NXT_HDR])
    }

    /// The raw length field (8-byte units, not counting the first 8 bytes).
    #[inline]
    pub fn hdr_ext_len(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_LEN]
    }

    /// The header length in bytes: `(hdr_ext_len + 1) * 8`.
    ///
    /// # Panics
    /// If the buffer is shorter than 2 bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        field::ext_header_len(self.hdr_ext_len())
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> ExtHeader<&'a B> {
    /// The bytes after the next-header and length fields, up to the end of
    /// this header.
    ///
    /// # Panics
    /// If the view did not pass `check_len`.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::EXT_DATA..self.header_len()]
    }

    /// The bytes after this header.
    ///
    /// # Panics
    /// If the view did not pass `check_len`.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<B> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::EXT_NXT_HDR] = value.into()
    }

    /// Sets the raw length field.
    #[inline]
    pub fn set_hdr_ext_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::EXT_LEN] = value
    }

    /// The mutable data bytes.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len`.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::EXT_DATA..end]
    }
}

impl<B: AsRef<[u8]>> fmt::Display for ExtHeader<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "IPv6-ExtHdr next={} len={}",
                self.next_header(),
                self.header_len()
            ),
            Err(e) => write!(f, "IPv6-ExtHdr ({e})"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (see PREAMBLE)
mod tests {
    use super::*;

    // Unless said otherwise, packets were captured with tcpdump on a veth
    // pair between two network namespaces (`weft-h-l23a` fd01::1 and
    // `weft-h-l23b` fd01::2) while writing these tests, from Python sockets
    // with sticky IPV6_HOPOPTS / IPV6_RTHDR / IPV6_DSTOPTS options (PadN
    // only) or oversized UDP datagrams; bytes after the Ethernet header.

    /// TCP SYN fd01::1:59282 -> fd01::2:8080 behind hop-by-hop (PadN) and
    /// destination options (PadN): IPv6 -> HBH -> DstOpts -> TCP.
    static SYN_HBH_DST: [u8; 96] = [
        0x60, 0x07, 0x06, 0xc2, 0x00, 0x38, 0x00, 0x40, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x06, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0xe7, 0x92, 0x1f, 0x90,
        0x63, 0x66, 0x52, 0x44, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0xfa, 0x34, 0x00,
        0x00, 0x02, 0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x0c, 0xa9, 0xbd, 0x75, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// TCP SYN fd01::1:42114 -> fd01::2:8080 with hop-by-hop (PadN), a
    /// segment routing header (routing type 4, segments left 1, two
    /// segments fd01::2) and destination options (PadN):
    /// IPv6 -> HBH -> Routing -> DstOpts -> TCP.
    static SYN_HBH_RT_DST: [u8; 136] = [
        0x60, 0x06, 0xe7, 0xcc, 0x00, 0x60, 0x00, 0x40, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x2b, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x3c, 0x04, 0x04, 0x01, 0x01, 0x00, 0x00, 0x00, 0xfd, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x06, 0x00,
        0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x82, 0x1f, 0x90, 0x06, 0xbb, 0x01, 0x5b, 0x00,
        0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0xfa, 0x34, 0x00, 0x00, 0x02, 0x04, 0x05, 0xa0,
        0x04, 0x02, 0x08, 0x0a, 0xd9, 0x68, 0xfb, 0x9c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03,
        0x0a,
    ];

    /// First fragment of a 2000-byte UDP datagram fd01::1:36377 ->
    /// fd01::2:9999: fixed header, fragment header (offset 0, M, ident
    /// 0x02d68fe8), UDP header; then 1440 bytes of `b'G'` (payload length
    /// 1456).
    static FIRST_FRAG_HEAD: [u8; 56] = [
        0x60, 0x05, 0x5d, 0x58, 0x05, 0xb0, 0x2c, 0x40, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00, 0x01, 0x02,
        0xd6, 0x8f, 0xe8, 0x8e, 0x19, 0x27, 0x0f, 0x07, 0xd8, 0xd2, 0xa0,
    ];

    /// The second (last) fragment of the same datagram: fixed header,
    /// fragment header (offset 1448, no M); then 560 bytes of `b'G'`
    /// (payload length 568).
    static LATER_FRAG_HEAD: [u8; 48] = [
        0x60, 0x05, 0x5d, 0x58, 0x02, 0x38, 0x2c, 0x40, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x05, 0xa8, 0x02,
        0xd6, 0x8f, 0xe8,
    ];

    /// Packet 1 of `OSPFv3_with_AH.pcap` from the tcpdump test suite
    /// (https://github.com/the-tcpdump-group/tcpdump, commit
    /// 39b50f76672bca4af7d7eb52604c5b692c6b6b2c): OSPFv3 Hello fe80::1 ->
    /// ff02::5, traffic class 0xe0, behind an authentication header (length
    /// field 4 = 24 bytes, SPI 0x100, sequence 19): IPv6 -> AH -> OSPF (89).
    static OSPF_AH: [u8; 100] = [
        0x6e, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x33, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x59, 0x04, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x13, 0x21, 0xd3, 0xa9, 0x5c, 0x5f, 0xfd, 0x4d, 0x18,
        0x46, 0x22, 0xb9, 0xf8, 0x03, 0x01, 0x00, 0x24, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00,
        0x01, 0xfb, 0x86, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x13, 0x00, 0x0a,
        0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const FD01_1: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1);
    const FD01_2: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 2);
    const FRAG_IDENT: u32 = 0x02d6_8fe8;

    fn first_frag() -> Vec<u8> {
        let mut v = FIRST_FRAG_HEAD.to_vec();
        v.resize(40 + 1456, b'G');
        v
    }

    fn later_frag() -> Vec<u8> {
        let mut v = LATER_FRAG_HEAD.to_vec();
        v.resize(40 + 568, b'G');
        v
    }

    fn syn_repr() -> Repr {
        Repr {
            src_addr: FD01_1,
            dst_addr: FD01_2,
            next_header: IpProtocol::HopByHop,
            payload_len: 56,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x706c2,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SYN_HBH_DST[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x706c2);
        assert_eq!(p.payload_len(), 56);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), FD01_1);
        assert_eq!(p.dst_addr(), FD01_2);
        assert_eq!(p.payload(), &SYN_HBH_DST[40..]);
        assert_eq!(
            p.to_string(),
            "IPv6 src=fd01::1 dst=fd01::2 next=HopByHop hlim=64 len=56 tc=0x00 flow=0x706c2"
        );

        let q = Packet::new_checked(&OSPF_AH[..]).unwrap();
        assert_eq!(q.traffic_class(), 0xe0);
        assert_eq!(q.dscp(), 56);
        assert_eq!(q.ecn(), 0);
        assert_eq!(q.flow_label(), 0);
        assert_eq!(q.next_header(), IpProtocol::Ah);
        assert_eq!(q.hop_limit(), 1);
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 96];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xff);
        p.set_dscp(0);
        p.set_ecn(0);
        p.set_flow_label(0xfff7_06c2); // high bits ignored
        p.set_payload_len(56);
        p.set_next_header(IpProtocol::HopByHop);
        p.set_hop_limit(64);
        p.set_src_addr(FD01_1);
        p.set_dst_addr(FD01_2);
        p.payload_mut().copy_from_slice(&SYN_HBH_DST[40..]);
        assert_eq!(buf, SYN_HBH_DST);
    }

    #[test]
    fn repr_parse_emit() {
        let r = Repr::parse(&Packet::new_checked(&SYN_HBH_DST[..]).unwrap()).unwrap();
        assert_eq!(r, syn_repr());
        assert_eq!((r.header_len(), r.buffer_len()), (40, 96));
        let mut buf = [0xa5u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &SYN_HBH_DST[..40]);
        assert_eq!(
            r.to_string(),
            "IPv6 src=fd01::1 dst=fd01::2 next=HopByHop hlim=64 len=56 tc=0x00 flow=0x706c2"
        );
    }

    #[test]
    fn padding_excluded() {
        let mut padded = SYN_HBH_DST.to_vec();
        padded.extend_from_slice(&[0; 6]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &SYN_HBH_DST[40..]);
    }

    #[test]
    fn truncated_fixed_header() {
        assert_eq!(
            Packet::new_checked(&SYN_HBH_DST[..39]).unwrap_err(),
            ParseError::Truncated
        );
        let p = Packet::new_unchecked(&SYN_HBH_DST[..39]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Truncated);
        assert_eq!(p.to_string(), "IPv6 (truncated packet)");
    }

    #[test]
    fn bad_version() {
        let mut b = SYN_HBH_DST;
        b[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            ParseError::BadVersion
        );
    }

    #[test]
    fn truncated_payload() {
        assert_eq!(
            Packet::new_checked(&SYN_HBH_DST[..95]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn jumbogram_unsupported() {
        let mut b = SYN_HBH_DST;
        b[4..6].copy_from_slice(&[0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[] as &[u8]);
        assert_eq!(Repr::parse(&p).unwrap_err(), ParseError::Unsupported);
        // An empty payload with "no next header" is not a jumbogram.
        b[6] = 59;
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!((r.payload_len, r.next_header), (0, IpProtocol::Ipv6NoNxt));
    }

    #[test]
    fn emit_clamps_and_masks() {
        let r = Repr {
            payload_len: 70_000,
            flow_label: 0xfff1_2345,
            ..syn_repr()
        };
        let mut buf = [0xa5u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let p = Packet::new_unchecked(&buf[..]);
        assert_eq!(
            (p.version(), p.payload_len(), p.flow_label()),
            (6, 65535, 0x12345)
        );
    }

    #[test]
    fn walk_hbh_routing_dstopts_tcp() {
        let p = Packet::new_checked(&SYN_HBH_RT_DST[..]).unwrap();
        let w = walk_extension_headers(p.next_header(), p.payload()).unwrap();
        assert_eq!(
            w,
            ExtWalk {
                protocol: IpProtocol::Tcp,
                offset: 8 + 40 + 8,
                fragment: None,
                count: 3
            }
        );
        assert!(w.has_upper_layer());
        // TCP ports 42114 -> 8080 at the reported offset.
        assert_eq!(
            &p.payload()[w.offset..w.offset + 4],
            &[0xa4, 0x82, 0x1f, 0x90]
        );

        // The same chain through the generic views.
        let hbh = ExtHeader::new_checked(p.payload()).unwrap();
        assert_eq!(hbh.next_header(), IpProtocol::Ipv6Route);
        assert_eq!((hbh.hdr_ext_len(), hbh.header_len()), (0, 8));
        assert_eq!(hbh.data(), &[0x01, 0x04, 0, 0, 0, 0]);
        let rt = ExtHeader::new_checked(hbh.payload()).unwrap();
        assert_eq!(rt.next_header(), IpProtocol::Ipv6Opts);
        assert_eq!((rt.hdr_ext_len(), rt.header_len()), (4, 40));
        assert_eq!(&rt.data()[..2], &[4, 1]); // routing type 4 (SRH), segments left 1
        assert_eq!(rt.to_string(), "IPv6-ExtHdr next=IPv6-Opts len=40");
        let dst = ExtHeader::new_checked(rt.payload()).unwrap();
        assert_eq!(dst.next_header(), IpProtocol::Tcp);
        assert_eq!(dst.payload(), &p.payload()[56..]);
    }

    #[test]
    fn walk_hbh_dstopts_tcp() {
        let p = Packet::new_checked(&SYN_HBH_DST[..]).unwrap();
        let w = walk_extension_headers(p.next_header(), p.payload()).unwrap();
        assert_eq!(
            (w.protocol, w.offset, w.fragment, w.count),
            (IpProtocol::Tcp, 16, None, 2)
        );
    }

    #[test]
    fn walk_without_extension_headers() {
        let w = walk_extension_headers(IpProtocol::Udp, &[]).unwrap();
        assert_eq!(
            (w.protocol, w.offset, w.fragment, w.count),
            (IpProtocol::Udp, 0, None, 0)
        );
    }

    #[test]
    fn walk_first_fragment_udp() {
        let bytes = first_frag();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.next_header(), IpProtocol::Ipv6Frag);
        let w = walk_extension_headers(p.next_header(), p.payload()).unwrap();
        assert_eq!(
            w,
            ExtWalk {
                protocol: IpProtocol::Udp,
                offset: 8,
                fragment: Some(FragmentInfo {
                    offset: 0,
                    more_frags: true,
                    ident: FRAG_IDENT
                }),
                count: 1
            }
        );
        assert!(w.has_upper_layer());
        // UDP ports 36377 -> 9999.
        assert_eq!(&p.payload()[8..12], &[0x8e, 0x19, 0x27, 0x0f]);
    }

    #[test]
    fn walk_later_fragment() {
        let bytes = later_frag();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let w = walk_extension_headers(p.next_header(), p.payload()).unwrap();
        assert_eq!(
            w,
            ExtWalk {
                protocol: IpProtocol::Udp,
                offset: 8,
                fragment: Some(FragmentInfo {
                    offset: 1448,
                    more_frags: false,
                    ident: FRAG_IDENT
                }),
                count: 1
            }
        );
        assert!(!w.has_upper_layer());
    }

    /// A later fragment whose fragmentable part starts with destination
    /// options: the walk must not read past the fragment header.
    #[test]
    fn walk_stops_after_later_fragment_header() {
        let mut payload = LATER_FRAG_HEAD[40..].to_vec();
        payload[0] = 60; // next header: destination options
        payload.extend_from_slice(&[0xff; 3]); // not a valid header
        let w = walk_extension_headers(IpProtocol::Ipv6Frag, &payload).unwrap();
        assert_eq!(
            (w.protocol, w.offset, w.count),
            (IpProtocol::Ipv6Opts, 8, 1)
        );
    }

    #[test]
    fn walk_ah() {
        let p = Packet::new_checked(&OSPF_AH[..]).unwrap();
        let w = walk_extension_headers(p.next_header(), p.payload()).unwrap();
        assert_eq!(
            (w.protocol, w.offset, w.fragment, w.count),
            (IpProtocol::Unknown(89), 24, None, 1)
        );
        // OSPFv3 header: version 3, type 1 (Hello).
        assert_eq!(&p.payload()[24..26], &[0x03, 0x01]);
    }

    #[test]
    fn walk_truncated_generic_length_byte() {
        // Only the first byte of the routing header is present.
        let payload = &SYN_HBH_RT_DST[40..49];
        assert_eq!(
            walk_extension_headers(IpProtocol::HopByHop, payload).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn walk_truncated_generic_body() {
        // Cut in the middle of the 40-byte routing header.
        let payload = &SYN_HBH_RT_DST[40..70];
        assert_eq!(
            walk_extension_headers(IpProtocol::HopByHop, payload).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn walk_truncated_fragment_header() {
        let payload = &FIRST_FRAG_HEAD[40..47];
        assert_eq!(
            walk_extension_headers(IpProtocol::Ipv6Frag, payload).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn walk_truncated_ah() {
        assert_eq!(
            walk_extension_headers(IpProtocol::Ah, &OSPF_AH[40..63]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            walk_extension_headers(IpProtocol::Ah, &OSPF_AH[40..41]).unwrap_err(),
            ParseError::Truncated
        );
    }

    /// A synthetic chain of destination-options headers (PadN each), as the
    /// kernel builds them, ending in TCP.
    fn dstopts_chain(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { 6 } else { 60 };
            v.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        v
    }

    #[test]
    fn walk_max_headers_ok() {
        let chain = dstopts_chain(usize::from(MAX_EXTENSION_HEADERS));
        let w = walk_extension_headers(IpProtocol::Ipv6Opts, &chain).unwrap();
        assert_eq!((w.protocol, w.offset, w.count), (IpProtocol::Tcp, 64, 8));
    }

    #[test]
    fn walk_too_many_headers() {
        let chain = dstopts_chain(usize::from(MAX_EXTENSION_HEADERS) + 1);
        assert_eq!(
            walk_extension_headers(IpProtocol::Ipv6Opts, &chain).unwrap_err(),
            ParseError::TooManyHeaders
        );
    }

    #[test]
    fn fragment_header_deconstruct_construct() {
        let h = FragmentHeader::new_checked(&LATER_FRAG_HEAD[40..]).unwrap();
        assert_eq!(h.next_header(), IpProtocol::Udp);
        assert_eq!(h.frag_offset(), 1448);
        assert!(!h.more_frags());
        assert_eq!(h.ident(), FRAG_IDENT);
        assert_eq!(h.payload(), &[] as &[u8]);
        assert_eq!(h.to_string(), "IPv6-Frag next=UDP off=1448 id=0x02d68fe8");

        let mut buf = [0xa5u8; 8];
        let mut m = FragmentHeader::new_unchecked(&mut buf[..]);
        m.set_next_header(IpProtocol::Udp);
        m.clear_reserved();
        m.set_frag_offset(0);
        m.set_more_frags(true);
        m.set_ident(FRAG_IDENT);
        assert_eq!(&buf[..], &FIRST_FRAG_HEAD[40..48]);
    }

    #[test]
    fn fragment_repr_parse_emit() {
        let h = FragmentHeader::new_checked(&FIRST_FRAG_HEAD[40..]).unwrap();
        let r = FragmentRepr::parse(&h).unwrap();
        assert_eq!(
            r,
            FragmentRepr {
                next_header: IpProtocol::Udp,
                frag_offset: 0,
                more_frags: true,
                ident: FRAG_IDENT
            }
        );
        assert_eq!((r.header_len(), r.buffer_len(8)), (8, 16));
        assert_eq!(r.to_string(), "IPv6-Frag next=UDP off=0 MF id=0x02d68fe8");
        let mut buf = [0xa5u8; 8];
        r.emit(&mut FragmentHeader::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &FIRST_FRAG_HEAD[40..48]);
    }

    #[test]
    fn fragment_header_truncated() {
        let short = &FIRST_FRAG_HEAD[40..47];
        assert_eq!(
            FragmentHeader::new_checked(short).unwrap_err(),
            ParseError::Truncated
        );
        let h = FragmentHeader::new_unchecked(short);
        assert_eq!(FragmentRepr::parse(&h).unwrap_err(), ParseError::Truncated);
        assert_eq!(h.to_string(), "IPv6-Frag (truncated packet)");
    }

    #[test]
    fn ext_header_truncated_length_byte() {
        assert_eq!(
            ExtHeader::new_checked(&[0x06u8][..]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn ext_header_truncated_body() {
        let rt = &SYN_HBH_RT_DST[48..87]; // 39 of 40 bytes
        assert_eq!(
            ExtHeader::new_checked(rt).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            ExtHeader::new_unchecked(rt).to_string(),
            "IPv6-ExtHdr (truncated packet)"
        );
    }

    #[test]
    fn ext_header_construct_into_junk() {
        let mut buf = [0xa5u8; 8];
        let mut h = ExtHeader::new_unchecked(&mut buf[..]);
        h.set_next_header(IpProtocol::Ipv6Route);
        h.set_hdr_ext_len(0);
        h.data_mut().copy_from_slice(&[0x01, 0x04, 0, 0, 0, 0]);
        assert_eq!(&buf[..], &SYN_HBH_RT_DST[40..48]);
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(
            src: [u8; 16], dst: [u8; 16], nh: u8, payload_len in 0usize..2000,
            hop_limit: u8, traffic_class: u8, flow_label in 0u32..0x10_0000,
        ) {
            let r = Repr {
                src_addr: Ipv6Addr::from(src),
                dst_addr: Ipv6Addr::from(dst),
                next_header: IpProtocol::from(nh),
                payload_len, hop_limit, traffic_class, flow_label,
            };
            proptest::prop_assume!(!(payload_len == 0 && nh == 0));
            let mut buf = vec![0xa5u8; r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn fragment_roundtrip(nh: u8, units in 0u16..8192, more_frags: bool, ident: u32) {
            let r = FragmentRepr {
                next_header: IpProtocol::from(nh),
                frag_offset: units * 8,
                more_frags,
                ident,
            };
            let mut buf = [0xa5u8; 8];
            r.emit(&mut FragmentHeader::new_unchecked(&mut buf[..]));
            let h = FragmentHeader::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(FragmentRepr::parse(&h).unwrap(), r);
        }

        /// The walk never panics and never reports an offset past the
        /// payload.
        #[test]
        fn walk_is_total(
            first in proptest::sample::select(vec![0u8, 6, 17, 43, 44, 51, 59, 60]),
            payload in proptest::collection::vec(
                proptest::sample::select(vec![0u8, 1, 2, 3, 6, 43, 44, 51, 60, 255]),
                0..160,
            ),
        ) {
            if let Ok(w) = walk_extension_headers(IpProtocol::from(first), &payload) {
                proptest::prop_assert!(w.offset <= payload.len());
                proptest::prop_assert!(w.count <= MAX_EXTENSION_HEADERS);
            }
        }
    }
}
