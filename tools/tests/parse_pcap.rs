//! `weftctl parse-pcap` end to end: the real binary on real captures, on
//! truncated and corrupted files, and on garbage.

use std::path::PathBuf;
use std::process::{Command, Output};

fn pcaps_dir() -> PathBuf {
    std::env::var_os("WEFT_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"))
        })
}

fn weftctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .args(args)
        .output()
        .expect("run weftctl")
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("weft-parse-pcap-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

fn assert_no_panic(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "weftctl panicked: {err}");
    // 101 is Rust's panic exit status.
    assert_ne!(o.status.code(), Some(101), "stderr: {err}");
}

#[test]
fn every_shared_capture_parses() {
    let dir = pcaps_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pcap") {
            continue;
        }
        seen += 1;
        let o = weftctl(&["parse-pcap", path.to_str().unwrap()]);
        assert_no_panic(&o);
        assert!(
            o.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8(o.stdout).unwrap();
        let records = out.lines().filter(|l| !l.starts_with(' ')).count();
        assert!(records >= 1, "{}: no records", path.display());
        let j = weftctl(&["parse-pcap", "--json", path.to_str().unwrap()]);
        assert!(j.status.success());
        let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), records, "{}", path.display());
    }
    assert!(
        seen >= 7,
        "expected the 7 shared captures in {}",
        dir.display()
    );
}

#[test]
fn geneve_capture_shows_outer_and_inner_flows() {
    let path = pcaps_dir().join("tcpdump-geneve.pcap");
    let o = weftctl(&["parse-pcap", path.to_str().unwrap()]);
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    let first: Vec<&str> = out.lines().take(3).collect();
    // Packet 1: outer UDP to 6081 between the tunnel endpoints, then the
    // Geneve header with its critical option, then the inner ICMP flow with
    // the tunnel fields a switch would fill in.
    assert!(first[0].starts_with("1: udp,in_port=1,"), "{}", first[0]);
    assert!(
        first[0].contains("nw_src=20.0.0.1,nw_dst=20.0.0.2"),
        "{}",
        first[0]
    );
    assert!(first[0].contains("tp_dst=6081"), "{}", first[0]);
    assert!(first[1].contains("geneve vni=10"), "{}", first[1]);
    assert!(
        first[1].contains("class=0x0000,type=0x80,len=4}=0x0000000c"),
        "{}",
        first[1]
    );
    assert!(first[2].contains("inner: icmp,"), "{}", first[2]);
    assert!(first[2].contains("tun_id=0xa"), "{}", first[2]);
    assert!(
        first[2].contains("tun_src=20.0.0.1,tun_dst=20.0.0.2"),
        "{}",
        first[2]
    );
    assert!(
        first[2].contains("nw_src=30.0.0.1,nw_dst=30.0.0.2"),
        "{}",
        first[2]
    );

    let j = weftctl(&["parse-pcap", "--json", path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let p1 = &v[0];
    assert_eq!(p1["fields"]["tp_dst"], "6081");
    assert_eq!(p1["tunnel"]["vni"], 10);
    assert_eq!(p1["tunnel"]["options"][0]["critical"], true);
    assert_eq!(p1["tunnel"]["inner"]["fields"]["nw_src"], "30.0.0.1");
    assert!(p1["error"].is_null());
}

#[test]
fn truncated_file_prints_good_records_then_fails() {
    let bytes = std::fs::read(pcaps_dir().join("tcpdump-vxlan.pcap")).unwrap();
    // Global header + first record (16 + 148 bytes) + half of the second.
    let cut = 24 + 16 + 148 + 60;
    let p = tmp("truncated.pcap", &bytes[..cut]);
    let o = weftctl(&["parse-pcap", p.to_str().unwrap()]);
    assert_no_panic(&o);
    assert!(!o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("1: udp,"), "{out}");
    assert!(!out.contains("\n2: "), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("record"),
        "stderr names the record"
    );
    std::fs::remove_file(p).ok();
}

#[test]
fn malformed_packets_print_partial_keys_and_errors() {
    // A pcap with one frame: Ethernet + IPv4 header claiming TCP, cut in the
    // middle of the TCP header.
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[
        0x45, 0, 0, 30, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    frame.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 0, 0, 0]);
    let mut w = protocol::pcap::PcapWriter::new(protocol::pcap::LINKTYPE_ETHERNET);
    w.push(0, 0, &frame);
    let p = tmp("malformed.pcap", &w.into_bytes());
    let o = weftctl(&["parse-pcap", p.to_str().unwrap()]);
    assert_no_panic(&o);
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("nw_src=10.0.0.1,nw_dst=10.0.0.2"), "{out}");
    assert!(out.contains("tp_src=0,tp_dst=0"), "{out}");
    assert!(out.contains("error: l4: truncated packet"), "{out}");
    std::fs::remove_file(p).ok();
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random files, plus corrupted real captures.
    let real = std::fs::read(pcaps_dir().join("tcpdump-geneve.pcap")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..40 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let n = (next() % 400) as usize;
            (0..n).map(|_| next() as u8).collect()
        } else {
            let mut b = real.clone();
            for _ in 0..8 {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
            b
        };
        let p = tmp(&format!("garbage-{i}.pcap"), &bytes);
        for args in [&["parse-pcap"][..], &["parse-pcap", "--json"][..]] {
            let mut a = args.to_vec();
            a.push(p.to_str().unwrap());
            assert_no_panic(&weftctl(&a));
        }
        std::fs::remove_file(p).ok();
    }
    // A record header claiming a 2 GiB record.
    let mut huge = real[..24].to_vec();
    huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80]);
    let p = tmp("huge.pcap", &huge);
    let o = weftctl(&["parse-pcap", p.to_str().unwrap()]);
    assert_no_panic(&o);
    assert!(!o.status.success());
    std::fs::remove_file(p).ok();
}

#[test]
fn tunnel_flags_follow_the_underlay() {
    // IPv4 underlay with DF set: df appears; IPv6 underlay (no DF bit in
    // IPv6) with a UDP checksum: csum but never df.
    let run = |name: &str| {
        let path = pcaps_dir().join(name);
        let o = weftctl(&["parse-pcap", "--json", path.to_str().unwrap()]);
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["tunnel"]["inner"]["fields"]["tun_flags"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(run("tcpdump-geneve.pcap"), "df|key");
    let v6 = run("tcpdump-gso-ipv6-geneve-ipv6.pcap");
    assert!(!v6.contains("df"), "{v6}");
    assert!(v6.contains("key"), "{v6}");
}
