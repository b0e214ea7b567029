//! Pods the CNI plugin attached, merged into the model.
//!
//! `weft-cni ADD` leaves one [`PodReport`] per attachment in a directory
//! (format and durability: [`protocol::pod_report`]). The controller reads
//! the whole directory every time it changes and:
//!
//! 1. **before translation** ([`apply_to_manifests`]): sets the Pod's
//!    `spec.nodeName` and `status.podIP`/`podIPs` from the report, so
//!    policies (address sets), routes and port security use the address the
//!    pod really has. A report for a Pod the manifests do not hold creates
//!    one in the report's namespace with no labels (what a bare
//!    `kubectl run` would give), announced as an assumption;
//! 2. **after translation** ([`bind_ports`]): gives the pod's logical port
//!    the switchd port number (ofport) and MAC the plugin reported. This is
//!    OVN's port binding (`ovn-controller` matching the OVS interface's
//!    `external_ids:iface-id` to a logical port), done centrally.
//!
//! Several reports for one pod (a runtime that re-created the sandbox and
//! lost the DEL of the old one): the newest file wins; the others are
//! reported as conflicts. A report with an unusable field is skipped with
//! an error naming the file and field; the other reports still apply.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Pod, PodIP, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use protocol::pod_report::PodReport;
use protocol::wire::EthernetAddress;

use crate::model::{LogicalModel, PortKind};
use crate::source::{Loaded, Manifests, Origin};

/// A report and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The file.
    pub file: String,
    /// Its content.
    pub report: PodReport,
}

/// Every valid report of `dir` (one per pod, newest file wins), and one
/// error line per file that could not be used. A missing directory is no
/// report.
pub fn read_reports(dir: &Path) -> (Vec<Reported>, Vec<String>) {
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), errors),
        Err(e) => {
            errors.push(format!("pod reports {}: {e}", dir.display()));
            return (Vec::new(), errors);
        }
    };
    let mut by_pod: BTreeMap<(String, String), (SystemTime, Reported)> = BTreeMap::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            // Removed by a DEL between readdir and read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("pod report {}: {e}", path.display()));
                continue;
            }
        };
        let report: PodReport = match serde_json::from_slice(&text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("pod report {}: {e}", path.display()));
                continue;
            }
        };
        if report.mac_bytes().is_none() {
            errors.push(format!(
                "pod report {}: field mac: {:?} is not a MAC address",
                path.display(),
                report.mac
            ));
            continue;
        }
        let mtime = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let key = (report.namespace.clone(), report.name.clone());
        let new = Reported {
            file: path.display().to_string(),
            report,
        };
        match by_pod.get(&key) {
            Some((t, old)) if *t > mtime || (*t == mtime && old.file > new.file) => {
                errors.push(format!(
                    "pod report {}: pod {}/{} is also reported by the newer {} (ignored)",
                    new.file, key.0, key.1, old.file
                ));
            }
            Some((_, old)) => {
                errors.push(format!(
                    "pod report {}: pod {}/{} is also reported by the newer {} (ignored)",
                    old.file, key.0, key.1, new.file
                ));
                by_pod.insert(key, (mtime, new));
            }
            None => {
                by_pod.insert(key, (mtime, new));
            }
        }
    }
    (by_pod.into_values().map(|(_, r)| r).collect(), errors)
}

/// Step 1 of the module doc: node and address of every reported pod.
/// Returns the assumptions made (pods created from a report).
pub fn apply_to_manifests(m: &mut Manifests, reports: &[Reported]) -> Vec<String> {
    let mut notes = Vec::new();
    for r in reports {
        let p = &r.report;
        let ip = p.ip.to_string();
        let found = m.pods.iter_mut().find(|l| {
            l.object.metadata.namespace.as_deref() == Some(p.namespace.as_str())
                && l.object.metadata.name.as_deref() == Some(p.name.as_str())
        });
        let pod = match found {
            Some(l) => &mut l.object,
            None => {
                notes.push(format!(
                    "assumed pod {}/{} with no labels (reported by the CNI plugin in {}; no Pod object)",
                    p.namespace, p.name, r.file
                ));
                m.pods.push(Loaded {
                    origin: Origin {
                        file: r.file.as_str().into(),
                        document: 0,
                    },
                    object: Pod {
                        metadata: ObjectMeta {
                            name: Some(p.name.clone()),
                            namespace: Some(p.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        ..Pod::default()
                    },
                });
                let Some(l) = m.pods.last_mut() else { continue };
                &mut l.object
            }
        };
        pod.spec.get_or_insert_with(PodSpec::default).node_name = Some(p.node.clone());
        let st = pod.status.get_or_insert_with(PodStatus::default);
        st.pod_ip = Some(ip.clone());
        st.pod_ips = Some(vec![PodIP { ip }]);
    }
    notes
}

/// Step 2 of the module doc: ofport and MAC of every reported pod's
/// logical port. Returns one line per report whose pod has no port (not
/// translated: e.g. `hostNetwork`).
pub fn bind_ports(model: &mut LogicalModel, reports: &[Reported]) -> Vec<String> {
    let mut unbound = Vec::new();
    for r in reports {
        let p = &r.report;
        let port = model.ports.values_mut().find(|l| {
            matches!(&l.kind, PortKind::Pod { namespace, pod } if *namespace == p.namespace && *pod == p.name)
        });
        let (Some(port), Some(mac)) = (port, p.mac_bytes()) else {
            unbound.push(format!(
                "pod report {}: pod {}/{} has no logical port",
                r.file, p.namespace, p.name
            ));
            continue;
        };
        let mac = EthernetAddress(mac);
        port.ofport = Some(p.ofport);
        port.mac = mac;
        if let Some(s) = &mut port.security {
            s.mac = mac;
        }
    }
    unbound
}

/// `Ipv4Addr` of a pod port in the model, for tests and status output.
pub fn port_ipv4(model: &LogicalModel, namespace: &str, pod: &str) -> Option<Ipv4Addr> {
    model
        .pod_port(namespace, pod)?
        .ips
        .iter()
        .find_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::source::load_str;
    use crate::translate::translate;

    const BASE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.244.1.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.1}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.244.1.5}\n";

    fn rep(ns: &str, name: &str, ip: &str, ofport: u32) -> Reported {
        let ip: Ipv4Addr = ip.parse().unwrap();
        let o = ip.octets();
        Reported {
            file: format!("/r/{name}.json"),
            report: PodReport {
                namespace: ns.into(),
                name: name.into(),
                node: "n1".into(),
                container_id: format!("c-{name}"),
                ifname: "eth0".into(),
                ip,
                mac: format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
                port: format!("weft-{name}"),
                ofport,
            },
        }
    }

    #[test]
    fn reports_set_address_port_and_create_missing_pods() {
        let mut m = load_str("t", BASE).unwrap();
        let reports = vec![
            rep("x", "a", "10.244.1.77", 7),
            rep("x", "b", "10.244.1.78", 8),
        ];
        let notes = apply_to_manifests(&mut m, &reports);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("assumed pod x/b"), "{notes:?}");
        let mut t = translate(&m).unwrap();
        assert!(bind_ports(&mut t.model, &reports).is_empty());
        let a = t.model.pod_port("x", "a").unwrap();
        assert_eq!(a.ofport, Some(7));
        assert_eq!(
            port_ipv4(&t.model, "x", "a"),
            Some("10.244.1.77".parse().unwrap())
        );
        assert_eq!(a.mac, EthernetAddress([0x0a, 0x58, 10, 244, 1, 77]));
        assert_eq!(t.model.pod_port("x", "b").unwrap().ofport, Some(8));
    }

    #[test]
    fn directory_errors_name_the_file_and_newest_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("bad.json"), "{").unwrap();
        let mut r = rep("x", "a", "10.244.1.9", 3).report;
        r.mac = "zz".into();
        std::fs::write(d.path().join("mac.json"), serde_json::to_vec(&r).unwrap()).unwrap();
        let old = rep("x", "a", "10.244.1.10", 4).report;
        std::fs::write(d.path().join("old.json"), serde_json::to_vec(&old).unwrap()).unwrap();
        let newer = rep("x", "a", "10.244.1.11", 5).report;
        let f = std::fs::File::create(d.path().join("new.json")).unwrap();
        serde_json::to_writer(&f, &newer).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let (ok, errs) = read_reports(d.path());
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].report, newer);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("bad.json")));
        assert!(
            errs.iter()
                .any(|e| e.contains("mac.json") && e.contains("field mac"))
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("old.json") && e.contains("ignored"))
        );
        assert!(read_reports(&d.path().join("none")).0.is_empty());
    }
}
