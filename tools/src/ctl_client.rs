//! weftctl's switchd socket commands: a small blocking `protocol::ctl`
//! client and one function per subcommand. Text output follows
//! `ovs-ofctl` (`dump-flows` lines can be fed back to `add-flows`);
//! `--json` prints one JSON document.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use protocol::ctl::{
    Body, DatapathStats, FlowEntryStats, FlowFilter, FlowModify, FrameDecoder, Message,
    NeighbourOrigin, NodeEntry, PortInfo, PortKind, PortOffloadInfo, PortOptions, PortRef,
    TlvMapping, TunnelConfig, TunnelStatus, UnderlayConfig, decode_message, encode_frame,
    supported_versions,
};
use protocol::flow::{Cookie, FlowSpec, PortNo, Priority, TableId};
use protocol::text::{FlowStats, format_flow, format_flow_with_stats, parse_flow, parse_match};
use serde_json::json;
use weft_switchd::tunnel::{format_tlv_mapping, parse_tlv_map};

/// How long to wait for a reply.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A connected, greeted session.
#[derive(Debug)]
pub(crate) struct Client {
    stream: UnixStream,
    dec: FrameDecoder,
    next_id: u64,
    /// The server's name from `HelloReply`.
    pub(crate) server: String,
    /// The protocol version negotiated.
    pub(crate) version: u16,
}

impl Client {
    /// Connects to `path` and says Hello.
    ///
    /// # Errors
    /// Connection, protocol or version errors.
    pub(crate) fn connect(path: &Path) -> Result<Client> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to switchd at {}", path.display()))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut c = Client {
            stream,
            dec: FrameDecoder::new(),
            next_id: 1,
            server: String::new(),
            version: 0,
        };
        match c.request(Body::Hello {
            versions: supported_versions(),
            client: concat!("weftctl ", env!("CARGO_PKG_VERSION")).into(),
        })? {
            Body::HelloReply { server, version } => {
                c.server = server;
                c.version = version;
            }
            b => bail!("unexpected reply to Hello: {b}"),
        }
        Ok(c)
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.dec.next_frame()? {
                return Ok(decode_message(&frame)?);
            }
            let n = self.stream.read(&mut buf).context("reading reply")?;
            if n == 0 {
                bail!("switchd closed the connection");
            }
            self.dec.push(buf.get(..n).unwrap_or_default());
        }
    }

    fn send(&mut self, body: Body) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&Message { id, body })?;
        self.stream.write_all(&frame).context("sending request")?;
        Ok(id)
    }

    /// Sends `body` and returns the reply body; an `Error` reply is an `Err`.
    ///
    /// # Errors
    /// I/O, decoding, or the server's error.
    pub(crate) fn request(&mut self, body: Body) -> Result<Body> {
        let id = self.send(body)?;
        let m = self.read_message()?;
        if m.id != id {
            bail!("reply id {} does not match request id {id}", m.id);
        }
        match m.body {
            Body::Error(e) => Err(anyhow!(e)),
            b => Ok(b),
        }
    }

    /// Dumps flows, following `more` replies.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub(crate) fn dump_flows(&mut self, filter: FlowFilter) -> Result<Vec<FlowEntryStats>> {
        let id = self.send(Body::DumpFlows {
            filter,
            with_stats: true,
        })?;
        let mut out = Vec::new();
        loop {
            let m = self.read_message()?;
            if m.id != id {
                bail!("reply id {} does not match request id {id}", m.id);
            }
            match m.body {
                Body::Flows { entries, more } => {
                    out.extend(entries);
                    if !more {
                        return Ok(out);
                    }
                }
                Body::Error(e) => return Err(anyhow!(e)),
                b => bail!("unexpected reply: {b}"),
            }
        }
    }
}

/// `--json`.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Port types `add-port` accepts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PortType {
    /// An existing interface through an AF_PACKET socket.
    Afpacket,
    /// An existing interface (a pod's veth) through an AF_XDP socket and
    /// an XDP redirect program; falls back to AF_PACKET if AF_XDP cannot
    /// be set up (`show` says which serves it). The peer must complete
    /// its checksums (`ethtool -K PEER tx off`).
    Afxdp,
    /// A TAP device created by switchd.
    Tap,
    /// The host stack's port: a TAP created by switchd, `LOCAL` if it is
    /// the first (OVS `internal`).
    Internal,
    /// A flow-based Geneve tunnel port (UDP 6081).
    Geneve,
    /// A flow-based VXLAN tunnel port (UDP 4789).
    Vxlan,
}

/// `on` / `off` of `add-port --offloads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Tunnel options of `add-port` (OVS `options:`); absent means "from the
/// flow" (`tun_dst`, `tun_id`).
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct TunnelOptions {
    /// Fixed remote endpoint.
    #[arg(long)]
    remote_ip: Option<std::net::IpAddr>,
    /// Fixed local endpoint.
    #[arg(long)]
    local_ip: Option<std::net::IpAddr>,
    /// Fixed VNI (24 bits).
    #[arg(long)]
    key: Option<u32>,
    /// UDP destination port (default 6081 Geneve, 4789 VXLAN).
    #[arg(long)]
    dst_port: Option<u16>,
}

/// The socket subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SocketCommand {
    /// Add one flow (`ovs-ofctl add-flow` syntax); an identical
    /// table+priority+match replaces the existing flow.
    AddFlow {
        /// The flow.
        flow: String,
        #[command(flatten)]
        out: Output,
    },
    /// Add the flows of FILE (one per line, `#` comments; `-` is stdin),
    /// all or nothing.
    AddFlows {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Make the flow table exactly the flows of FILE (unchanged flows keep
    /// their counters).
    ReplaceFlows {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Change the actions of the flows FLOW's match selects.
    ModFlows {
        /// The flow (match and actions).
        flow: String,
        /// Only the flow with exactly this match and priority.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Delete flows: all, or those MATCH selects (`table=`, `priority=`
    /// with `--strict`, `cookie=C/M`, `out_port=` allowed).
    DelFlows {
        /// The match.
        r#match: Option<String>,
        /// Only the flow with exactly this match and priority.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Print flows with statistics (`ovs-ofctl dump-flows` format).
    DumpFlows {
        /// Only flows this match selects.
        r#match: Option<String>,
        /// Leave out statistics (output is `add-flows` input).
        #[arg(long)]
        no_stats: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Add a port.
    AddPort {
        /// Interface name.
        name: String,
        /// What backs it.
        #[arg(long = "type", value_enum)]
        kind: PortType,
        /// Requested OpenFlow port number (`LOCAL` for an internal port).
        #[arg(long)]
        ofport: Option<String>,
        #[command(flatten)]
        tunnel: TunnelOptions,
        /// Checksum/TSO/GSO offloads through the switch (vnet headers on
        /// the AF_PACKET socket or TAP); default on. `off` for a device
        /// whose peer sends plain frames only; `show` says what the
        /// kernel accepted.
        #[arg(long, value_enum)]
        offloads: Option<OnOff>,
        #[command(flatten)]
        out: Output,
    },
    /// Delete a port by name or number.
    DelPort {
        /// Name or number.
        port: String,
        #[command(flatten)]
        out: Output,
    },
    /// Print ports with counters.
    DumpPorts {
        #[command(flatten)]
        out: Output,
    },
    /// Print the switch and its ports.
    Show {
        #[command(flatten)]
        out: Output,
    },
    /// Print per-table flow counts.
    DumpTables {
        #[command(flatten)]
        out: Output,
    },
    /// Add or update a node of the node table (node name -> underlay IP).
    AddNode {
        /// Node name.
        name: String,
        /// Its tunnel endpoint address.
        ip: std::net::IpAddr,
        #[command(flatten)]
        out: Output,
    },
    /// Remove nodes from the node table.
    DelNode {
        /// Node names.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Print the node table.
    DumpNodes {
        #[command(flatten)]
        out: Output,
    },
    /// Choose the underlay: the afpacket port facing the underlay network
    /// and the port holding the node's address (see README, Tunnels).
    SetUnderlay {
        /// The afpacket port on the underlay NIC (or veth).
        #[arg(long, required_unless_present = "clear")]
        port: Option<String>,
        /// The internal (or tap, or veth afpacket) port with the node's IP.
        #[arg(long, required_unless_present = "clear")]
        host_port: Option<String>,
        /// Local tunnel endpoint (default: the host port's first address).
        #[arg(long)]
        local_ip: Option<std::net::IpAddr>,
        /// Remove the underlay configuration.
        #[arg(long, conflicts_with_all = ["port", "host_port", "local_ip"])]
        clear: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Print the underlay, tunnel ports (overhead, pod MTU) and next hops.
    DumpTunnels {
        #[command(flatten)]
        out: Output,
    },
    /// Add Geneve option mappings (`ovs-ofctl add-tlv-map` syntax:
    /// `{class=0xffff,type=0,len=4}->tun_metadata0,...`) to the switch's
    /// TLV map; an option or slot already mapped is an error.
    AddTlvMap {
        /// The mappings.
        map: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove Geneve option mappings (all without an argument).
    DelTlvMap {
        /// The mappings to remove (same syntax as add-tlv-map).
        map: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Print the Geneve option map.
    DumpTlvMap {
        #[command(flatten)]
        out: Output,
    },
    /// Print datapath counters: packets and drops by reason.
    DumpStats {
        #[command(flatten)]
        out: Output,
    },
}

fn tunnels(c: &mut Client) -> Result<TunnelStatus> {
    match c.request(Body::DumpTunnels)? {
        Body::Tunnels(t) => Ok(t),
        b => bail!("unexpected reply: {b}"),
    }
}

fn nodes(c: &mut Client) -> Result<Vec<NodeEntry>> {
    match c.request(Body::DumpNodes)? {
        Body::Nodes(n) => Ok(n),
        b => bail!("unexpected reply: {b}"),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn tunnel_config_text(c: &TunnelConfig) -> String {
    let mut parts = vec![
        format!(
            "remote_ip={}",
            c.remote_ip
                .map_or_else(|| "flow".to_owned(), |v| v.to_string())
        ),
        format!(
            "key={}",
            c.key.map_or_else(|| "flow".to_owned(), |v| v.to_string())
        ),
    ];
    if let Some(l) = c.local_ip {
        parts.push(format!("local_ip={l}"));
    }
    if let Some(p) = c.dst_port {
        parts.push(format!("dst_port={p}"));
    }
    parts.join(",")
}

fn tunnels_json(t: &TunnelStatus) -> serde_json::Value {
    json!({
        "underlay": t.underlay.as_ref().map(|u| json!({
            "port": u.port, "host_port": u.host_port, "local_ip": u.local_ip.map(|i| i.to_string()),
        })),
        "local_ip": t.local_ip.map(|i| i.to_string()),
        "local_mac": t.local_mac.map(|m| m.to_string()),
        "underlay_mtu": t.underlay_mtu,
        "ports": t.ports.iter().map(|p| json!({
            "ofport": p.port.0, "name": p.name, "type": p.kind.name(),
            "overhead": p.overhead, "pod_mtu": p.pod_mtu,
        })).collect::<Vec<_>>(),
        "next_hops": t.next_hops.iter().map(|h| json!({
            "remote": h.remote.to_string(),
            "gateway": h.gateway.map(|g| g.to_string()),
            "mac": h.mac.map(|m| m.to_string()),
            "origin": origin_name(h.origin),
        })).collect::<Vec<_>>(),
    })
}

fn origin_name(o: NeighbourOrigin) -> &'static str {
    match o {
        NeighbourOrigin::Kernel => "kernel",
        NeighbourOrigin::Learned => "learned",
        NeighbourOrigin::Unresolved => "unresolved",
    }
}

fn print_tunnels(t: &TunnelStatus) {
    match &t.underlay {
        Some(u) => println!(
            " underlay: port={} host_port={} local_ip={} local_mac={} mtu={}",
            u.port,
            u.host_port,
            opt(t.local_ip),
            opt(t.local_mac),
            t.underlay_mtu
        ),
        None => println!(" underlay: none (weftctl set-underlay)"),
    }
    for p in &t.ports {
        println!(
            " tunnel {}({}): overhead={} recommended pod MTU={}",
            p.port.0, p.name, p.overhead, p.pod_mtu
        );
    }
    for h in &t.next_hops {
        println!(
            " next hop {}: via={} mac={} ({})",
            h.remote,
            h.gateway
                .map_or_else(|| "on-link".to_owned(), |g| g.to_string()),
            opt(h.mac),
            origin_name(h.origin)
        );
    }
}

fn stats_json(s: &DatapathStats) -> serde_json::Value {
    let drops: serde_json::Map<String, serde_json::Value> = s
        .drops
        .iter()
        .map(|d| (d.reason.clone(), json!(d.count)))
        .collect();
    json!({"packets": s.packets, "outputs": s.outputs, "packet_ins": s.packet_ins, "drops": drops})
}

/// Parses a `del-flows`/`dump-flows` pattern: a match plus the keywords
/// `table=`, `priority=`, `cookie=C[/M]`, `out_port=`.
///
/// # Errors
/// Unparsable values or match.
pub(crate) fn parse_filter(s: &str) -> Result<FlowFilter> {
    let mut f = FlowFilter::default();
    let mut rest: Vec<&str> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        match k {
            "table" => f.table = Some(TableId(v.parse().context("table")?)),
            "priority" => f.priority = Some(Priority(v.parse().context("priority")?)),
            "out_port" => {
                f.out_port = Some(
                    PortNo::from_reserved_name(v)
                        .map_or_else(|| v.parse().map(PortNo), Ok)
                        .context("out_port")?,
                )
            }
            "cookie" => {
                let (c, m) = v.split_once('/').unwrap_or((v, "0xffffffffffffffff"));
                f.cookie = Cookie(parse_u64(c).context("cookie")?);
                f.cookie_mask = parse_u64(m).context("cookie mask")?;
            }
            _ => rest.push(item),
        }
    }
    f.r#match = parse_match(&rest.join(",")).map_err(|e| anyhow!("match: {e}"))?;
    Ok(f)
}

fn parse_u64(s: &str) -> Result<u64> {
    Ok(match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16)?,
        None => s.parse()?,
    })
}

/// Reads a flows file (`-` = stdin): one flow per line, blank lines and
/// `#` comments skipped; errors name the line.
///
/// # Errors
/// I/O or a line that does not parse.
pub(crate) fn read_flows(path: &Path) -> Result<Vec<FlowSpec>> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().lock().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut flows = Vec::new();
    for (i, line) in text.as_bytes().lines().enumerate() {
        let line = line?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        flows.push(parse_flow(t).map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?);
    }
    Ok(flows)
}

fn print_changed(b: &Body, out: &Output) {
    if let Body::FlowsChanged(c) = b {
        if out.json {
            println!(
                "{}",
                json!({"added": c.added, "modified": c.modified, "removed": c.removed, "generation": c.generation})
            );
        }
    } else if out.json {
        println!("{}", json!({"ok": true}));
    }
}

fn flow_json(e: &FlowEntryStats) -> serde_json::Value {
    json!({
        "flow": format_flow(&e.spec),
        "table": e.spec.table.0,
        "priority": e.spec.priority.0,
        "cookie": e.spec.cookie.0,
        "n_packets": e.n_packets,
        "n_bytes": e.n_bytes,
        "duration_ms": e.duration_ms,
        "idle_age_ms": e.idle_age_ms,
    })
}

fn port_json(p: &PortInfo) -> serde_json::Value {
    json!({
        "ofport": p.port.0,
        "name": p.name,
        "type": p.kind.name(),
        "mac": p.mac.map(|m| m.to_string()),
        "mtu": p.mtu,
        "link_up": p.link_up,
        "admin_up": p.admin_up,
        "no_flood": p.no_flood,
        "stats": {
            "rx_packets": p.stats.rx_packets, "rx_bytes": p.stats.rx_bytes,
            "rx_dropped": p.stats.rx_dropped, "rx_errors": p.stats.rx_errors,
            "tx_packets": p.stats.tx_packets, "tx_bytes": p.stats.tx_bytes,
            "tx_dropped": p.stats.tx_dropped, "tx_errors": p.stats.tx_errors,
        },
    })
}

fn tlv_map(c: &mut Client) -> Result<Vec<TlvMapping>> {
    match c.request(Body::DumpTlvMap)? {
        Body::TlvMap(m) => Ok(m),
        b => bail!("unexpected reply: {b}"),
    }
}

/// Offload state by port number; empty from a server older than protocol
/// version 3 (which has no per-port offloads).
fn port_offloads(c: &mut Client) -> Result<std::collections::BTreeMap<PortNo, PortOffloadInfo>> {
    if c.version < 3 {
        return Ok(std::collections::BTreeMap::new());
    }
    match c.request(Body::DumpPortOffloads)? {
        Body::PortOffloads(p) => Ok(p.into_iter().map(|o| (o.port, o)).collect()),
        b => bail!("unexpected reply: {b}"),
    }
}

/// `vnet_hdr=yes|no` for a port with a device (what the kernel accepted),
/// with `(offloads off)` when the port asked for none; empty otherwise.
fn vnet_text(o: Option<&PortOffloadInfo>) -> String {
    match o {
        Some(PortOffloadInfo {
            vnet_hdr: Some(v),
            requested,
            ..
        }) => format!(
            " vnet_hdr={}{}",
            if *v { "yes" } else { "no" },
            if *requested { "" } else { " (offloads off)" }
        ),
        _ => String::new(),
    }
}

/// [`port_json`] plus the offload fields and the backend (`afxdp`
/// ports) when the server reported them.
fn port_json_with(
    p: &PortInfo,
    o: Option<&PortOffloadInfo>,
    backend: Option<&String>,
) -> serde_json::Value {
    let mut v = port_json(p);
    if let (Some(o), Some(m)) = (o, v.as_object_mut()) {
        m.insert("offloads".into(), json!(o.requested));
        m.insert("vnet_hdr".into(), json!(o.vnet_hdr));
    }
    if let (Some(b), Some(m)) = (backend, v.as_object_mut()) {
        m.insert("backend".into(), json!(b));
    }
    v
}

/// What serves each `afxdp` port (`afxdp (...)`, or `afpacket
/// (fallback: REASON)`), by port number; empty from a server older than
/// protocol version 4.
fn port_backends(c: &mut Client) -> Result<std::collections::BTreeMap<PortNo, String>> {
    if c.version < 4 {
        return Ok(std::collections::BTreeMap::new());
    }
    match c.request(Body::DumpPortBackends)? {
        Body::PortBackends(p) => Ok(p.into_iter().map(|b| (b.port, b.backend)).collect()),
        b => bail!("unexpected reply: {b}"),
    }
}

/// ` backend="..."` for a port the server reported a backend for.
fn backend_text(b: Option<&String>) -> String {
    b.map_or_else(String::new, |b| format!(" backend={b:?}"))
}

fn ports(c: &mut Client) -> Result<Vec<PortInfo>> {
    match c.request(Body::DumpPorts)? {
        Body::Ports(p) => Ok(p),
        b => bail!("unexpected reply: {b}"),
    }
}

/// Runs one socket subcommand against `socket`.
///
/// # Errors
/// Connection errors and the server's typed errors.
pub(crate) fn run(socket: &Path, cmd: &SocketCommand) -> Result<ExitCode> {
    let mut c = Client::connect(socket)?;
    match cmd {
        SocketCommand::AddFlow { flow, out } => {
            let f = parse_flow(flow).map_err(|e| anyhow!("{e}"))?;
            print_changed(&c.request(Body::AddFlows { flows: vec![f] })?, out);
        }
        SocketCommand::AddFlows { file, out } => {
            let flows = read_flows(file)?;
            print_changed(&c.request(Body::AddFlows { flows })?, out);
        }
        SocketCommand::ReplaceFlows { file, out } => {
            let flows = read_flows(file)?;
            print_changed(&c.request(Body::ReplaceFlows { flows })?, out);
        }
        SocketCommand::ModFlows { flow, strict, out } => {
            let spec = parse_flow(flow).map_err(|e| anyhow!("{e}"))?;
            let b = c.request(Body::ModifyFlows(FlowModify {
                spec,
                strict: *strict,
            }))?;
            print_changed(&b, out);
        }
        SocketCommand::DelFlows {
            r#match,
            strict,
            out,
        } => {
            let mut f = parse_filter(r#match.as_deref().unwrap_or(""))?;
            if *strict && f.priority.is_none() {
                f.priority = Some(Priority::DEFAULT);
            }
            if !*strict {
                f.priority = None;
            }
            print_changed(&c.request(Body::DeleteFlows(f))?, out);
        }
        SocketCommand::DumpFlows {
            r#match,
            no_stats,
            out,
        } => {
            let f = parse_filter(r#match.as_deref().unwrap_or(""))?;
            let entries = c.dump_flows(f)?;
            if out.json {
                let v: Vec<_> = entries.iter().map(flow_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in &entries {
                    if *no_stats {
                        println!("{}", format_flow(&e.spec));
                    } else {
                        let st = FlowStats {
                            duration_ms: e.duration_ms,
                            n_packets: e.n_packets,
                            n_bytes: e.n_bytes,
                            idle_age_s: e.idle_age_ms / 1000,
                        };
                        println!(" {}", format_flow_with_stats(&e.spec, &st));
                    }
                }
            }
        }
        SocketCommand::AddPort {
            name,
            kind,
            ofport,
            tunnel,
            offloads,
            out,
        } => {
            let cfg = TunnelConfig {
                remote_ip: tunnel.remote_ip,
                local_ip: tunnel.local_ip,
                key: tunnel.key,
                dst_port: tunnel.dst_port,
            };
            let kind = match kind {
                PortType::Afpacket => PortKind::AfPacket,
                PortType::Afxdp => PortKind::AfXdp,
                PortType::Tap => PortKind::Tap,
                PortType::Internal => PortKind::Internal,
                PortType::Geneve => PortKind::Geneve(cfg),
                PortType::Vxlan => PortKind::Vxlan(cfg),
            };
            if !matches!(kind, PortKind::Geneve(_) | PortKind::Vxlan(_))
                && cfg != TunnelConfig::default()
            {
                bail!(
                    "--remote-ip, --local-ip, --key and --dst-port are for geneve and vxlan ports"
                );
            }
            let requested_ofport = match ofport.as_deref() {
                None => None,
                Some(s) => Some(
                    PortNo::from_reserved_name(s)
                        .or_else(|| s.parse().ok().map(PortNo))
                        .ok_or_else(|| anyhow!("--ofport {s}: expected a number or LOCAL"))?,
                ),
            };
            if kind == PortKind::AfXdp && c.version < 4 {
                bail!(
                    "--type afxdp needs protocol version 4; {} speaks {}",
                    c.server,
                    c.version
                );
            }
            // Without --offloads the version-1 request (any server); with
            // it, PortAddWith (version 3).
            let req = match offloads {
                None => Body::PortAdd {
                    name: name.clone(),
                    kind,
                    requested_ofport,
                },
                Some(_) if c.version < 3 => bail!(
                    "--offloads needs protocol version 3; {} speaks {}",
                    c.server,
                    c.version
                ),
                Some(o) => Body::PortAddWith {
                    name: name.clone(),
                    kind,
                    requested_ofport,
                    options: PortOptions {
                        offloads: *o == OnOff::On,
                    },
                },
            };
            match c.request(req)? {
                Body::PortAdded { port } => {
                    if out.json {
                        println!("{}", json!({"name": name, "ofport": port.0}));
                    } else {
                        println!("{name}: ofport {port}");
                    }
                }
                b => bail!("unexpected reply: {b}"),
            }
        }
        SocketCommand::DelPort { port, out } => {
            let r = match port.parse::<u32>() {
                Ok(n) => PortRef::Number(PortNo(n)),
                Err(_) => PortRef::Name(port.clone()),
            };
            print_changed(&c.request(Body::PortDel { port: r })?, out);
        }
        SocketCommand::DumpPorts { out } => {
            let ps = ports(&mut c)?;
            let offl = port_offloads(&mut c)?;
            let backends = port_backends(&mut c)?;
            if out.json {
                let v: Vec<_> = ps
                    .iter()
                    .map(|p| port_json_with(p, offl.get(&p.port), backends.get(&p.port)))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("ports: {}", ps.len());
                for p in &ps {
                    let s = &p.stats;
                    println!(
                        "  port {:>2}({}): addr={} mtu={}{}{}\n           rx pkts={}, bytes={}, drop={}, errs={}\n           tx pkts={}, bytes={}, drop={}, errs={}",
                        p.port.0,
                        p.name,
                        p.mac.map_or_else(|| "none".to_owned(), |m| m.to_string()),
                        p.mtu,
                        vnet_text(offl.get(&p.port)),
                        backend_text(backends.get(&p.port)),
                        s.rx_packets,
                        s.rx_bytes,
                        s.rx_dropped,
                        s.rx_errors,
                        s.tx_packets,
                        s.tx_bytes,
                        s.tx_dropped,
                        s.tx_errors
                    );
                }
            }
        }
        SocketCommand::Show { out } => {
            let ps = ports(&mut c)?;
            let offl = port_offloads(&mut c)?;
            let backends = port_backends(&mut c)?;
            let t = tunnels(&mut c)?;
            let ns = nodes(&mut c)?;
            if out.json {
                let v: Vec<_> = ps
                    .iter()
                    .map(|p| port_json_with(p, offl.get(&p.port), backends.get(&p.port)))
                    .collect();
                let n: Vec<_> = ns
                    .iter()
                    .map(|n| json!({"name": n.name, "ip": n.ip.to_string()}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "server": c.server, "ports": v, "tunnels": tunnels_json(&t), "nodes": n,
                    }))?
                );
            } else {
                println!("{}", c.server);
                for p in &ps {
                    let opts = match &p.kind {
                        PortKind::Geneve(cfg) | PortKind::Vxlan(cfg) => {
                            format!(" options:{}", tunnel_config_text(cfg))
                        }
                        _ => String::new(),
                    };
                    let vnet = vnet_text(offl.get(&p.port));
                    let backend = backend_text(backends.get(&p.port));
                    println!(
                        " {}({}): addr={} mtu={} type={}{backend} link={} config={}{}{vnet}{opts}",
                        p.port,
                        p.name,
                        p.mac.map_or_else(|| "none".to_owned(), |m| m.to_string()),
                        p.mtu,
                        p.kind.name(),
                        if p.link_up { "up" } else { "down" },
                        if p.admin_up { "up" } else { "down" },
                        if p.no_flood { ",no-flood" } else { "" },
                    );
                }
                print_tunnels(&t);
                for n in &ns {
                    println!(" node {}: {}", n.name, n.ip);
                }
            }
        }
        SocketCommand::AddNode { name, ip, out } => {
            let b = c.request(Body::SetNodes {
                nodes: vec![NodeEntry {
                    name: name.clone(),
                    ip: *ip,
                }],
                replace: false,
            })?;
            print_changed(&b, out);
        }
        SocketCommand::DelNode { names, out } => {
            let b = c.request(Body::DelNodes {
                names: names.clone(),
            })?;
            print_changed(&b, out);
        }
        SocketCommand::DumpNodes { out } => {
            let ns = nodes(&mut c)?;
            if out.json {
                let n: Vec<_> = ns
                    .iter()
                    .map(|n| json!({"name": n.name, "ip": n.ip.to_string()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&n)?);
            } else {
                for n in &ns {
                    println!("{} {}", n.name, n.ip);
                }
            }
        }
        SocketCommand::SetUnderlay {
            port,
            host_port,
            local_ip,
            clear,
            out,
        } => {
            let cfg = if *clear {
                None
            } else {
                Some(UnderlayConfig {
                    port: port.clone().unwrap_or_default(),
                    host_port: host_port.clone().unwrap_or_default(),
                    local_ip: *local_ip,
                })
            };
            print_changed(&c.request(Body::SetUnderlay(cfg))?, out);
        }
        SocketCommand::DumpTunnels { out } => {
            let t = tunnels(&mut c)?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&tunnels_json(&t))?);
            } else {
                print_tunnels(&t);
            }
        }
        SocketCommand::AddTlvMap { map, out } => {
            let add = parse_tlv_map(map).map_err(|e| anyhow!(e))?;
            let mut cur = tlv_map(&mut c)?;
            for m in add {
                if let Some(e) = cur
                    .iter()
                    .find(|e| e.slot == m.slot || (e.class, e.r#type) == (m.class, m.r#type))
                {
                    bail!(
                        "add-tlv-map: {} conflicts with existing {}",
                        format_tlv_mapping(&m),
                        format_tlv_mapping(e)
                    );
                }
                cur.push(m);
            }
            print_changed(&c.request(Body::SetTlvMap { mappings: cur })?, out);
        }
        SocketCommand::DelTlvMap { map, out } => {
            let mut cur = tlv_map(&mut c)?;
            match map {
                None => cur.clear(),
                Some(m) => {
                    for d in parse_tlv_map(m).map_err(|e| anyhow!(e))? {
                        let before = cur.len();
                        cur.retain(|e| *e != d);
                        if cur.len() == before {
                            bail!("del-tlv-map: {} is not mapped", format_tlv_mapping(&d));
                        }
                    }
                }
            }
            print_changed(&c.request(Body::SetTlvMap { mappings: cur })?, out);
        }
        SocketCommand::DumpTlvMap { out } => {
            let cur = tlv_map(&mut c)?;
            if out.json {
                let v: Vec<_> = cur
                    .iter()
                    .map(|m| json!({"class": m.class, "type": m.r#type, "len": m.len, "field": format!("tun_metadata{}", m.slot)}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(" mapping table:");
                println!("  class   type  length  match field");
                println!(" ------  ----  ------  --------------");
                for m in &cur {
                    println!(
                        "  {:#06x}  {:#x}  {:<6}  tun_metadata{}",
                        m.class, m.r#type, m.len, m.slot
                    );
                }
            }
        }
        SocketCommand::DumpStats { out } => match c.request(Body::DumpStats)? {
            Body::Stats(s) => {
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&stats_json(&s))?);
                } else {
                    println!(
                        "packets={} outputs={} packet_ins={}",
                        s.packets, s.outputs, s.packet_ins
                    );
                    for d in &s.drops {
                        println!("  drop {}: {}", d.reason, d.count);
                    }
                }
            }
            b => bail!("unexpected reply: {b}"),
        },
        SocketCommand::DumpTables { out } => match c.request(Body::DumpTables)? {
            Body::Tables(ts) => {
                if out.json {
                    let v: Vec<_> = ts
                        .iter()
                        .map(|t| json!({"table": t.table.0, "active": t.active, "lookups": t.lookups, "matched": t.matched}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for t in &ts {
                        // OVS `dump-tables` wording: lookup, matched.
                        println!(
                            "  table {}: active={}, lookup={}, matched={}",
                            t.table.0, t.active, t.lookups, t.matched
                        );
                    }
                }
            }
            b => bail!("unexpected reply: {b}"),
        },
    }
    let _ = c.request(Body::Goodbye);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    #[test]
    fn filter_keywords() {
        let f =
            parse_filter("table=3,priority=7,cookie=0x10/0xf0,out_port=2,tcp,tp_dst=81").unwrap();
        assert_eq!(f.table, Some(TableId(3)));
        assert_eq!(f.priority, Some(Priority(7)));
        assert_eq!((f.cookie, f.cookie_mask), (Cookie(0x10), 0xf0));
        assert_eq!(f.out_port, Some(PortNo(2)));
        assert_eq!(f.r#match, parse_match("tcp,tp_dst=81").unwrap());
        let f = parse_filter("").unwrap();
        assert_eq!(f, FlowFilter::default());
        assert!(parse_filter("table=x").is_err());
        assert!(parse_filter("nosuchfield=1").is_err());
        assert_eq!(
            parse_filter("out_port=CONTROLLER").unwrap().out_port,
            Some(PortNo::CONTROLLER)
        );
    }
}
