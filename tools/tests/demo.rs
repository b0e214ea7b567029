//! `weftctl demo up`, `check` and `down` as a user runs them (root, real
//! namespaces, the real weft-switchd, weft-controller and weft-cni found
//! next to weftctl). Fails under `CI=true` or `WEFT_REQUIRE_NETNS=1` when
//! it cannot run (not root, binaries missing); otherwise skips loudly.
//! Nothing is timed: the demo prints its own timings.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Down, cannot_run, demo, namespaces_of, text, weftctl};
use serde_json::{Value, json};

#[test]
fn demo_up_check_down() {
    if cannot_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("demo");
    let guard = Down(state.clone());
    let up = demo(&["up"], &state);
    let out = text(&up);
    eprintln!("{out}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
    let id = st["id"].as_str().unwrap().to_owned();
    assert!(up.status.success(), "demo up failed:\n{out}");
    // Three nodes, five pods attached by weft-cni, every probe (ping, TCP,
    // UDP: 20 pairs each) as expected before and after the live change,
    // which every node enforced.
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(st["pods"].as_array().unwrap().len(), 5);
    assert_eq!(
        out.matches(
            "matrix: 100 of 100 probes as expected (ping 20/20, TCP 60/60, UDP 20/20), 0 differ: PASS"
        )
        .count(),
        2,
        "{out}"
    );
    // Judged columns, each with an allowed and a refused pair (so neither
    // can pass by answering everything the same way). Columns: ping,
    // tcp/80, tcp/5432, tcp/8080, udp/53.
    let row = |from: &str, to: &str| -> Vec<String> {
        let l = out
            .lines()
            .find(|l| l.starts_with(from) && l.split_whitespace().nth(1) == Some(to))
            .unwrap_or_else(|| panic!("no row {from} -> {to}:\n{out}"));
        l.split_whitespace().skip(2).map(str::to_owned).collect()
    };
    assert!(out.contains("from                   to                     ping      tcp/80    tcp/5432  tcp/8080  udp/53"), "{out}");
    // UDP 53: blue frontend -> worker allowed by dns-from-frontend, the
    // echo came back; the reverse direction refused.
    assert_eq!(row("blue-web/frontend", "blue-web/worker")[4], "ok");
    assert_eq!(row("blue-web/worker", "blue-web/frontend")[4], "X");
    // Ping: postgres -> admin (neither isolated in that direction; the echo
    // reply returns by return-open-*) answered; admin -> postgres refused.
    assert_eq!(row("red-db/postgres", "red-web/admin")[0], "ok");
    assert_eq!(row("red-web/admin", "red-db/postgres")[0], "X");
    // Where Weft's stateless replies differ from Kubernetes: the datagram
    // to admin passes, admin's egress isolation drops the echo; expected
    // and observed agree (no `!`), the `*` marks the difference.
    assert_eq!(row("red-db/postgres", "red-web/admin")[4], "X*");
    assert!(
        out.contains(
            "STATELESS red-db/postgres -> red-web/admin udp/53: first packet allowed, reply dropped"
        ),
        "{out}"
    );
    assert!(!out.contains("MISMATCH"), "{out}");
    assert!(out.contains("policy enforced on every node"), "{out}");
    // The live change is visible in the observed matrix: postgres lost
    // its access to admin (allowed before, refused after).
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("red-db/postgres") && l.contains("red-web/admin"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].contains("ok"), "{}", rows[0]);
    assert!(!rows[1].contains("ok"), "{}", rows[1]);
    assert_eq!(namespaces_of(&id).len(), 9);

    offloads_on(&st, &state, &id);

    // A second `up` on the same state directory refuses to start.
    let again = demo(&["up"], &state);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("run `weftctl demo down"),
        "{}",
        text(&again)
    );

    let check = demo(&["check"], &state);
    assert!(check.status.success(), "{}", text(&check));

    cross_node_traces(&state, &st);

    let down = demo(&["down"], &state);
    assert!(down.status.success(), "{}", text(&down));
    drop(guard);
    assert!(namespaces_of(&id).is_empty(), "{:?}", namespaces_of(&id));
    assert!(!state.exists());
    for pid in st["pids"].as_array().unwrap() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "process {pid} still runs: {stat}"
        );
    }
}

/// `weftctl trace --from --to --json` against the running demo.
fn trace(state: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(weftctl())
        .args(["trace", "--json", "--cluster"])
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "weftctl trace {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn walks(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    let hops = t["hops"].as_array().unwrap();
    hops.iter().filter_map(|h| h.get("node")).collect()
}

fn tunnels(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    let hops = t["hops"].as_array().unwrap();
    hops.iter().filter_map(|h| h.get("tunnel")).collect()
}

/// Issue #8 scope 5: traces across nodes through the live switchds.
fn cross_node_traces(state: &Path, st: &serde_json::Value) {
    let underlay = |node: &str| {
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .unwrap()["underlay"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("controller.json")).unwrap()).unwrap();
    let pods = &status["pods"];

    // Allowed, node-a -> node-c: both walks, the Geneve hop between the
    // nodes' underlay addresses with the switch's datapath as VNI, and
    // the allow rules of both policies.
    let t = trace(
        state,
        &[
            "--from",
            "red-web/frontend",
            "--to",
            "red-db/postgres",
            "--port",
            "5432",
        ],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], true, "{dump}");
    let w = walks(&t);
    assert_eq!(w.len(), 2, "{dump}");
    assert_eq!(
        (w[0]["node"].as_str(), w[1]["node"].as_str()),
        (Some("node-a"), Some("node-c"))
    );
    assert_eq!(w[1]["from"], "underlay", "{dump}");
    assert!(
        w[1]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["to"] == "pod red-db/postgres"),
        "{dump}"
    );
    let tun = tunnels(&t);
    assert_eq!(tun.len(), 1, "{dump}");
    assert_eq!(tun[0]["kind"], "geneve");
    assert_eq!(tun[0]["outer_src"], underlay("node-a").as_str(), "{dump}");
    assert_eq!(tun[0]["outer_dst"], underlay("node-c").as_str(), "{dump}");
    assert_eq!(tun[0]["vni"], pods["red-db/postgres"]["datapath"], "{dump}");
    assert_eq!(tun[0]["options"][0]["class"], 0xff57, "{dump}");
    let decided = t["decided_by"].to_string();
    assert!(
        decided.contains("allowed by NetworkPolicy red-web/frontend egress[0]"),
        "{dump}"
    );
    assert!(
        decided.contains("allowed by NetworkPolicy red-db/db-from-frontend ingress[0]"),
        "{dump}"
    );

    // Denied, node-a -> node-c: blue-web's default-deny isolates the
    // worker for ingress; nothing reaches it.
    let t = trace(
        state,
        &[
            "--from",
            "blue-web/frontend",
            "--to",
            "blue-web/worker",
            "--port",
            "80",
        ],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], false, "{dump}");
    assert!(
        t["decided_by"].to_string().contains(
            "ingress isolation of namespace blue-web by NetworkPolicy blue-web/default-deny"
        ),
        "{dump}"
    );
    assert!(
        !t["delivered_to"].to_string().contains("blue-web/worker"),
        "{dump}"
    );

    // Same node (node-a), other tenant: red-web/frontend may only send to
    // tier=db on 5432 (its egress isolation), so the packet stops in the
    // ingress ACL of node-a: one walk, no tunnel, nothing delivered.
    let t = trace(
        state,
        &["--from", "red-web/frontend", "--to", "blue-web/frontend"],
    );
    let dump = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t["allowed"], false, "{dump}");
    let w = walks(&t);
    assert_eq!(w.len(), 1, "{dump}");
    assert_eq!(w[0]["node"], "node-a", "{dump}");
    assert!(tunnels(&t).is_empty(), "{dump}");
    assert_eq!(t["delivered_to"], serde_json::json!([]), "{dump}");
    assert!(
        t["decided_by"]
            .to_string()
            .contains("egress isolation of namespace red-web by NetworkPolicy red-web/frontend"),
        "{dump}"
    );

    // Text output: the example of README's section.
    let o = Command::new(weftctl())
        .args(["trace", "--cluster"])
        .arg(state)
        .args([
            "--from",
            "red-web/frontend",
            "--to",
            "red-db/postgres",
            "--port",
            "5432",
        ])
        .output()
        .unwrap();
    let out = text(&o);
    eprintln!("{out}");
    assert!(out.contains("== tunnel node-a -> node-c: geneve"), "{out}");
    assert!(
        out.contains("Verdict: ALLOWED (delivered to red-db/postgres)"),
        "{out}"
    );
}

/// Streams `bytes` from inside namespace `ns` to a demo pod server at
/// `ip:port` (it answers with the byte count it received); returns the
/// count.
fn bulk(ns: &str, ip: &str, port: u16, bytes: usize) -> usize {
    const CLIENT: &str = r#"
import socket, sys
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((ip, port), timeout=20)
assert s.recv(5) == b"weft\n"
buf = b"w" * 65536
left = n
while left > 0:
    left -= s.send(buf[:min(left, len(buf))])
s.shutdown(socket.SHUT_WR)
r = b""
while True:
    d = s.recv(64)
    if not d: break
    r += d
print(r.decode().strip())
"#;
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", CLIENT, ip])
        .arg(port.to_string())
        .arg(bytes.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "bulk {ns} -> {ip}:{port}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `gso_passed_to_port` and `gso_segmented_in_software` of a switchd.
fn gso(socket: &str) -> (u64, u64) {
    let out = Command::new(weftctl())
        .args(["dump-stats", "--json", "--socket", socket])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["drops"]["gso_passed_to_port"].as_u64().unwrap(),
        v["drops"]["gso_segmented_in_software"].as_u64().unwrap(),
    )
}

/// Deletes the extra pod's namespace (the demo does not know it).
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Pods keep their veth offloads (weft-cni's default): 4 MiB of TCP
/// arrive complete cross-node (Geneve) and same-node; same-node, switchd
/// must have passed TSO super-frames whole to the destination veth
/// (`gso_passed_to_port` grows; with offloads off it stays 0). The
/// cross-node counters are printed only (they stayed 0; open question).
/// Same node needs a pod pair the policies allow on one node; the demo
/// has none, so the test adds `red-web/admin2` (label `app: admin`) on
/// node-a through the real weft-cni, as `demo up` adds pods, and removes
/// it again before `demo check`.
fn offloads_on(st: &Value, state: &Path, id: &str) {
    const N: usize = 4 << 20;
    let pods = st["pods"].as_array().unwrap();
    let pod = |ns: &str, name: &str| {
        pods.iter()
            .find(|p| p["namespace"] == ns && p["name"] == name)
            .unwrap()
            .clone()
    };
    let node = |name: &str| {
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let (admin, frontend) = (pod("red-web", "admin"), pod("red-web", "frontend"));
    let (node_a, node_b) = (node("node-a"), node("node-b"));
    let fe_ip = frontend["ip"].as_str().unwrap();
    let sock_a = node_a["socket"].as_str().unwrap();
    let sock_b = node_b["socket"].as_str().unwrap();

    // Cross-node: admin (node-b) -> frontend (node-a) tcp/8080.
    let before = gso(sock_b);
    assert_eq!(bulk(admin["netns"].as_str().unwrap(), fe_ip, 8080, N), N);
    let after = gso(sock_b);
    // Not asserted: node-b's counters stayed 0 here while the 4 MiB
    // arrived complete (open question: where tunnel-bound super-frames
    // are segmented or counted); printed for the record.
    eprintln!("node-b gso counters (passed, segmented): {before:?} -> {after:?}");

    // Same node: a second admin pod on node-a -> frontend (node-a).
    let ns = format!("{id}-x-admin2");
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _guard = NetnsGuard(ns.clone());
    assert!(
        Command::new("ip")
            .args(["-n", &ns, "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success()
    );
    let manifest = state.join("manifests/zz-test-admin2.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: admin2, namespace: red-web, labels: {app: admin}}\n\
         spec: {nodeName: node-a, containers: [{name: sh, image: busybox}]}\n",
    )
    .unwrap();
    let bin = weftctl().parent().unwrap().join("weft-cni");
    let mut conf = frontend["conf"].clone();
    conf["cniVersion"] = json!("1.1.0");
    conf["name"] = json!("weft");
    let cni = |command: &str| {
        let mut c = Command::new("ip")
            .args(["netns", "exec", node_a["netns"].as_str().unwrap()])
            .arg(&bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &ns)
            .env("CNI_NETNS", format!("/run/netns/{ns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", "K8S_POD_NAMESPACE=red-web;K8S_POD_NAME=admin2")
            .env("CNI_PATH", bin.parent().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        c.stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "weft-cni {command}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let added: Value = serde_json::from_str(&cni("ADD")).unwrap();
    assert!(added["ips"][0]["address"].is_string(), "{added}");
    // Bound by the controller and programmed on every node.
    let t0 = std::time::Instant::now();
    loop {
        let v: Value = std::fs::read(state.join("controller.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let g = v["generation"].as_u64().unwrap_or(0);
        let bound = !v["pods"]["red-web/admin2"]["ofport"].is_null();
        let acked = v["nodes"].as_object().is_some_and(|n| {
            n.values()
                .all(|s| s["acked_generation"].as_u64() == Some(g))
        });
        if bound && acked {
            break;
        }
        assert!(t0.elapsed().as_secs() < 30, "admin2 not bound: {v}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = gso(sock_a);
    assert_eq!(bulk(&ns, fe_ip, 8080, N), N);
    let after = gso(sock_a);
    assert!(
        after.0 > before.0,
        "node-a passed no super-frame to frontend's veth: {before:?} -> {after:?}"
    );

    cni("DEL");
    std::fs::remove_file(&manifest).unwrap();
}
