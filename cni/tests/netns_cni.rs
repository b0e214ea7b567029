//! weft-cni against a real `weft-switchd`, in network namespaces (root).
//!
//! Each test has a "node" namespace running `weft-switchd`, and runs
//! `weft-cni` inside it as a runtime does (`CNI_*` environment,
//! configuration on stdin) for pod namespaces it creates:
//!
//! * `add_check_del_ping`: ADD two pods (spec 1.1.0 result shape), L2 flows
//!   programmed by hand, ping between the pods through switchd, CHECK, DEL
//!   twice, DEL without ADD, DEL with the namespace gone; nothing left.
//! * `status_and_gc`: STATUS ready / not ready (code 50); GC keeps the
//!   listed attachment and removes the others' address, veth and port.
//! * `parallel_adds`: 50 concurrent ADDs get 50 distinct addresses and
//!   ports; 50 concurrent DELs leave nothing.
//! * `kill9_during_add`: the plugin is killed with SIGKILL at each pause
//!   point of ADD ([`weft_cni::test_hook`]); a retried ADD gets the same
//!   address, CHECK passes, and DEL leaves no address, veth or port.
//! * `portmap_chain`: a 1.0.0 chain weft-cni -> the reference `portmap`
//!   plugin (prevResult), DNAT rule installed in the node and removed by
//!   DEL; CHECK of weft-cni with the chain's final result.
//! * `switchd_down_and_restart`: ADD while switchd is down is code 11 with
//!   nothing allocated; DEL is 11 but frees veth and address; after the
//!   restart the persisted port checks out and a retried DEL removes the
//!   stale one.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Call, Node, can_run, ping, result_ip, with_prev};
use serde_json::{Value, json};

fn assert_clean(node: &Node) {
    assert_eq!(node.ipam_files(), Vec::<String>::new(), "addresses left");
    assert_eq!(node.host_links(), Vec::<String>::new(), "veths left");
    let ports: Vec<_> = node
        .ports()
        .into_iter()
        .filter(|p| p.1.starts_with("wft"))
        .collect();
    assert!(ports.is_empty(), "switchd ports left: {ports:?}");
}

/// Checks an ADD result against the spec (1.1.0 shape).
fn check_result_shape(r: &Value, version: &str, netns: &str) {
    assert_eq!(r["cniVersion"], version);
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2);
    assert!(ifs[0]["name"].as_str().unwrap().starts_with("wft"));
    assert!(
        ifs[0].get("sandbox").is_none(),
        "host interface has no sandbox"
    );
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], netns);
    for i in ifs {
        let mac = i["mac"].as_str().unwrap();
        assert_eq!(mac.len(), 17, "{mac}");
        if version == "1.1.0" {
            assert_eq!(i["mtu"], 1442, "1500 - 58 bytes of Geneve");
        } else {
            assert!(i.get("mtu").is_none(), "mtu is a 1.1.0 field");
        }
    }
    let ipcfg = &r["ips"][0];
    assert_eq!(r["ips"].as_array().unwrap().len(), 1);
    assert!(ipcfg["address"].as_str().unwrap().starts_with("10.244.7."));
    assert!(ipcfg["address"].as_str().unwrap().ends_with("/24"));
    assert_eq!(ipcfg["gateway"], "10.244.7.1");
    assert_eq!(ipcfg["interface"], 1);
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.244.7.1"}])
    );
    let ip = result_ip(r);
    let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        ifs[1]["mac"],
        format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
}

#[test]
fn add_check_del_ping() {
    if !can_run("add_check_del_ping", &[]) {
        return;
    }
    let mut node = Node::start("a");
    let mut conf = node.conf("1.1.0");
    let reports = node.ipam_root().with_file_name("pods");
    conf["podReportDir"] = json!(reports);
    let (p1, p1_path) = node.pod(1);
    let (p2, p2_path) = node.pod(2);
    let r1 = node
        .cni(&Call::new("ADD", "ctr1", Some(p1_path.clone())), &conf)
        .ok()
        .json;
    let r2 = node
        .cni(&Call::new("ADD", "ctr2", Some(p2_path.clone())), &conf)
        .ok()
        .json;
    check_result_shape(&r1, "1.1.0", &p1_path);
    check_result_shape(&r2, "1.1.0", &p2_path);
    let (ip1, ip2) = (result_ip(&r1), result_ip(&r2));
    assert_ne!(ip1, ip2);
    // Inside the pod: the address, the MTU, the default route.
    let addr = common::ip(&["-n", &p1, "-o", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(addr.contains(&format!("inet {ip1}/24")), "{addr}");
    let link = common::ip(&["-n", &p1, "link", "show", "eth0"]).unwrap();
    assert!(link.contains("mtu 1442") && link.contains("UP"), "{link}");
    let route = common::ip(&["-n", &p1, "route", "show", "default"]).unwrap();
    assert!(route.contains("via 10.244.7.1 dev eth0"), "{route}");

    // L2 flows by destination MAC, broadcast flooded.
    let ports = node.ports();
    let ofport = |name: &Value| {
        ports
            .iter()
            .find(|p| p.1 == name.as_str().unwrap())
            .map(|p| p.0)
            .unwrap()
    };
    let (o1, o2) = (
        ofport(&r1["interfaces"][0]["name"]),
        ofport(&r2["interfaces"][0]["name"]),
    );
    for (r, o) in [(&r1, o1), (&r2, o2)] {
        node.ctl(&[
            "add-flow",
            &format!(
                "priority=100,dl_dst={},actions=output:{o}",
                r["interfaces"][1]["mac"].as_str().unwrap()
            ),
        ])
        .unwrap();
    }
    node.ctl(&[
        "add-flow",
        "priority=50,dl_dst=ff:ff:ff:ff:ff:ff,actions=FLOOD",
    ])
    .unwrap();
    assert!(ping(&p1, &ip2), "pod1 -> pod2 through switchd");
    assert!(ping(&p2, &ip1), "pod2 -> pod1 through switchd");

    // CHECK: success prints nothing.
    for (ctr, path, r) in [("ctr1", &p1_path, &r1), ("ctr2", &p2_path, &r2)] {
        let out = node
            .cni(
                &Call::new("CHECK", ctr, Some(path.clone())),
                &with_prev(&conf, r),
            )
            .ok();
        assert_eq!(out.stdout.trim(), "");
    }
    // CHECK notices a missing address (code 103).
    common::ip(&["-n", &p2, "addr", "flush", "dev", "eth0"]).unwrap();
    let out = node.cni(
        &Call::new("CHECK", "ctr2", Some(p2_path.clone())),
        &with_prev(&conf, &r2),
    );
    assert_eq!(out.err_code(), 103, "{}", out.stdout);

    assert!(reports.join("ctr1-eth0.json").is_file());
    assert!(reports.join("ctr2-eth0.json").is_file());
    // DEL twice, with prevResult and without.
    let del1 = Call::new("DEL", "ctr1", Some(p1_path.clone()));
    node.cni(&del1, &with_prev(&conf, &r1)).ok();
    assert!(!reports.join("ctr1-eth0.json").exists());
    node.cni(&del1, &conf).ok();
    // DEL of a container never added, without CNI_NETNS.
    node.cni(&Call::new("DEL", "never-added", None), &conf).ok();
    // DEL with the namespace gone.
    node.del_pod(&p2);
    node.cni(&Call::new("DEL", "ctr2", Some(p2_path)), &conf)
        .ok();
    assert_clean(&node);
    assert!(!reports.join("ctr2-eth0.json").exists());
}

#[test]
fn status_and_gc() {
    if !can_run("status_and_gc", &[]) {
        return;
    }
    let mut node = Node::start("g");
    let mut conf = node.conf("1.1.0");
    // Pod reports for the controller: one per attachment, removed by GC.
    let reports = node.ipam_root().with_file_name("pods");
    conf["podReportDir"] = json!(reports);
    conf["nodeName"] = json!("node-g");
    let report_files = || {
        let mut v: Vec<String> = std::fs::read_dir(&reports)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let status = Call::new("STATUS", "", None);
    node.cni(&status, &conf).ok();
    let mut results = Vec::new();
    for i in 0..3 {
        let (_, path) = node.pod(i);
        let ctr = format!("gc{i}");
        let r = node
            .cni(&Call::new("ADD", &ctr, Some(path.clone())), &conf)
            .ok()
            .json;
        results.push((ctr, path, r));
    }
    assert_eq!(node.ipam_files().len(), 3);
    assert_eq!(
        report_files(),
        vec!["gc0-eth0.json", "gc1-eth0.json", "gc2-eth0.json"]
    );
    let r0: protocol::pod_report::PodReport =
        serde_json::from_slice(&std::fs::read(reports.join("gc0-eth0.json")).unwrap()).unwrap();
    assert_eq!(
        (r0.namespace.as_str(), r0.name.as_str(), r0.node.as_str()),
        ("default", "test", "node-g")
    );
    assert_eq!(r0.ip.to_string(), result_ip(&results[0].2));
    assert_eq!(
        r0.port,
        results[0].2["interfaces"][0]["name"].as_str().unwrap()
    );
    assert_eq!(
        r0.mac,
        results[0].2["interfaces"][1]["mac"].as_str().unwrap()
    );
    let port_no = node
        .ports()
        .into_iter()
        .find(|p| p.1 == r0.port)
        .map(|p| p.0)
        .unwrap();
    assert_eq!(u64::from(r0.ofport), port_no);
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "gc0", "ifname": "eth0"}]);
    node.cni(&Call::new("GC", "", None), &gc_conf).ok();
    let kept = results[0].2["interfaces"][0]["name"].as_str().unwrap();
    assert_eq!(node.ipam_files(), vec![result_ip(&results[0].2)]);
    assert_eq!(node.host_links(), vec![kept.to_owned()]);
    let wft: Vec<String> = node
        .ports()
        .into_iter()
        .filter(|p| p.1.starts_with("wft"))
        .map(|p| p.1)
        .collect();
    assert_eq!(wft, vec![kept.to_owned()]);
    assert_eq!(report_files(), vec!["gc0-eth0.json"]);
    let (ctr, path, r) = &results[0];
    node.cni(
        &Call::new("CHECK", ctr, Some(path.clone())),
        &with_prev(&conf, r),
    )
    .ok();
    // GC with an empty list removes the rest.
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    node.cni(&Call::new("GC", "", None), &gc_conf).ok();
    assert_clean(&node);
    assert!(report_files().is_empty(), "{:?}", report_files());
    // Not ready without switchd: 50.
    node.stop_switchd();
    assert_eq!(node.cni(&status, &conf).err_code(), 50);
}

#[test]
fn parallel_adds() {
    if !can_run("parallel_adds", &[]) {
        return;
    }
    const N: usize = 50;
    let mut node = Node::start("p");
    let conf = node.conf("1.1.0");
    let pods: Vec<(String, String)> = (0..N).map(|i| node.pod(i)).collect();
    let spawn_all = |cmd: &'static str| {
        let children: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, (_, path))| {
                let ctr = format!("par{i}");
                let call = Call::new(cmd, &ctr, Some(path.clone()));
                let mut c = call
                    .command(&common::cni_bin(), Some(&node.ns))
                    .spawn()
                    .unwrap();
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(conf.to_string().as_bytes())
                    .unwrap();
                c
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{cmd}: {} {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect::<Vec<_>>()
    };
    let outs = spawn_all("ADD");
    let ips: BTreeSet<String> = outs
        .iter()
        .map(|o| result_ip(&serde_json::from_str(o).unwrap()))
        .collect();
    assert_eq!(ips.len(), N, "distinct addresses");
    assert_eq!(node.ipam_files().len(), N);
    assert_eq!(node.host_links().len(), N);
    // The datapath reports opened ports with its next statistics round.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = node
            .ports()
            .into_iter()
            .filter(|p| p.1.starts_with("wft") && p.2)
            .count();
        if open == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {N} ports open in switchd"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    spawn_all("DEL");
    assert_clean(&node);
}

#[test]
fn kill9_during_add() {
    if !can_run("kill9_during_add", &[]) {
        return;
    }
    let mut node = Node::start("k");
    let conf = node.conf("1.1.0");
    let (_, other_path) = node.pod(99);
    // A bystander that must keep its address throughout.
    let bystander = node
        .cni(
            &Call::new("ADD", "bystander", Some(other_path.clone())),
            &conf,
        )
        .ok()
        .json;
    for (i, point) in [
        "ipam-linked",
        "allocated",
        "veth-created",
        "before-port-add",
    ]
    .into_iter()
    .enumerate()
    {
        let (_, path) = node.pod(i);
        let ctr = format!("crash{i}");
        let marker = node.dir.path().join(format!("paused-{i}"));
        let mut call = Call::new("ADD", &ctr, Some(path.clone()));
        call.extra_env.push((
            "WEFT_CNI_TEST_PAUSE".into(),
            format!("{point}:{}", marker.display()),
        ));
        let mut child = call
            .command(&common::cni_bin(), Some(&node.ns))
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(conf.to_string().as_bytes()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "{point}: plugin never paused");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let files_after_crash = node.ipam_files();
        assert_eq!(
            files_after_crash.len(),
            2,
            "{point}: the allocation is durable"
        );
        // Retry: same attachment, same address, no duplicate.
        let r = node
            .cni(&Call::new("ADD", &ctr, Some(path.clone())), &conf)
            .ok()
            .json;
        assert_eq!(
            node.ipam_files(),
            files_after_crash,
            "{point}: no second address"
        );
        assert!(files_after_crash.contains(&result_ip(&r)));
        assert_ne!(result_ip(&r), result_ip(&bystander));
        node.cni(
            &Call::new("CHECK", &ctr, Some(path.clone())),
            &with_prev(&conf, &r),
        )
        .ok();
        node.cni(&Call::new("DEL", &ctr, Some(path)), &conf).ok();
        assert_eq!(
            node.ipam_files(),
            vec![result_ip(&bystander)],
            "{point}: no leak"
        );
        assert_eq!(
            node.host_links().len(),
            1,
            "{point}: only the bystander's veth"
        );
    }
    node.cni(&Call::new("DEL", "bystander", Some(other_path)), &conf)
        .ok();
    assert_clean(&node);
}

#[test]
fn portmap_chain() {
    if !can_run(
        "portmap_chain",
        &["/usr/lib/cni/portmap", "/usr/sbin/iptables"],
    ) {
        return;
    }
    let mut node = Node::start("m");
    // Debian's plugins 1.1.1 speak up to 1.0.0: the whole list is 1.0.0.
    let conf = node.conf("1.0.0");
    let (_, path) = node.pod(1);
    let pm_conf = json!({
        "cniVersion": "1.0.0",
        "name": "weftnet",
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
        ]},
    });
    let portmap = std::path::PathBuf::from("/usr/lib/cni/portmap");
    let add = Call::new("ADD", "pm1", Some(path.clone()));
    let r1 = node.cni(&add, &conf).ok().json;
    check_result_shape(&r1, "1.0.0", &path);
    let r2 = add
        .run(&portmap, Some(&node.ns), &with_prev(&pm_conf, &r1))
        .ok()
        .json;
    assert_eq!(r2["ips"], r1["ips"], "portmap passes the result on");
    let ip = result_ip(&r1);
    let nat = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &node.ns, "iptables", "-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rules = nat();
    assert!(
        rules.contains(&format!("--to-destination {ip}:80")),
        "DNAT to the pod:\n{rules}"
    );
    // CHECK of weft-cni with the chain's final result. (Debian's portmap
    // 1.1.1 fails its own CHECK on an IPv4-only pod: it looks for an IPv6
    // DNAT chain it never created, so it is not run here.)
    let check = Call::new("CHECK", "pm1", Some(path.clone()));
    node.cni(&check, &with_prev(&conf, &r2)).ok();
    // DEL in reverse order.
    let del = Call::new("DEL", "pm1", Some(path));
    del.run(&portmap, Some(&node.ns), &with_prev(&pm_conf, &r2))
        .ok();
    node.cni(&del, &with_prev(&conf, &r2)).ok();
    assert!(!nat().contains(&ip), "DNAT removed:\n{}", nat());
    assert_clean(&node);
}

#[test]
fn switchd_down_and_restart() {
    if !can_run("switchd_down_and_restart", &[]) {
        return;
    }
    let mut node = Node::start("r");
    let conf = node.conf("1.1.0");
    let (_, p1) = node.pod(1);
    let (_, p2) = node.pod(2);
    let (_, p3) = node.pod(3);
    let r1 = node
        .cni(&Call::new("ADD", "up1", Some(p1.clone())), &conf)
        .ok()
        .json;
    let r2 = node
        .cni(&Call::new("ADD", "up2", Some(p2.clone())), &conf)
        .ok()
        .json;
    node.stop_switchd();
    // ADD while switchd is down: 11, and nothing allocated.
    let out = node.cni(&Call::new("ADD", "down3", Some(p3.clone())), &conf);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert_eq!(node.ipam_files().len(), 2);
    // DEL while switchd is down: 11 (retry), but the veth and the address
    // are already released.
    let out = node.cni(&Call::new("DEL", "up2", Some(p2.clone())), &conf);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert_eq!(node.ipam_files(), vec![result_ip(&r1)]);
    assert_eq!(node.host_links().len(), 1);
    // switchd comes back with its persisted ports: pod 1 checks out, the
    // retried DEL of pod 2 removes its stale port.
    node.start_switchd();
    node.cni(
        &Call::new("CHECK", "up1", Some(p1.clone())),
        &with_prev(&conf, &r1),
    )
    .ok();
    let stale = r2["interfaces"][0]["name"].as_str().unwrap().to_owned();
    assert!(
        node.ports().iter().any(|p| p.1 == stale),
        "switchd restored the stale port"
    );
    node.cni(&Call::new("DEL", "up2", Some(p2)), &conf).ok();
    let names: Vec<String> = node.ports().into_iter().map(|p| p.1).collect();
    assert_eq!(
        names,
        vec![r1["interfaces"][0]["name"].as_str().unwrap().to_owned()]
    );
    node.cni(&Call::new("ADD", "down3", Some(p3)), &conf).ok();
    node.cni(&Call::new("DEL", "down3", None), &conf).ok();
    node.cni(&Call::new("DEL", "up1", None), &conf).ok();
    assert_clean(&node);
}
