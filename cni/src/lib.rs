//! weft-cni: Weft's CNI plugin (spec 1.0.0 and 1.1.0).
//!
//! A container runtime runs the `weft-cni` binary once per operation with
//! the `CNI_*` environment variables and the network configuration on
//! stdin; it prints a result or an error on stdout. Per pod, `ADD` gives the
//! pod an address from the node's pool, creates a veth pair into the pod's
//! network namespace and attaches the host end to the node's `weft-switchd`
//! as an AF_PACKET port.
//!
//! * [`spec`]: environment, configuration, results and error codes (pure).
//! * [`ipam`]: the crash-safe address store.
//! * [`netdev`]: veth, address, route through rtnetlink; namespace threads.
//! * [`switch`]: the blocking switchd control-socket client.
//! * [`plugin`]: the commands and their failure behaviour.
//! * [`report`]: the pod reports left for the controller.
//! * [`test_hook`]: the pause points crash tests kill the plugin at.
//! * [`timing`]: per-phase wall times (`WEFT_CNI_TIMING=1`).
//!
//! The configuration (one entry of `/etc/cni/net.d/10-weft.conflist`):
//!
//! ```json
//! {
//!   "type": "weft-cni",
//!   "socket": "/run/weft/switchd.sock",
//!   "underlayMtu": 1500,
//!   "ipam": { "subnet": "10.244.1.0/24", "dataDir": "/var/lib/weft/ipam" }
//! }
//! ```
//!
//! Everything but `type` and `ipam.subnet` is optional; see
//! [`spec::NetConf`] and [`spec::IpamConf`].

pub mod ipam;
pub mod netdev;
pub mod plugin;
pub mod report;
pub mod spec;
pub mod switch;
pub mod test_hook;
pub mod timing;
