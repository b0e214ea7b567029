//! weft-switchd: the per-node userspace packet switch.
//!
//! Layers, outside in (see `ARCHITECTURE.md`):
//!
//! * [`buf`]: packet buffers with headroom and a per-worker pool.
//! * [`port`]: TAP, AF_PACKET, AF_XDP and in-memory ports behind one
//!   batch trait; `port/sys.rs` and its child `port/sys/xsk.rs` are the
//!   only modules allowed `unsafe`.
//! * [`pipeline`]: the multi-table classifier and action execution
//!   with OpenFlow semantics as OVS implements them, sans-IO, so that
//!   `weftctl trace`, the benches and the fuzzers drive the real code.
//! * [`tunnel`]: Geneve and VXLAN encapsulation, decapsulation and MTU
//!   errors, sans-IO, called by the pipeline.
//! * [`offload`]: virtio-net header metadata, checksum completion and
//!   software segmentation (GSO), sans-IO.
//! * [`state`]: the configuration as data (ports with stable numbers,
//!   flows with OVS flow-mod semantics, settings) and its atomic
//!   persistence.
//! * [`control`]: the `protocol::ctl` socket server; every change is
//!   validated by compiling a new snapshot, persisted, then published.
//! * [`underlay`]: the node's tunnel endpoint and next hops, read from the
//!   kernel through rtnetlink on the control thread.
//! * [`worker`]: the datapath thread: poll, receive batches, process,
//!   transmit.
//! * `main.rs`: the `weft-switchd` binary.

pub mod buf;
pub mod control;
pub mod offload;
pub mod pipeline;
pub mod port;
pub mod state;
pub mod tunnel;
pub mod underlay;
pub mod worker;
