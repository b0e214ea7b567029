//! `weftctl trace`: run one packet through the real switchd pipeline and
//! print what happened, like `ovs-appctl ofproto/trace`.
//!
//! Online (the default): the running switchd traces the packet through
//! its current flows, ports and settings (a `protocol::ctl` `Trace`
//! request on `--socket`; nothing is sent and no counter changes) and
//! answers with the rendered text.
//!
//! Offline (`--offline`): the flows come from a file in `ovs-ofctl
//! add-flows` format (one flow per line, `#` comments, blank lines), the
//! ports and switch settings from flags.
//!
//! The packet is given as hex bytes (`--packet`), as a flow (`--flow
//! 'tcp,nw_src=...'`, turned into bytes by `packet_from_key`; sent online as
//! a flow key, which switchd turns into bytes the same way), or as a record
//! of a pcap file (`--pcap FILE --record N`, 1-based).
//!
//! Across nodes (`--from NS/POD --to NS/POD|IP`): the packet the source
//! pod would send, traced on the running switchds of every node it crosses
//! with the tunnel hop between them; see [`crate::trace_cluster`].
//!
//! Output: indented text. With `--json`, offline prints the trace JSON
//! documented in `weft_switchd::pipeline::trace` (`dropped`,
//! `drop_reason`, `outputs` with exact bytes in the order they leave,
//! `packet_ins`, `walk`); online prints `{"text": "..."}`, because the
//! protocol's `TraceResult` reply carries only the text.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use protocol::ctl::{Body, TraceInput};
use protocol::flow::{FlowSpec, PortNo, TableId};
use protocol::pcap::PcapReader;
use protocol::text::{parse_flow, parse_match};
use weft_switchd::buf::PacketBuf;

use crate::ctl_client::Client;
use protocol::ctl::TunnelConfig;
use protocol::wire::EthernetAddress;
use weft_switchd::pipeline::packet::packet_from_key;
use weft_switchd::pipeline::{
    CollectSink, FragMode, MissBehavior, PortConfig, SwitchConfig, TreeTrace, WorkerState, compile,
};
use weft_switchd::tunnel::{
    NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay, parse_tlv_map,
};

/// Arguments of `trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Work on files only (`--flows` and the setting flags) instead of
    /// asking the running switchd.
    #[arg(long)]
    offline: bool,
    /// Flows in `ovs-ofctl add-flows` format (`--offline` only, required
    /// there).
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// The ports that exist: `1-5`, `1,2,7`, `LOCAL` (comma-separated
    /// numbers, ranges and names). Without it, any port number is accepted
    /// and FLOOD/ALL/NORMAL have no port to flood to. `--offline` only.
    #[arg(long, value_name = "LIST")]
    ports: Option<String>,
    /// The input port (number or LOCAL); default: the flow's `in_port`, else 1.
    #[arg(long, value_name = "PORT")]
    in_port: Option<String>,
    /// The packet as hex bytes (spaces and colons allowed).
    #[arg(long, value_name = "HEX", group = "input")]
    packet: Option<String>,
    /// The packet as a flow (`tcp,nw_src=10.0.0.1,tp_dst=80`).
    #[arg(long, value_name = "FLOW", group = "input")]
    flow: Option<String>,
    /// Take the packet from this pcap file.
    #[arg(long, value_name = "FILE", group = "input", requires = "record")]
    pcap: Option<PathBuf>,
    /// Which record of `--pcap` (1-based).
    #[arg(long, value_name = "N")]
    record: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// VLAN tags parsed (OVS vlan-limit; default 1). `--offline` only.
    #[arg(long, value_name = "N")]
    vlan_limit: Option<u8>,
    /// Fragment handling: normal (default), drop or nx-match. `--offline`
    /// only.
    #[arg(long, value_name = "MODE")]
    frag_mode: Option<String>,
    /// Table-miss behaviour: `TABLE=drop|controller|continue` (repeatable).
    /// `--offline` only.
    #[arg(long, value_name = "T=MODE")]
    table_miss: Vec<String>,
    /// Port configuration: `PORT=no-flood[,no-forward,no-receive,no-packet-in]`
    /// (repeatable). `--offline` only.
    #[arg(long, value_name = "P=FLAGS")]
    port_config: Vec<String>,
    /// A tunnel port: `PORT=geneve|vxlan[,remote_ip=IP][,key=VNI]
    /// [,dst_port=N][,local_ip=IP]` (repeatable; options left out come
    /// from the flow). `--offline` only.
    #[arg(long, value_name = "P=KIND[,OPTS]")]
    tunnel_port: Vec<String>,
    /// The underlay port (outer frames leave and arrive here).
    /// `--offline` only.
    #[arg(long, value_name = "PORT")]
    underlay: Option<String>,
    /// The host port non-tunnel underlay traffic is bridged to (e.g.
    /// LOCAL); default: none, such frames go through the flows.
    #[arg(long, value_name = "PORT")]
    host_port: Option<String>,
    /// A local tunnel endpoint IP (repeatable: one IPv4, one IPv6).
    #[arg(long, value_name = "IP")]
    local_ip: Vec<String>,
    /// The MAC outer frames are sent from (default 02:00:00:00:00:01).
    #[arg(long, value_name = "MAC")]
    local_mac: Option<String>,
    /// The underlay's IP MTU (default 1500).
    #[arg(long, value_name = "N")]
    underlay_mtu: Option<u32>,
    /// A static next hop: `REMOTE_IP=MAC` (repeatable).
    #[arg(long, value_name = "IP=MAC")]
    neighbor: Vec<String>,
    /// Geneve option map, `ovs-ofctl add-tlv-map` syntax.
    #[arg(long, value_name = "MAP")]
    tlv_map: Option<String>,
    /// A file with the tunnel settings, one `key value` per line (keys:
    /// the flag names above without `--`; `#` comments). Flags add to it.
    #[arg(long, value_name = "FILE")]
    tunnel_config: Option<PathBuf>,
    /// Across the running cluster: the source pod (`NS/POD`). The packet is
    /// the one this pod would send to `--to`; it is traced on the live
    /// switchd of its node, through the tunnel, and on the destination
    /// node's switchd (see `--cluster`).
    #[arg(long, value_name = "NS/POD", requires = "to",
          conflicts_with_all = ["offline", "input", "in_port"])]
    from: Option<String>,
    /// Across the running cluster: the destination pod (`NS/POD`) or
    /// address.
    #[arg(long, value_name = "NS/POD|IP", requires = "from")]
    to: Option<String>,
    /// With `--from`: the destination port (TCP/UDP; default 80).
    #[arg(long, value_name = "N", requires = "from")]
    port: Option<u16>,
    /// With `--from`: tcp (a SYN; default), udp or icmp (echo request).
    #[arg(long, value_enum, requires = "from")]
    protocol: Option<crate::trace_cluster::Proto>,
    /// With `--from`: the controller's status file (`weft-controller
    /// --status`), or a directory holding `controller.json` (the demo's
    /// state directory, e.g. /run/weft-demo).
    #[arg(
        long,
        value_name = "FILE|DIR",
        env = "WEFT_CLUSTER",
        default_value = "/run/weft/controller.json"
    )]
    cluster: PathBuf,
    /// With `--from`: also print each node's switchd trace in full.
    #[arg(long, requires = "from")]
    full: bool,
}

/// The tunnel settings of an offline trace (flags and `--tunnel-config`).
#[derive(Debug, Default)]
struct TunnelArgs {
    tunnel_port: Vec<String>,
    underlay: Option<String>,
    host_port: Option<String>,
    local_ip: Vec<String>,
    local_mac: Option<String>,
    underlay_mtu: Option<u32>,
    neighbor: Vec<String>,
    tlv_map: Option<String>,
}

impl TunnelArgs {
    fn from_args(args: &Args) -> anyhow::Result<TunnelArgs> {
        let mut t = TunnelArgs::default();
        if let Some(path) = &args.tunnel_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                // `#` starts a comment (at the start or after a blank).
                let l = line
                    .split(" #")
                    .next()
                    .and_then(|l| l.split("\t#").next())
                    .unwrap_or_default()
                    .trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let at = || format!("{}:{}", path.display(), i + 1);
                let (k, v) = l
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| anyhow!("{}: want `key value`", at()))?;
                let v = v.trim().to_owned();
                match k {
                    "tunnel-port" => t.tunnel_port.push(v),
                    "underlay" => t.underlay = Some(v),
                    "host-port" => t.host_port = Some(v),
                    "local-ip" => t.local_ip.push(v),
                    "local-mac" => t.local_mac = Some(v),
                    "underlay-mtu" => {
                        t.underlay_mtu = Some(v.parse().with_context(|| format!("{}: mtu", at()))?)
                    }
                    "neighbor" => t.neighbor.push(v),
                    "tlv-map" => t.tlv_map = Some(v),
                    _ => bail!("{}: unknown key {k:?}", at()),
                }
            }
        }
        t.tunnel_port.extend(args.tunnel_port.iter().cloned());
        t.local_ip.extend(args.local_ip.iter().cloned());
        t.neighbor.extend(args.neighbor.iter().cloned());
        for (dst, src) in [
            (&mut t.underlay, &args.underlay),
            (&mut t.host_port, &args.host_port),
            (&mut t.local_mac, &args.local_mac),
            (&mut t.tlv_map, &args.tlv_map),
        ] {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        if args.underlay_mtu.is_some() {
            t.underlay_mtu = args.underlay_mtu;
        }
        Ok(t)
    }

    fn is_empty(&self) -> bool {
        self.tunnel_port.is_empty() && self.underlay.is_none() && self.tlv_map.is_none()
    }

    fn build(&self) -> anyhow::Result<Tunnels> {
        let mut ports = Vec::new();
        for tp in &self.tunnel_port {
            let (p, rest) = tp
                .split_once('=')
                .ok_or_else(|| anyhow!("bad --tunnel-port {tp:?} (want PORT=KIND[,OPTS])"))?;
            let port = parse_port(p)?;
            let mut items = rest.split(',').map(str::trim);
            let kind = match items.next() {
                Some("geneve") => TunnelKind::Geneve,
                Some("vxlan") => TunnelKind::Vxlan,
                k => bail!("--tunnel-port {tp:?}: kind {k:?} is not geneve or vxlan"),
            };
            let mut c = TunnelConfig::default();
            for it in items {
                let (k, v) = it
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--tunnel-port {tp:?}: {it:?} is not key=value"))?;
                let bad = |what: &str| anyhow!("--tunnel-port {tp:?}: bad {what} {v:?}");
                match k {
                    "remote_ip" => c.remote_ip = Some(v.parse().map_err(|_| bad(k))?),
                    "local_ip" => c.local_ip = Some(v.parse().map_err(|_| bad(k))?),
                    "key" => c.key = Some(parse_num(v).ok_or_else(|| bad(k))?),
                    "dst_port" => c.dst_port = Some(v.parse().map_err(|_| bad(k))?),
                    _ => bail!("--tunnel-port {tp:?}: unknown option {k:?}"),
                }
            }
            ports.push(TunnelPort::new(port, kind, c));
        }
        let underlay = match &self.underlay {
            None => None,
            Some(u) => {
                let mut local_ipv4 = None;
                let mut local_ipv6 = None;
                for ip in &self.local_ip {
                    match ip.parse::<IpAddr>() {
                        Ok(IpAddr::V4(a)) => local_ipv4 = Some(a),
                        Ok(IpAddr::V6(a)) => local_ipv6 = Some(a),
                        Err(_) => bail!("bad --local-ip {ip:?}"),
                    }
                }
                let local_mac = match &self.local_mac {
                    Some(m) => parse_mac(m).ok_or_else(|| anyhow!("bad --local-mac {m:?}"))?,
                    None => EthernetAddress([2, 0, 0, 0, 0, 1]),
                };
                Some(Underlay {
                    port: parse_port(u)?,
                    host_port: self.host_port.as_deref().map(parse_port).transpose()?,
                    local_ipv4,
                    local_ipv6,
                    local_mac,
                    mtu: self.underlay_mtu.unwrap_or(1500),
                })
            }
        };
        let mut hops = Vec::new();
        for n in &self.neighbor {
            let (ip, mac) = n
                .split_once('=')
                .ok_or_else(|| anyhow!("bad --neighbor {n:?} (want IP=MAC)"))?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| anyhow!("--neighbor {n:?}: bad IP"))?;
            let mac = parse_mac(mac).ok_or_else(|| anyhow!("--neighbor {n:?}: bad MAC"))?;
            hops.push((ip, mac));
        }
        let tlv = match &self.tlv_map {
            Some(m) => TlvMap::new(&parse_tlv_map(m).map_err(|e| anyhow!("--tlv-map: {e}"))?)?,
            None => TlvMap::default(),
        };
        Ok(Tunnels::new(
            ports,
            underlay,
            NextHops::from_entries(hops),
            tlv,
        )?)
    }
}

pub(crate) fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut b = [0u8; 6];
    let mut parts = s.split(':');
    for x in &mut b {
        *x = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(b))
}

fn parse_num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_port(s: &str) -> anyhow::Result<PortNo> {
    if let Some(p) = PortNo::from_reserved_name(s) {
        return Ok(p);
    }
    let n: u32 = s.parse().with_context(|| format!("bad port {s:?}"))?;
    if n == 0 || PortNo(n) > PortNo::MAX {
        bail!("port {n} out of range");
    }
    Ok(PortNo(n))
}

fn parse_ports(s: &str) -> anyhow::Result<Vec<PortNo>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_port(a)?, parse_port(b)?);
                if a > b || b.0 - a.0 > 65_536 {
                    bail!("bad port range {item:?}");
                }
                out.extend((a.0..=b.0).map(PortNo));
            }
            None => out.push(parse_port(item)?),
        }
    }
    Ok(out)
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(digits.get(i..i + 2).unwrap_or(""), 16)
                .with_context(|| format!("bad hex at {i}"))
        })
        .collect()
}

/// Reads an `add-flows` file.
pub(crate) fn read_flows(path: &PathBuf) -> anyhow::Result<Vec<FlowSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut flows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f = parse_flow(l).map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        flows.push(f);
    }
    Ok(flows)
}

fn config(args: &Args) -> anyhow::Result<SwitchConfig> {
    let mut cfg = match &args.ports {
        Some(p) => SwitchConfig::with_ports(parse_ports(p)?),
        None => SwitchConfig::default(),
    };
    cfg.vlan_limit = args.vlan_limit.unwrap_or(1);
    let frag_mode = args.frag_mode.as_deref().unwrap_or("normal");
    cfg.frag_mode = FragMode::from_name(frag_mode)
        .ok_or_else(|| anyhow!("bad --frag-mode {frag_mode:?} (normal, drop, nx-match)"))?;
    for tm in &args.table_miss {
        let (t, m) = tm
            .split_once('=')
            .ok_or_else(|| anyhow!("bad --table-miss {tm:?} (want TABLE=MODE)"))?;
        let t: u8 = t.parse().with_context(|| format!("bad table in {tm:?}"))?;
        if TableId(t) > TableId::MAX {
            bail!("table {t} out of range 0..=254");
        }
        let m = MissBehavior::from_name(m)
            .ok_or_else(|| anyhow!("bad mode in {tm:?} (drop, controller, continue)"))?;
        cfg.table_miss.insert(TableId(t), m);
    }
    for pc in &args.port_config {
        let (p, words) = pc
            .split_once('=')
            .ok_or_else(|| anyhow!("bad --port-config {pc:?} (want PORT=FLAGS)"))?;
        let p = parse_port(p)?;
        let entry = cfg.ports.entry(p).or_insert_with(PortConfig::default);
        for w in words.split(',') {
            if !entry.apply(w.trim()) {
                bail!("unknown port flag {w:?} (no-flood, no-forward, no-receive, no-packet-in)");
            }
        }
    }
    Ok(cfg)
}

/// The packet to trace (a flow stays a key, for the server) and the flow's
/// `in_port`, if it has one.
fn input(args: &Args) -> anyhow::Result<(TraceInput, Option<PortNo>)> {
    if let Some(h) = &args.packet {
        return Ok((TraceInput::Packet(parse_hex(h)?), None));
    }
    if let Some(f) = &args.flow {
        let m = parse_match(f).map_err(|e| anyhow!("--flow: {e}"))?;
        let (port, mask) = m.get(protocol::flow::Field::InPort);
        let in_port = (mask != 0).then_some(PortNo(port as u32));
        return Ok((TraceInput::Key(Box::new(m.key)), in_port));
    }
    if let Some(path) = &args.pcap {
        let n = args.record.unwrap_or(1);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let reader = PcapReader::new(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if n == 0 {
            bail!("--record is 1-based");
        }
        let rec = reader
            .records()
            .nth(n - 1)
            .ok_or_else(|| anyhow!("{}: no record {n}", path.display()))?
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        return Ok((TraceInput::Packet(rec.data.to_vec()), None));
    }
    bail!("give the packet with --packet, --flow or --pcap")
}

/// Runs `trace`: against switchd at `socket`, offline, or across the
/// cluster (`--from`).
pub(crate) fn run(socket: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let cluster = crate::trace_cluster::Cluster::load(&args.cluster)?;
        let t = crate::trace_cluster::trace(
            &cluster,
            from,
            to,
            args.protocol.unwrap_or(crate::trace_cluster::Proto::Tcp),
            args.port.unwrap_or(80),
        )?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&t)?);
        } else {
            print!("{}", crate::trace_cluster::render(&t, args.full));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (input, flow_port) = input(args)?;
    let in_port = match &args.in_port {
        Some(p) => parse_port(p)?,
        None => flow_port.unwrap_or(PortNo(1)),
    };
    if !args.offline {
        let offline_only = [
            ("--flows", args.flows.is_some()),
            ("--ports", args.ports.is_some()),
            ("--vlan-limit", args.vlan_limit.is_some()),
            ("--frag-mode", args.frag_mode.is_some()),
            ("--table-miss", !args.table_miss.is_empty()),
            ("--port-config", !args.port_config.is_empty()),
            ("--tunnel-port", !args.tunnel_port.is_empty()),
            ("--underlay", args.underlay.is_some()),
            ("--host-port", args.host_port.is_some()),
            ("--local-ip", !args.local_ip.is_empty()),
            ("--local-mac", args.local_mac.is_some()),
            ("--underlay-mtu", args.underlay_mtu.is_some()),
            ("--neighbor", !args.neighbor.is_empty()),
            ("--tlv-map", args.tlv_map.is_some()),
            ("--tunnel-config", args.tunnel_config.is_some()),
        ];
        if let Some((flag, _)) = offline_only.iter().find(|(_, given)| *given) {
            bail!("{flag} needs --offline (online, switchd's own flows and settings apply)");
        }
        return online(socket, args, in_port, input);
    }
    let Some(path) = &args.flows else {
        bail!("--offline needs --flows FILE");
    };
    let flows = read_flows(path)?;
    let mut cfg = config(args)?;
    let targs = TunnelArgs::from_args(args)?;
    let tunnels = if targs.is_empty() {
        Tunnels::default()
    } else {
        targs.build()?
    };
    if args.ports.is_some() {
        // Tunnel, underlay and host ports exist too.
        let extra = tunnels.ports().iter().map(|t| t.port).chain(
            tunnels
                .underlay()
                .into_iter()
                .flat_map(|u| [Some(u.port), u.host_port])
                .flatten(),
        );
        for p in extra {
            cfg.ports.entry(p).or_default();
        }
    }
    let pl = compile(&flows, cfg)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
        .with_tunnels(std::sync::Arc::new(tunnels));
    let bytes = match input {
        TraceInput::Packet(b) => b,
        TraceInput::Key(k) => packet_from_key(&k),
    };
    let mut ws = WorkerState::new(pl.config());
    let mut buf = PacketBuf::from_slice(&bytes);
    let mut trace = TreeTrace::new();
    let mut sink = CollectSink::default();
    let verdict = pl.process(&mut buf, in_port, 0, &mut ws, &mut sink, &mut trace);
    if args.json {
        let s = serde_json::to_string_pretty(&trace.to_json(&verdict))?;
        println!("{s}");
    } else {
        print!("{}", trace.to_text(&verdict));
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks switchd to trace the packet through its current pipeline.
fn online(
    socket: &Path,
    args: &Args,
    in_port: PortNo,
    input: TraceInput,
) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    let reply = c.request(Body::Trace { in_port, input });
    let _ = c.request(Body::Goodbye);
    let text = match reply? {
        Body::TraceResult { text } => text,
        b => bail!("unexpected reply to Trace: {b}"),
    };
    if args.json {
        let s = serde_json::to_string_pretty(&serde_json::json!({ "text": text }))?;
        println!("{s}");
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
