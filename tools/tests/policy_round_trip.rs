//! `weftctl policy --protocol icmp` and `--round-trip` through the real
//! binary on the demo manifests (`examples/manifests`): ping and UDP
//! verdicts that cover the reply, as the demo's matrix expects them.
//!
//! What the manifests give (see `20-policies.yaml`): red-db/postgres is
//! isolated for ingress only, red-web/admin for egress only (TCP 8000-8999
//! and an outside block), blue-web/worker takes UDP `dns` (53) from the
//! blue frontend.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn weftctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weftctl"));
    c.arg("policy")
        .args(args)
        .arg("--manifests")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests"));
    let Some(input) = stdin else {
        return c.output().unwrap();
    };
    use std::io::Write as _;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&weftctl(&a, None))).unwrap()
}

#[test]
fn ping_round_trip_single_checks() {
    // Neither end isolated in the request's direction; the echo reply
    // returns through return-open-ingress (admin's isolated egress) and
    // return-open-egress (postgres' isolated ingress), both named.
    let v = json(&[
        "check",
        "--from",
        "red-db/postgres",
        "--to",
        "red-web/admin",
        "--protocol",
        "icmp",
        "--round-trip",
    ]);
    assert_eq!(v["protocol"], "ICMP");
    assert_eq!(v["port"], Value::Null);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["forward"]["verdict"], "allow");
    assert_eq!(v["reply"]["verdict"], "allow");
    assert_eq!(v["reply"]["delivered_to"][0], "red-db/postgres");
    let reply: Vec<String> = serde_json::from_value(v["reply"]["decided_by"].clone()).unwrap();
    assert!(
        reply
            .iter()
            .any(|d| d.ends_with("Infrastructure red-web/return-open-ingress"))
            && reply
                .iter()
                .any(|d| d.ends_with("Infrastructure red-db/return-open-egress")),
        "{reply:?}"
    );
    // The other way admin's egress isolation stops the request: no reply.
    let v = json(&[
        "check",
        "--from",
        "red-web/admin",
        "--to",
        "red-db/postgres",
        "--protocol",
        "ICMP",
        "--round-trip",
    ]);
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["reply"], Value::Null);
    // Forward only (no --round-trip): the echo request alone.
    let v = json(&[
        "check",
        "--from",
        "red-web/admin",
        "--to",
        "red-db/postgres",
        "--protocol",
        "icmp",
    ]);
    assert_eq!(v["verdict"], "deny");
    assert!(
        v["decided_by"][0]
            .as_str()
            .unwrap()
            .contains("red-web/isolation-egress"),
        "{v}"
    );
}

#[test]
fn udp_reply_dropped_where_kubernetes_would_allow_it() {
    // Kubernetes: postgres -> admin UDP 53 is allowed (nothing isolates
    // either end in that direction) and so are its replies. Weft: the
    // datagram arrives, admin's egress isolation drops the answer.
    let args = [
        "check",
        "--from",
        "red-db/postgres",
        "--to",
        "red-web/admin",
        "--protocol",
        "udp",
        "--port",
        "53",
    ];
    assert_eq!(json(&args)["verdict"], "allow");
    let mut rt = args.to_vec();
    rt.push("--round-trip");
    let v = json(&rt);
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["forward"]["verdict"], "allow");
    assert_eq!(v["reply"]["verdict"], "deny");
    let text = ok(&weftctl(&rt, None));
    assert!(text.starts_with("deny\n"), "{text}");
    assert!(
        text.contains("note: Kubernetes allows the replies"),
        "{text}"
    );
    // The DNS-like rule: the answer returns from port 53.
    let v = json(&[
        "check",
        "--from",
        "blue-web/frontend",
        "--to",
        "blue-web/worker",
        "--protocol",
        "udp",
        "--port",
        "53",
        "--round-trip",
    ]);
    assert_eq!(v["verdict"], "allow", "{v}");
    assert!(
        v["forward"]["decided_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("blue-web/dns-from-frontend")),
        "{v}"
    );
}

#[test]
fn matrix_and_batch_with_icmp() {
    let v = json(&[
        "matrix",
        "--probe",
        "icmp",
        "--probe",
        "udp/53",
        "--round-trip",
    ]);
    assert_eq!(v["round_trip"], true);
    let pods: Vec<String> = serde_json::from_value(v["pods"].clone()).unwrap();
    let at = |n: &str| pods.iter().position(|p| p == n).unwrap();
    let allowed = |m: &Value| -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, row) in m["cells"].as_array().unwrap().iter().enumerate() {
            for (j, c) in row.as_array().unwrap().iter().enumerate() {
                if i != j && c.as_bool().unwrap() {
                    out.push((pods[i].clone(), pods[j].clone()));
                }
            }
        }
        out
    };
    let (icmp, udp) = (&v["matrices"][0], &v["matrices"][1]);
    assert_eq!(icmp["protocol"], "ICMP");
    assert_eq!(
        allowed(icmp),
        [("red-db/postgres".to_owned(), "red-web/admin".to_owned())]
    );
    assert_eq!(udp["protocol"], "UDP");
    assert_eq!(udp["port"], 53);
    assert_eq!(
        allowed(udp),
        [("blue-web/frontend".to_owned(), "blue-web/worker".to_owned())]
    );
    // Forward only, UDP 53 also "allows" postgres -> admin.
    let f = json(&["matrix", "--probe", "udp/53"]);
    assert!(
        f["matrices"][0]["cells"][at("red-db/postgres")][at("red-web/admin")]
            .as_bool()
            .unwrap()
    );

    // Batch: `-` as the port of an ICMP line.
    let out = ok(&weftctl(
        &["check", "--probes", "-", "--round-trip"],
        Some(
            "red-db/postgres red-web/admin - ICMP\n\
             red-db/postgres red-web/admin 53 UDP\n\
             blue-web/frontend blue-web/worker 53 udp\n",
        ),
    ));
    assert_eq!(out, "allow\ndeny\nallow\n");
}

#[test]
fn icmp_with_a_port_and_tcp_without_are_refused() {
    let o = weftctl(
        &[
            "check",
            "--from",
            "red-db/postgres",
            "--to",
            "red-web/admin",
            "--protocol",
            "icmp",
            "--port",
            "8",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ICMP (ping) has no port"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = weftctl(
        &[
            "check",
            "--from",
            "red-db/postgres",
            "--to",
            "red-web/admin",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--port is required for TCP"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = weftctl(&["matrix", "--probe", "icmp/1"], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("icmp takes no port"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
