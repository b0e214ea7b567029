//! Tunnels end to end: several "nodes" (a namespace each, running its own
//! real `weft-switchd`), joined by an underlay bridge in a namespace of its
//! own, with "pods" (namespaces + veths) behind each node.
//!
//! ```text
//!  pod n1p1 ─┐                          ┌─ pod n2p1
//!  pod n1p2 ─┤ weft-switchd (ns n1)     │ weft-switchd (ns n2)  ...
//!            │  eth0 afpacket ──┐    ┌── eth0                       
//!            │  weft0 internal  │    │   weft0 internal
//!            │  192.0.2.1/24    │    │   192.0.2.2/24
//!                           ns ul: bridge br0 (ul-n1, ul-n2, ul-n3)
//! ```
//!
//! Each node is set up as the README's "Tunnels" section says: the
//! underlay veth `eth0` is an `afpacket` port with no address, the node's
//! address is on the `internal` port `weft0` (`LOCAL`), `set-underlay`
//! names both, tunnel ports `geneve0` (100) and `vxlan0` (101) are
//! flow-based. The pods share 10.244.0.0/24 (an L2 overlay); flows send a
//! remote pod's MAC to its node's IP (`set_field:...->tun_dst`) with VNI 42,
//! and flood broadcasts to local pods and to every other node (head-end
//! replication, as the kernel VXLAN device does with its all-zero FDB
//! entries).
//!
//! * `tunnels_geneve_and_vxlan_three_nodes`: ping and TCP between pods on
//!   different nodes over Geneve (with a critical Geneve option mapped by
//!   the TLV map on every node), then the same over VXLAN; `tcpdump` on the
//!   underlay, decoded by `tshark -T json`: VNI, Geneve option
//!   class/type/length/data, UDP lengths and checksum.
//! * `tunnels_kernel_vxlan_interop`: one node is a kernel VXLAN device
//!   (`ip link add vx0 type vxlan id 42 dstport 4789`) + bridge + pod;
//!   ping and TCP both ways with a pod behind weft-switchd.
//! * `tunnels_ipv6_underlay`: the same nodes with IPv6 underlay addresses
//!   (`set_field:...->tun_ipv6_dst`): ping and TCP, tshark sees outer IPv6
//!   with a correct (mandatory) UDP checksum, next hops come from the
//!   kernel's IPv6 neighbour table.
//! * `tunnels_mtu_icmp_and_tracepath`: a DF ping larger than the overlay
//!   MTU gets ICMP "fragmentation needed" with the tunnel's MTU, the pod's
//!   kernel caches it, `tracepath` finds the path MTU, and every oversized
//!   packet is a counted drop.
//!
//! * `tunnels_survive_restart`: `kill -9` of a node's daemon and a
//!   restart on its state: port numbers, underlay, TLV map, node table and
//!   flows come back; pods talk again once `weft0` has its address back.
//!
//! Needs root, `ip`, `ping`, `tcpdump`, `tshark`, `tracepath`; under
//! `CI=true` a missing one fails the test.

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::netns::{
    Daemon, Netns, can_run_with, exec_in, in_netns, ip_ok, no_offloads, ping_n as ping, run,
    wait_for,
};

const VNI: u32 = 42;
const GENEVE: u32 = 100;
const VXLAN: u32 = 101;
/// Weft's Geneve option (DESIGN.md): class 0xff57, type 0x80 (critical),
/// 4 bytes.
const TLV: &str = "{class=0xff57,type=0x80,len=4}->tun_metadata0";
const OPTION_DATA: u32 = 0x0001_0002;

/// A pod: its namespace, address, MAC and switch port.
#[derive(Debug, Clone)]
struct Pod {
    ns: String,
    ip: String,
    mac: String,
    ofport: u32,
}

/// A node: namespace, underlay address, pods, daemon (none for the kernel
/// VXLAN node).
struct Node {
    ns: String,
    ip: String,
    /// The IPv6 underlay address (`2001:db8::<i>`), if any.
    ip6: Option<String>,
    pods: Vec<Pod>,
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn d(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }
}

/// What every tunnel test starts with: the underlay, `n` weft nodes with
/// `npods` pods each, and the guard of their namespaces. Fields drop in
/// order: the daemons before the namespaces.
struct Cluster {
    nodes: Vec<Node>,
    ul: String,
    nss: Netns,
}

/// [`Cluster`] of test `test` (namespace tag `tag`), or `None` (a loud
/// skip; a failure under `CI=true`) when `tools` or root are missing.
fn cluster(test: &str, tools: &[&str], tag: &str, n: u32, npods: u32) -> Option<Cluster> {
    if !can_run_with(test, tools) {
        return None;
    }
    let mut nss = Netns::default();
    let ul = underlay(&mut nss, tag);
    let nodes = (1..=n)
        .map(|i| weft_node(&mut nss, &ul, tag, i, npods))
        .collect();
    Some(Cluster { nodes, ul, nss })
}

/// `weftctl dump-tunnels` of `d` lists a next hop to `remote` with a MAC
/// (resolved through the kernel's neighbour table).
fn assert_next_hop_resolved(d: &Daemon, remote: &str) {
    let t = d.json(&["dump-tunnels"]);
    let hop = t["next_hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["remote"] == remote)
        .cloned()
        .unwrap_or_else(|| panic!("no next hop {remote}: {t:#}"));
    assert!(hop["mac"].is_string(), "{t:#}");
}

fn base() -> String {
    format!("weft-t{}", std::process::id())
}

/// The underlay namespace with bridge `br0`.
fn underlay(nss: &mut Netns, tag: &str) -> String {
    let ul = nss.add(&format!("{}{tag}-ul", base()));
    ip_ok(&["-n", &ul, "link", "add", "br0", "type", "bridge"]);
    ip_ok(&["-n", &ul, "link", "set", "br0", "up"]);
    ul
}

/// Node namespace `i` with `eth0` on the underlay bridge.
fn attach(nss: &mut Netns, ul: &str, tag: &str, i: u32) -> String {
    let node = nss.add(&format!("{}{tag}-n{i}", base()));
    let ul_end = format!("ul-n{i}");
    ip_ok(&[
        "-n", ul, "link", "add", &ul_end, "type", "veth", "peer", "name", "eth0", "netns", &node,
    ]);
    ip_ok(&["-n", ul, "link", "set", &ul_end, "master", "br0", "up"]);
    ip_ok(&["-n", &node, "link", "set", "eth0", "up"]);
    no_offloads(ul, &ul_end);
    no_offloads(&node, "eth0");
    node
}

/// Pod `j` of node `i`: a namespace with `eth0`, its peer `p<j>` in
/// `parent`.
fn pod(nss: &mut Netns, parent: &str, tag: &str, i: u32, j: u32) -> Pod {
    let ns = nss.add(&format!("{}{tag}-n{i}p{j}", base()));
    let port = format!("p{j}");
    let mac = format!("02:00:00:00:{i:02x}:{j:02x}");
    let ip = format!("10.244.0.{}", i * 10 + j);
    ip_ok(&[
        "-n", parent, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    ip_ok(&["-n", parent, "link", "set", &port, "up"]);
    ip_ok(&["-n", &ns, "link", "set", "eth0", "address", &mac]);
    ip_ok(&["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
    no_offloads(parent, &port);
    no_offloads(&ns, "eth0");
    Pod {
        ns,
        ip,
        mac,
        ofport: 10 + j,
    }
}

/// A node running weft-switchd with `npods` pods, set up as README says.
fn weft_node(nss: &mut Netns, ul: &str, tag: &str, i: u32, npods: u32) -> Node {
    let ns = attach(nss, ul, tag, i);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&ns, dir.path());
    d.ctl_ok(&["add-port", "eth0", "--type", "afpacket", "--ofport", "1"]);
    let out = d.ctl_ok(&["add-port", "weft0", "--type", "internal"]);
    assert_eq!(out.trim(), "weft0: ofport LOCAL");
    let ip = format!("192.0.2.{i}");
    ip_ok(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        "weft0",
    ]);
    let ip6 = format!("2001:db8::{i}");
    let ip6_cidr = format!("{ip6}/64");
    ip_ok(&[
        "-n", &ns, "-6", "addr", "add", &ip6_cidr, "dev", "weft0", "nodad",
    ]);
    ip_ok(&["-n", &ns, "link", "set", "weft0", "up"]);
    d.ctl_ok(&[
        "add-port",
        "geneve0",
        "--type",
        "geneve",
        "--ofport",
        &GENEVE.to_string(),
    ]);
    d.ctl_ok(&[
        "add-port",
        "vxlan0",
        "--type",
        "vxlan",
        "--ofport",
        &VXLAN.to_string(),
    ]);
    d.ctl_ok(&["set-underlay", "--port", "eth0", "--host-port", "weft0"]);
    d.ctl_ok(&["add-tlv-map", TLV]);
    let pods = (1..=npods)
        .map(|j| {
            let p = pod(nss, &ns, tag, i, j);
            d.ctl_ok(&[
                "add-port",
                &format!("p{j}"),
                "--type",
                "afpacket",
                "--ofport",
                &p.ofport.to_string(),
            ]);
            p
        })
        .collect();
    Node {
        ns,
        ip,
        ip6: Some(ip6),
        pods,
        daemon: Some(d),
        _dir: dir,
    }
}

/// The L2-overlay flows of node `me` (see the module doc): `tunnel` is the
/// port number, `option` adds Weft's Geneve option, `v6` uses the nodes'
/// IPv6 underlay addresses.
fn overlay_flows(me: &Node, all: &[&Node], tunnel: u32, option: bool, v6: bool) -> String {
    let mut f = String::new();
    let opt = if option {
        format!("set_field:{OPTION_DATA:#x}->tun_metadata0,")
    } else {
        String::new()
    };
    let to = |n: &Node| match (&n.ip6, v6) {
        (Some(ip6), true) => {
            format!("set_field:{ip6}->tun_ipv6_dst,set_field:{VNI}->tun_id,{opt}")
        }
        _ => format!("set_field:{}->tun_dst,set_field:{VNI}->tun_id,{opt}", n.ip),
    };
    for p in &me.pods {
        f += &format!(
            "priority=100,dl_dst={},actions=output:{}\n",
            p.mac, p.ofport
        );
    }
    let mut flood_remote = String::new();
    for n in all.iter().filter(|n| n.ip != me.ip) {
        for p in &n.pods {
            f += &format!(
                "priority=100,dl_dst={},actions={}output:{tunnel}\n",
                p.mac,
                to(n)
            );
        }
        flood_remote += &format!(",{}output:{tunnel}", to(n));
    }
    let local: Vec<String> = me
        .pods
        .iter()
        .map(|p| format!("output:{}", p.ofport))
        .collect();
    let local = local.join(",");
    f += &format!("priority=50,in_port={tunnel},dl_dst=ff:ff:ff:ff:ff:ff,actions={local}\n");
    f += &format!("priority=40,dl_dst=ff:ff:ff:ff:ff:ff,actions={local}{flood_remote}\n");
    f
}

/// Waits until node `n` has a next-hop MAC for every address in `remotes`
/// (the node table is resolved ahead of traffic); panics with the table.
fn wait_resolved(n: &Node, remotes: &[&str]) {
    let ok = wait_for(10, || {
        let t = n.d().json(&["dump-tunnels"]);
        remotes.iter().all(|r| {
            t["next_hops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["remote"] == *r && h["mac"].is_string())
        })
    });
    assert!(
        ok,
        "{} next hops {remotes:?}: {}",
        n.ip,
        n.d().ctl_ok(&["dump-tunnels"])
    );
}

fn program(n: &Node, all: &[&Node], tunnel: u32, option: bool) {
    program_v(n, all, tunnel, option, false);
}

fn program_v(n: &Node, all: &[&Node], tunnel: u32, option: bool, v6: bool) {
    let path = n._dir.path().join("flows.txt");
    std::fs::write(&path, overlay_flows(n, all, tunnel, option, v6)).unwrap();
    n.d().ctl_ok(&["replace-flows", path.to_str().unwrap()]);
}

/// Sends 256 KiB over TCP from pod `a` to pod `b` and back; true if the
/// echo is exact.
fn tcp_echo(a: &Pod, b: &Pod) -> bool {
    let addr: SocketAddr = format!("{}:7000", b.ip).parse().unwrap();
    let server = in_netns(&b.ns, move || {
        let l = TcpListener::bind(addr).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    thread::sleep(Duration::from_millis(200));
    let client = in_netns(&a.ns, move || {
        let data: Vec<u8> = (0..256 * 1024u32)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let w = s.try_clone().unwrap();
        let d2 = data.clone();
        let writer = thread::spawn(move || {
            let mut w = w;
            w.write_all(&d2)
        });
        let mut back = vec![0u8; data.len()];
        let r = s.read_exact(&mut back);
        writer.join().unwrap().ok()?;
        r.ok()?;
        Some(back == data)
    });
    let ok = client.join().unwrap() == Some(true);
    let _ = server.join();
    ok
}

/// `tcpdump` on an underlay interface, writing a pcap; stopped by
/// [`Capture::stop`] or on drop.
struct Capture {
    child: Child,
    path: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &str, dev: &str, filter: &str, path: std::path::PathBuf) -> Capture {
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-n", "-U", "-s", "0", "-i", dev, "-w",
            ])
            .arg(&path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tcpdump announces "listening on" once the socket is open.
        let mut c = Capture { child, path };
        let mut err = c.child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut b = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            assert!(Instant::now() < deadline, "tcpdump did not start");
            let n = err.read(&mut b).unwrap();
            assert!(n > 0, "tcpdump exited: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&b[..n]);
        }
        // Keep draining stderr so tcpdump never blocks on it.
        thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        c
    }

    fn stop(mut self) -> std::path::PathBuf {
        thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.path.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packets of `pcap` as tshark's JSON layers.
fn tshark(pcap: &std::path::Path, filter: &str) -> Vec<serde_json::Value> {
    let out = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            "udp.check_checksum:TRUE",
            "-Y",
            filter,
            "-T",
            "json",
            // Repeated layers (outer and inner eth, ip) become arrays.
            "--no-duplicate-keys",
        ],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// The outermost instance of `layer` (an array when the inner frame has
/// the same layer).
fn outer<'a>(l: &'a serde_json::Value, layer: &str) -> &'a serde_json::Value {
    match &l[layer] {
        serde_json::Value::Array(a) => &a[0],
        v => v,
    }
}

fn field<'a>(layer: &'a serde_json::Value, name: &str) -> &'a str {
    layer[name]
        .as_str()
        .unwrap_or_else(|| panic!("tshark field {name} missing in {layer:#}"))
}

fn num(layer: &serde_json::Value, name: &str) -> u64 {
    let s = field(layer, name);
    s.strip_prefix("0x")
        .map(|h| u64::from_str_radix(h, 16).unwrap())
        .unwrap_or_else(|| s.parse().unwrap())
}

/// Asserts the UDP header of a tunnel packet as tshark decoded it: lengths
/// consistent with IP, checksum zero (IPv4 default) or good.
fn check_udp(l: &serde_json::Value, dst_port: u64) {
    let ip_len = num(outer(l, "ip"), "ip.len");
    let udp = outer(l, "udp");
    assert_eq!(num(udp, "udp.dstport"), dst_port);
    assert_eq!(
        num(udp, "udp.length"),
        ip_len - 20,
        "UDP length = IP length - 20"
    );
    let sport = num(udp, "udp.srcport");
    assert!(
        (32768..=60999).contains(&sport),
        "source port {sport} in the ephemeral range"
    );
    let csum = num(udp, "udp.checksum");
    if csum != 0 {
        assert_eq!(
            num(&udp["udp.checksum_tree"], "udp.checksum_calculated"),
            csum,
            "UDP checksum as tshark computes it: {udp:#}"
        );
    }
    assert_eq!(
        field(&outer(l, "ip")["ip.flags_tree"], "ip.flags.df"),
        "1",
        "outer DF"
    );
}

#[test]
fn tunnels_geneve_and_vxlan_three_nodes() {
    let t0 = Instant::now();
    let Some(Cluster {
        nss: _nss,
        ul,
        nodes,
    }) = cluster(
        "tunnels_geneve_and_vxlan_three_nodes",
        &["ip", "ping", "tcpdump", "tshark"],
        "a",
        3,
        2,
    )
    else {
        return;
    };
    for n in &nodes {
        for m in &nodes {
            n.d()
                .ctl_ok(&["add-node", &format!("node{}", &m.ip[8..]), &m.ip]);
        }
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let tmp = tempfile::tempdir().unwrap();
    // The node table is resolved through the kernel before any traffic.
    for n in &nodes {
        let others: Vec<&str> = nodes
            .iter()
            .filter(|m| m.ip != n.ip)
            .map(|m| m.ip.as_str())
            .collect();
        wait_resolved(n, &others);
    }

    // The node table and the tunnel summary.
    let show = nodes[0].d().ctl_ok(&["show"]);
    assert!(
        show.contains("100(geneve0): addr=none mtu=0 type=geneve"),
        "{show}"
    );
    assert!(show.contains("options:remote_ip=flow,key=flow"), "{show}");
    assert!(show.contains("recommended pod MTU=1442"), "{show}");
    assert!(show.contains("recommended pod MTU=1450"), "{show}");
    assert!(show.contains("node node2: 192.0.2.2"), "{show}");
    let dn = nodes[0].d().json(&["dump-nodes"]);
    assert_eq!(dn.as_array().unwrap().len(), 3, "{dn}");

    // Host traffic passes the switch untouched: the nodes' own addresses
    // (on weft0) reach each other through eth0.
    assert!(
        ping(&nodes[0].ns, "192.0.2.2", 2, 5),
        "node1 -> node2 host ping"
    );

    for (tunnel, name) in [(GENEVE, "geneve"), (VXLAN, "vxlan")] {
        for n in &nodes {
            program(n, &all, tunnel, tunnel == GENEVE);
        }
        let cap = Capture::start(
            &ul,
            "ul-n1",
            "udp port 6081 or udp port 4789",
            tmp.path().join(format!("{name}.pcap")),
        );
        let pairs = [(0, 0, 1, 1), (1, 1, 2, 0), (2, 1, 0, 0)];
        for (a, i, b, j) in pairs {
            let (pa, pb) = (&nodes[a].pods[i], &nodes[b].pods[j]);
            assert!(
                ping(&pa.ns, &pb.ip, 3, 8),
                "{name}: ping {} -> {}\n{}\n{}",
                pa.ip,
                pb.ip,
                nodes[a].d().ctl_ok(&["show"]),
                nodes[a].d().ctl_ok(&["dump-stats"])
            );
        }
        assert!(
            tcp_echo(&nodes[0].pods[0], &nodes[1].pods[1]),
            "{name}: TCP n1p1 -> n2p2\n{}",
            nodes[0].d().ctl_ok(&["dump-stats"])
        );
        assert!(
            tcp_echo(&nodes[2].pods[1], &nodes[0].pods[1]),
            "{name}: TCP n3p2 -> n1p2"
        );
        let pcap = cap.stop();

        // tshark's view of what crossed node1's underlay link.
        let pkts = tshark(&pcap, name);
        assert!(
            pkts.len() >= 10,
            "{name}: only {} packets captured",
            pkts.len()
        );
        for l in &pkts {
            let src = field(outer(l, "ip"), "ip.src");
            let dst = field(outer(l, "ip"), "ip.dst");
            assert!(
                src.starts_with("192.0.2.") && dst.starts_with("192.0.2."),
                "{src} > {dst}"
            );
            if name == "geneve" {
                check_udp(l, 6081);
                let g = &l["geneve"];
                assert_eq!(num(g, "geneve.vni"), u64::from(VNI), "{g:#}");
                assert_eq!(num(g, "geneve.version"), 0);
                assert_eq!(num(g, "geneve.proto_type"), 0x6558);
                // Total option bytes, then the one option's fields.
                assert_eq!(num(g, "geneve.option.length"), 8, "{g:#}");
                let o = &g["geneve.options_tree"]["geneve.option_tree"];
                assert_eq!(field(o, "geneve.option.class"), "0xff57", "{g:#}");
                assert_eq!(field(o, "geneve.option.type"), "0x80", "{g:#}");
                assert_eq!(field(o, "geneve.option.type.critical"), "1", "{g:#}");
                // tshark gives an option's length in bytes, header included.
                assert_eq!(num(o, "geneve.option.length"), 8, "{g:#}");
                assert_eq!(
                    field(o, "geneve.option.unknown.data"),
                    "00:01:00:02",
                    "option data: {g:#}"
                );
                assert_eq!(
                    field(&g["geneve.flags_tree"], "geneve.flags.critical"),
                    "1",
                    "C bit: a critical option is present"
                );
            } else {
                check_udp(l, 4789);
                let v = &l["vxlan"];
                assert_eq!(num(v, "vxlan.vni"), u64::from(VNI), "{v:#}");
                assert_eq!(field(v, "vxlan.flags"), "0x0800", "only the I flag");
                assert_eq!(field(&v["vxlan.flags_tree"], "vxlan.flag_i"), "1");
            }
            // The inner frame is a pod's Ethernet frame.
            let inner = &l["eth"].as_array().unwrap_or_else(|| panic!("{l:#}"))[1];
            assert!(
                field(inner, "eth.src").starts_with("02:00:00:00:0"),
                "{inner:#}"
            );
        }
    }
    // Nothing was dropped for tunnel reasons on the way (the next hops
    // were resolved before traffic), nor lost outside the pipeline. (The
    // pods keep MTU 1500 here, so TCP's first full-size segments are
    // counted in `tunnel_too_big` and answered with ICMP: path MTU
    // discovery is what lets the TCP echo pass.)
    for n in &nodes {
        for r in [
            "tunnel_no_next_hop",
            "tunnel_malformed",
            "tunnel_no_port",
            "tunnel_critical_option",
            "unknown_port",
            "packet_in_queue_full",
        ] {
            assert_eq!(
                n.d().drops(r),
                0,
                "{} {r}\n{}",
                n.ip,
                n.d().ctl_ok(&["dump-stats"])
            );
        }
    }
    let t = nodes[0].d().json(&["dump-tunnels"]);
    let hops = t["next_hops"].as_array().unwrap();
    assert!(
        hops.iter().filter(|h| h["mac"].is_string()).count() >= 2,
        "next hops resolved: {t:#}"
    );
    eprintln!(
        "tunnels_geneve_and_vxlan_three_nodes took {:?}",
        t0.elapsed()
    );
}

#[test]
fn tunnels_kernel_vxlan_interop() {
    let t0 = Instant::now();
    let Some(Cluster { mut nss, ul, nodes }) = cluster(
        "tunnels_kernel_vxlan_interop",
        &["ip", "ping", "bridge"],
        "k",
        1,
        1,
    ) else {
        return;
    };
    let weft = &nodes[0];
    // Node 3: the kernel's VXLAN device, a bridge and one pod.
    let kns = attach(&mut nss, &ul, "k", 3);
    ip_ok(&["-n", &kns, "addr", "add", "192.0.2.3/24", "dev", "eth0"]);
    ip_ok(&[
        "-n",
        &kns,
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        "192.0.2.3",
        "nolearning",
    ]);
    ip_ok(&["-n", &kns, "link", "add", "br0", "type", "bridge"]);
    ip_ok(&["-n", &kns, "link", "set", "vx0", "master", "br0", "up"]);
    ip_ok(&["-n", &kns, "link", "set", "br0", "up"]);
    run(
        "bridge",
        &[
            "-n",
            &kns,
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vx0",
            "dst",
            "192.0.2.1",
        ],
    )
    .unwrap();
    let kpod = pod(&mut nss, &kns, "k", 3, 1);
    ip_ok(&["-n", &kns, "link", "set", "p1", "master", "br0"]);
    // The kernel's pod MTU is 1450 (VXLAN over a 1500-byte underlay); use
    // the same on the weft side so TCP segments fit both ways.
    for p in [&kpod, &weft.pods[0]] {
        ip_ok(&["-n", &p.ns, "link", "set", "eth0", "mtu", "1450"]);
    }
    let knode = Node {
        ns: kns.clone(),
        ip: "192.0.2.3".into(),
        ip6: None,
        pods: vec![kpod.clone()],
        daemon: None,
        _dir: tempfile::tempdir().unwrap(),
    };
    weft.d().ctl_ok(&["add-node", "kernel", "192.0.2.3"]);
    program(weft, &[weft, &knode], VXLAN, false);

    let wpod = &weft.pods[0];
    assert!(
        ping(&wpod.ns, &kpod.ip, 3, 8),
        "weft pod -> kernel pod\n{}\n{}",
        weft.d().ctl_ok(&["show"]),
        weft.d().ctl_ok(&["dump-stats"])
    );
    assert!(ping(&kpod.ns, &wpod.ip, 3, 8), "kernel pod -> weft pod");
    assert!(tcp_echo(wpod, &kpod), "TCP weft pod -> kernel pod");
    assert!(tcp_echo(&kpod, wpod), "TCP kernel pod -> weft pod");
    // The kernel learned the weft pod behind 192.0.2.1 (its FDB), and weft
    // resolved the kernel node through the kernel's neighbour table.
    let fdb = run("bridge", &["-n", &kns, "fdb", "show", "dev", "vx0"]).unwrap();
    assert!(fdb.contains("dst 192.0.2.1"), "{fdb}");
    assert_next_hop_resolved(weft.d(), "192.0.2.3");
    eprintln!("tunnels_kernel_vxlan_interop took {:?}", t0.elapsed());
}

#[test]
fn tunnels_mtu_icmp_and_tracepath() {
    let t0 = Instant::now();
    let Some(Cluster {
        nss: _nss,
        ul: _,
        nodes,
    }) = cluster(
        "tunnels_mtu_icmp_and_tracepath",
        &["ip", "ping", "tracepath"],
        "m",
        2,
        1,
    )
    else {
        return;
    };
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &nodes {
        program(n, &all, GENEVE, true);
    }
    let (a, b) = (&nodes[0].pods[0], &nodes[1].pods[0]);
    let d = nodes[0].d();
    assert!(ping(&a.ns, &b.ip, 2, 8), "small ping works");
    // Overlay MTU with Weft's 8-byte option over a 1500-byte underlay:
    // 1500 - (20 IP + 8 UDP + 8 Geneve + 8 option + 14 inner Ethernet).
    const MTU: u64 = 1442;
    assert_eq!(d.drops("tunnel_too_big"), 0);

    // 1. One DF ping of 1500 bytes: ICMP frag-needed comes back with 1442.
    let out = exec_in(
        &a.ns,
        "ping",
        &["-M", "do", "-s", "1472", "-c", "1", "-W", "2", &b.ip],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an oversize DF ping cannot succeed: {text}"
    );
    assert!(
        text.contains(&format!("mtu = {MTU}")) || text.contains(&format!("mtu={MTU}")),
        "ping reports the frag-needed MTU: {text}"
    );
    // The pod's kernel cached the path MTU from our ICMP error.
    let route = run("ip", &["-n", &a.ns, "route", "get", &b.ip]).unwrap();
    assert!(
        route.contains(&format!("mtu {MTU}")),
        "cached PMTU: {route}"
    );
    assert!(
        wait_for(3, || d.drops("tunnel_too_big") == 1),
        "exactly one counted too-big drop: {}",
        d.ctl_ok(&["dump-stats"])
    );

    // 2. Without DF the pod's kernel sends 1500 bytes anyway after the
    // cache is cleared: no ICMP (nothing to tell), but a counted drop.
    ip_ok(&["-n", &a.ns, "route", "flush", "cache"]);
    let out = exec_in(
        &a.ns,
        "ping",
        &["-M", "dont", "-s", "1472", "-c", "1", "-W", "1", &b.ip],
    );
    assert!(!out.status.success());
    assert!(
        wait_for(3, || d.drops("tunnel_too_big") == 2),
        "the non-DF oversize packet is counted too: {}",
        d.ctl_ok(&["dump-stats"])
    );

    // 3. PMTU discovery: tracepath finds 1442 and reaches the pod.
    ip_ok(&["-n", &a.ns, "route", "flush", "cache"]);
    let out = exec_in(&a.ns, "tracepath", &["-n", "-m", "5", &b.ip]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tracepath: {text}");
    assert!(text.contains(&format!("pmtu {MTU}")), "tracepath: {text}");
    assert!(text.contains("reached"), "tracepath: {text}");
    // And traffic at the discovered size flows: 1442 - 28 bytes of ICMP.
    let out = exec_in(
        &a.ns,
        "ping",
        &["-M", "do", "-s", "1414", "-c", "2", "-W", "2", &b.ip],
    );
    assert!(out.status.success(), "a ping of exactly the pod MTU passes");
    // Every oversize packet is accounted for: tracepath's probes too.
    let too_big = d.drops("tunnel_too_big");
    assert!(
        too_big >= 3,
        "tracepath's 1500-byte probe was counted: {too_big}"
    );
    eprintln!("tunnels_mtu_icmp_and_tracepath took {:?}", t0.elapsed());
}

#[test]
fn tunnels_ipv6_underlay() {
    let t0 = Instant::now();
    let Some(Cluster {
        nss: _nss,
        ul,
        nodes,
    }) = cluster(
        "tunnels_ipv6_underlay",
        &["ip", "ping", "tcpdump", "tshark"],
        "s",
        2,
        1,
    )
    else {
        return;
    };
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &nodes {
        for m in &nodes {
            let ip6 = m.ip6.as_deref().unwrap();
            n.d().ctl_ok(&["add-node", &format!("v6-{ip6}"), ip6]);
        }
        program_v(n, &all, GENEVE, true, true);
    }
    wait_resolved(&nodes[0], &["2001:db8::2"]);
    wait_resolved(&nodes[1], &["2001:db8::1"]);
    let pcap = nodes[0]._dir.path().join("v6.pcap");
    let cap = Capture::start(&ul, "ul-n1", "udp port 6081", pcap);
    let (a, b) = (&nodes[0].pods[0], &nodes[1].pods[0]);
    assert!(
        ping(&a.ns, &b.ip, 3, 8),
        "ping over an IPv6 underlay\n{}\n{}\n{}\n{}",
        nodes[0].d().ctl_ok(&["show"]),
        nodes[0].d().ctl_ok(&["dump-stats"]),
        nodes[1].d().ctl_ok(&["show"]),
        nodes[1].d().ctl_ok(&["dump-stats"])
    );
    assert!(tcp_echo(a, b), "TCP over an IPv6 underlay");
    let pcap = cap.stop();
    let pkts = tshark(&pcap, "geneve");
    assert!(pkts.len() >= 6, "only {} packets", pkts.len());
    for l in &pkts {
        let ip6 = outer(l, "ipv6");
        assert!(field(ip6, "ipv6.src").starts_with("2001:db8::"), "{ip6:#}");
        let udp = outer(l, "udp");
        assert_eq!(num(udp, "udp.dstport"), 6081);
        assert_eq!(num(udp, "udp.length"), num(ip6, "ipv6.plen"));
        // The UDP checksum is mandatory over IPv6 (RFC 8200) and right.
        assert_ne!(num(udp, "udp.checksum"), 0);
        assert_eq!(
            num(&udp["udp.checksum_tree"], "udp.checksum_calculated"),
            num(udp, "udp.checksum"),
            "{udp:#}"
        );
        assert_eq!(num(&l["geneve"], "geneve.vni"), u64::from(VNI));
    }
    assert_next_hop_resolved(nodes[0].d(), "2001:db8::2");
    eprintln!("tunnels_ipv6_underlay took {:?}", t0.elapsed());
}

/// A node's daemon is killed (`kill -9`) and restarted on its state
/// directory: tunnel ports keep their numbers, the internal port is
/// `LOCAL` again, the underlay, TLV map, node table and flows come back,
/// and once the node's address is put back on the re-created `weft0` (a
/// TAP lives as long as the daemon's descriptor: README, Tunnels) pods talk
/// again.
#[test]
fn tunnels_survive_restart() {
    let t0 = Instant::now();
    let Some(Cluster {
        nss: _nss,
        ul: _ul,
        mut nodes,
    }) = cluster("tunnels_survive_restart", &["ip", "ping"], "r", 2, 1)
    else {
        return;
    };
    for n in &nodes {
        for m in &nodes {
            n.d()
                .ctl_ok(&["add-node", &format!("node{}", &m.ip[8..]), &m.ip]);
        }
    }
    {
        let all: Vec<&Node> = nodes.iter().collect();
        for n in &all {
            program(n, &all, GENEVE, true);
        }
    }
    wait_resolved(&nodes[0], &["192.0.2.2"]);
    wait_resolved(&nodes[1], &["192.0.2.1"]);
    let (a, b) = (nodes[0].pods[0].clone(), nodes[1].pods[0].clone());
    assert!(ping(&a.ns, &b.ip, 2, 8), "before the restart");
    let before = nodes[1].d().ctl_ok(&["show"]);
    let flows = nodes[1].d().ctl_ok(&["dump-flows", "--no-stats"]);

    // kill -9 (Daemon's drop) and start again on the same directory.
    let dir = nodes[1]._dir.path().to_path_buf();
    drop(nodes[1].daemon.take());
    nodes[1].daemon = Some(Daemon::start(&nodes[1].ns, &dir));
    let d = nodes[1].d();
    assert_eq!(d.ctl_ok(&["dump-flows", "--no-stats"]), flows);
    assert!(d.ctl_ok(&["dump-tlv-map"]).contains("0xff57"));
    let t = d.json(&["dump-tunnels"]);
    assert_eq!(t["underlay"]["port"], "eth0", "{t:#}");
    let ports: Vec<(String, String)> = t["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().into(), p["ofport"].to_string()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("geneve0".to_owned(), GENEVE.to_string()),
            ("vxlan0".to_owned(), VXLAN.to_string())
        ]
    );
    let show = d.ctl_ok(&["show"]);
    assert!(
        show.lines()
            .any(|l| l.starts_with(" LOCAL(weft0): addr=") && l.contains(" type=internal")),
        "{show}"
    );
    assert!(show.contains("node node1: 192.0.2.1"), "{show}");
    // The internal port's TAP is persistent while the port exists, so a
    // kill -9 leaves it with the node's underlay address (as OVS's
    // userspace taps): the restarted switch attaches to it, nothing needs
    // re-adding.
    let addrs = run(
        "ip",
        &[
            "-n",
            &nodes[1].ns,
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "weft0",
        ],
    )
    .unwrap();
    assert!(
        addrs.contains("192.0.2.2/24"),
        "weft0 lost its address: {addrs}"
    );
    wait_resolved(&nodes[1], &["192.0.2.1"]);
    assert!(
        ping(&a.ns, &b.ip, 3, 8),
        "after the restart\nbefore:\n{before}\nafter:\n{}\n{}",
        d.ctl_ok(&["show"]),
        d.ctl_ok(&["dump-stats"])
    );
    eprintln!("tunnels_survive_restart took {:?}", t0.elapsed());
}
