//! Issue #8's restart test: "restart the controller and each switchd in
//! turn during the demo's traffic; no configuration or IP is lost; report
//! the traffic gap".
//!
//! On a running `weftctl demo up` (root, real namespaces, the real daemons),
//! with continuous traffic between pods on different nodes (TCP connects
//! started every 20 ms, each in its own thread with a 0.5 s timeout, the
//! start time and outcome of every probe recorded), the test `kill -9`s and
//! restarts, one after the other and with the command line `demo up` gave
//! them (read from `/proc/PID/cmdline`):
//!
//! 1. `weft-controller`: while it is down (2 s) every stream must keep
//!    connecting and no node's flow table may change (switchd forwards with
//!    its last tables); after the restart every node acknowledges the new
//!    controller's full sync;
//! 2. each node's `weft-switchd`: it must come back from its state file and
//!    journal, the controller must resync it, and the streams through it
//!    must connect again (within 30 s: a generous bound, not a timing
//!    assertion).
//!
//! After every restart: each node's flows (`dump-flows --no-stats`), ports
//! (name, ofport, type, MAC), node table, TLV map and underlay are what they
//! were before; at the end: every pod keeps its address (inside its
//! namespace and in the IPAM store, each address once, no other), and the
//! demo's connectivity matrix passes again (`demo check`).
//!
//! The gap per restart (the longest time between the start of two
//! successful probes of a stream through the restarted component) is
//! printed and written to `$CARGO_TARGET_TMPDIR/demo_restart-report.txt`;
//! it is reported, never asserted.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Down, cannot_run, demo, text, weftctl};
use serde_json::Value;

/// Probe interval (s).
const INTERVAL: f64 = 0.02;

/// A stream: every `INTERVAL` a TCP connect in its own thread; prints
/// `START_WALLCLOCK OK` per probe.
const STREAM: &str = r#"
import socket, sys, threading, time
ip, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lock = threading.Lock()
def probe(t):
    ok = 0
    try:
        s = socket.create_connection((ip, port), timeout=0.5)
        s.settimeout(0.5)
        ok = 1 if s.recv(16) == b"weft\n" else 0
        s.close()
    except OSError:
        pass
    with lock:
        sys.stdout.write(f"{t:.4f} {ok}\n")
        sys.stdout.flush()
nxt = time.time()
while True:
    threading.Thread(target=probe, args=(time.time(),), daemon=True).start()
    nxt += interval
    time.sleep(max(0.0, nxt - time.time()))
"#;

/// Cross-node pairs the demo's policies allow (also after its live change):
/// (from, to, TCP port).
const PAIRS: [(&str, &str, u16); 3] = [
    ("red-web/admin", "red-web/frontend", 8080), // node-b -> node-a
    ("red-web/frontend", "red-db/postgres", 5432), // node-a -> node-c
    ("blue-web/worker", "blue-web/frontend", 80), // node-c -> node-a
];

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

struct Stream {
    name: String,
    nodes: [String; 2],
    out: PathBuf,
    child: Child,
}

impl Stream {
    /// (start time, ok) of every probe so far, by start time.
    fn probes(&self) -> Vec<(f64, bool)> {
        let mut v: Vec<(f64, bool)> = std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, ok) = l.split_once(' ')?;
                Some((t.parse().ok()?, ok == "1"))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// A probe started at or after `t` succeeded.
    fn ok_since(&self, t: f64) -> bool {
        self.probes().iter().any(|&(s, ok)| ok && s >= t)
    }

    /// The longest time (s) between the starts of two consecutive
    /// successful probes among those around `[from, to]`.
    fn gap(&self, from: f64, to: f64) -> f64 {
        let ok: Vec<f64> = self
            .probes()
            .into_iter()
            .filter(|&(_, ok)| ok)
            .map(|(t, _)| t)
            .collect();
        let before = ok.iter().rev().find(|&&t| t <= from).copied();
        let mut pts: Vec<f64> = before.into_iter().collect();
        pts.extend(ok.iter().copied().filter(|&t| t > from && t <= to));
        if let Some(&after) = ok.iter().find(|&&t| t > to) {
            pts.push(after);
        }
        pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(socket: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(weftctl())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Everything of a node that must survive a restart.
fn snapshot(socket: &Path, netns: &str) -> Option<BTreeMap<&'static str, String>> {
    let mut flows: Vec<String> = ctl(socket, &["dump-flows", "--no-stats"])?
        .lines()
        .map(str::to_owned)
        .collect();
    flows.sort();
    let ports: Value = serde_json::from_str(&ctl(socket, &["dump-ports", "--json"])?).ok()?;
    let mut ports: Vec<String> = ports
        .as_array()?
        .iter()
        .map(|p| format!("{} {} {}", p["ofport"], p["name"], p["type"]))
        .collect();
    ports.sort();
    let tunnels: Value = serde_json::from_str(&ctl(socket, &["dump-tunnels", "--json"])?).ok()?;
    Some(BTreeMap::from([
        ("flows", flows.join("\n")),
        ("ports", ports.join("\n")),
        ("nodes", ctl(socket, &["dump-nodes", "--json"])?),
        ("tlv-map", ctl(socket, &["dump-tlv-map"])?),
        ("underlay", tunnels["underlay"].to_string()),
        ("weft0 in the kernel", internal_port(netns)),
    ]))
}

/// The internal port as the node's kernel sees it: MAC, flags (carrier
/// included), addresses. Not the operational state: a TAP that was
/// re-attached reports `UP` where a fresh one said `UNKNOWN`.
fn internal_port(netns: &str) -> String {
    let out = |args: &[&str]| {
        let o = Command::new("ip")
            .args(["-n", netns, "-br"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .enumerate()
            .filter(|&(k, _)| k != 1)
            .map(|(_, w)| w)
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{}\n{}",
        out(&["link", "show", "dev", "weft0"]),
        out(&["-4", "addr", "show", "dev", "weft0"])
    )
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < timeout,
            "timed out ({timeout:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Some thread of `pid` still runs: a killed process' leader turns zombie
/// before its other threads have exited (and released its files).
fn alive(pid: u32) -> bool {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    threads > 1
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn status(state: &Path) -> Value {
    std::fs::read(state.join("controller.json"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or(Value::Null)
}

/// Every node connected and acknowledged the status' generation, every
/// pod bound.
fn settled(v: &Value, pods: usize) -> bool {
    let g = v["generation"].as_u64().unwrap_or(0);
    let bound = v["pods"]
        .as_object()
        .map_or(0, |p| p.values().filter(|p| !p["ofport"].is_null()).count());
    g > 0
        && bound == pods
        && v["nodes"].as_object().is_some_and(|n| {
            n.values().all(|s| {
                s["connected"] == Value::Bool(true) && s["acked_generation"].as_u64() == Some(g)
            })
        })
}

/// Addresses of the IPAM store (file names that are IPv4 addresses, at
/// any depth).
fn ipam_addresses(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            ipam_addresses(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str())
            && n.parse::<std::net::Ipv4Addr>().is_ok()
        {
            out.push(n.to_owned());
        }
    }
}

/// The address on `eth0` inside pod namespace `ns`.
fn pod_address(ns: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or("")
        .to_owned()
}

/// Children this test started (restarted daemons): reaped when dropped,
/// after `demo down` stopped them.
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

#[test]
fn restart_controller_and_each_switchd_under_traffic() {
    if cannot_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("demo");
    // Dropped in reverse order: streams, then `demo down`, then reaping.
    let mut reap = Reap(Vec::new());
    let _down = Down(state.clone());
    let up = demo(&["up"], &state);
    assert!(up.status.success(), "demo up failed:\n{}", text(&up));
    let st: Value =
        serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
    let pods: BTreeMap<String, (String, String, String)> = st["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["namespace"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                ),
                (
                    p["netns"].as_str().unwrap().to_owned(),
                    p["ip"].as_str().unwrap().to_owned(),
                    p["node"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let nodes: Vec<(String, PathBuf)> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                PathBuf::from(n["socket"].as_str().unwrap()),
            )
        })
        .collect();
    let node_ns: BTreeMap<String, String> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["netns"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pids: Vec<u32> = st["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u32::try_from(p.as_u64().unwrap()).unwrap())
        .collect();
    let find_pid = |exe: &str, arg: &str| {
        pids.iter()
            .copied()
            .find(|&p| {
                let a = cmdline(p);
                a.first().is_some_and(|a0| a0.ends_with(exe)) && a.iter().any(|x| x.contains(arg))
            })
            .unwrap_or_else(|| panic!("no {exe} with {arg} among the demo's processes"))
    };

    // Traffic.
    let mut streams = Vec::new();
    for (from, to, port) in PAIRS {
        let (ns, _, n1) = &pods[from];
        let (_, ip, n2) = &pods[to];
        assert_ne!(n1, n2, "{from} and {to} must be on different nodes");
        let out = tmp.path().join(format!("stream-{}.txt", streams.len()));
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-u", "-c", STREAM, ip])
            .arg(port.to_string())
            .arg(INTERVAL.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        streams.push(Stream {
            name: format!("{from} ({n1}) -> {to} ({n2}) tcp/{port}"),
            nodes: [n1.clone(), n2.clone()],
            out,
            child,
        });
    }
    let t_start = now();
    for s in &streams {
        wait_for(
            &format!("first connects of {}", s.name),
            Duration::from_secs(30),
            || s.ok_since(t_start),
        );
    }

    let before: BTreeMap<String, _> = nodes
        .iter()
        .map(|(n, sock)| (n.clone(), snapshot(sock, &node_ns[n]).unwrap()))
        .collect();
    let same_as_before =
        |n: &str, sock: &Path| snapshot(sock, &node_ns[n]).as_ref() == before.get(n);
    let assert_same = |n: &str, sock: &Path, when: &str| {
        let now = snapshot(sock, &node_ns[n])
            .unwrap_or_else(|| panic!("{n}: switchd does not answer {when}"));
        for (k, v) in &before[n] {
            let gone: Vec<&str> = v
                .lines()
                .filter(|l| !now[k].lines().any(|x| x == *l))
                .collect();
            let new: Vec<&str> = now[k]
                .lines()
                .filter(|l| !v.lines().any(|x| x == *l))
                .collect();
            assert_eq!(
                &now[k],
                v,
                "{n}: {k} differ {when}:\nonly before:\n{}\nonly now:\n{}",
                gone.join("\n"),
                new.join("\n")
            );
        }
    };
    let mut report = String::new();
    let mut restarts: Vec<(String, f64, f64)> = Vec::new(); // (what, kill, recovered)

    // 1. The controller.
    let cpid = find_pid("weft-controller", "--manifests");
    let gen_before = status(&state)["generation"].as_u64().unwrap();
    let (t_kill, argv) = kill9(cpid);
    // While it is down: the switches keep forwarding with their tables.
    std::thread::sleep(Duration::from_secs(2));
    let t_down_end = now();
    for s in &streams {
        let during: Vec<_> = s
            .probes()
            .into_iter()
            .filter(|&(t, _)| t >= t_kill && t + 0.5 <= t_down_end)
            .collect();
        let ok = during.iter().filter(|p| p.1).count();
        writeln!(
            report,
            "controller down {:.1} s: {} {ok} of {} probes connected",
            t_down_end - t_kill,
            s.name,
            during.len()
        )
        .unwrap();
        assert!(
            ok >= 3,
            "{}: only {ok} connects while the controller was down",
            s.name
        );
    }
    for (n, sock) in &nodes {
        assert_same(n, sock, "while the controller is down");
    }
    let _ = std::fs::remove_file(state.join("controller.json"));
    let new = restart(
        &state,
        cpid,
        &argv,
        &state.join("controller.log"),
        &mut reap.0,
    );
    wait_for(
        "the new controller's full sync on every node",
        Duration::from_secs(30),
        || settled(&status(&state), pods.len()),
    );
    let t_rec = now();
    for (n, sock) in &nodes {
        assert_same(n, sock, "after the controller's restart");
    }
    writeln!(
        report,
        "controller: pid {cpid} -> {new}, generation {gen_before} -> {} after its restart",
        status(&state)["generation"]
    )
    .unwrap();
    restarts.push(("weft-controller".into(), t_kill, t_rec));

    // 2. Each switchd in turn.
    for (n, sock) in &nodes {
        let pid = find_pid("weft-switchd", &sock.to_string_lossy());
        let connects = status(&state)["nodes"][n]["connects"].as_u64().unwrap_or(0);
        let (t_kill, argv) = kill9(pid);
        let new = restart(
            &state,
            pid,
            &argv,
            &state.join(format!("{n}-switchd.log")),
            &mut reap.0,
        );
        wait_for(
            &format!("{n}'s switchd to answer again"),
            Duration::from_secs(30),
            || ctl(sock, &["show"]).is_some(),
        );
        wait_for(
            &format!("the controller to resync {n}"),
            Duration::from_secs(30),
            || {
                let v = status(&state);
                v["nodes"][n]["connects"].as_u64().unwrap_or(0) > connects
                    && settled(&v, pods.len())
            },
        );
        let t0 = Instant::now();
        while !same_as_before(n, sock) && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_same(n, sock, &format!("after {n}'s switchd restart"));
        let t_back = now();
        for s in streams.iter().filter(|s| s.nodes.contains(n)) {
            wait_for(
                &format!("{} to connect again after {n}'s switchd restart", s.name),
                Duration::from_secs(30),
                || s.ok_since(t_back),
            );
        }
        writeln!(report, "switchd of {n}: pid {pid} -> {new}").unwrap();
        restarts.push((format!("weft-switchd of {n}"), t_kill, now()));
    }

    // Nothing lost: pod addresses, IPAM, every node's tables, the matrix.
    let mut ipam = Vec::new();
    ipam_addresses(&state.join("ipam"), &mut ipam);
    ipam.sort();
    let mut want: Vec<String> = pods.values().map(|p| p.1.clone()).collect();
    want.sort();
    assert_eq!(ipam, want, "IPAM store: one address per pod, no other");
    for (name, (ns, ip, _)) in &pods {
        assert_eq!(&pod_address(ns), ip, "{name}: address inside the pod");
        assert_eq!(
            status(&state)["pods"][name]["ips"][0].as_str(),
            Some(ip.as_str()),
            "{name}: address in the controller"
        );
    }
    for (n, sock) in &nodes {
        assert_same(n, sock, "at the end");
    }
    let check = demo(&["check"], &state);
    assert!(
        check.status.success(),
        "matrix after the restarts:\n{}",
        text(&check)
    );
    assert!(text(&check).contains(
        "matrix: 100 of 100 probes as expected (ping 20/20, TCP 60/60, UDP 20/20), 0 differ: PASS"
    ));

    // The report: gap per restart and stream.
    std::thread::sleep(Duration::from_millis(600)); // last probes answered
    writeln!(
        report,
        "\ntraffic gap per restart (longest time between two successful probes; probes every {} ms, 0.5 s timeout):",
        INTERVAL * 1e3
    )
    .unwrap();
    for (what, t_kill, t_rec) in &restarts {
        for s in &streams {
            let through = what == "weft-controller" || s.nodes.iter().any(|n| what.ends_with(n));
            let probes = s.probes();
            let failed = probes
                .iter()
                .filter(|&&(t, ok)| !ok && t >= *t_kill && t <= *t_rec)
                .count();
            writeln!(
                report,
                "  {what:<22} {:<58} gap {:>6.0} ms, {failed} failed probes{}",
                s.name,
                s.gap(*t_kill, *t_rec) * 1e3,
                if through { "" } else { " (not through it)" }
            )
            .unwrap();
        }
    }
    println!("{report}");
    eprintln!("{report}");
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo_restart-report.txt");
    std::fs::write(&file, &report).unwrap();
    eprintln!("report written to {}", file.display());
    drop(streams);
}

/// `kill -9` `pid` and wait until it is gone; returns the kill time and
/// its command line.
fn kill9(pid: u32) -> (f64, Vec<String>) {
    let argv = cmdline(pid);
    assert!(!argv.is_empty(), "process {pid} has no command line");
    let t = now();
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for(
        &format!("process {pid} to die"),
        Duration::from_secs(10),
        || !alive(pid),
    );
    (t, argv)
}

/// Starts killed process `pid`'s command line again (own process group,
/// output appended to `log`) and puts the new pid in the demo's state so
/// `demo down` stops it.
fn restart(state: &Path, pid: u32, argv: &[String], log: &Path, children: &mut Vec<Child>) -> u32 {
    use std::os::unix::process::CommandExt as _;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0)
        .spawn()
        .unwrap();
    let new = child.id();
    children.push(child);
    let p = state.join("state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    for v in st["pids"].as_array_mut().unwrap() {
        if v.as_u64() == Some(u64::from(pid)) {
            *v = Value::from(new);
        }
    }
    std::fs::write(&p, serde_json::to_vec_pretty(&st).unwrap()).unwrap();
    new
}
