//! weft-controller: the central brain.
//!
//! Kubernetes objects in, a logical network model in the middle, per-node
//! flow tables out (OVN-style; see `ARCHITECTURE.md`, controller section).
//!
//! - [`model`]: the logical model (tenants, switches, routers, ports, ACLs,
//!   address sets, port groups, load balancers, nodes); no Kubernetes types.
//! - [`source`]: the manifest loader (files or a directory of YAML).
//! - [`translate`]: Kubernetes objects -> logical model.
//! - [`session`]: the sessions that push per-node flow tables to every
//!   switchd over `protocol::ctl`.
//! - [`compile`]: the logical model to one flow table per node (OVN-style
//!   stages), incrementally, with per-node diffs and cookies.
//! - [`binding`]: pods the CNI plugin attached (its reports), merged into
//!   the model (address, node, switchd port).
//! - [`check`]: policy probes and reachability matrices through the real
//!   switchd pipeline (`weftctl policy`).
pub mod binding;
pub mod check;
pub mod compile;
pub mod model;
pub mod session;
pub mod source;
pub mod translate;
