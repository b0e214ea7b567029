//! The `weft-cni` binary as a runtime runs it, without root: VERSION,
//! error codes and shapes for bad input, STATUS and ADD with switchd
//! absent (codes 50 and 11, nothing allocated).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Call, cni_bin};
use serde_json::{Value, json};

fn conf(dir: &std::path::Path, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "weftnet",
        "type": "weft-cni",
        "socket": dir.join("no-switchd.sock"),
        "ipam": {"subnet": "10.244.7.0/24", "dataDir": dir.join("ipam")},
    })
}

fn raw(call: &Call<'_>, stdin: &[u8]) -> common::CniOut {
    use std::io::Write;
    let mut child = call.command(&cni_bin(), None).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    common::CniOut {
        code: out.status.code().unwrap(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn version_lists_1_0_and_1_1() {
    let call = Call::new("VERSION", "c1", None);
    let out = raw(&call, b"").ok();
    assert_eq!(
        out.json,
        json!({"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]})
    );
    let out = raw(&call, br#"{"cniVersion":"1.0.0"}"#).ok();
    assert_eq!(out.json["cniVersion"], "1.0.0");
}

#[test]
fn bad_input_gets_spec_error_codes() {
    let d = tempfile::tempdir().unwrap();
    let add = Call::new("ADD", "c1", Some("/proc/self/ns/net".into()));
    // Unsupported versions: code 1, in an error printed in a version we speak.
    for v in ["0.4.0", "1.2.0", "2.0.0"] {
        let out = add.run(&cni_bin(), None, &conf(d.path(), v));
        assert_eq!(out.err_code(), 1, "{v}: {}", out.stdout);
        assert_eq!(out.json["cniVersion"], "1.1.0");
    }
    // Malformed JSON: 6.
    let out = raw(&add, b"{\"cniVersion\": \"1.1.0\", ");
    assert_eq!(out.err_code(), 6);
    // Wrong shape (no ipam): 6; bad value: 7, with the field named.
    let mut c = conf(d.path(), "1.0.0");
    c.as_object_mut().unwrap().remove("ipam");
    assert_eq!(add.run(&cni_bin(), None, &c).err_code(), 6);
    let mut c = conf(d.path(), "1.0.0");
    c["ipam"]["subnet"] = json!("10.244.7.0/40");
    let out = add.run(&cni_bin(), None, &c);
    assert_eq!(out.err_code(), 7);
    assert_eq!(
        out.json["cniVersion"], "1.0.0",
        "error in the config's version"
    );
    assert!(
        out.json["msg"].as_str().unwrap().contains("subnet"),
        "{}",
        out.json
    );
    // External IPAM: unsupported field, 2.
    let mut c = conf(d.path(), "1.1.0");
    c["ipam"]["type"] = json!("host-local");
    assert_eq!(add.run(&cni_bin(), None, &c).err_code(), 2);
    // Missing / bad environment: 4.
    let mut no_netns = add.clone();
    no_netns.netns = None;
    assert_eq!(
        no_netns
            .run(&cni_bin(), None, &conf(d.path(), "1.1.0"))
            .err_code(),
        4
    );
    let bad_if = Call {
        ifname: "much-too-long-ifname",
        ..add.clone()
    };
    assert_eq!(
        bad_if
            .run(&cni_bin(), None, &conf(d.path(), "1.1.0"))
            .err_code(),
        4
    );
    let bad_cmd = Call::new("FROB", "c1", None);
    assert_eq!(
        bad_cmd
            .run(&cni_bin(), None, &conf(d.path(), "1.1.0"))
            .err_code(),
        4
    );
    // STATUS and GC under 1.0.0: 1.
    let st = Call::new("STATUS", "c1", None);
    assert_eq!(
        st.run(&cni_bin(), None, &conf(d.path(), "1.0.0"))
            .err_code(),
        1
    );
}

#[test]
fn switchd_absent_means_try_again_later() {
    let d = tempfile::tempdir().unwrap();
    let c = conf(d.path(), "1.1.0");
    let add = Call::new("ADD", "c1", Some("/proc/self/ns/net".into()));
    let out = add.run(&cni_bin(), None, &c);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(out.json["msg"].as_str().unwrap().contains("unreachable"));
    // Nothing was allocated.
    let files = std::fs::read_dir(d.path().join("ipam/weftnet"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "no IPAM state for a refused ADD");
    // STATUS: 50.
    let out = Call::new("STATUS", "", None).run(&cni_bin(), None, &c);
    assert_eq!(out.err_code(), 50, "{}", out.stdout);
}
