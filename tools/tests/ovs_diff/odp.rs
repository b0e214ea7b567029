//! The compared header fields, read from Weft's output bytes or computed by
//! applying OVS's "Datapath actions:" to the input packet's fields.

use std::net::Ipv4Addr;

use protocol::flow::FlowKey;
use protocol::flow::extract::{ExtractConfig, extract};

/// The header fields compared for every output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hdr {
    pub(crate) dl_src: String,
    pub(crate) dl_dst: String,
    /// (vid, pcp) of the 802.1Q tags, outermost first (at most 2: the
    /// key holds 2; extraction runs with `vlan_limit: 2`).
    pub(crate) vlans: Vec<(u16, u8)>,
    pub(crate) dl_type: u16,
    pub(crate) nw_src: Ipv4Addr,
    pub(crate) nw_dst: Ipv4Addr,
    pub(crate) nw_ttl: u8,
    pub(crate) tp_src: u16,
    pub(crate) tp_dst: u16,
}

fn mac(b: &[u8; 6]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Hdr {
    /// The fields of a frame, as Weft's extractor sees them.
    pub(crate) fn of_frame(frame: &[u8]) -> Hdr {
        let mut k = FlowKey::default();
        let _ = extract(frame, &ExtractConfig { vlan_limit: 2 }, &mut k);
        // A present tag has the CFI bit (0x1000) set in the key, as in OVS.
        let vlans = [k.vlan0_tci(), k.vlan1_tci()]
            .into_iter()
            .take_while(|t| t & 0x1000 != 0)
            .map(|t| (t & 0x0fff, (t >> 13) as u8))
            .collect();
        Hdr {
            dl_src: mac(k.dl_src().as_bytes()),
            dl_dst: mac(k.dl_dst().as_bytes()),
            vlans,
            dl_type: k.dl_type(),
            nw_src: k.nw_src(),
            nw_dst: k.nw_dst(),
            nw_ttl: k.nw_ttl(),
            tp_src: k.tp_src(),
            tp_dst: k.tp_dst(),
        }
    }
}

/// Splits at top-level commas (not inside parentheses).
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// `name(k=v,k=v)` -> (name, [(k, v)]); a masked value `v/m` keeps `v`
/// only if the mask is all ones (OVS omits full masks), else is an error.
/// A parsed `name(k=v,...)`.
type Call<'a> = (&'a str, Vec<(&'a str, &'a str)>);

fn call(s: &str) -> Result<Call<'_>, String> {
    let (name, rest) = s
        .split_once('(')
        .ok_or_else(|| format!("not a call: {s}"))?;
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("unbalanced: {s}"))?;
    let mut kv = Vec::new();
    for item in split_top(inner) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("no '=' in {item:?} of {s}"))?;
        if v.contains('/') {
            return Err(format!("partially masked set: {s}"));
        }
        kv.push((k, v));
    }
    Ok((name, kv))
}

fn num<T: std::str::FromStr>(v: &str, s: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad number {v:?} in {s}"))
}

/// Port name used in the comparison: the number, or `LOCAL`.
pub(crate) fn port_name_dp(p: u32) -> String {
    // The bridge's internal port is datapath port 100 on the dummy
    // datapath (see `ovs-appctl dpif/show`).
    if p == 100 {
        "LOCAL".into()
    } else {
        p.to_string()
    }
}

/// The "Datapath actions:" line of an `ofproto/trace` output.
pub(crate) fn datapath_actions(trace: &str) -> Result<&str, String> {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .map(str::trim)
        .ok_or_else(|| "no 'Datapath actions:' line".to_string())
}

/// Applies datapath actions to `input`: the (port, header) of every
/// output in order. Unknown actions are an error (the case is reported).
pub(crate) fn apply(actions: &str, input: &Hdr) -> Result<Vec<(String, Hdr)>, String> {
    let mut h = input.clone();
    let mut outs = Vec::new();
    if actions == "drop" {
        return Ok(outs);
    }
    for a in split_top(actions) {
        if let Ok(p) = a.parse::<u32>() {
            outs.push((port_name_dp(p), h.clone()));
            continue;
        }
        if a == "pop_vlan" {
            if h.vlans.is_empty() {
                return Err("pop_vlan of an untagged packet".into());
            }
            h.vlans.remove(0);
            continue;
        }
        let (name, kv) = call(a)?;
        match name {
            "push_vlan" => {
                let mut vid = 0u16;
                let mut pcp = 0u8;
                for (k, v) in kv {
                    match k {
                        "vid" => vid = num(v, a)?,
                        "pcp" => pcp = num(v, a)?,
                        "tpid" if v == "0x8100" => {}
                        _ => return Err(format!("unknown push_vlan field {k}={v}")),
                    }
                }
                h.vlans.insert(0, (vid, pcp));
            }
            "set" => {
                let inner = a
                    .strip_prefix("set(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| format!("bad set: {a}"))?;
                let (layer, kv) = call(inner)?;
                for (k, v) in kv {
                    match (layer, k) {
                        ("eth", "src") => h.dl_src = v.to_string(),
                        ("eth", "dst") => h.dl_dst = v.to_string(),
                        ("ipv4", "src") => h.nw_src = num(v, a)?,
                        ("ipv4", "dst") => h.nw_dst = num(v, a)?,
                        ("ipv4", "ttl") => h.nw_ttl = num(v, a)?,
                        ("ipv4", "proto" | "tos" | "frag") => {}
                        ("tcp" | "udp", "src") => h.tp_src = num(v, a)?,
                        ("tcp" | "udp", "dst") => h.tp_dst = num(v, a)?,
                        _ => return Err(format!("unknown set field {layer}({k}={v})")),
                    }
                }
            }
            _ => return Err(format!("unknown datapath action {a:?}")),
        }
    }
    Ok(outs)
}

#[test]
fn apply_parses_sets_and_vlans() {
    let input = Hdr {
        dl_src: "00:00:00:00:00:01".into(),
        dl_dst: "00:00:00:00:00:02".into(),
        vlans: Vec::new(),
        dl_type: 0x0800,
        nw_src: Ipv4Addr::new(10, 0, 0, 1),
        nw_dst: Ipv4Addr::new(10, 0, 0, 2),
        nw_ttl: 64,
        tp_src: 1234,
        tp_dst: 80,
    };
    let outs = apply(
        "set(ipv4(dst=10.0.0.9,ttl=63)),set(tcp(dst=8080)),2,push_vlan(vid=5,pcp=0),100,pop_vlan,set(eth(src=00:00:00:00:00:09)),3",
        &input,
    )
    .unwrap();
    assert_eq!(outs.len(), 3);
    assert_eq!(outs[0].0, "2");
    assert_eq!(outs[0].1.nw_dst, Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(outs[0].1.nw_ttl, 63);
    assert_eq!(outs[0].1.tp_dst, 8080);
    assert_eq!(outs[1].0, "LOCAL");
    assert_eq!(outs[1].1.vlans, [(5, 0)]);
    assert!(outs[2].1.vlans.is_empty());
    assert_eq!(outs[2].1.dl_src, "00:00:00:00:00:09");
    assert!(apply("drop", &input).unwrap().is_empty());
    assert!(apply("userspace(pid=0)", &input).is_err());
    assert!(apply("set(ipv4(ttl=63/0xf0))", &input).is_err());
}
