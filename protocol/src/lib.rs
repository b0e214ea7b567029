//! Weft's shared vocabulary: bytes to meaning and back.
//!
//! * [`wire`]: views and `Repr`s for every header Weft parses or emits
//!   (Ethernet, VLAN, ARP, IPv4/6, ICMP/v6, TCP, UDP, SCTP, VXLAN, Geneve),
//!   with checksums.
//! * [`flow`]: the fixed-size [`flow::FlowKey`] extracted from a frame in one
//!   pass, its [`flow::FlowMask`], and the typed matches and actions.
//! * [`text`]: the `ovs-ofctl` flow syntax, parser and printer.
//! * [`ctl`]: the switchd control protocol (framing and messages).
//!
//! No I/O, no clocks, no threads: everything here is a pure function of its
//! inputs, so switchd, the controller, the tools, the benches and the fuzzers
//! all share one implementation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ctl;
pub mod flow;
pub mod pcap;
pub mod pod_report;
pub mod text;
pub mod wire;
