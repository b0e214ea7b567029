//! weft-cni: the CNI plugin (spec 1.0.0/1.1.0).
//!
//! Not yet written. What will live here (see `ARCHITECTURE.md` and the
//! cluster-in-a-box issue): ADD/DEL/CHECK/STATUS/GC/VERSION read from the
//! environment and stdin as the spec says, veth creation through rtnetlink,
//! crash-safe IPAM, and registration of the host end with the node's
//! switchd. The `weft-cni` binary is added with the first of these.
