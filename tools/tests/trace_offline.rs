//! `weftctl trace --offline` end to end: the real binary, JSON asserted.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn weftctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .args(args)
        .output()
        .expect("run weftctl")
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("weft-trace-{}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("write temp file");
    p
}

fn json(args: &[&str]) -> Value {
    let o = weftctl(args);
    assert!(
        o.status.success(),
        "status {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

const FLOWS: &str = "\
# table 0: classify
table=0,priority=100,tcp,tp_dst=80,actions=dec_ttl,mod_nw_dst:10.0.0.9,resubmit(,1)
table=0,priority=10,ip,actions=drop

table=1,actions=output:2,LOCAL,controller
";

#[test]
fn flow_input_outputs_packet_ins_and_rewrites() {
    let f = tmp("flows1", FLOWS);
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-5,LOCAL",
        "--in-port",
        "1",
        "--flow",
        "tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=1234,tp_dst=80",
        "--json",
    ]);
    assert_eq!(v["dropped"], false);
    assert_eq!(v["drop_reason"], Value::Null);
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0]["port"], 2);
    assert_eq!(outs[1]["port"], "LOCAL");
    let hex = outs[0]["hex"].as_str().unwrap();
    // TTL 63 (0x3f) at IPv4 byte 8, destination 10.0.0.9 at bytes 16..20.
    assert_eq!(&hex[(14 + 8) * 2..(14 + 9) * 2], "3f");
    assert_eq!(&hex[(14 + 16) * 2..(14 + 20) * 2], "0a000009");
    let pins = v["packet_ins"].as_array().unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0]["reason"], "action");
    assert_eq!(pins[0]["table"], 1);
    assert_eq!(pins[0]["hex"], outs[0]["hex"]);
    let walk = v["walk"].as_array().unwrap();
    assert_eq!(walk[0]["table"], 0);
    assert_eq!(walk[0]["rule"]["priority"], 100);
    let steps = walk[0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["action"], "dec_ttl");
    assert_eq!(steps[0]["changes"][0]["field"], "nw_ttl");
    assert_eq!(steps[0]["changes"][0]["new"], "63");
    assert_eq!(steps[2]["action"], "resubmit(,1)");
    assert_eq!(steps[2]["nested"][0]["table"], 1);
}

#[test]
fn hex_input_drop_and_miss_controller() {
    let f = tmp("flows2", FLOWS);
    // An ARP request: misses table 0.
    let arp =
        "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002";
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-3",
        "--packet",
        arp,
        "--json",
    ]);
    assert_eq!(v["dropped"], true);
    assert_eq!(v["drop_reason"], "table_miss");
    assert_eq!(v["walk"][0]["miss"], "drop");
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-3",
        "--packet",
        arp,
        "--table-miss",
        "0=controller",
        "--json",
    ]);
    assert_eq!(v["dropped"], false);
    assert_eq!(v["packet_ins"][0]["reason"], "no_match");
    assert_eq!(v["packet_ins"][0]["hex"], arp);
    // UDP hits the explicit drop rule.
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--flow",
        "udp,in_port=3",
        "--json",
    ]);
    assert_eq!(v["drop_reason"], "no_output");
}

#[test]
fn flood_with_port_config_and_frag_mode() {
    let f = tmp("flows3", "actions=FLOOD\n");
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-4",
        "--port-config",
        "3=no-flood",
        "--flow",
        "udp,in_port=1",
        "--json",
    ]);
    let ports: Vec<&Value> = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["port"])
        .collect();
    assert_eq!(ports, [&Value::from(2), &Value::from(4)]);
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-4",
        "--frag-mode",
        "drop",
        "--flow",
        "ip,nw_proto=17,nw_frag=first",
        "--json",
    ]);
    assert_eq!(v["drop_reason"], "fragment");
}

#[test]
fn pcap_record_and_text_output() {
    let dir = std::env::var_os("WEFT_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"))
        });
    let pcap = dir.join("tcpdump-vxlan.pcap");
    let f = tmp("flows4", "udp,tp_dst=4789,actions=output:2\n");
    let v = json(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-2",
        "--pcap",
        pcap.to_str().unwrap(),
        "--record",
        "1",
        "--json",
    ]);
    assert_eq!(v["outputs"][0]["port"], 2);
    let o = weftctl(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-2",
        "--pcap",
        pcap.to_str().unwrap(),
        "--record",
        "1",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("output to 2"), "{text}");
    assert!(text.starts_with("Flow: udp,in_port=1,"), "{text}");
}

#[test]
fn errors_are_reported_not_panics() {
    let f = tmp("flows5", "ip,actions=output:9\n");
    let o = weftctl(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-3",
        "--flow",
        "ip",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("flow 0") && err.contains("output"), "{err}");
    let o = weftctl(&["trace", "--flows", f.to_str().unwrap(), "--flow", "ip"]);
    assert_eq!(o.status.code(), Some(1), "without --offline");
    let o = weftctl(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--packet",
        "abc",
    ]);
    assert_eq!(o.status.code(), Some(1), "odd hex");
}
