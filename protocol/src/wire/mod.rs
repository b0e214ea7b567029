//! Wire formats: zero-copy views over packet bytes and high-level `Repr`s.
//!
//! # The contract (holds for every header in this module)
//!
//! Each header `<proto>.rs` offers two layers, in the style of smoltcp's
//! `wire` module:
//!
//! * a **view** `Packet<B>` (Ethernet: `Frame<B>`) over any `B: AsRef<[u8]>`,
//!   with `new_unchecked`, `new_checked` and `check_len`, getters `x()` and,
//!   for `B: AsMut<[u8]>`, setters `set_x()`;
//! * a **`Repr`**, a small `Copy` value that holds only valid states, with
//!   `parse(&Packet<&B>) -> Result<Repr>`, `header_len()`/`buffer_len()` and
//!   `emit(&mut Packet<&mut B>)`.
//!
//! Rules:
//!
//! 1. A view that passed `check_len` (or was built with `new_checked`) never
//!    panics in any getter. Setters that could break this are listed on the
//!    type. Views over untrusted bytes are built with `new_checked`.
//! 2. `new_unchecked` is for emission into a buffer the caller sized with
//!    `Repr::buffer_len()`; stale bytes in that buffer never affect what is
//!    emitted (tests emit into buffers pre-filled with `0xa5`).
//! 3. `Repr::parse` never panics after a good length check; `Repr::emit` never
//!    panics into a buffer of exactly `buffer_len()` bytes.
//! 4. Nothing here allocates. Variable-length parts (IPv6 extension headers,
//!    Geneve options, ND options) are walked with borrowing iterators.
//! 5. Byte order is always explicit (`from_be_bytes`/`to_be_bytes`); no
//!    struct casts (unaligned references are undefined behaviour).
//! 6. Errors are the one small `Copy` enum [`ParseError`]; no preformatted
//!    messages.
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` checksum verification always succeeds, so the fuzzer
//! can reach the code behind the checksum checks.
//!
//! # Example: round trip
//!
//! ```
//! use protocol::wire::{EthernetAddress, EthernetFrame, EthernetRepr, EtherType};
//!
//! let repr = EthernetRepr {
//!     src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
//!     dst_addr: EthernetAddress::BROADCAST,
//!     ethertype: EtherType::Arp,
//! };
//! let mut buf = [0xa5u8; 14];
//! repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
//! let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
//! assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
//! ```

use core::fmt;

/// Declares a registry enum with an `Unknown(raw)` variant and `From`
/// conversions both ways, so unknown values round-trip unchanged.
macro_rules! wire_enum {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $(
              $( #[$variant_attr:meta] )*
              $variant:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        $( #[$enum_attr] )*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        pub enum $name {
            $(
              $( #[$variant_attr] )*
              $variant
            ),*,
            /// A value this registry does not name; kept as is.
            Unknown($ty)
        }

        impl ::core::convert::From<$ty> for $name {
            #[inline]
            fn from(value: $ty) -> Self {
                match value {
                    $( value if value == $value => $name::$variant ),*,
                    other => $name::Unknown(other)
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            #[inline]
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other
                }
            }
        }
    }
}
pub(crate) use wire_enum;

pub mod checksum;

/// Why a sequence of bytes is not a valid header.
///
/// Small and `Copy` so that the data path can store it per packet and count
/// it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParseError {
    /// The buffer ends before the header (or a length field) says it does.
    Truncated,
    /// A length field is impossible (smaller than the fixed header, or
    /// larger than its container).
    BadLength,
    /// A version field has a value we do not implement.
    BadVersion,
    /// A checksum does not verify.
    BadChecksum,
    /// A well-formed header that uses a feature we do not implement.
    Unsupported,
    /// A field holds a value the standard forbids (e.g. a reserved bit that
    /// must be zero where we check it, a hardware type that is not Ethernet).
    BadField,
    /// Header chain too long (e.g. more IPv6 extension headers than we walk).
    TooManyHeaders,
}

impl ParseError {
    /// A short, stable, lower-case name (used as a drop-reason label).
    pub const fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadLength => "bad-length",
            ParseError::BadVersion => "bad-version",
            ParseError::BadChecksum => "bad-checksum",
            ParseError::Unsupported => "unsupported",
            ParseError::BadField => "bad-field",
            ParseError::TooManyHeaders => "too-many-headers",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Truncated => "truncated packet",
            ParseError::BadLength => "impossible length field",
            ParseError::BadVersion => "unsupported version",
            ParseError::BadChecksum => "checksum does not verify",
            ParseError::Unsupported => "unsupported feature",
            ParseError::BadField => "invalid field value",
            ParseError::TooManyHeaders => "too many chained headers",
        })
    }
}

impl std::error::Error for ParseError {}

/// The result type of every parser in [`wire`](self).
pub type Result<T> = core::result::Result<T, ParseError>;

pub mod ethernet;
pub mod ip;
// Headers (one file each).
pub mod arp;
pub mod ipv4;
pub mod ipv6;
pub mod vlan;

pub mod icmpv4;
pub mod icmpv6;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub mod geneve;
pub mod vxlan;

pub use ethernet::{
    EtherType, EthernetAddress, Frame as EthernetFrame, HEADER_LEN as ETHERNET_HEADER_LEN,
    Repr as EthernetRepr,
};
pub use ip::IpProtocol;

// -- re-exports: vlan, arp, ipv4, ipv6 --
pub use arp::{
    HEADER_LEN as ARP_HEADER_LEN, Hardware as ArpHardware, Operation as ArpOperation,
    Packet as ArpPacket, Repr as ArpRepr,
};
pub use ipv4::{HEADER_LEN as IPV4_HEADER_LEN, Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    ExtHeader as Ipv6ExtHeader, ExtWalk as Ipv6ExtWalk,
    FRAGMENT_HEADER_LEN as IPV6_FRAGMENT_HEADER_LEN, FragmentHeader as Ipv6FragmentHeader,
    FragmentInfo as Ipv6FragmentInfo, FragmentRepr as Ipv6FragmentRepr,
    HEADER_LEN as IPV6_HEADER_LEN, MAX_EXTENSION_HEADERS as IPV6_MAX_EXTENSION_HEADERS,
    Packet as Ipv6Packet, Repr as Ipv6Repr, walk_extension_headers,
};
pub use vlan::{HEADER_LEN as VLAN_HEADER_LEN, Packet as VlanPacket, Repr as VlanRepr};
// -- end: vlan, arp, ipv4, ipv6 --

// -- re-exports: icmpv4, icmpv6, tcp, udp, sctp --
pub use icmpv4::{
    DstUnreachable as Icmpv4DstUnreachable, HEADER_LEN as ICMPV4_HEADER_LEN,
    Message as Icmpv4Message, Packet as Icmpv4Packet, Repr as Icmpv4Repr,
    TimeExceeded as Icmpv4TimeExceeded,
};
pub use icmpv6::{
    HEADER_LEN as ICMPV6_HEADER_LEN, Message as Icmpv6Message, NdiscOption, NdiscOptionIter,
    NdiscOptionType, NdiscRepr, NeighborFlags as NdiscNeighborFlags, Packet as Icmpv6Packet,
    Repr as Icmpv6Repr,
};
pub use sctp::{
    ChunkType as SctpChunkType, HEADER_LEN as SCTP_HEADER_LEN, Packet as SctpPacket,
    Repr as SctpRepr, crc32c,
};
pub use tcp::{
    HEADER_LEN as TCP_HEADER_LEN, MAX_HEADER_LEN as TCP_MAX_HEADER_LEN, Packet as TcpPacket,
    Repr as TcpRepr, TcpFlags,
};
pub use udp::{HEADER_LEN as UDP_HEADER_LEN, Packet as UdpPacket, Repr as UdpRepr};
// -- end: icmpv4, icmpv6, tcp, udp, sctp --

// -- re-exports: vxlan, geneve --
pub use geneve::{
    GeneveOption, HEADER_LEN as GENEVE_HEADER_LEN, Options as GeneveOptions,
    OptionsBuilder as GeneveOptionsBuilder, Packet as GenevePacket, Repr as GeneveRepr,
    UDP_PORT as GENEVE_UDP_PORT, emit_option as emit_geneve_option,
};
pub use vxlan::{
    HEADER_LEN as VXLAN_HEADER_LEN, Packet as VxlanPacket, Repr as VxlanRepr,
    UDP_PORT as VXLAN_UDP_PORT, Vni,
};
// -- end: vxlan, geneve --
