//! weft-switchd: the per-node userspace packet switch.
//!
//! Layers, outside in (see `ARCHITECTURE.md`):
//!
//! * [`buf`]: packet buffers with headroom and a per-worker pool.
//! * [`port`]: TAP, AF_PACKET and in-memory ports behind one batch trait;
//!   `port/sys.rs` is the only module allowed `unsafe`.
//! * [`pipeline`]: the multi-table classifier and action execution
//!   with OpenFlow semantics as OVS implements them, sans-IO, so that
//!   `weftctl trace`, the benches and the fuzzers drive the real code.
//! * control socket, persistence, workers and the `weft-switchd` binary
//!   (arriving).

pub mod buf;
pub mod control;
pub mod pipeline;
pub mod port;
pub mod state;
pub mod worker;
