//! weft-controller: the central brain.
//!
//! Not yet written. What will live here (see `ARCHITECTURE.md` and the
//! controller issue): sources (a manifests directory, or kube-rs watchers),
//! the logical model (switches, routers, ports, ACLs, address sets, load
//! balancers; no Kubernetes types inside), the pure compiler from model to
//! per-node flow tables (typed `protocol::flow` values), and the sessions
//! that push per-node diffs to every switchd over `protocol::ctl`. The
//! `weft-controller` binary is added with the first of these.
