//! Sessions against real `weft-switchd` processes (no ports, no root, no
//! namespaces: a temporary socket and state directory each).
//!
//! `weft-switchd` is found in the target directory next to this test's
//! `deps/` (built by `cargo test --workspace`, or `cargo build -p
//! weft-switchd`); without it the tests fail under `CI=true` and otherwise
//! skip loudly. Nothing here is timed: every wait has a generous deadline
//! and the assertions are on state.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use protocol::ctl::{Body, CookieInfo, CtlError};
use protocol::flow::{Cookie, FlowSpec};
use protocol::text::{format_flow, parse_flow};
use weft_controller::session::{
    Connection, DesiredState, NodeSession, NodeStatus, SessionConfig, SessionManager,
};

/// Every wait is bounded by this (generous: 2 shared cores).
const DEADLINE: Duration = Duration::from_secs(60);

fn switchd_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("weft-switchd");
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!(
        "{} missing (built by `cargo test --workspace` or `cargo build -p weft-switchd`)",
        bin.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    let _ = std::io::stderr().write_all(format!("\n******** SKIP: {msg} ********\n").as_bytes());
    None
}

/// A running switchd; killed (SIGKILL) on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    async fn start(bin: &Path, dir: &Path) -> Daemon {
        let child = Command::new(bin)
            .arg("--socket")
            .arg(sock(dir))
            .arg("--state-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { child };
        tokio::time::timeout(DEADLINE, async {
            while Connection::connect(&sock(dir), "test").await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("switchd did not come up");
        d
    }

    /// kill -9 and reap.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sock(dir: &Path) -> PathBuf {
    dir.join("s.sock")
}

fn cfg() -> SessionConfig {
    SessionConfig {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        // Small, so a 4-change diff spans two `BundleAdd` frames.
        bundle_chunk: 3,
        ..SessionConfig::default()
    }
}

fn flows(lines: &[&str]) -> Vec<FlowSpec> {
    lines.iter().map(|l| parse_flow(l).unwrap()).collect()
}

fn cookie(c: u64, name: &str) -> CookieInfo {
    CookieInfo {
        cookie: Cookie(c),
        kind: "NetworkPolicy".into(),
        namespace: "default".into(),
        name: name.into(),
        rule: 0,
    }
}

fn state(generation: u64, f: &[&str], cookies: Vec<CookieInfo>) -> Arc<DesiredState> {
    Arc::new(DesiredState {
        generation,
        flows: flows(f),
        cookies,
    })
}

fn text_set(flows: &[FlowSpec]) -> BTreeSet<String> {
    flows.iter().map(format_flow).collect()
}

/// The node's flow table and cookie table, read over a separate
/// connection (as `weftctl` would).
async fn on_node(dir: &Path) -> (BTreeSet<String>, Vec<CookieInfo>) {
    let mut c = Connection::connect(&sock(dir), "test").await.unwrap();
    let dump = c.dump_flows().await.unwrap();
    let Body::Cookies(cookies) = c.request(Body::DumpCookies).await.unwrap() else {
        panic!("DumpCookies")
    };
    c.goodbye().await;
    (dump.iter().map(|e| format_flow(&e.spec)).collect(), cookies)
}

async fn assert_node_holds(dir: &Path, want: &DesiredState) {
    let (flows, cookies) = on_node(dir).await;
    assert_eq!(
        flows,
        text_set(&want.flows),
        "generation {}",
        want.generation
    );
    assert_eq!(cookies, want.cookies, "generation {}", want.generation);
}

async fn wait_status(s: &NodeSession, what: &str, f: impl Fn(&NodeStatus) -> bool) -> NodeStatus {
    let mut rx = s.watch_status();
    match tokio::time::timeout(DEADLINE, rx.wait_for(|st| f(st))).await {
        Ok(Ok(st)) => st.clone(),
        _ => panic!("{}: waiting for {what}: {:?}", s.name(), s.status()),
    }
}

async fn acked(s: &NodeSession, generation: u64) {
    tokio::time::timeout(DEADLINE, s.wait_acked(generation))
        .await
        .unwrap_or_else(|_| panic!("{} did not ack {generation}: {:?}", s.name(), s.status()))
        .unwrap();
}

const GEN1: &[&str] = &[
    "cookie=0x1,table=0,priority=100,ip,nw_dst=10.244.1.0/24,actions=resubmit(,10)",
    "cookie=0x2,table=10,priority=50,tcp,tp_dst=80,actions=drop",
    "table=10,priority=40,udp,actions=drop",
    "table=10,priority=0,actions=NORMAL",
];
/// GEN1 with one flow deleted (udp), one with new actions (tcp), one with
/// a new cookie (the 10.244.1.0/24 flow) and one added (arp).
const GEN2: &[&str] = &[
    "cookie=0x3,table=0,priority=100,ip,nw_dst=10.244.1.0/24,actions=resubmit(,10)",
    "cookie=0x2,table=10,priority=50,tcp,tp_dst=80,actions=NORMAL",
    "table=10,priority=0,actions=NORMAL",
    "table=0,priority=90,arp,actions=NORMAL",
];

#[tokio::test]
async fn full_sync_then_diff() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = Daemon::start(&bin, dir).await;
    let s = NodeSession::spawn("node-a", sock(dir), cfg());

    let g1 = state(1, GEN1, vec![cookie(1, "a"), cookie(2, "b")]);
    s.set_desired(g1.clone());
    acked(&s, 1).await;
    assert_node_holds(dir, &g1).await;
    let st = s.status();
    assert!(st.connected);
    assert_eq!(st.full_syncs, 1);
    let c = st.last_full_sync.unwrap();
    assert_eq!((c.added, c.modified, c.removed), (4, 0, 0));

    let g2 = state(2, GEN2, vec![cookie(2, "b"), cookie(3, "c")]);
    s.set_desired(g2.clone());
    acked(&s, 2).await;
    assert_node_holds(dir, &g2).await;
    let st = s.status();
    // A diff in one bundle, not a second full sync.
    assert_eq!(st.full_syncs, 1);
    let c = st.last_change.unwrap();
    // switchd's counts: arp added; the tcp flow (new actions, a strict
    // modify) and the 10.244.1.0/24 flow (new cookie, replaced by an add)
    // modified; udp removed.
    assert_eq!((c.added, c.modified, c.removed), (1, 2, 1), "{c:?}");
    assert_eq!(st.connects, 1);
    assert!(st.last_error.is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn switchd_killed_and_restarted() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = Daemon::start(&bin, dir).await;
    let s = NodeSession::spawn("node-b", sock(dir), cfg());
    let g1 = state(1, GEN1, vec![cookie(1, "a")]);
    s.set_desired(g1.clone());
    acked(&s, 1).await;

    // kill -9; a new desired state arrives while the node is down.
    d.kill9();
    wait_status(&s, "disconnect", |st| !st.connected).await;
    let g2 = state(2, GEN2, vec![cookie(3, "c")]);
    s.set_desired(g2.clone());
    // The session retries (with backoff) until switchd is back.
    wait_status(&s, "a failed reconnect", |st| {
        st.last_connect_error.is_some()
    })
    .await;
    let d = Daemon::start(&bin, dir).await;
    acked(&s, 2).await;
    assert_node_holds(dir, &g2).await;
    let st = s.status();
    assert_eq!(st.connects, 2);
    assert_eq!(st.full_syncs, 2);
    // switchd had persisted GEN1: the full sync sent only the difference.
    let c = st.last_full_sync.unwrap();
    assert_eq!((c.added, c.modified, c.removed), (1, 2, 1), "{c:?}");

    // Again, but the switchd comes back with no state at all: the session
    // pushes the whole table.
    d.kill9();
    wait_status(&s, "disconnect", |st| !st.connected).await;
    wipe_switchd_state(dir);
    let _d = Daemon::start(&bin, dir).await;
    let st = wait_status(&s, "third full sync", |st| st.full_syncs == 3).await;
    let c = st.last_full_sync.unwrap();
    assert_eq!((c.added, c.modified, c.removed), (4, 0, 0), "{c:?}");
    assert_eq!(st.acked_generation, Some(2));
    assert_node_holds(dir, &g2).await;
    s.shutdown().await;
}

#[tokio::test]
async fn controller_restart_disturbs_nothing() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = Daemon::start(&bin, dir).await;
    let g1 = state(7, GEN1, vec![cookie(1, "a")]);
    let s = NodeSession::spawn("node-c", sock(dir), cfg());
    s.set_desired(g1.clone());
    acked(&s, 7).await;
    s.shutdown().await;

    // The controller is gone: switchd keeps its tables.
    assert_node_holds(dir, &g1).await;
    let mut c = Connection::connect(&sock(dir), "test").await.unwrap();
    let before = c.dump_flows().await.unwrap();

    // A new controller with the same desired state: the full sync changes
    // nothing (no flow replaced: ages keep growing, nothing reset).
    let s = NodeSession::spawn("node-c", sock(dir), cfg());
    s.set_desired(g1.clone());
    acked(&s, 7).await;
    let st = s.status();
    assert_eq!(st.full_syncs, 1);
    let ch = st.last_full_sync.unwrap();
    assert_eq!(
        (ch.added, ch.modified, ch.removed),
        (0, 0, 0),
        "replace computed a change: {ch:?}"
    );
    let after = c.dump_flows().await.unwrap();
    assert_eq!(before.len(), after.len());
    for b in &before {
        let a = after.iter().find(|a| a.spec == b.spec).unwrap();
        assert!(
            a.duration_ms >= b.duration_ms,
            "{} was re-added",
            format_flow(&a.spec)
        );
    }
    c.goodbye().await;
    s.shutdown().await;
}

#[tokio::test]
async fn refused_state_is_reported_and_not_retried() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = Daemon::start(&bin, dir).await;
    let mut m = SessionManager::new(cfg());
    m.add_node("node-d", sock(dir)).await;
    let g1 = state(1, GEN1, vec![cookie(1, "a")]);
    m.set_desired("node-d", g1.clone()).unwrap();
    tokio::time::timeout(DEADLINE, m.wait_all_acked(1))
        .await
        .unwrap()
        .unwrap();

    // Port 0 is not a valid port: switchd refuses the flow (it parses).
    let mut bad = GEN2.to_vec();
    bad.push("table=10,priority=60,icmp,actions=output:0");
    m.set_desired("node-d", state(2, &bad, vec![])).unwrap();
    let errs = tokio::time::timeout(DEADLINE, m.wait_all_acked(2))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert_eq!((e.node.as_str(), e.generation), ("node-d", 2));
    assert!(
        e.flow.as_deref().is_some_and(|f| f.contains("output:0")),
        "{e}"
    );
    assert!(matches!(*e.error, CtlError::BundleFailed { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("node node-d: generation 2: flow "),
        "{text}"
    );
    // The node keeps the previous table; the session does not retry.
    assert_node_holds(dir, &g1).await;
    let st = m.status()["node-d"].clone();
    assert_eq!(st.acked_generation, Some(1));
    assert_eq!((st.syncs, st.refusals), (1, 1));
    // Nothing else is sent for generation 2: a Ping round trip through
    // the same switchd, then the status is unchanged.
    let mut c = Connection::connect(&sock(dir), "test").await.unwrap();
    assert_eq!(c.request(Body::Ping).await.unwrap(), Body::Ok);
    assert_eq!(m.status()["node-d"], st);

    // A good newer state is applied as usual.
    let g3 = state(3, GEN2, vec![]);
    m.set_desired("node-d", g3.clone()).unwrap();
    tokio::time::timeout(DEADLINE, m.wait_all_acked(3))
        .await
        .unwrap()
        .unwrap();
    assert_node_holds(dir, &g3).await;
    m.shutdown().await;
}

#[tokio::test]
async fn refused_state_after_reconnect_falls_back_to_last_good() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = Daemon::start(&bin, dir).await;
    let s = NodeSession::spawn("node-e", sock(dir), cfg());
    let g1 = state(1, GEN1, vec![]);
    s.set_desired(g1.clone());
    acked(&s, 1).await;
    let mut bad = GEN1.to_vec();
    bad.push("priority=60,icmp,actions=output:0");
    s.set_desired(state(2, &bad, vec![]));
    assert!(
        tokio::time::timeout(DEADLINE, s.wait_acked(2))
            .await
            .unwrap()
            .is_err()
    );
    // switchd restarts empty: the session restores the last accepted table
    // (not the refused one, and it does not leave the node empty).
    d.kill9();
    wait_status(&s, "disconnect", |st| !st.connected).await;
    wipe_switchd_state(dir);
    let _d = Daemon::start(&bin, dir).await;
    let st = wait_status(&s, "second full sync", |st| st.full_syncs == 2).await;
    assert_eq!(st.acked_generation, Some(1));
    assert_node_holds(dir, &g1).await;
    s.shutdown().await;
}

#[tokio::test]
async fn many_quick_states_coalesce() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _d = Daemon::start(&bin, dir).await;
    let s = NodeSession::spawn("node-f", sock(dir), cfg());
    let mut last = None;
    for g in 1..=200u64 {
        let f = format!(
            "table=0,priority={},ip,nw_dst=10.0.{}.0/24,actions=drop",
            1000 + g,
            g
        );
        let st = Arc::new(DesiredState {
            generation: g,
            flows: vec![
                parse_flow(&f).unwrap(),
                parse_flow("priority=0,actions=NORMAL").unwrap(),
            ],
            cookies: vec![cookie(g, "p")],
        });
        s.set_desired(st.clone());
        last = Some(st);
    }
    let last = last.unwrap();
    acked(&s, 200).await;
    assert_node_holds(dir, &last).await;
    let st = s.status();
    assert_eq!(st.acked_generation, Some(200));
    assert!(st.last_error.is_none());
    // The test runs on a current-thread runtime and `set_desired` never
    // yields, so the session saw only the newest state: one sync in all.
    assert_eq!(st.syncs, 1, "{st:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn manager_waits_for_every_node() {
    let Some(bin) = switchd_bin() else { return };
    let tmps: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut daemons = Vec::new();
    for t in &tmps {
        daemons.push(Daemon::start(&bin, t.path()).await);
    }
    let mut m = SessionManager::new(cfg());
    for (i, t) in tmps.iter().enumerate() {
        m.add_node(&format!("node-{i}"), sock(t.path())).await;
    }
    for g in 1..=3u64 {
        let want = state(
            g,
            if g % 2 == 1 { GEN1 } else { GEN2 },
            vec![cookie(g, "x")],
        );
        for i in 0..3 {
            m.set_desired(&format!("node-{i}"), want.clone()).unwrap();
        }
        tokio::time::timeout(DEADLINE, m.wait_all_acked(g))
            .await
            .unwrap()
            .unwrap();
        for t in &tmps {
            assert_node_holds(t.path(), &want).await;
        }
    }
    let status = m.status();
    assert_eq!(status.len(), 3);
    for st in status.values() {
        assert!(st.connected);
        assert_eq!(st.acked_generation, Some(3));
        assert_eq!(st.full_syncs, 1);
        // GEN2 -> GEN1: arp removed, udp added, two modified.
        let c = st.last_change.unwrap();
        assert_eq!((c.added, c.modified, c.removed), (1, 2, 1), "{st:?}");
    }
    assert!(m.set_desired("nosuch", state(4, GEN1, vec![])).is_err());
    m.shutdown().await;
}

/// Removes switchd's persisted state: the snapshot and the flow-change
/// journal (either may be absent: changes since the last snapshot live only
/// in the journal).
fn wipe_switchd_state(dir: &std::path::Path) {
    for f in ["switchd-state.json", "switchd-state.journal"] {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{f}: {e}"),
            _ => {}
        }
    }
}

// --- the `weft-controller` binary -------------------------------------------

const BIN_NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: 10.244.1.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.11}]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nspec: {podCIDR: 10.244.2.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.12}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {nodeName: node-a, containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {app: b}}\nspec: {nodeName: node-b, containers: [{name: c, image: i}]}\n";

const BIN_POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b-from-a, namespace: x}\nspec: {podSelector: {matchLabels: {app: b}}, ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]}\n";

/// The controller process; killed on drop.
struct ControllerProc(Child);

impl Drop for ControllerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_controller(
    manifests: &Path,
    reports: &Path,
    status: &Path,
    nodes: &[(&str, &Path)],
) -> ControllerProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft-controller"));
    cmd.arg("--manifests")
        .arg(manifests)
        .arg("--pod-reports")
        .arg(reports)
        .arg("--status")
        .arg(status)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (n, d) in nodes {
        cmd.arg("--node").arg(format!("{n}={}", sock(d).display()));
    }
    ControllerProc(cmd.spawn().unwrap())
}

/// Waits until the status file satisfies `f`; returns it.
async fn wait_status_file(
    path: &Path,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let r = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(t) = std::fs::read_to_string(path)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
            {
                if f(&v) {
                    return v;
                }
                last = v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("waiting for {what}; last status: {last:#}"))
}

/// Every node acknowledged the status' generation (and it is at least `g`).
fn all_acked(v: &serde_json::Value, g: u64) -> bool {
    let gen_ = v["generation"].as_u64().unwrap_or(0);
    gen_ >= g
        && v["nodes"].as_object().is_some_and(|n| {
            n.values()
                .all(|s| s["acked_generation"].as_u64() == Some(gen_))
        })
}

#[tokio::test]
async fn controller_binary_manifests_reports_reload_restart() {
    let Some(bin) = switchd_bin() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let (man, rep) = (tmp.path().join("manifests"), tmp.path().join("pods"));
    for d in [&da, &db, &man, &rep] {
        std::fs::create_dir(d).unwrap();
    }
    let status = tmp.path().join("status.json");
    std::fs::write(man.join("00-base.yaml"), BIN_NODES).unwrap();
    // Pod x/a as the CNI plugin reports it: its own address and ofport.
    let report = protocol::pod_report::PodReport {
        namespace: "x".into(),
        name: "a".into(),
        node: "node-a".into(),
        container_id: "c0ffee".into(),
        ifname: "eth0".into(),
        ip: "10.244.1.50".parse().unwrap(),
        mac: "0a:58:0a:f4:01:32".into(),
        port: "weft-c0ffee".into(),
        ofport: 7,
    };
    std::fs::write(
        rep.join("c0ffee-eth0.json"),
        serde_json::to_vec(&report).unwrap(),
    )
    .unwrap();
    let _sa = Daemon::start(&bin, &da).await;
    let _sb = Daemon::start(&bin, &db).await;
    let nodes = [("node-a", da.as_path()), ("node-b", db.as_path())];
    let c = start_controller(&man, &rep, &status, &nodes);

    // 1. Both nodes hold the compiled model, with the reported port.
    let v = wait_status_file(&status, "first sync", |v| all_acked(v, 1)).await;
    assert_eq!(v["pods"]["x/a"]["ofport"], 7, "{v:#}");
    assert_eq!(v["pods"]["x/a"]["ips"][0], "10.244.1.50", "{v:#}");
    let g1 = v["generation"].as_u64().unwrap();
    let (fa, _) = on_node(&da).await;
    assert!(
        fa.iter().any(|f| f.contains("in_port=7"))
            && fa.iter().any(|f| f.contains("output:7"))
            && fa.iter().any(|f| f.contains("dl_src=0a:58:0a:f4:01:32")),
        "node-a has no port-security flow for ofport 7: {fa:#?}"
    );
    let (fb, _) = on_node(&db).await;
    assert!(
        fb.iter().any(
            |f| f.contains("nw_dst=10.244.1.0/24") && f.contains("tun_id")
                || f.contains("nw_dst=10.244.1.0/24")
        ),
        "node-b does not route to node-a's pods: {fb:#?}"
    );

    // 2. A new policy file: a new generation, on every node.
    std::fs::write(man.join("20-policy.yaml"), BIN_POLICY).unwrap();
    let v = wait_status_file(&status, "the policy", |v| {
        all_acked(v, g1 + 1) && v["policies"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    assert_eq!(v["policies"][0], "x/b-from-a", "{v:#}");
    let g2 = v["generation"].as_u64().unwrap();
    let (_, cookies) = on_node(&db).await;
    assert!(
        cookies
            .iter()
            .any(|c| c.kind == "NetworkPolicy" && c.name == "b-from-a"),
        "{cookies:#?}"
    );
    let before = on_node(&da).await.0;

    // 3. Invalid input: an error naming the file, the previous model stays.
    std::fs::write(
        man.join("30-bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: x}\nspec: {nodeName: 7}\n",
    )
    .unwrap();
    let v = wait_status_file(&status, "the load error", |v| v["last_error"].is_string()).await;
    assert!(
        v["last_error"].as_str().unwrap().contains("30-bad.yaml"),
        "{v:#}"
    );
    assert_eq!(v["generation"].as_u64(), Some(g2));
    assert_eq!(on_node(&da).await.0, before);
    std::fs::remove_file(man.join("30-bad.yaml")).unwrap();
    // Recovery: the error clears, and since the flows are the ones in
    // force, no new generation is made (nothing is pushed again).
    let v = wait_status_file(&status, "recovery", |v| {
        v["last_error"].is_null() && all_acked(v, g2)
    })
    .await;
    assert_eq!(v["generation"].as_u64(), Some(g2), "{v:#}");

    // 4. The pod goes away (CNI DEL removes its report): its port flows go.
    std::fs::remove_file(rep.join("c0ffee-eth0.json")).unwrap();
    let v = wait_status_file(&status, "the report's removal", |v| {
        v["pod_reports"] == 0 && all_acked(v, g2 + 1)
    })
    .await;
    assert!(v["pods"]["x/a"]["ofport"].is_null(), "{v:#}");
    let fa = on_node(&da).await.0;
    assert!(!fa.iter().any(|f| f.contains("in_port=7")), "{fa:#?}");

    // 5. Controller restart (kill -9): the new one full-syncs, and the
    //    switches already hold exactly that table: nothing changes.
    drop(c);
    std::fs::remove_file(&status).unwrap();
    let _c = start_controller(&man, &rep, &status, &nodes);
    let v = wait_status_file(&status, "resync after restart", |v| all_acked(v, 1)).await;
    for n in ["node-a", "node-b"] {
        let s = &v["nodes"][n];
        assert_eq!(s["full_syncs"], 1, "{v:#}");
        assert_eq!(
            s["last_full_sync"],
            serde_json::json!({"added": 0, "modified": 0, "removed": 0}),
            "{v:#}"
        );
    }
    assert_eq!(on_node(&da).await.0, fa);
}
