//! weft-controller: the central brain.
//!
//! Kubernetes objects in, a logical network model in the middle, per-node
//! flow tables out (OVN-style; see `ARCHITECTURE.md`, controller section).
//!
//! - [`model`]: the logical model (tenants, switches, routers, ports, ACLs,
//!   address sets, port groups, load balancers, nodes); no Kubernetes types.
pub mod model;
pub mod source;
pub mod translate;
