//! ICMP for IPv6 (RFC 4443) and Neighbor Discovery (RFC 4861).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Rest of header: echo Identifier | Sequence Number;           |
//! |  packet too big: MTU (32 bits); NA: |R|S|O| reserved ...      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  NS / NA / Redirect: Target Address (16 bytes, offset 8)      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  ND options: | Type | Length (units of 8 bytes) | data ... |   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view covers one whole message (the IPv6 upper-layer payload); the
//! checksum covers the IPv6 pseudo-header (next header 58) and the whole
//! buffer.
//!
//! [`Packet::check_len`] knows the fixed part of the ND messages, so the ND
//! accessors never panic: router solicitation 8 bytes, router
//! advertisement 16, neighbor solicitation and advertisement 24, redirect
//! 40. ND options are walked with the allocation-free [`NdiscOptionIter`].
//!
//! Two representations: [`NdiscRepr`] for neighbor solicitation and
//! advertisement (what a switch answers or snoops), and the generic
//! borrowed [`Repr`] (type, code, rest of header, data) for everything else
//! (echo, packet too big, errors).
//!
//! Not supported: router advertisement, redirect and MLD bodies are not
//! interpreted (use the view and [`NdiscOptionIter`]); link-layer address
//! options are interpreted for Ethernet only (6 bytes); the ND validity
//! checks that need the IPv6 header (hop limit 255, unspecified source
//! without a source link-layer option) belong to the caller. SEND (RFC 3971)
//! options are passed through as unknown.
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`Packet::verify_checksum`] always returns `true`.

use core::fmt;
use core::net::Ipv6Addr;

use super::ethernet::EthernetAddress;
use super::ip::IpProtocol;
use super::{ParseError, Result, checksum};

wire_enum! {
    /// ICMPv6 message types (IANA "ICMPv6 Parameters").
    pub enum Message(u8) {
        /// Destination unreachable.
        DstUnreachable = 1,
        /// Packet too big.
        PktTooBig = 2,
        /// Time exceeded.
        TimeExceeded = 3,
        /// Parameter problem.
        ParamProblem = 4,
        /// Echo request.
        EchoRequest = 128,
        /// Echo reply.
        EchoReply = 129,
        /// Multicast listener query (RFC 2710).
        MldQuery = 130,
        /// Multicast listener report (MLDv1).
        MldReport = 131,
        /// Multicast listener done (MLDv1).
        MldDone = 132,
        /// Router solicitation.
        RouterSolicit = 133,
        /// Router advertisement.
        RouterAdvert = 134,
        /// Neighbor solicitation.
        NeighborSolicit = 135,
        /// Neighbor advertisement.
        NeighborAdvert = 136,
        /// Redirect.
        Redirect = 137,
        /// Version 2 multicast listener report (RFC 3810).
        MldV2Report = 143,
    }
}

impl Message {
    /// True for error messages (types 0..=127).
    #[inline]
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }

    /// The length of the fixed part of the message, where ND options begin
    /// (8 for messages without a longer fixed part).
    #[inline]
    pub fn fixed_len(self) -> usize {
        match self {
            Message::RouterAdvert => 16,
            Message::NeighborSolicit | Message::NeighborAdvert => 24,
            Message::Redirect => 40,
            _ => HEADER_LEN,
        }
    }

    /// True for the ND messages that carry options (RFC 4861).
    #[inline]
    pub fn has_ndisc_options(self) -> bool {
        matches!(
            self,
            Message::RouterSolicit
                | Message::RouterAdvert
                | Message::NeighborSolicit
                | Message::NeighborAdvert
                | Message::Redirect
        )
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Message::DstUnreachable => "dst-unreachable",
            Message::PktTooBig => "packet-too-big",
            Message::TimeExceeded => "time-exceeded",
            Message::ParamProblem => "param-problem",
            Message::EchoRequest => "echo-request",
            Message::EchoReply => "echo-reply",
            Message::MldQuery => "mld-query",
            Message::MldReport => "mld-report",
            Message::MldDone => "mld-done",
            Message::RouterSolicit => "router-solicit",
            Message::RouterAdvert => "router-advert",
            Message::NeighborSolicit => "neighbor-solicit",
            Message::NeighborAdvert => "neighbor-advert",
            Message::Redirect => "redirect",
            Message::MldV2Report => "mldv2-report",
            Message::Unknown(v) => return write!(f, "type-{v}"),
        })
    }
}

wire_enum! {
    /// ND option types (RFC 4861 section 4.6).
    pub enum NdiscOptionType(u8) {
        /// Source link-layer address.
        SourceLinkLayerAddr = 1,
        /// Target link-layer address.
        TargetLinkLayerAddr = 2,
        /// Prefix information.
        PrefixInformation = 3,
        /// Redirected header.
        RedirectedHeader = 4,
        /// MTU.
        Mtu = 5,
    }
}

mod field {
    use core::ops::Range;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const REST: Range<usize> = 4..8;
    pub(super) const ECHO_IDENT: Range<usize> = 4..6;
    pub(super) const ECHO_SEQNO: Range<usize> = 6..8;
    pub(super) const MTU: Range<usize> = 4..8;
    pub(super) const NA_FLAGS: usize = 4;
    pub(super) const TARGET: Range<usize> = 8..24;
    pub(super) const DATA: usize = 8;
}

/// Set under `cfg(fuzzing)` (cargo-fuzz): checksums then always verify.
#[allow(unexpected_cfgs)]
const FUZZING: bool = cfg!(fuzzing);

/// Length of the ICMPv6 header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = field::DATA;

/// Length of a neighbor solicitation or advertisement without options.
pub const NEIGHBOR_LEN: usize = field::TARGET.end;

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A read/write view of an ICMPv6 message.
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

    /// Ensures the buffer holds the 8-byte header and the fixed part of its
    /// message type ([`Message::fixed_len`]); [`ParseError::Truncated`]
    /// otherwise.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.msg_type().fixed_len() {
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

    /// The message type.
    ///
    /// # Panics
    /// If the buffer is empty.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The four type-specific bytes after the checksum.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::REST];
        [b[0], b[1], b[2], b[3]]
    }

    /// The echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// The echo sequence number (meaningful for echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// The MTU of a packet-too-big message (bytes 4..8).
    #[inline]
    pub fn pkt_too_big_mtu(&self) -> u32 {
        u32::from_be_bytes(self.rest_of_header())
    }

    /// The target address of a neighbor solicitation, neighbor
    /// advertisement or redirect; `None` for other types.
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        match self.msg_type() {
            Message::NeighborSolicit | Message::NeighborAdvert | Message::Redirect => {
                let b = self.buffer.as_ref().get(field::TARGET)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(Ipv6Addr::from(a))
            }
            _ => None,
        }
    }

    /// The R (router) flag of a neighbor advertisement.
    #[inline]
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }

    /// The S (solicited) flag of a neighbor advertisement.
    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }

    /// The O (override) flag of a neighbor advertisement.
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }

    /// True if the checksum verifies over the IPv6 pseudo-header and the
    /// whole buffer.
    ///
    /// # Fuzzing
    /// Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if FUZZING {
            return true;
        }
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), len);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
    }
}

impl<'a, B: AsRef<[u8]> + ?Sized> Packet<&'a B> {
    /// The bytes after the 8-byte header.
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The ND options after the fixed part of an ND message; an empty
    /// iterator for other message types.
    ///
    /// # Panics
    /// If the view did not pass [`check_len`](Packet::check_len).
    #[inline]
    pub fn options(&self) -> NdiscOptionIter<'a> {
        let t = self.msg_type();
        if t.has_ndisc_options() {
            NdiscOptionIter::new(&self.buffer.as_ref()[t.fixed_len()..])
        } else {
            NdiscOptionIter::new(&[])
        }
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Packet<B> {
    #[inline]
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the message type (a longer fixed part can break the
    /// `check_len` guarantee).
    #[inline]
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into()
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    /// Sets the four type-specific bytes after the checksum.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&value)
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value)
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value)
    }

    /// Sets the packet-too-big MTU.
    #[inline]
    pub fn set_pkt_too_big_mtu(&mut self, value: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&value.to_be_bytes())
    }

    /// Sets the neighbor advertisement flags and clears the 29 reserved
    /// bits.
    #[inline]
    pub fn set_neighbor_flags(&mut self, flags: NeighborFlags) {
        self.set_rest_of_header([flags.to_byte(), 0, 0, 0])
    }

    /// Sets the target address (bytes 8..24).
    ///
    /// # Panics
    /// If the buffer is shorter than [`NEIGHBOR_LEN`].
    #[inline]
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets())
    }

    /// The mutable bytes after the 8-byte header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and writes the checksum over the IPv6 pseudo-header and the
    /// whole buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), len);
        let c = checksum::finish(pseudo, b);
        self.set_checksum(c)
    }
}

/// Writes `ICMPv6 type=.. code=..` and the type-specific details.
fn fmt_details(
    f: &mut fmt::Formatter<'_>,
    msg_type: Message,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
) -> fmt::Result {
    write!(f, "ICMPv6 type={msg_type} code={code}")?;
    match msg_type {
        Message::EchoRequest | Message::EchoReply => write!(
            f,
            " id={} seq={}",
            u16::from_be_bytes([rest[0], rest[1]]),
            u16::from_be_bytes([rest[2], rest[3]])
        )?,
        Message::PktTooBig => write!(f, " mtu={}", u32::from_be_bytes(rest))?,
        Message::NeighborSolicit | Message::NeighborAdvert | Message::Redirect => {
            if let Some(t) = data.get(..16) {
                let mut a = [0u8; 16];
                a.copy_from_slice(t);
                write!(f, " target={}", Ipv6Addr::from(a))?;
            }
            if msg_type == Message::NeighborAdvert {
                write!(f, " flags={}", NeighborFlags::from_byte(rest[0]))?;
            }
        }
        _ => {}
    }
    write!(f, " len={}", HEADER_LEN + data.len())
}

impl<B: AsRef<[u8]>> fmt::Display for Packet<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => {
                let b = self.buffer.as_ref();
                fmt_details(
                    f,
                    self.msg_type(),
                    self.msg_code(),
                    self.rest_of_header(),
                    &b[field::DATA..],
                )
            }
            Err(e) => write!(f, "ICMPv6 ({e})"),
        }
    }
}

/// One ND option: its type and the bytes after the type and length bytes
/// (`8 * length - 2` bytes, padding included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdiscOption<'a> {
    /// Option type.
    pub kind: NdiscOptionType,
    /// Option body (after the two-byte option header).
    pub data: &'a [u8],
}

impl NdiscOption<'_> {
    /// The Ethernet address of a source or target link-layer address
    /// option of length 1 (8 bytes); `None` otherwise.
    #[inline]
    pub fn link_layer_addr(&self) -> Option<EthernetAddress> {
        match self.kind {
            NdiscOptionType::SourceLinkLayerAddr | NdiscOptionType::TargetLinkLayerAddr
                if self.data.len() == 6 =>
            {
                Some(EthernetAddress::from_bytes(self.data))
            }
            _ => None,
        }
    }

    /// The MTU of an MTU option of length 1; `None` otherwise.
    #[inline]
    pub fn mtu(&self) -> Option<u32> {
        match (self.kind, self.data) {
            (NdiscOptionType::Mtu, &[_, _, a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }
}

/// An allocation-free iterator over ND options.
///
/// Yields `Err(ParseError::BadLength)` for an option with length 0 and
/// `Err(ParseError::Truncated)` for an option that overruns the buffer
/// (including a lone trailing byte); iteration stops after an error.
#[derive(Debug, Clone)]
pub struct NdiscOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptionIter<'a> {
    /// Iterates over the options in `bytes` (which start at an option).
    #[inline]
    pub const fn new(bytes: &'a [u8]) -> NdiscOptionIter<'a> {
        NdiscOptionIter { rest: bytes }
    }
}

impl<'a> Iterator for NdiscOptionIter<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (kind, units) = match self.rest {
            [] => return None,
            [kind, units, ..] => (*kind, *units),
            [_] => {
                self.rest = &[];
                return Some(Err(ParseError::Truncated));
            }
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            self.rest = &[];
            return Some(Err(ParseError::BadLength));
        }
        let Some(opt) = self.rest.get(..len) else {
            self.rest = &[];
            return Some(Err(ParseError::Truncated));
        };
        self.rest = &self.rest[len..];
        Some(Ok(NdiscOption {
            kind: NdiscOptionType::from(kind),
            data: &opt[2..],
        }))
    }
}

/// Writes a one-unit link-layer address option into the first 8 bytes of
/// `buf`.
fn emit_lladdr_option(buf: &mut [u8], kind: NdiscOptionType, addr: EthernetAddress) {
    buf[0] = kind.into();
    buf[1] = 1;
    buf[2..8].copy_from_slice(&addr.0);
}

/// The three neighbor advertisement flags (RFC 4861 section 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

impl NeighborFlags {
    /// The flags from the first byte after the checksum.
    #[inline]
    pub const fn from_byte(b: u8) -> NeighborFlags {
        NeighborFlags {
            router: b & NA_ROUTER != 0,
            solicited: b & NA_SOLICITED != 0,
            override_: b & NA_OVERRIDE != 0,
        }
    }

    /// The flags as the first byte after the checksum.
    #[inline]
    pub const fn to_byte(self) -> u8 {
        (if self.router { NA_ROUTER } else { 0 })
            | (if self.solicited { NA_SOLICITED } else { 0 })
            | (if self.override_ { NA_OVERRIDE } else { 0 })
    }
}

impl fmt::Display for NeighborFlags {
    /// `R`, `S`, `O` for the set flags (`RSO`, `SO`, ...), `none` if none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.to_byte() == 0 {
            return f.write_str("none");
        }
        for (set, c) in [
            (self.router, "R"),
            (self.solicited, "S"),
            (self.override_, "O"),
        ] {
            if set {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// Neighbor solicitation and advertisement (RFC 4861 sections 4.3, 4.4).
///
/// Only the Ethernet link-layer address option is represented; other
/// options are skipped on parse (RFC 4861: unknown options are ignored) and
/// not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    /// Neighbor solicitation.
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor advertisement.
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address being advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdiscRepr {
    /// Parses a checked neighbor solicitation or advertisement (the
    /// checksum is verified separately with [`Packet::verify_checksum`]).
    ///
    /// Errors: [`ParseError::Unsupported`] for other message types;
    /// [`ParseError::Truncated`] if shorter than 24 bytes or an option
    /// overruns; [`ParseError::BadField`] for a code other than 0;
    /// [`ParseError::BadLength`] for an option of length 0 or a link-layer
    /// address option whose length is not one unit (8 bytes).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&B>) -> Result<NdiscRepr> {
        packet.check_len()?;
        let msg_type = packet.msg_type();
        let ll_kind = match msg_type {
            Message::NeighborSolicit => NdiscOptionType::SourceLinkLayerAddr,
            Message::NeighborAdvert => NdiscOptionType::TargetLinkLayerAddr,
            _ => return Err(ParseError::Unsupported),
        };
        if packet.msg_code() != 0 {
            return Err(ParseError::BadField);
        }
        let target_addr = packet.target_addr().ok_or(ParseError::Truncated)?;
        let mut lladdr = None;
        for opt in packet.options() {
            let opt = opt?;
            if opt.kind == ll_kind {
                lladdr = Some(opt.link_layer_addr().ok_or(ParseError::BadLength)?);
            }
        }
        Ok(match msg_type {
            Message::NeighborSolicit => NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            },
            _ => NdiscRepr::NeighborAdvert {
                flags: NeighborFlags::from_byte(packet.rest_of_header()[0]),
                target_addr,
                lladdr,
            },
        })
    }

    /// The message type.
    #[inline]
    pub const fn msg_type(&self) -> Message {
        match self {
            NdiscRepr::NeighborSolicit { .. } => Message::NeighborSolicit,
            NdiscRepr::NeighborAdvert { .. } => Message::NeighborAdvert,
        }
    }

    /// Length of a buffer holding the whole message (24, or 32 with a
    /// link-layer address option).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        let (NdiscRepr::NeighborSolicit { lladdr, .. } | NdiscRepr::NeighborAdvert { lladdr, .. }) =
            self;
        NEIGHBOR_LEN + if lladdr.is_some() { 8 } else { 0 }
    }

    /// Writes the whole message into `packet` with a zero checksum; the
    /// caller then calls [`Packet::fill_checksum`] with the IPv6 addresses.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](NdiscRepr::buffer_len).
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_msg_type(self.msg_type());
        packet.set_msg_code(0);
        packet.set_checksum(0);
        let (flags, target_addr, lladdr, kind) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => (
                NeighborFlags::default(),
                target_addr,
                lladdr,
                NdiscOptionType::SourceLinkLayerAddr,
            ),
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => (
                flags,
                target_addr,
                lladdr,
                NdiscOptionType::TargetLinkLayerAddr,
            ),
        };
        packet.set_neighbor_flags(flags);
        packet.set_target_addr(target_addr);
        if let Some(addr) = lladdr {
            emit_lladdr_option(&mut packet.buffer.as_mut()[NEIGHBOR_LEN..], kind, addr);
        }
    }
}

impl fmt::Display for NdiscRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ICMPv6 type={}", self.msg_type())?;
        let lladdr = match self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                write!(f, " target={target_addr}")?;
                lladdr
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => {
                write!(f, " target={target_addr} flags={flags}")?;
                lladdr
            }
        };
        if let Some(a) = lladdr {
            write!(f, " lladdr={a}")?;
        }
        Ok(())
    }
}

/// The generic representation of an ICMPv6 message: the header fields and
/// the borrowed data after them (echo, packet too big, errors, or any
/// message kept raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Message type.
    pub msg_type: Message,
    /// Message code.
    pub code: u8,
    /// The four type-specific header bytes.
    pub rest: [u8; 4],
    /// Everything after the 8-byte header.
    pub data: &'a [u8],
}

impl<'a> Repr<'a> {
    /// An echo request.
    pub const fn echo_request(ident: u16, seq_no: u16, data: &'a [u8]) -> Repr<'a> {
        Self::echo(Message::EchoRequest, ident, seq_no, data)
    }

    /// An echo reply.
    pub const fn echo_reply(ident: u16, seq_no: u16, data: &'a [u8]) -> Repr<'a> {
        Self::echo(Message::EchoReply, ident, seq_no, data)
    }

    const fn echo(msg_type: Message, ident: u16, seq_no: u16, data: &'a [u8]) -> Repr<'a> {
        let i = ident.to_be_bytes();
        let s = seq_no.to_be_bytes();
        Repr {
            msg_type,
            code: 0,
            rest: [i[0], i[1], s[0], s[1]],
            data,
        }
    }

    /// A packet-too-big error with the MTU; `original` is as much of the
    /// offending packet as fits in the minimum MTU (RFC 4443 section 3.2).
    pub const fn pkt_too_big(mtu: u32, original: &'a [u8]) -> Repr<'a> {
        Repr {
            msg_type: Message::PktTooBig,
            code: 0,
            rest: mtu.to_be_bytes(),
            data: original,
        }
    }

    /// Parses a checked message of any type; the data is borrowed (the
    /// checksum is verified separately with [`Packet::verify_checksum`]).
    pub fn parse<B: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a B>) -> Result<Repr<'a>> {
        packet.check_len()?;
        Ok(Repr {
            msg_type: packet.msg_type(),
            code: packet.msg_code(),
            rest: packet.rest_of_header(),
            data: packet.data(),
        })
    }

    /// The header length (8).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a buffer holding the whole message.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the whole message into `packet` with a zero checksum; the
    /// caller then calls [`Packet::fill_checksum`] with the IPv6 addresses.
    ///
    /// # Panics
    /// If the buffer is not exactly [`buffer_len`](Repr::buffer_len) bytes
    /// long.
    pub fn emit<B: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<B>) {
        packet.set_msg_type(self.msg_type);
        packet.set_msg_code(self.code);
        packet.set_checksum(0);
        packet.set_rest_of_header(self.rest);
        packet.data_mut().copy_from_slice(self.data);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_details(f, self.msg_type, self.code, self.rest, self.data)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    // Every message below was captured with tcpdump on a veth pair between
    // network namespaces `weft-h-l4a` (fd00::1, 02:00:00:00:00:01) and
    // `weft-h-l4b` (fd00::2, 02:00:00:00:00:02, forwarding on), Linux
    // kernel ND and ICMPv6. Bytes start at the ICMPv6 header.

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    /// Solicited-node multicast address of fd00::2.
    const SNMA_B: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    const LL_A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 1);
    const LL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 2);
    const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

    /// Neighbor solicitation fd00::1 -> ff02::1:ff00:2 for fd00::2 with a
    /// source link-layer address option 02:00:00:00:00:01.
    static NS_BYTES: [u8; 32] = [
        0x87, 0x00, 0x7d, 0x97, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01,
    ];

    /// The neighbor advertisement answering [`NS_BYTES`], fd00::2 ->
    /// fd00::1, flags R S O, target link-layer address 02:00:00:00:00:02.
    static NA_BYTES: [u8; 32] = [
        0x88, 0x00, 0x9c, 0x99, 0xe0, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x02,
    ];

    /// A neighbor advertisement without options: fd00::1 -> fe80::ff:fe00:2
    /// for fd00::1, flags S only (a unicast reachability probe answer).
    static NA_NO_OPT_BYTES: [u8; 24] = [
        0x88, 0x00, 0x40, 0x26, 0x40, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// Router solicitation fe80::ff:fe00:1 -> ff02::2 with a source
    /// link-layer address option.
    static RS_BYTES: [u8; 16] = [
        0x85, 0x00, 0x7b, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x01,
    ];

    /// Echo request fd00::1 -> fd00::2, id 0x4321, seq 7, data
    /// "weft-ping-abcdef" (Python raw socket; kernel-filled checksum).
    static ECHO_BYTES: [u8; 24] = [
        0x80, 0x00, 0x3c, 0x6d, 0x43, 0x21, 0x00, 0x07, 0x77, 0x65, 0x66, 0x74, 0x2d, 0x70, 0x69,
        0x6e, 0x67, 0x2d, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
    ];

    /// The first 56 bytes of a 1240-byte packet-too-big (MTU 1280) sent by
    /// router `weft-h-l4b` (fd00::2) to fd00::1 for a 1348-byte UDP datagram
    /// to fd01::2 over a 1280-MTU link. The rest is the UDP payload
    /// `b'y' * 1184` (see [`ptb_bytes`]).
    static PTB_PREFIX: [u8; 56] = [
        0x02, 0x00, 0x58, 0xc3, 0x00, 0x00, 0x05, 0x00, 0x60, 0x06, 0x71, 0xa0, 0x05, 0x1c, 0x11,
        0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0xfd, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02, 0xd1, 0xdb, 0x00, 0x09, 0x05, 0x1c, 0xff, 0x32,
    ];

    fn ptb_bytes() -> [u8; 1240] {
        let mut b = [0x79u8; 1240];
        b[..56].copy_from_slice(&PTB_PREFIX);
        b
    }

    #[test]
    fn deconstruct_ns() {
        let p = Packet::new_checked(&NS_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NeighborSolicit);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x7d97);
        assert_eq!(p.rest_of_header(), [0; 4]);
        assert_eq!(p.target_addr(), Some(B));
        let mut opts = p.options();
        let o = opts.next().unwrap().unwrap();
        assert_eq!(o.kind, NdiscOptionType::SourceLinkLayerAddr);
        assert_eq!(o.link_layer_addr(), Some(MAC_A));
        assert!(opts.next().is_none());
        assert!(p.verify_checksum(A, SNMA_B));
        assert!(!p.verify_checksum(A, B));
        assert_eq!(
            p.to_string(),
            "ICMPv6 type=neighbor-solicit code=0 target=fd00::2 len=32"
        );
    }

    #[test]
    fn deconstruct_na() {
        let p = Packet::new_checked(&NA_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NeighborAdvert);
        assert!(p.router_flag() && p.solicited_flag() && p.override_flag());
        assert_eq!(p.target_addr(), Some(B));
        let o = p.options().next().unwrap().unwrap();
        assert_eq!(o.kind, NdiscOptionType::TargetLinkLayerAddr);
        assert_eq!(o.link_layer_addr(), Some(MAC_B));
        assert!(p.verify_checksum(B, A));
        assert_eq!(
            p.to_string(),
            "ICMPv6 type=neighbor-advert code=0 target=fd00::2 flags=RSO len=32"
        );

        let q = Packet::new_checked(&NA_NO_OPT_BYTES[..]).unwrap();
        assert!(!q.router_flag() && q.solicited_flag() && !q.override_flag());
        assert_eq!(q.options().count(), 0);
        assert!(q.verify_checksum(A, LL_B));
    }

    #[test]
    fn deconstruct_rs_echo_ptb() {
        let rs = Packet::new_checked(&RS_BYTES[..]).unwrap();
        assert_eq!(rs.msg_type(), Message::RouterSolicit);
        assert_eq!(rs.target_addr(), None);
        assert_eq!(
            rs.options().next().unwrap().unwrap().link_layer_addr(),
            Some(MAC_A)
        );
        assert!(rs.verify_checksum(LL_A, ALL_ROUTERS));

        let e = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(e.msg_type(), Message::EchoRequest);
        assert_eq!(e.echo_ident(), 0x4321);
        assert_eq!(e.echo_seq_no(), 7);
        assert_eq!(e.data(), b"weft-ping-abcdef");
        assert_eq!(e.options().count(), 0);
        assert!(e.verify_checksum(A, B));
        assert_eq!(
            e.to_string(),
            "ICMPv6 type=echo-request code=0 id=17185 seq=7 len=24"
        );

        let bytes = ptb_bytes();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.msg_type(), Message::PktTooBig);
        assert!(p.msg_type().is_error());
        assert_eq!(p.pkt_too_big_mtu(), 1280);
        assert_eq!(&p.data()[..4], &[0x60, 0x06, 0x71, 0xa0]);
        assert!(p.verify_checksum(B, A));
        assert_eq!(
            p.to_string(),
            "ICMPv6 type=packet-too-big code=0 mtu=1280 len=1240"
        );
    }

    #[test]
    fn construct_into_junk() {
        let mut buf = [0xa5u8; 32];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::NeighborAdvert);
        p.set_msg_code(0);
        p.set_neighbor_flags(NeighborFlags {
            router: true,
            solicited: true,
            override_: true,
        });
        p.set_target_addr(B);
        p.data_mut()[16..].copy_from_slice(&[2, 1, 2, 0, 0, 0, 0, 2]);
        p.fill_checksum(B, A);
        assert_eq!(buf, NA_BYTES);

        let mut buf = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(0x4321);
        p.set_echo_seq_no(7);
        p.data_mut().copy_from_slice(b"weft-ping-abcdef");
        p.fill_checksum(A, B);
        assert_eq!(buf, ECHO_BYTES);

        let mut buf = [0xa5u8; 8];
        Packet::new_unchecked(&mut buf[..]).set_pkt_too_big_mtu(1280);
        assert_eq!(&buf[4..], &[0, 0, 5, 0]);
    }

    #[test]
    fn ndisc_parse_and_emit() {
        let ns = NdiscRepr::parse(&Packet::new_checked(&NS_BYTES[..]).unwrap()).unwrap();
        assert_eq!(
            ns,
            NdiscRepr::NeighborSolicit {
                target_addr: B,
                lladdr: Some(MAC_A)
            }
        );
        assert_eq!(ns.buffer_len(), 32);
        let mut buf = [0xa5u8; 32];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        ns.emit(&mut p);
        p.fill_checksum(A, SNMA_B);
        assert_eq!(buf, NS_BYTES);
        assert_eq!(
            ns.to_string(),
            "ICMPv6 type=neighbor-solicit target=fd00::2 lladdr=02:00:00:00:00:01"
        );

        let na = NdiscRepr::parse(&Packet::new_checked(&NA_BYTES[..]).unwrap()).unwrap();
        let rso = NeighborFlags {
            router: true,
            solicited: true,
            override_: true,
        };
        assert_eq!(
            na,
            NdiscRepr::NeighborAdvert {
                flags: rso,
                target_addr: B,
                lladdr: Some(MAC_B)
            }
        );
        let mut buf = [0xa5u8; 32];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        na.emit(&mut p);
        p.fill_checksum(B, A);
        assert_eq!(buf, NA_BYTES);

        let na2 = NdiscRepr::parse(&Packet::new_checked(&NA_NO_OPT_BYTES[..]).unwrap()).unwrap();
        let s = NeighborFlags {
            solicited: true,
            ..Default::default()
        };
        assert_eq!(
            na2,
            NdiscRepr::NeighborAdvert {
                flags: s,
                target_addr: A,
                lladdr: None
            }
        );
        assert_eq!(na2.buffer_len(), 24);
        let mut buf = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        na2.emit(&mut p);
        p.fill_checksum(A, LL_B);
        assert_eq!(buf, NA_NO_OPT_BYTES);
        assert_eq!(
            na2.to_string(),
            "ICMPv6 type=neighbor-advert target=fd00::1 flags=S"
        );
    }

    #[test]
    fn generic_parse_and_emit() {
        let r = Repr::parse(&Packet::new_checked(&ECHO_BYTES[..]).unwrap()).unwrap();
        assert_eq!(r, Repr::echo_request(0x4321, 7, b"weft-ping-abcdef"));
        let mut buf = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.fill_checksum(A, B);
        assert_eq!(buf, ECHO_BYTES);
        assert_eq!(Repr::echo_reply(1, 2, &[]).msg_type, Message::EchoReply);

        let bytes = ptb_bytes();
        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(r, Repr::pkt_too_big(1280, &bytes[8..]));
        assert_eq!(r.buffer_len(), 1240);
        let mut buf = [0xa5u8; 1240];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.fill_checksum(B, A);
        assert_eq!(buf, bytes);
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            Packet::new_checked(&ECHO_BYTES[..7]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn truncated_fixed_parts() {
        let mut rs = [0u8; 7];
        rs[0] = 133;
        assert_eq!(
            Packet::new_checked(&rs[..]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&NS_BYTES[..23]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&NA_BYTES[..23]).unwrap_err(),
            ParseError::Truncated
        );
        let mut ra = [0u8; 16];
        ra[0] = 134;
        assert!(Packet::new_checked(&ra[..]).is_ok());
        assert_eq!(
            Packet::new_checked(&ra[..15]).unwrap_err(),
            ParseError::Truncated
        );
        let mut redirect = [0u8; 40];
        redirect[0] = 137;
        assert!(Packet::new_checked(&redirect[..]).is_ok());
        assert_eq!(
            Packet::new_checked(&redirect[..39]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Packet::new_unchecked(&NS_BYTES[..23]).to_string(),
            "ICMPv6 (truncated packet)"
        );
        let na = Packet::new_unchecked(&NA_BYTES[..23]);
        assert_eq!(NdiscRepr::parse(&na).unwrap_err(), ParseError::Truncated);
    }

    #[test]
    fn option_length_zero() {
        let mut b = NS_BYTES;
        b[25] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        let mut it = p.options();
        assert_eq!(it.next(), Some(Err(ParseError::BadLength)));
        assert_eq!(it.next(), None);
        assert_eq!(NdiscRepr::parse(&p).unwrap_err(), ParseError::BadLength);
    }

    #[test]
    fn option_overruns() {
        let mut b = NS_BYTES;
        b[25] = 2;
        let p = Packet::new_checked(&b[..]).unwrap();
        let mut it = p.options();
        assert_eq!(it.next(), Some(Err(ParseError::Truncated)));
        assert_eq!(it.next(), None);
        assert_eq!(NdiscRepr::parse(&p).unwrap_err(), ParseError::Truncated);
        // A lone trailing byte.
        let mut it = NdiscOptionIter::new(&[1]);
        assert_eq!(it.next(), Some(Err(ParseError::Truncated)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn lladdr_option_wrong_length() {
        let mut b = [0u8; 40];
        b[..32].copy_from_slice(&NS_BYTES);
        b[25] = 2; // 16-byte source link-layer address option
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().next().unwrap().unwrap().data.len(), 14);
        assert_eq!(NdiscRepr::parse(&p).unwrap_err(), ParseError::BadLength);
    }

    #[test]
    fn ndisc_bad_code_and_type() {
        let mut b = NS_BYTES;
        b[1] = 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(NdiscRepr::parse(&p).unwrap_err(), ParseError::BadField);
        let e = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(NdiscRepr::parse(&e).unwrap_err(), ParseError::Unsupported);
    }

    #[test]
    fn ndisc_skips_unknown_options() {
        let mut b = [0u8; 40];
        b[..24].copy_from_slice(&NA_BYTES[..24]);
        b[24..32].copy_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]); // MTU 1500
        b[32..].copy_from_slice(&NA_BYTES[24..]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().next().unwrap().unwrap().mtu(), Some(1500));
        match NdiscRepr::parse(&p).unwrap() {
            NdiscRepr::NeighborAdvert { lladdr, .. } => assert_eq!(lladdr, Some(MAC_B)),
            other => panic!("unexpected {other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn ndisc_roundtrip(
            advert: bool, flags in 0u8..8, target: [u8; 16], mac: Option<[u8; 6]>,
        ) {
            let target_addr = Ipv6Addr::from(target);
            let lladdr = mac.map(EthernetAddress);
            let r = if advert {
                let flags = NeighborFlags::from_byte(flags << 5);
                NdiscRepr::NeighborAdvert { flags, target_addr, lladdr }
            } else {
                NdiscRepr::NeighborSolicit { target_addr, lladdr }
            };
            let mut buf = [0xa5u8; 32];
            let buf = &mut buf[..r.buffer_len()];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.fill_checksum(A, B);
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert!(p.verify_checksum(A, B));
            proptest::prop_assert_eq!(NdiscRepr::parse(&p).unwrap(), r);
        }

        #[test]
        fn generic_roundtrip(
            msg_type: u8, code: u8, rest: [u8; 4],
            data in proptest::collection::vec(proptest::num::u8::ANY, 32..64),
        ) {
            let r = Repr { msg_type: Message::from(msg_type), code, rest, data: &data };
            let mut buf = [0xa5u8; 72];
            let buf = &mut buf[..r.buffer_len()];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = p.to_string();
            if Repr::parse(&p).is_ok() {
                let _ = p.target_addr();
                let _ = p.options().count();
                let _ = NdiscRepr::parse(&p);
                let _ = p.verify_checksum(A, B);
            }
        }
    }
}
