//! weft-controller: the central brain.
//!
//! Written so far: [`session`], the sessions that push per-node flow tables
//! to every switchd over `protocol::ctl`. Still to come (see
//! `ARCHITECTURE.md` and the controller issue): sources (a manifests
//! directory, or kube-rs watchers), the logical model and the pure compiler
//! from model to per-node flow tables. The `weft-controller` binary is
//! added with the first of these.

pub mod session;
