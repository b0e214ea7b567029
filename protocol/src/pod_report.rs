//! The record the CNI plugin leaves for the controller when it attaches a
//! pod (issue #8 scope 1: "reports the port to the controller").
//!
//! # Mechanism
//!
//! `weft-cni ADD` writes one JSON file per attachment,
//! `<dir>/<containerId>-<ifname>.json`, atomically (temporary file,
//! `fsync`, `rename`, `fsync` of the directory) *after* the switchd port
//! exists and before ADD returns; `DEL` and `GC` remove it. The controller
//! (`weft-controller --pod-reports DIR`) polls the directory and merges
//! every record into its model: the pod's address, MAC, node and switchd
//! port number. Files, not a socket, so nothing is lost while the
//! controller is down or restarting: it reads the whole directory on
//! start-up.
//!
//! The directory is node-local in a real cluster (on Kubernetes the pod's
//! address reaches the controller through the API server's Pod status; the
//! port number still has to come from the node). In standalone mode and
//! in `weftctl demo` every node of the box shares one directory.
//!
//! This module is the file format only (no I/O): the CNI plugin writes it,
//! the controller reads it.

use serde::{Deserialize, Serialize};

/// One attached pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`.
    pub namespace: String,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    pub name: String,
    /// The node (the network configuration's `nodeName`).
    pub node: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The pod's IPv4 address (no prefix).
    pub ip: std::net::Ipv4Addr,
    /// The pod interface's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The switchd port name (host end of the veth).
    pub port: String,
    /// The switchd port number (OpenFlow ofport).
    pub ofport: u32,
}

impl PodReport {
    /// The file name of the record of attachment (`container_id`,
    /// `ifname`) in the reports directory.
    pub fn file_name(container_id: &str, ifname: &str) -> String {
        format!("{container_id}-{ifname}.json")
    }

    /// The MAC as bytes, if well formed.
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        let mut out = [0u8; 6];
        let mut parts = self.mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        parts.next().is_none().then_some(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_round_trip_and_mac() {
        let r = PodReport {
            namespace: "red-web".into(),
            name: "frontend".into(),
            node: "node-a".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            ip: "10.10.1.10".parse().unwrap(),
            mac: "0a:58:0a:0a:01:0a".into(),
            port: "weft-1234".into(),
            ofport: 3,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"containerId\":\"c1\""), "{s}");
        assert_eq!(serde_json::from_str::<PodReport>(&s).unwrap(), r);
        assert_eq!(r.mac_bytes(), Some([0x0a, 0x58, 10, 10, 1, 10]));
        let bad = PodReport {
            mac: "0a:58:0a".into(),
            ..r
        };
        assert_eq!(bad.mac_bytes(), None);
        assert_eq!(PodReport::file_name("c1", "eth0"), "c1-eth0.json");
    }
}
