//! The CNI protocol as the runtime sees it: environment, network
//! configuration on stdin, results and errors on stdout (CNI spec 1.0.0 and
//! 1.1.0, `containernetworking/cni` `SPEC.md`).
//!
//! Everything here is pure (no I/O): [`Request::from_env`] takes the
//! variables as a map and the stdin bytes, so the parsing rules are unit
//! tested without processes.
//!
//! # Versions
//!
//! The plugin speaks [`SUPPORTED_VERSIONS`]. A configuration naming any
//! other `cniVersion` is refused with code 1 (the spec's "incompatible CNI
//! version"), except for `VERSION`, which answers whatever is asked.
//! `STATUS` and `GC` exist from 1.1.0 on; asked under an older version they
//! are refused with code 1 too (as the reference plugins' `skel` does).
//! Results carry the configuration's version, and the 1.1.0-only field
//! (`mtu` of an interface) is left out under 1.0.0.
//!
//! # Error codes
//!
//! Well-known (0-99, from the spec) and ours (100+):
//!
//! | code | meaning | when |
//! |---|---|---|
//! | 1 | incompatible CNI version | unsupported `cniVersion` |
//! | 2 | unsupported field | e.g. an external `ipam.type` |
//! | 4 | invalid environment variables | missing or malformed `CNI_*` |
//! | 5 | I/O failure | state directory, netns file |
//! | 6 | failed to decode content | stdin is not JSON of the right shape |
//! | 7 | invalid network configuration | a field has a bad value |
//! | 11 | try again later | switchd unreachable (`ADD`, `DEL`) |
//! | 50 | plugin not available | `STATUS`: switchd not ready |
//! | 100 | address pool exhausted | `ADD` |
//! | 101 | netlink operation failed | veth, address, route |
//! | 102 | switchd refused a request | `PortAdd` rejected |
//! | 103 | `CHECK` found a difference | interface, address or port |

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// CNI spec versions this plugin implements, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// Version used for output when the input did not name a usable one.
pub const DEFAULT_VERSION: &str = "1.1.0";

/// A CNI error: printed as JSON on stdout, exit status 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", details.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct CniError {
    /// The error code (see the module table).
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation (what to do about it).
    pub details: Option<String>,
}

/// Well-known and plugin error codes.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Invalid or missing environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The plugin is not available (`STATUS`).
    pub const NOT_AVAILABLE: u32 = 50;
    /// No free address in the pool.
    pub const POOL_EXHAUSTED: u32 = 100;
    /// A netlink request failed.
    pub const NETLINK: u32 = 101;
    /// switchd answered with an error.
    pub const SWITCHD_REFUSED: u32 = 102;
    /// `CHECK` found the attachment not as expected.
    pub const CHECK_FAILED: u32 = 103;
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = Some(details.into());
        self
    }

    /// The JSON document printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if let (Some(d), Some(o)) = (&self.details, v.as_object_mut()) {
            o.insert("details".into(), Value::String(d.clone()));
        }
        v
    }
}

/// Shorthand for results in this crate.
pub type CniResult<T> = Result<T, CniError>;

/// The operation (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach it.
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Report readiness (1.1.0).
    Status,
    /// Remove attachments not in the valid list (1.1.0).
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        })
    }
}

/// One container attachment: the key of everything the plugin creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// The network configuration (the plugin's entry of a conflist, with
/// `name` and `cniVersion` filled in by the runtime).
///
/// Fields the plugin does not know are ignored (the spec allows refusing
/// them; ignoring keeps runtime-added keys such as `runtimeConfig` working).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version of this configuration.
    pub cni_version: String,
    /// Network name.
    pub name: String,
    /// Plugin type (the binary name).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The node's switchd control socket.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Pod interface MTU. When absent: `underlayMtu - tunnelOverhead`.
    pub mtu: Option<u32>,
    /// MTU of the node's underlay interface (default 1500).
    pub underlay_mtu: Option<u32>,
    /// Bytes of encapsulation (default [`GENEVE_IPV4_OVERHEAD`]).
    pub tunnel_overhead: Option<u32>,
    /// Offloads (checksum, scatter-gather, TSO, GSO, GRO) on the pod
    /// interface: left as the kernel creates a veth (on) unless `false`,
    /// which turns them off as earlier versions did (an opt-out for
    /// kernels or tools that mishandle partial checksums).
    pub offloads: Option<bool>,
    /// Address pool.
    pub ipam: IpamConf,
    /// Where `ADD` leaves a [`protocol::pod_report::PodReport`] for the
    /// controller (absent: no report). See [`crate::report`].
    pub pod_report_dir: Option<PathBuf>,
    /// This node's name in the reports (default: the host name).
    pub node_name: Option<String>,
    /// DNS settings passed through to the result.
    pub dns: Option<Value>,
    /// Result of the previous plugin or of the previous `ADD` (`CHECK`,
    /// `DEL`).
    pub prev_result: Option<Value>,
    /// `GC`: the attachments the runtime still knows.
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// `GC`: the same list under the name libcni 1.2 also sends
    /// (containernetworking/cni#1101).
    #[serde(rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
}

/// Default switchd control socket (`DESIGN.md`).
pub const DEFAULT_SOCKET: &str = "/run/weft/switchd.sock";

/// Default IPAM state directory (`DESIGN.md`).
pub const DEFAULT_IPAM_DIR: &str = "/var/lib/weft/ipam";

/// Geneve over IPv4 with Weft's one 4-byte option (`DESIGN.md`): outer
/// IPv4 (20) + UDP (8) + Geneve base header (8) + option header (4) +
/// option data (4) + inner Ethernet (14) = 58 bytes.
pub const GENEVE_IPV4_OVERHEAD: u32 = 20 + 8 + 8 + 4 + 4 + 14;

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}

/// The `ipam` section: Weft's IPAM is built in, so `type` is optional and
/// may only name it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// Must be absent or `weft`.
    #[serde(rename = "type")]
    pub ipam_type: Option<String>,
    /// The pool, e.g. `10.244.1.0/24` (the node's podCIDR).
    pub subnet: String,
    /// Gateway address (default: the first address of the subnet).
    pub gateway: Option<Ipv4Addr>,
    /// First address handed out (default: the first after the gateway
    /// and network address).
    pub range_start: Option<Ipv4Addr>,
    /// Last address handed out (default: the last before broadcast).
    pub range_end: Option<Ipv4Addr>,
    /// Where allocations are kept (default [`DEFAULT_IPAM_DIR`]).
    pub data_dir: Option<PathBuf>,
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/n`; host bits must be zero.
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn parse(s: &str) -> Result<Ipv4Net, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in a.b.c.d/len form"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{p:?} is not a prefix length 0..=32"))?;
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(format!("{s:?} has host bits set"));
        }
        Ok(net)
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// True if `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// The last address (broadcast for prefixes shorter than /31).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A parsed invocation.
#[derive(Debug, Clone)]
pub struct Request {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` and `CNI_IFNAME` (ADD, DEL, CHECK).
    pub attachment: Option<Attachment>,
    /// `CNI_NETNS` (required for ADD and CHECK, optional for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_ARGS`, split into pairs.
    pub args: BTreeMap<String, String>,
    /// The configuration (every command but VERSION).
    pub conf: Option<NetConf>,
    /// `cniVersion` for the output.
    pub version: String,
}

fn env_err(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_ENV, msg)
}

/// Container ids: alphanumeric first, then alphanumerics, `_`, `.`, `-`
/// (the spec's rule).
fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:` or whitespace, not
/// `.` or `..`.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

/// True if the spec version `v` is at least `min` (both `x.y.z`).
fn version_at_least(v: &str, min: &str) -> bool {
    fn parts(s: &str) -> Option<(u32, u32, u32)> {
        let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    }
    match (parts(v), parts(min)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

impl Request {
    /// Parses the environment (`env` holds the `CNI_*` variables) and the
    /// bytes read from stdin.
    ///
    /// # Errors
    /// A [`CniError`] with the code the spec assigns to the problem; its
    /// version is in the error's output via [`Request::error_version`].
    pub fn from_env(env: &BTreeMap<String, String>, stdin: &[u8]) -> Result<Request, CniError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let cmd = get("CNI_COMMAND").ok_or_else(|| env_err("CNI_COMMAND is not set"))?;
        let command = Command::parse(&cmd).ok_or_else(|| {
            env_err(format!(
                "CNI_COMMAND={cmd:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
            ))
        })?;
        if command == Command::Version {
            // stdin may hold {"cniVersion": ...}; answer in that version if
            // we know it.
            let asked = serde_json::from_slice::<Value>(stdin)
                .ok()
                .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
                .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
                .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
            return Ok(Request {
                command,
                attachment: None,
                netns: None,
                args: BTreeMap::new(),
                conf: None,
                version: asked,
            });
        }
        let conf = parse_conf(stdin)?;
        let version = conf.cni_version.clone();
        if matches!(command, Command::Status | Command::Gc) && !version_at_least(&version, "1.1.0")
        {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cniVersion {version} does not allow {command} (needs 1.1.0)"),
            ));
        }
        let mut attachment = None;
        let mut netns = None;
        if matches!(command, Command::Add | Command::Del | Command::Check) {
            let id = get("CNI_CONTAINERID").ok_or_else(|| env_err("CNI_CONTAINERID is not set"))?;
            if !valid_container_id(&id) {
                return Err(env_err(format!(
                    "CNI_CONTAINERID={id:?}: must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
                )));
            }
            let ifname = get("CNI_IFNAME").ok_or_else(|| env_err("CNI_IFNAME is not set"))?;
            if !valid_ifname(&ifname) {
                return Err(env_err(format!(
                    "CNI_IFNAME={ifname:?} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)"
                )));
            }
            netns = get("CNI_NETNS").map(PathBuf::from);
            if netns.is_none() && command != Command::Del {
                return Err(env_err(format!(
                    "CNI_NETNS is not set ({command} needs it)"
                )));
            }
            attachment = Some(Attachment {
                container_id: id,
                ifname,
            });
        }
        let args = parse_args(&get("CNI_ARGS").unwrap_or_default())?;
        Ok(Request {
            command,
            attachment,
            netns,
            args,
            conf: Some(conf),
            version,
        })
    }

    /// The version to print an error in when parsing failed: the
    /// configuration's if it is one we speak, else [`DEFAULT_VERSION`].
    pub fn error_version(stdin: &[u8]) -> String {
        serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
            .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
            .unwrap_or_else(|| DEFAULT_VERSION.to_owned())
    }
}

/// `CNI_ARGS`: `K=V;K=V`.
fn parse_args(s: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| env_err(format!("CNI_ARGS: {pair:?} is not KEY=VALUE")))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Parses and validates the configuration on stdin.
fn parse_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(code::DECODE, "network configuration on stdin is not JSON")
            .with_details(e.to_string())
    })?;
    let version = raw
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            CniError::new(
                code::DECODE,
                "network configuration: cniVersion is missing or not a string",
            )
        })?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {version:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    let conf: NetConf = serde_json::from_value(raw).map_err(|e| {
        CniError::new(code::DECODE, "network configuration has the wrong shape")
            .with_details(e.to_string())
    })?;
    let bad = |field: &str, why: String| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("network configuration: {field}: {why}"),
        )
    };
    let name_ok = {
        let mut c = conf.name.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
            && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
    };
    if !name_ok {
        return Err(bad(
            "name",
            format!(
                "{:?} must start with a letter or digit and hold only letters, digits, '_', '.', '-'",
                conf.name
            ),
        ));
    }
    if let Some(t) = &conf.ipam.ipam_type
        && t != "weft"
    {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!(
                "ipam.type {t:?}: weft-cni has its own IPAM; omit ipam.type or set it to \"weft\""
            ),
        ));
    }
    conf.pool().map_err(|e| bad("ipam", e))?;
    let mtu = conf.pod_mtu();
    if !(576..=65_535).contains(&mtu) {
        return Err(bad("mtu", format!("pod MTU {mtu} is outside 576..=65535")));
    }
    Ok(conf)
}

/// The address pool of a configuration, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The gateway (never handed out).
    pub gateway: Ipv4Addr,
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
}

impl NetConf {
    /// The pool described by `ipam`.
    ///
    /// # Errors
    /// Which field is wrong and why.
    pub fn pool(&self) -> Result<Pool, String> {
        let subnet = Ipv4Net::parse(&self.ipam.subnet).map_err(|e| format!("subnet: {e}"))?;
        if subnet.prefix > 30 {
            return Err(format!(
                "subnet: {subnet} is too small (at most /30: a gateway and one pod)"
            ));
        }
        let first = u32::from(subnet.addr) + 1;
        let last = u32::from(subnet.last()) - 1;
        let gateway = self.ipam.gateway.unwrap_or(Ipv4Addr::from(first));
        if !subnet.contains(gateway) || gateway == subnet.addr || gateway == subnet.last() {
            return Err(format!(
                "gateway: {gateway} is not a host address of {subnet}"
            ));
        }
        let start = self.ipam.range_start.unwrap_or(Ipv4Addr::from(first));
        let end = self.ipam.range_end.unwrap_or(Ipv4Addr::from(last));
        for (f, a) in [("rangeStart", start), ("rangeEnd", end)] {
            if !(first..=last).contains(&u32::from(a)) {
                return Err(format!("{f}: {a} is not a host address of {subnet}"));
            }
        }
        if u32::from(start) > u32::from(end) {
            return Err(format!("rangeStart {start} is after rangeEnd {end}"));
        }
        Ok(Pool {
            subnet,
            gateway,
            start,
            end,
        })
    }

    /// The pod interface MTU: `mtu`, or `underlayMtu` (1500) minus
    /// `tunnelOverhead` ([`GENEVE_IPV4_OVERHEAD`]).
    pub fn pod_mtu(&self) -> u32 {
        self.mtu.unwrap_or_else(|| {
            self.underlay_mtu
                .unwrap_or(1500)
                .saturating_sub(self.tunnel_overhead.unwrap_or(GENEVE_IPV4_OVERHEAD))
        })
    }

    /// The IPAM state directory for this network.
    pub fn ipam_dir(&self) -> PathBuf {
        self.ipam
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_IPAM_DIR))
            .join(&self.name)
    }

    /// The valid attachments of a `GC` request (either key).
    pub fn gc_valid(&self) -> Vec<Attachment> {
        self.valid_attachments
            .clone()
            .or_else(|| self.attachments.clone())
            .unwrap_or_default()
    }
}

/// The `VERSION` answer.
pub fn version_json(version: &str) -> Value {
    serde_json::json!({
        "cniVersion": version,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const CONF: &str = r#"{"cniVersion":"1.1.0","name":"weft","type":"weft-cni",
        "ipam":{"subnet":"10.244.1.0/24"}}"#;

    fn add_env() -> BTreeMap<String, String> {
        env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns"),
        ])
    }

    #[test]
    fn add_parses() {
        let r = Request::from_env(&add_env(), CONF.as_bytes()).unwrap();
        assert_eq!(r.command, Command::Add);
        assert_eq!(r.attachment.unwrap().ifname, "eth0");
        assert_eq!(r.args["K8S_POD_NAME"], "p");
        let c = r.conf.unwrap();
        let p = c.pool().unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(p.start, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(p.end, Ipv4Addr::new(10, 244, 1, 254));
        assert_eq!(c.pod_mtu(), 1442);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn errors_have_spec_codes() {
        let codes = |e: &BTreeMap<String, String>, s: &str| {
            Request::from_env(e, s.as_bytes()).unwrap_err().code
        };
        assert_eq!(codes(&add_env(), "not json"), code::DECODE);
        assert_eq!(
            codes(&add_env(), &CONF.replace("1.1.0", "0.3.1")),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            codes(&add_env(), &CONF.replace("1.1.0", "2.0.0")),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            codes(&add_env(), &CONF.replace("/24", "/33")),
            code::INVALID_CONFIG
        );
        assert_eq!(
            codes(&add_env(), &CONF.replace("10.244.1.0", "10.244.1.7")),
            code::INVALID_CONFIG
        );
        assert_eq!(
            codes(
                &add_env(),
                &CONF.replace("\"subnet\"", "\"type\":\"host-local\",\"subnet\"")
            ),
            code::UNSUPPORTED_FIELD
        );
        assert_eq!(
            codes(
                &add_env(),
                &CONF.replace("\"ipam\":{\"subnet\":\"10.244.1.0/24\"}", "\"x\":1")
            ),
            code::DECODE
        );
        let mut e = add_env();
        e.remove("CNI_NETNS");
        assert_eq!(codes(&e, CONF), code::INVALID_ENV);
        e.insert("CNI_COMMAND".into(), "DEL".into());
        assert!(
            Request::from_env(&e, CONF.as_bytes()).is_ok(),
            "DEL without netns"
        );
        e.insert("CNI_IFNAME".into(), "a/b".into());
        assert_eq!(codes(&e, CONF), code::INVALID_ENV);
        let mut e = add_env();
        e.insert("CNI_CONTAINERID".into(), "-x".into());
        assert_eq!(codes(&e, CONF), code::INVALID_ENV);
        e.insert("CNI_COMMAND".into(), "FROB".into());
        assert_eq!(codes(&e, CONF), code::INVALID_ENV);
        let st = env(&[("CNI_COMMAND", "STATUS")]);
        assert_eq!(
            codes(&st, &CONF.replace("1.1.0", "1.0.0")),
            code::INCOMPATIBLE_VERSION
        );
        assert!(Request::from_env(&st, CONF.as_bytes()).is_ok());
    }

    #[test]
    fn version_answers_in_the_asked_version() {
        let e = env(&[("CNI_COMMAND", "VERSION")]);
        let r = Request::from_env(&e, br#"{"cniVersion":"1.0.0"}"#).unwrap();
        assert_eq!(r.version, "1.0.0");
        let r = Request::from_env(&e, b"").unwrap();
        assert_eq!(
            version_json(&r.version),
            serde_json::json!({"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]})
        );
    }

    #[test]
    fn pool_bounds() {
        let c: NetConf = serde_json::from_str(
            r#"{"cniVersion":"1.1.0","name":"n","type":"weft-cni","ipam":{"subnet":"10.0.0.0/29",
            "gateway":"10.0.0.6","rangeStart":"10.0.0.2","rangeEnd":"10.0.0.5"}}"#,
        )
        .unwrap();
        let p = c.pool().unwrap();
        assert_eq!(
            (p.start, p.end),
            ("10.0.0.2".parse().unwrap(), "10.0.0.5".parse().unwrap())
        );
        let bad = r#"{"cniVersion":"1.1.0","name":"n","type":"weft-cni","ipam":{"subnet":"10.0.0.0/29","rangeEnd":"10.0.0.7"}}"#;
        let c: NetConf = serde_json::from_str(bad).unwrap();
        assert!(c.pool().unwrap_err().contains("rangeEnd"));
        assert!(Ipv4Net::parse("10.0.0.0/31").is_ok());
        assert_eq!(GENEVE_IPV4_OVERHEAD, 58);
    }

    #[test]
    fn error_json_shape() {
        let e = CniError::new(code::TRY_AGAIN_LATER, "switchd unreachable").with_details("x");
        assert_eq!(
            e.to_json("1.0.0"),
            serde_json::json!({"cniVersion":"1.0.0","code":11,"msg":"switchd unreachable","details":"x"})
        );
    }
}
