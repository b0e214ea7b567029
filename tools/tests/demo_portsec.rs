//! Port security with real packets (issue #8 acceptance): on the demo
//! cluster (`weftctl demo up`, real namespaces, weft-switchd, weft-cni),
//! one pod sends hand-built attack frames with scapy (Debian's
//! `python3-scapy`, run by `/usr/bin/python3`; `portsec/attack.py`) while
//! a raw-socket sniffer (`portsec/sniff.py`) runs in every other pod (its
//! `eth0`) and in every node namespace (underlay `eth0` and the node's
//! `weft0`, which holds the tunnel endpoint address):
//!
//! - IPv4 with another pod's source IP (same tenant and the other tenant),
//!   frames with another pod's (or an unknown) source MAC;
//! - ARP replies to a victim and gratuitous ARP (request and reply forms)
//!   claiming another pod's address and the gateway's;
//! - IPv6 neighbour advertisements claiming a victim's and the gateway's
//!   link-local address, an ICMPv6 router advertisement;
//! - DHCP offers (broadcast, and unicast to each victim);
//! - 802.1Q-tagged frames (VLAN 0 and VLAN 100);
//! - hand-built VXLAN (UDP 4789) and Geneve (UDP 6081, with Weft's option
//!   naming the victim's port) packets aimed at every node's underlay
//!   address, the inner frame addressed to a victim.
//!
//! Each packet carries a unique marker. The attacker is `red-db/postgres`,
//! whose egress is not isolated; the live change of this run is a no-op
//! policy, so `red-web/admin` accepts anything and `red-web/frontend` TCP
//! 8080: each attack uses what the victim's policy admits, so only port
//! security can stop it. Controls: the same packet with the attacker's
//! own addresses must reach the two red victims (so a silent sniffer means
//! "blocked", not "never looked"), and every pod sniffer must see its own
//! self-test frame. Asserts: no attack marker (nor an ARP claim from the
//! attacker's MACs) on any sniffer, victims' neighbour tables unchanged,
//! and the demo's full connectivity matrix as expected before and after.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Down, cannot_run, demo, required, skip, state, text};
use serde_json::{Value, json};

const SCAPY_PY: &str = "/usr/bin/python3";

fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portsec")
}

fn ip_json(ns: &str, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", ns, "-j"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip -n {ns} {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn mac_of(ns: &str, dev: &str) -> String {
    ip_json(ns, &["link", "show", "dev", dev])[0]["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// IPv4 neighbour entries with a link-layer address: IP -> MAC.
fn neighbours(ns: &str) -> BTreeMap<String, String> {
    ip_json(ns, &["neigh", "show"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            Some((
                e["dst"].as_str()?.to_owned(),
                e["lladdr"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

struct Sniffer {
    name: String,
    child: Child,
}

fn sniffer(
    ns: &str,
    name: &str,
    prefix: &str,
    self_marker: &str,
    ifaces: &[&str],
    bad: &str,
    own_ip: &str,
) -> Sniffer {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, SCAPY_PY])
        .arg(scripts().join("sniff.py"))
        .arg(prefix)
        .arg(self_marker)
        .args(ifaces)
        .env("WEFT_BAD_MACS", bad)
        .env("WEFT_OWN_IP", own_ip)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "sniffer {name} did not start");
    Sniffer {
        name: name.to_owned(),
        child,
    }
}

impl Sniffer {
    fn finish(mut self) -> (String, Value) {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(t.lines().last().unwrap_or("")).unwrap_or_else(|e| {
            panic!("sniffer {}: {e}: {t}", self.name);
        });
        (self.name, v)
    }
}

#[test]
fn attacks_from_a_pod_reach_nobody() {
    if cannot_run() {
        return;
    }
    let scapy_ok = Command::new(SCAPY_PY)
        .args(["-c", "import scapy.all"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !scapy_ok && skip("scapy missing for /usr/bin/python3 (apt-get install python3-scapy)") {
        return;
    }
    let _ = required;
    let tmp = tempfile::tempdir().unwrap();
    let st_dir = tmp.path().join("demo");
    // A live change that changes nothing (keeps red-web/admin open).
    let noop = tmp.path().join("noop.yaml");
    std::fs::write(
        &noop,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: portsec-noop, namespace: red-db}\nspec:\n  podSelector: {matchLabels: {app: no-such-pod}}\n  policyTypes: [Ingress]\n",
    )
    .unwrap();
    let _guard = Down(st_dir.clone());
    let up = demo(&["up", "--live-change", noop.to_str().unwrap()], &st_dir);
    let out = text(&up);
    assert!(up.status.success(), "demo up failed:\n{out}");
    let st = state(&st_dir);
    let id = st["id"].as_str().unwrap().to_owned();
    let status: Value =
        serde_json::from_slice(&std::fs::read(st_dir.join("controller.json")).unwrap()).unwrap();

    let pods: Vec<Value> = st["pods"].as_array().unwrap().clone();
    let full = |p: &Value| {
        format!(
            "{}/{}",
            p["namespace"].as_str().unwrap(),
            p["name"].as_str().unwrap()
        )
    };
    let tenant = |p: &Value| {
        if p["namespace"].as_str().unwrap().starts_with("red") {
            "red"
        } else {
            "blue"
        }
    };
    let attacker = pods
        .iter()
        .find(|p| full(p) == "red-db/postgres")
        .unwrap()
        .clone();
    let a_ns = attacker["netns"].as_str().unwrap().to_owned();
    let a_mac = mac_of(&a_ns, "eth0");
    let a_ip = attacker["ip"].as_str().unwrap().to_owned();
    let fake_mac = "02:66:66:66:66:66";
    let prefix = format!("WEFTATK{}", std::process::id());

    let mut victims = Vec::new();
    for p in pods.iter().filter(|p| full(p) != "red-db/postgres") {
        let ns = p["netns"].as_str().unwrap();
        let name = full(p);
        let ofport = status["pods"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with(&name))
            .and_then(|(_, v)| v["ofport"].as_u64())
            .unwrap_or_else(|| panic!("no ofport for {name} in {status}"));
        let ll6 = ip_json(ns, &["addr", "show", "dev", "eth0"])[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["family"] == "inet6" && a["scope"] == "link")
            .and_then(|a| a["local"].as_str().map(str::to_owned));
        let (proto, port, control) = match name.as_str() {
            "red-web/admin" => ("udp", 9, true),
            "red-web/frontend" => ("tcp", 8080, true),
            _ => ("udp", 9, false),
        };
        victims.push(json!({
            "name": name, "netns": ns, "ip": p["ip"], "mac": mac_of(ns, "eth0"),
            "ofport": ofport, "ll6": ll6, "same_tenant": tenant(p) == "red",
            "proto": proto, "port": port, "control": control,
        }));
    }
    let nodes: Vec<Value> = st["nodes"].as_array().unwrap().clone();
    let node_macs: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| {
            (
                n["underlay"].as_str().unwrap().to_owned(),
                mac_of(n["netns"].as_str().unwrap(), "weft0"),
            )
        })
        .collect();

    // Normal traffic before (the demo's matrix is as expected).
    let check = demo(&["check"], &st_dir);
    assert!(check.status.success(), "{}", text(&check));

    let before: BTreeMap<String, BTreeMap<String, String>> = victims
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                neighbours(v["netns"].as_str().unwrap()),
            )
        })
        .collect();

    let bad = format!("{a_mac},{fake_mac}");
    let mut sniffers = Vec::new();
    for v in &victims {
        let name = v["name"].as_str().unwrap();
        sniffers.push(sniffer(
            v["netns"].as_str().unwrap(),
            name,
            &prefix,
            &format!("WEFTSELF{}-{}", std::process::id(), name.replace('/', "_")),
            &["eth0"],
            &bad,
            &a_ip,
        ));
    }
    for n in &nodes {
        sniffers.push(sniffer(
            n["netns"].as_str().unwrap(),
            &format!("node {}", n["name"].as_str().unwrap()),
            &prefix,
            "-",
            &["eth0", "weft0"],
            &bad,
            &a_ip,
        ));
    }

    let cfg = json!({
        "prefix": prefix, "iface": "eth0",
        "me": {"ip": a_ip, "mac": a_mac},
        "gw_ip": "10.10.1.1",
        "victims": victims,
        "nodes": nodes.iter().map(|n| n["underlay"].clone()).collect::<Vec<_>>(),
        "node_macs": node_macs,
        "fake_mac": fake_mac,
        "vnis": [1, 2, 3, 4],
    });
    let atk = Command::new("ip")
        .args(["netns", "exec", &a_ns, SCAPY_PY])
        .arg(scripts().join("attack.py"))
        .arg(cfg.to_string())
        .output()
        .unwrap();
    let atk_out = text(&atk);
    eprintln!("{atk_out}");
    assert!(atk.status.success(), "attack.py failed: {atk_out}");
    let attacks: Vec<String> = atk_out
        .lines()
        .filter(|l| l.len() > 3 && l.as_bytes()[0].is_ascii_digit())
        .map(str::to_owned)
        .collect();
    assert!(attacks.len() > 50, "{atk_out}");
    std::thread::sleep(std::time::Duration::from_millis(700));

    let mut leaks = Vec::new();
    let mut controls_seen: Vec<String> = Vec::new();
    for s in sniffers {
        let (name, v) = s.finish();
        eprintln!(
            "sniffer {name}: {} frames, self-test {}",
            v["frames"], v["self_seen"]
        );
        if !name.starts_with("node ") {
            assert_eq!(
                v["self_seen"], true,
                "sniffer {name} missed its own self-test frame"
            );
        }
        for f in v["findings"].as_array().unwrap() {
            eprintln!("  {name}: {}", f["marker"]);
            let m = f["marker"].as_str().unwrap();
            if m.contains("-CTRL-") {
                if m.ends_with(&format!("CTRL-{}", name.replace('/', "_"))) {
                    controls_seen.push(name.clone());
                }
                continue; // a control, on its legitimate way
            }
            leaks.push(format!(
                "{name} ({}): {m}",
                f["iface"].as_str().unwrap_or("?")
            ));
        }
    }
    controls_seen.sort();
    controls_seen.dedup();
    assert_eq!(
        controls_seen,
        ["red-web/admin", "red-web/frontend"],
        "the controls (attacker's own addresses, admitted by policy) must reach their victims"
    );
    assert!(
        leaks.is_empty(),
        "attack packets got through:\n{}",
        leaks.join("\n")
    );

    // Neighbour tables: nothing learnt from the claims.
    for v in &victims {
        let name = v["name"].as_str().unwrap();
        let after = neighbours(v["netns"].as_str().unwrap());
        for (ip, mac) in &after {
            if let Some(old) = before[name].get(ip) {
                assert_eq!(
                    old, mac,
                    "{name}: neighbour {ip} changed from {old} to {mac}"
                );
            }
            assert!(
                mac != fake_mac && (mac != &a_mac || ip == &a_ip),
                "{name}: neighbour {ip} is-at {mac} (the attacker's claim)"
            );
        }
    }

    // Normal traffic after.
    let check = demo(&["check"], &st_dir);
    assert!(check.status.success(), "{}", text(&check));
    eprintln!(
        "{} attacks, none got through; namespaces of {id} removed on drop",
        attacks.len()
    );
}
