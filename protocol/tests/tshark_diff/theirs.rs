//! Running tshark once per pcap and flattening its JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// tshark's view of one packet.
pub(crate) struct TsharkPacket {
    /// `frame.protocols` split on `:`.
    pub(crate) chain: Vec<String>,
    /// Layer name -> one flattened field map per occurrence of the layer.
    pub(crate) layers: BTreeMap<String, Vec<Fields>>,
    /// Whether any layer (at any depth) holds `_ws.malformed`.
    pub(crate) malformed: bool,
    /// Layer names (in `layers`) holding an expert info of severity error
    /// or `_ws.malformed`, with the occurrence index.
    pub(crate) error_layers: Vec<(String, usize)>,
}

/// Field name -> values in document order (nested trees flattened).
pub(crate) type Fields = BTreeMap<String, Vec<String>>;

/// Severity "error" of tshark expert infos (PI_ERROR).
const PI_ERROR: &str = "8388608";

/// The arguments besides `-r FILE`. All protocols but the ones we compare
/// are disabled, so random ports cannot wake up other dissectors (and
/// their heuristics), and reassembly is off so every frame is dissected on
/// its own.
pub(crate) const TSHARK_ARGS: &[&str] = &[
    "-T",
    "json",
    "--no-duplicate-keys",
    "--disable-protocol",
    "ALL",
    "--enable-protocol",
    "eth,ethertype,vlan,ieee8021ad,arp,ip,ipv6,icmp,icmpv6,tcp,udp,sctp,vxlan,geneve,data",
    // Sub-dissectors that `ALL` leaves on.
    "--disable-protocol",
    "x11,pktc.mtafqdn,adwin_config,tpm,iax2,goose,enrp,echo,cotp,asterix",
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "sctp.checksum:CRC-32C",
    "-o",
    "ip.defragment:FALSE",
    "-o",
    "ipv6.defragment:FALSE",
    "-o",
    "tcp.desegment_tcp_streams:FALSE",
    "-o",
    "tcp.analyze_sequence_numbers:FALSE",
    "-o",
    "tcp.relative_sequence_numbers:FALSE",
    "-o",
    "sctp.reassembly:FALSE",
    "-o",
    "sctp.tsn_analysis:FALSE",
];

/// Whether tshark can be run.
pub(crate) fn available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs tshark on `pcap` (one invocation) and returns one entry per frame.
pub(crate) fn run(pcap: &Path, extra: &[&str]) -> Vec<TsharkPacket> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(TSHARK_ARGS)
        .args(extra)
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    json.as_array()
        .expect("tshark JSON is an array")
        .iter()
        .map(|p| parse_packet(&p["_source"]["layers"]))
        .collect()
}

fn parse_packet(layers: &Value) -> TsharkPacket {
    let obj = layers.as_object().expect("layers object");
    let chain = obj
        .get("frame")
        .and_then(|f| f.get("frame.protocols"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(':')
        .map(str::to_owned)
        .collect();
    let mut out = TsharkPacket {
        chain,
        layers: BTreeMap::new(),
        malformed: false,
        error_layers: vec![],
    };
    for (name, v) in obj {
        if name == "_ws.malformed" {
            out.malformed = true;
            out.error_layers.push((name.clone(), 0));
        }
        let occurrences: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut flat = vec![];
        for (i, occ) in occurrences.into_iter().enumerate() {
            let mut fields = Fields::new();
            let mut err = false;
            flatten(name, occ, 0, &mut fields, &mut err);
            if err {
                out.error_layers.push((name.clone(), i));
            }
            if fields.contains_key("_ws.malformed") {
                out.malformed = true;
            }
            flat.push(fields);
        }
        out.layers.insert(name.clone(), flat);
    }
    out
}

/// Renames of top-level keys whose name tshark reuses for a nested field.
fn rename(layer: &str, key: &str) -> String {
    match (layer, key) {
        ("geneve", "geneve.option.length") => "geneve.options_length".into(),
        _ => key.into(),
    }
}

fn flatten(layer: &str, v: &Value, depth: usize, out: &mut Fields, err: &mut bool) {
    let Value::Object(m) = v else { return };
    for (k, v) in m {
        if k == "_ws.expert.severity" && v.as_str() == Some(PI_ERROR) {
            *err = true;
        }
        if k == "_ws.malformed" {
            *err = true;
        }
        let key = if depth == 0 {
            rename(layer, k)
        } else {
            k.clone()
        };
        match v {
            Value::String(s) => out.entry(key).or_default().push(s.clone()),
            Value::Array(a) => {
                for e in a {
                    match e {
                        Value::String(s) => out.entry(key.clone()).or_default().push(s.clone()),
                        Value::Object(_) => flatten(layer, e, depth + 1, out, err),
                        _ => {}
                    }
                }
            }
            Value::Object(_) => {
                // Record the key itself too ("_ws.malformed": {...}).
                out.entry(key.clone()).or_default();
                flatten(layer, v, depth + 1, out, err)
            }
            _ => {}
        }
    }
}
