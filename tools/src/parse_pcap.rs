//! `weftctl parse-pcap`: the flow key of every packet in a capture.
//!
//! Never panics, whatever the file holds: the pcap reader reports a bad
//! header or record as an error (printed, exit status 1 after the good
//! records), and each frame goes through the same extractor switchd uses.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use protocol::flow::FlowKey;
use protocol::flow::extract::{ExtractConfig, Extracted, extract};
use protocol::flow::key::{TUN_FLAG_CSUM, TUN_FLAG_KEY, TUN_FLAG_OAM};
use protocol::pcap::PcapReader;
use protocol::text::{flow_key_fields, format_flow_key};
use protocol::wire::{
    EtherType, GENEVE_UDP_PORT, GenevePacket, GeneveRepr, IpProtocol, Ipv4Packet, UdpPacket,
    VXLAN_UDP_PORT, VxlanPacket, VxlanRepr,
};
use serde_json::{Map, Value, json};

/// Arguments of `parse-pcap`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The capture (classic pcap, Ethernet link type).
    file: PathBuf,
    /// Print JSON (one array, one object per packet) instead of text.
    #[arg(long)]
    json: bool,
    /// The in_port to report (a pcap has no ports).
    #[arg(long, default_value_t = 1)]
    in_port: u32,
    /// How many VLAN tags to parse (OVS `vlan-limit`; 0 = as many as
    /// supported).
    #[arg(long, default_value_t = 1)]
    vlan_limit: u8,
    /// Do not decapsulate VXLAN/Geneve packets.
    #[arg(long)]
    no_decap: bool,
}

/// One decoded frame: its key, what went wrong, and the inner frame of a
/// tunnel packet.
struct Decoded {
    key: FlowKey,
    extracted: Extracted,
    tunnel: Option<Tunnel>,
}

struct Tunnel {
    kind: &'static str,
    vni: u32,
    /// (class, type, data) of each Geneve option.
    options: Vec<(u16, u8, Vec<u8>)>,
    /// The inner frame, when it is Ethernet.
    inner: Option<Box<Decoded>>,
    note: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let reader =
        PcapReader::new(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if reader.link_type() != protocol::pcap::LINKTYPE_ETHERNET {
        anyhow::bail!(
            "{}: link type {} is not Ethernet (1)",
            args.file.display(),
            reader.link_type()
        );
    }
    let cfg = ExtractConfig {
        vlan_limit: args.vlan_limit,
    };
    let mut json_out = Vec::new();
    let mut text = String::new();
    let mut status = ExitCode::SUCCESS;
    for (i, rec) in reader.records().enumerate() {
        let n = i + 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                eprintln!("weftctl: {}: {e}", args.file.display());
                status = ExitCode::FAILURE;
                break;
            }
        };
        let d = decode(rec.data, args.in_port, &cfg, !args.no_decap);
        if args.json {
            let mut o = to_json(&d);
            o.insert("index".into(), json!(n));
            o.insert("len".into(), json!(rec.data.len()));
            json_out.push(Value::Object(o));
        } else {
            let _ = writeln!(text, "{n}: {}", line(&d));
            if let Some(t) = &d.tunnel {
                write_tunnel_text(&mut text, t, "   ");
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_out)?);
    } else {
        print!("{text}");
    }
    Ok(status)
}

fn decode(frame: &[u8], in_port: u32, cfg: &ExtractConfig, decap: bool) -> Decoded {
    let mut key = FlowKey::default();
    key.set_in_port(in_port);
    let extracted = extract(frame, cfg, &mut key);
    let tunnel = if decap {
        decap_tunnel(frame, &key, &extracted, cfg)
    } else {
        None
    };
    Decoded {
        key,
        extracted,
        tunnel,
    }
}

/// Decapsulates a VXLAN or Geneve packet whose outer headers `outer`
/// describes, returning the tunnel and the inner frame's key with the
/// tunnel fields filled in as the switch fills them.
fn decap_tunnel(
    frame: &[u8],
    outer: &FlowKey,
    ex: &Extracted,
    cfg: &ExtractConfig,
) -> Option<Tunnel> {
    if !outer.is_ip() || outer.nw_proto() != u8::from(IpProtocol::Udp) {
        return None;
    }
    let port = outer.tp_dst();
    if port != VXLAN_UDP_PORT && port != GENEVE_UDP_PORT {
        return None;
    }
    let l4 = usize::from(ex.layers.l4);
    let udp = UdpPacket::new_checked(frame.get(l4..)?).ok()?;
    let csum = udp.checksum() != 0;
    let payload = udp.payload();
    let mut inner_key = FlowKey::default();
    inner_key.set_in_port(outer.in_port());
    if outer.dl_type() == u16::from(EtherType::Ipv4) {
        inner_key.set_tun_src(outer.nw_src());
        inner_key.set_tun_dst(outer.nw_dst());
    } else {
        inner_key.set_tun_ipv6_src(outer.ipv6_src());
        inner_key.set_tun_ipv6_dst(outer.ipv6_dst());
    }
    inner_key.set_tun_tos(outer.nw_tos());
    inner_key.set_tun_ttl(outer.nw_ttl());
    let df = dont_fragment(frame, ex);
    let mut flags = TUN_FLAG_KEY;
    if csum {
        flags |= TUN_FLAG_CSUM;
    }
    if df {
        flags |= protocol::flow::key::TUN_FLAG_DONT_FRAGMENT;
    }
    let (kind, vni, options, inner_bytes, note) = if port == VXLAN_UDP_PORT {
        let p = match VxlanPacket::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return Some(bad_tunnel("vxlan", e)),
        };
        let r = match VxlanRepr::parse(&p) {
            Ok(r) => r,
            Err(e) => return Some(bad_tunnel("vxlan", e)),
        };
        (("vxlan"), r.vni.get(), Vec::new(), Some(p.payload()), None)
    } else {
        let p = match GenevePacket::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return Some(bad_tunnel("geneve", e)),
        };
        let r = match GeneveRepr::parse(&p) {
            Ok(r) => r,
            Err(e) => return Some(bad_tunnel("geneve", e)),
        };
        if r.oam {
            flags |= TUN_FLAG_OAM;
        }
        let opts = r
            .options_iter()
            .filter_map(Result::ok)
            .map(|o| (o.class, o.kind, o.data.to_vec()))
            .collect();
        if r.protocol_type == EtherType::TransparentEthernet {
            ("geneve", r.vni.get(), opts, Some(p.payload()), None)
        } else {
            let note = format!(
                "inner packet has protocol type {} without an Ethernet header: not extracted",
                r.protocol_type
            );
            ("geneve", r.vni.get(), opts, None, Some(note))
        }
    };
    inner_key.set_tun_id(u64::from(vni));
    inner_key.set_tun_flags(flags);
    let inner = inner_bytes.map(|b| {
        let mut k = inner_key;
        let extracted = extract(b, cfg, &mut k);
        Box::new(Decoded {
            key: k,
            extracted,
            tunnel: None,
        })
    });
    Some(Tunnel {
        kind,
        vni,
        options,
        inner,
        note,
    })
}

/// The outer IPv4 header's DF bit, as OVS's native tunnel receive sets
/// `FLOW_TNL_F_DONT_FRAGMENT`; IPv6 has no DF bit, so an IPv6 underlay never
/// sets the flag.
fn dont_fragment(frame: &[u8], ex: &Extracted) -> bool {
    frame
        .get(usize::from(ex.layers.l3)..)
        .and_then(|b| Ipv4Packet::new_checked(b).ok())
        .is_some_and(|p| p.dont_frag())
}

fn bad_tunnel(kind: &'static str, e: protocol::wire::ParseError) -> Tunnel {
    Tunnel {
        kind,
        vni: 0,
        options: Vec::new(),
        inner: None,
        note: Some(format!("{kind}: {e}")),
    }
}

fn line(d: &Decoded) -> String {
    let mut s = format_flow_key(&d.key);
    if let Some(e) = &d.extracted.error {
        let _ = write!(s, " error: {}: {}", e.layer, e.error);
    }
    s
}

fn write_tunnel_text(out: &mut String, t: &Tunnel, indent: &str) {
    let _ = write!(out, "{indent}{} vni={}", t.kind, t.vni);
    for (class, kind, data) in &t.options {
        let _ = write!(
            out,
            " opt{{class=0x{class:04x},type=0x{kind:02x},len={}}}=0x",
            data.len()
        );
        for b in data {
            let _ = write!(out, "{b:02x}");
        }
    }
    out.push('\n');
    if let Some(n) = &t.note {
        let _ = writeln!(out, "{indent}{n}");
    }
    if let Some(inner) = &t.inner {
        let _ = writeln!(out, "{indent}inner: {}", line(inner));
    }
}

fn to_json(d: &Decoded) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("flow".into(), json!(format_flow_key(&d.key)));
    let fields: Map<String, Value> = flow_key_fields(&d.key)
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    o.insert("fields".into(), Value::Object(fields));
    o.insert(
        "error".into(),
        match &d.extracted.error {
            Some(e) => json!({"layer": e.layer.to_string(), "error": e.error.as_str(),
                              "message": e.error.to_string()}),
            None => Value::Null,
        },
    );
    if let Some(t) = &d.tunnel {
        let opts: Vec<Value> = t
            .options
            .iter()
            .map(|(c, k, data)| {
                json!({"class": c, "type": k, "critical": k & 0x80 != 0,
                       "data": data.iter().map(|b| format!("{b:02x}")).collect::<String>()})
            })
            .collect();
        let mut tj = Map::new();
        tj.insert("kind".into(), json!(t.kind));
        tj.insert("vni".into(), json!(t.vni));
        tj.insert("options".into(), Value::Array(opts));
        if let Some(n) = &t.note {
            tj.insert("note".into(), json!(n));
        }
        if let Some(inner) = &t.inner {
            tj.insert("inner".into(), Value::Object(to_json(inner)));
        }
        o.insert("tunnel".into(), Value::Object(tj));
    }
    o
}
