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

const TUNNEL_CONF: &str = "\
underlay 1                    # the NIC's port
host-port LOCAL
local-ip 192.0.2.1
local-mac 02:00:00:00:00:01
underlay-mtu 1500
tunnel-port 10=geneve         # flow-based
tunnel-port 11=vxlan,key=42,remote_ip=192.0.2.9
neighbor 192.0.2.7=02:00:00:00:00:07
neighbor 192.0.2.9=02:00:00:00:00:09
tlv-map {class=0xff57,type=0x80,len=4}->tun_metadata0
";

const TUNNEL_FLOWS: &str = "\
in_port=2,tcp,actions=set_field:192.0.2.7->tun_dst,set_field:42->tun_id,set_field:0x10002->tun_metadata0,output:10
in_port=2,udp,actions=output:11
in_port=10,actions=output:2
";

#[test]
fn tunnel_config_file_encapsulates_with_exact_outer_bytes() {
    let conf = tmp("tun.conf", TUNNEL_CONF);
    let f = tmp("tunflows", TUNNEL_FLOWS);
    let base = [
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--ports",
        "1-3,LOCAL",
        "--tunnel-config",
        conf.to_str().unwrap(),
        "--in-port",
        "2",
        "--json",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--flow",
        "tcp,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_src=1,tp_dst=80",
    ]);
    let v = json(&args);
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 1, "{v}");
    assert_eq!(outs[0]["port"], 1);
    let hex = outs[0]["hex"].as_str().unwrap();
    // Ethernet to the next hop from our MAC, IPv4 with DF, TTL 64, UDP to
    // 6081, Geneve with one critical option and VNI 42.
    assert!(hex.starts_with("0200000000070200000000010800"), "{hex}");
    assert_eq!(&hex[40..44], "4000", "DF, offset 0");
    assert_eq!(&hex[44..48], "4011", "TTL 64, UDP");
    assert_eq!(&hex[52..68], "c0000201c0000207");
    assert_eq!(&hex[72..76], "17c1", "UDP 6081");
    assert_eq!(
        &hex[84..116],
        "0240655800002a00ff57800100010002",
        "Geneve: 2 words of options, C, TEB, VNI 42; option"
    );
    // The fixed VXLAN port: remote and key from the port.
    let mut args = base.to_vec();
    args.extend([
        "--flow",
        "udp,nw_src=10.244.1.2,nw_dst=10.244.2.3,tp_dst=53",
    ]);
    let v = json(&args);
    let hex = v["outputs"][0]["hex"].as_str().unwrap().to_owned();
    assert!(hex.starts_with("020000000009"), "{hex}");
    assert_eq!(&hex[72..76], "12b5", "UDP 4789");
    assert_eq!(&hex[84..100], "0800000000002a00", "VXLAN I flag, VNI 42");
}

#[test]
fn tunnel_flags_decapsulate_a_capture() {
    let dir = std::env::var_os("WEFT_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"))
        });
    let pcap = dir.join("tcpdump-geneve.pcap");
    let f = tmp(
        "tunflows2",
        "in_port=10,tun_metadata0=0xc,actions=output:2\n",
    );
    let o = weftctl(&[
        "trace",
        "--offline",
        "--flows",
        f.to_str().unwrap(),
        "--in-port",
        "1",
        "--underlay",
        "1",
        "--local-ip",
        "20.0.0.2",
        "--tunnel-port",
        "10=geneve",
        "--tlv-map",
        "{class=0,type=0x80,len=4}->tun_metadata0",
        "--pcap",
        pcap.to_str().unwrap(),
        "--record",
        "1",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("tun_id=0xa,tun_src=20.0.0.1,tun_dst=20.0.0.2"),
        "{text}"
    );
    assert!(text.contains("tun_metadata0=0xc"), "{text}");
    assert!(
        text.contains("geneve packet on underlay port 1: decapsulated (58 outer bytes)"),
        "{text}"
    );
    assert!(text.contains("output 2: fe71d883724f"), "{text}");
    // Offline-only flags are refused online.
    let o = weftctl(&[
        "trace",
        "--underlay",
        "1",
        "--flow",
        "tcp",
        "--socket",
        "/nonexistent",
    ]);
    assert!(!o.status.success());
}
