//! weft-switchd: the per-node userspace packet switch.
//!
//! Not yet written. What will live here (see `ARCHITECTURE.md` and the
//! switchd issue): ports (TAP, AF_PACKET; `port/sys.rs` is the only module
//! allowed `unsafe`), the multi-table classifier and pipeline with OpenFlow
//! semantics as OVS implements them, action execution, tunnels (Geneve and
//! VXLAN), the control socket speaking `protocol::ctl`, and ArcSwap
//! publication of flow tables to datapath worker threads. The crate is a
//! library so that `weftctl trace`, the benches and the fuzzers drive the
//! real pipeline; the `weft-switchd` binary is a thin wrapper added with it.

pub mod pipeline;
