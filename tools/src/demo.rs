//! `weftctl demo up|check|down`: the cluster in a box (issue #8 scope 4).
//!
//! `up` builds, on this machine, as root:
//!
//! 1. an underlay namespace `weft-d<pid>-ul` with bridge `br0`;
//! 2. one namespace per Node of the manifests (`weft-d<pid>-<node>`), its
//!    `eth0` on the bridge, running its own `weft-switchd` (socket and state
//!    in the state directory) set up as README says: `eth0` as the AF_PACKET
//!    underlay port (ofport 65537), `weft0` as the internal port holding the
//!    node's underlay address (from the Node's `InternalIP`, /24), a
//!    flow-based Geneve port at ofport 65536 (the compiler's tunnel port)
//!    and Weft's Geneve option mapped to `tun_metadata0`;
//! 3. `weft-controller` reading a copy of the manifests (so the live change
//!    does not touch the repository) with `--node NAME=SOCKET` for every
//!    node and the CNI plugin's report directory;
//! 4. every Pod of the manifests as a network namespace
//!    (`weft-d<pid>-p<k>`), attached by running the real `weft-cni` binary
//!    as a runtime does: in the node's namespace, with `CNI_COMMAND=ADD`,
//!    `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME=eth0`, `CNI_ARGS`
//!    (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, as kubelet passes them),
//!    `CNI_PATH`, and the network configuration (the node's conflist entry,
//!    written to `<state>/<node>.conflist`, plus `name` and `cniVersion`) on
//!    stdin. Each node's IPAM pool is its slice of the pod's subnet (the
//!    subnet is shared by the nodes; see the report);
//! 5. in every pod, a TCP server on ports 80, 5432 and 8080 and a UDP echo
//!    server on port 53 (the TCP and UDP ports the example manifests
//!    name, served by every pod so that a refusal is the policy's, not a
//!    missing server's), stopped by `down` with the pod;
//! 6. waits until the controller has bound every pod (the CNI's report) and
//!    every node acknowledged the resulting generation, then runs the
//!    connectivity matrix: from every pod to every other pod, with real
//!    packets from inside the pod namespaces, a ping, a TCP connect on
//!    each TCP port and a UDP datagram to each UDP port that must come
//!    back echoed. Expected: round trips (`check::Cluster::matrix_of`,
//!    the code of `weftctl policy matrix --round-trip`, on the model the
//!    controller built): the first packet and the destination's reply
//!    through the real switchd pipelines, since without conntrack Weft's
//!    replies pass only by its stateless return-traffic ACLs. A cell where
//!    that differs from Kubernetes (first packet allowed, reply dropped)
//!    is marked `*` and listed;
//! 7. the live change: copies `examples/live-change/admin-no-ingress.yaml`
//!    into the manifests, measures the time until every node acknowledged
//!    the generation that contains it, prints the milliseconds, and runs
//!    the matrix again against the new expectation.
//!
//! The cluster stays up: `demo check` runs the matrix again, `demo down`
//! removes everything `up` created, by the names and pids it recorded in
//! `<state>/state.json` as it went (so a failed `up` is cleaned up by
//! `down` too): CNI `DEL` of every pod, then SIGTERM (SIGKILL after 3 s) to
//! the processes, then the namespaces, then the state directory.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_controller::binding;
use weft_controller::check::{Cluster, Matrix, Service};
use weft_controller::model::{L4Protocol, LogicalModel};
use weft_controller::source::load_path;
use weft_controller::translate::translate;

mod bench;

/// `weftctl demo ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DemoCommand {
    /// Build the three-node cluster, attach the pods through weft-cni, run
    /// the connectivity matrix and the live policy change.
    Up(UpArgs),
    /// Run the connectivity matrix again on the running demo.
    Check(StateArgs),
    /// Remove everything `up` created.
    Down(StateArgs),
    /// Policy-realization latency on the running demo: 100 NetworkPolicy
    /// changes, time until every node's switchd holds the new flows.
    Bench(bench::BenchArgs),
}

/// Where the demo keeps its state.
#[derive(Debug, ClapArgs)]
pub(crate) struct StateArgs {
    /// State directory (sockets, logs, IPAM, pod reports, state.json).
    #[arg(long, default_value = "/run/weft-demo")]
    state_dir: PathBuf,
}

/// `demo up`.
#[derive(Debug, ClapArgs)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The manifests (copied into the state directory).
    #[arg(long, default_value = "examples/manifests")]
    manifests: PathBuf,
    /// The NetworkPolicy applied as the live change.
    #[arg(long, default_value = "examples/live-change/admin-no-ingress.yaml")]
    live_change: PathBuf,
    /// Where weft-switchd, weft-controller and weft-cni are (default: next
    /// to this weftctl).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// TCP ports every pod serves and the matrix probes.
const PORTS: [u16; 3] = [80, 5432, 8080];
/// UDP ports every pod echoes on and the matrix probes (the example
/// manifests name 53, `blue-web/worker`'s `dns`).
const UDP_PORTS: [u16; 1] = [53];
/// The compiler's tunnel port and the underlay port (`check` uses the same).
const TUNNEL_OFPORT: u32 = weft_controller::compile::TUNNEL_OFPORT;
const UNDERLAY_OFPORT: u32 = TUNNEL_OFPORT + 1;
const TLV: &str = "{class=0xff57,type=0x80,len=4}->tun_metadata0";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    id: String,
    bin_dir: PathBuf,
    /// Namespaces created, in order.
    namespaces: Vec<String>,
    /// Processes started (switchds, controller, pod servers).
    pids: Vec<u32>,
    nodes: Vec<NodeState>,
    pods: Vec<PodState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeState {
    name: String,
    netns: String,
    socket: PathBuf,
    underlay: Ipv4Addr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PodState {
    namespace: String,
    name: String,
    node: String,
    netns: String,
    container_id: String,
    /// The plugin configuration given on stdin.
    conf: Value,
    /// Address from the CNI result.
    ip: Option<String>,
}

impl State {
    fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("state.json");
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .with_context(|| format!("writing {}", p.display()))
    }

    fn load(dir: &Path) -> Result<State> {
        let p = dir.join("state.json");
        let t = std::fs::read(&p).with_context(|| {
            format!(
                "{}: no demo state here (was `weftctl demo up` run with this --state-dir?)",
                p.display()
            )
        })?;
        serde_json::from_slice(&t).with_context(|| format!("parsing {}", p.display()))
    }
}

pub(crate) fn run(cmd: &DemoCommand) -> Result<ExitCode> {
    match cmd {
        DemoCommand::Up(a) => up(a),
        DemoCommand::Check(a) => {
            let st = State::load(&a.state_dir)?;
            check(&a.state_dir, &st)
        }
        DemoCommand::Down(a) => down(&a.state_dir),
        DemoCommand::Bench(a) => bench::bench(a),
    }
}

fn step(msg: &str) {
    println!("==> {msg}");
    let _ = std::io::stdout().flush();
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run_ok(Command::new("ip").args(args))
}

fn prerequisites(bin_dir: &Path) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?");
    if uid != "0" {
        bail!("run as root: the demo creates network namespaces (uid is {uid})");
    }
    for tool in ["ip", "ping", "python3"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!(
                "{tool} not found in PATH (Debian: apt-get install {})",
                match tool {
                    "ip" => "iproute2",
                    "ping" => "iputils-ping",
                    _ => "python3",
                }
            );
        }
    }
    for b in ["weft-switchd", "weft-controller", "weft-cni"] {
        if !bin_dir.join(b).is_file() {
            bail!(
                "{} missing (build with `cargo build -p weft-switchd -p weft-controller -p weft-cni -p weft-tools`, or pass --bin-dir)",
                bin_dir.join(b).display()
            );
        }
    }
    Ok(())
}

/// A process in its own process group (not killed by the terminal's ^C
/// of `up`), output to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let f = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(child.id())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

fn weftctl(socket: &Path, args: &[&str]) -> Result<String> {
    let me = std::env::current_exe().context("locating weftctl")?;
    run_ok(Command::new(me).arg("--socket").arg(socket).args(args))
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        weft_switchd::port::enter_netns(&path)?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("thread in {ns} panicked"))?
    .with_context(|| format!("in namespace {ns}"))
}

fn no_offloads(ns: &str, dev: &str) -> Result<()> {
    let d = dev.to_owned();
    in_netns(ns, move || weft_switchd::port::disable_offloads(&d))
}

/// The model the controller builds: manifests + pod reports.
fn model(state_dir: &Path) -> Result<LogicalModel> {
    let mut m = load_path(&state_dir.join("manifests")).map_err(|e| anyhow!("{e}"))?;
    let (reports, _) = binding::read_reports(&state_dir.join("pods"));
    binding::apply_to_manifests(&mut m, &reports);
    let mut t = translate(&m).map_err(|e| anyhow!("{e}"))?;
    binding::bind_ports(&mut t.model, &reports);
    Ok(t.model)
}

fn read_status(state_dir: &Path) -> Option<Value> {
    let t = std::fs::read(state_dir.join("controller.json")).ok()?;
    serde_json::from_slice(&t).ok()
}

/// Every node acknowledged the status' generation, which has no load error.
fn all_acked(v: &Value) -> bool {
    let g = v["generation"].as_u64().unwrap_or(0);
    g > 0
        && v["last_error"].is_null()
        && v["nodes"].as_object().is_some_and(|n| {
            n.values()
                .all(|s| s["acked_generation"].as_u64() == Some(g))
        })
}

fn up(a: &UpArgs) -> Result<ExitCode> {
    let t_start = Instant::now();
    let dir = &a.state.state_dir;
    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("weftctl has no directory"))?
            .to_path_buf(),
    };
    prerequisites(&bin_dir)?;
    if dir.join("state.json").exists() {
        bail!(
            "{} holds an earlier demo: run `weftctl demo down --state-dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    // Load before touching anything: bad manifests fail here.
    let base = load_path(&a.manifests).map_err(|e| anyhow!("{e}"))?;
    let base_model = translate(&base).map_err(|e| anyhow!("{e}"))?.model;
    if !a.live_change.is_file() {
        bail!("live change {} not found", a.live_change.display());
    }
    std::fs::create_dir_all(dir.join("manifests"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for e in std::fs::read_dir(&a.manifests)
        .with_context(|| format!("reading {}", a.manifests.display()))?
    {
        let p = e?.path();
        if p.is_file() {
            std::fs::copy(
                &p,
                dir.join("manifests")
                    .join(p.file_name().unwrap_or_default()),
            )?;
        }
    }
    let id = format!("weft-d{}", std::process::id());
    let mut st = State {
        id: id.clone(),
        bin_dir: bin_dir.clone(),
        ..State::default()
    };
    st.save(dir)?;
    let r = build(a, dir, &bin_dir, &base_model, &mut st);
    st.save(dir)?;
    if let Err(e) = r {
        eprintln!(
            "weftctl demo up failed; `weftctl demo down --state-dir {}` removes what was created",
            dir.display()
        );
        return Err(e);
    }
    let setup = t_start.elapsed();
    println!("cluster up in {:.1} s", setup.as_secs_f64());
    let mut ok = check(dir, &st)? == ExitCode::SUCCESS;

    step("live change: applying NetworkPolicy from examples/live-change");
    let name = a
        .live_change
        .file_name()
        .ok_or_else(|| anyhow!("live change has no file name"))?;
    let text = std::fs::read(&a.live_change)?;
    let tmp = dir.join("manifests").join(".live.tmp");
    std::fs::write(&tmp, &text)?;
    let before = read_status(dir).unwrap_or(serde_json::Value::Null);
    let t0 = Instant::now();
    std::fs::rename(&tmp, dir.join("manifests").join(name))?;
    let mut enforced = None;
    // Taken into account: a new generation (the flows changed), or, for a
    // change that leaves every flow as it is (the controller then makes no
    // new generation), the controller's list of loaded policies changed;
    // then every node holds the current generation.
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(v) = read_status(dir)
            && (v["generation"].as_u64().unwrap_or(0) > before["generation"].as_u64().unwrap_or(0)
                || v["policies"] != before["policies"])
            && all_acked(&v)
        {
            enforced = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match enforced {
        Some(d) => println!(
            "policy enforced on every node {:.1} ms after the file appeared",
            d.as_secs_f64() * 1e3
        ),
        None => {
            println!("FAIL: the live change was not acknowledged by every node within 30 s");
            ok = false;
        }
    }
    ok &= check(dir, &st)? == ExitCode::SUCCESS;
    println!(
        "demo up: {} in {:.1} s; the cluster keeps running: `weftctl demo check --state-dir {d}` again, `weftctl demo down --state-dir {d}` to remove it",
        if ok { "PASS" } else { "FAIL" },
        t_start.elapsed().as_secs_f64(),
        d = dir.display()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn build(
    a: &UpArgs,
    dir: &Path,
    bin_dir: &Path,
    model: &LogicalModel,
    st: &mut State,
) -> Result<()> {
    let id = st.id.clone();
    step(&format!("underlay: namespace {id}-ul with bridge br0"));
    let ul = format!("{id}-ul");
    ip(&["netns", "add", &ul])?;
    st.namespaces.push(ul.clone());
    st.save(dir)?;
    ip(&["-n", &ul, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &ul, "link", "set", "br0", "up"])?;

    let nodes: Vec<(String, Ipv4Addr)> = model
        .nodes
        .values()
        .map(|n| match n.underlay_ip {
            std::net::IpAddr::V4(v4) => Ok((n.name.clone(), v4)),
            std::net::IpAddr::V6(_) => Err(anyhow!(
                "node {}: IPv6 underlay not supported by the demo",
                n.name
            )),
        })
        .collect::<Result<_>>()?;
    for (i, (name, addr)) in nodes.iter().enumerate() {
        let ns = format!("{id}-{name}");
        step(&format!(
            "node {name}: namespace {ns}, weft-switchd, underlay {addr}/24, Geneve"
        ));
        ip(&["netns", "add", &ns])?;
        st.namespaces.push(ns.clone());
        st.save(dir)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let ul_end = format!("ul-{i}");
        ip(&[
            "-n", &ul, "link", "add", &ul_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", &ul, "link", "set", &ul_end, "master", "br0", "up"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        no_offloads(&ul, &ul_end)?;
        no_offloads(&ns, "eth0")?;
        let socket = dir.join(format!("{name}.sock"));
        let pid = spawn_logged(
            Command::new(bin_dir.join("weft-switchd"))
                .arg("--netns")
                .arg(&ns)
                .arg("--socket")
                .arg(&socket)
                .arg("--state-dir")
                .arg(dir.join(format!("{name}-switchd")))
                .arg("--workers")
                .arg("1"),
            &dir.join(format!("{name}-switchd.log")),
        )?;
        st.pids.push(pid);
        st.save(dir)?;
        wait_until(
            &format!("weft-switchd of {name}"),
            Duration::from_secs(20),
            || weftctl(&socket, &["show"]).is_ok(),
        )?;
        weftctl(
            &socket,
            &[
                "add-port",
                "eth0",
                "--type",
                "afpacket",
                "--ofport",
                &UNDERLAY_OFPORT.to_string(),
            ],
        )?;
        weftctl(&socket, &["add-port", "weft0", "--type", "internal"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "weft0",
        ])?;
        ip(&["-n", &ns, "link", "set", "weft0", "up"])?;
        weftctl(
            &socket,
            &[
                "add-port",
                "geneve0",
                "--type",
                "geneve",
                "--ofport",
                &TUNNEL_OFPORT.to_string(),
            ],
        )?;
        weftctl(
            &socket,
            &["set-underlay", "--port", "eth0", "--host-port", "weft0"],
        )?;
        weftctl(&socket, &["add-tlv-map", TLV])?;
        st.nodes.push(NodeState {
            name: name.clone(),
            netns: ns,
            socket,
            underlay: *addr,
        });
        st.save(dir)?;
    }

    step("weft-controller: manifests, one session per node's switchd, pod reports");
    let mut cmd = Command::new(bin_dir.join("weft-controller"));
    cmd.arg("--manifests")
        .arg(dir.join("manifests"))
        .arg("--pod-reports")
        .arg(dir.join("pods"))
        .arg("--status")
        .arg(dir.join("controller.json"));
    for n in &st.nodes {
        cmd.arg("--node")
            .arg(format!("{}={}", n.name, n.socket.display()));
    }
    let pid = spawn_logged(&mut cmd, &dir.join("controller.log"))?;
    st.pids.push(pid);
    st.save(dir)?;

    // Every node's node table holds the others (switchd resolves their
    // next hops through the kernel ahead of traffic); wait until every
    // switchd has a next-hop MAC for every other node, or the first probe
    // across a tunnel could be lost while it resolves.
    step("underlay: node tables, resolving every tunnel next hop");
    for n in &st.nodes {
        for m in st.nodes.iter().filter(|m| m.name != n.name) {
            weftctl(&n.socket, &["add-node", &m.name, &m.underlay.to_string()])?;
        }
    }
    for n in &st.nodes {
        let others: Vec<String> = st
            .nodes
            .iter()
            .filter(|m| m.name != n.name)
            .map(|m| m.underlay.to_string())
            .collect();
        wait_until(
            &format!("{}'s next hops", n.name),
            Duration::from_secs(20),
            || {
                let Ok(t) = weftctl(&n.socket, &["dump-tunnels", "--json"]) else {
                    return false;
                };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    return false;
                };
                let hops = v["next_hops"].as_array().cloned().unwrap_or_default();
                others.iter().all(|o| {
                    hops.iter()
                        .any(|h| h["remote"] == o.as_str() && h["mac"].is_string())
                })
            },
        )?;
    }

    // Pods, in the manifests' order, attached by weft-cni.
    let node_index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let pods: Vec<_> = model.pod_ports().cloned().collect();
    for (k, p) in pods.iter().enumerate() {
        let weft_controller::model::PortKind::Pod { namespace, pod } = &p.kind else {
            continue;
        };
        let Some(node) = p.node.clone() else { continue };
        let Some(node_st) = st.nodes.iter().find(|n| n.name == node) else {
            bail!("pod {namespace}/{pod}: node {node} is not in the demo");
        };
        let sw = model
            .switches
            .get(&p.switch)
            .ok_or_else(|| anyhow!("pod {namespace}/{pod}: no switch"))?;
        let std::net::IpAddr::V4(gw) = sw.gateway else {
            bail!("pod {namespace}/{pod}: IPv6 subnet not supported by the demo");
        };
        let ipnet::IpNet::V4(net) = sw.subnet else {
            bail!("pod {namespace}/{pod}: IPv6 subnet not supported by the demo");
        };
        let (start, end) = node_slice(net, gw, node_index[node.as_str()], nodes.len())?;
        let netns = format!("{id}-p{k}");
        step(&format!(
            "pod {namespace}/{pod} on {node}: namespace {netns}, weft-cni ADD"
        ));
        ip(&["netns", "add", &netns])?;
        st.namespaces.push(netns.clone());
        st.save(dir)?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        let conf = json!({
            "type": "weft-cni",
            "socket": node_st.socket,
            "underlayMtu": 1500,
            "nodeName": node,
            "podReportDir": dir.join("pods"),
            "ipam": {
                "subnet": net.to_string(),
                "gateway": gw.to_string(),
                "rangeStart": start.to_string(),
                "rangeEnd": end.to_string(),
                "dataDir": dir.join("ipam").join(&node).join(net.to_string().replace('/', "_")),
            }
        });
        let conflist = json!({"cniVersion": "1.1.0", "name": "weft", "plugins": [conf.clone()]});
        std::fs::write(
            dir.join(format!(
                "{node}-{}.conflist",
                net.to_string().replace('/', "_")
            )),
            serde_json::to_vec_pretty(&conflist)?,
        )?;
        let mut ps = PodState {
            namespace: namespace.clone(),
            name: pod.clone(),
            node: node.clone(),
            netns: netns.clone(),
            container_id: netns.clone(),
            conf: conf.clone(),
            ip: None,
        };
        st.pods.push(ps.clone());
        st.save(dir)?;
        let result = cni(&st.bin_dir, &node_st.netns, "ADD", &ps)?;
        let addr = result["ips"][0]["address"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        println!(
            "    {namespace}/{pod}: {addr} ({})",
            result["interfaces"][0]["name"].as_str().unwrap_or("?")
        );
        ps.ip = Some(addr.split('/').next().unwrap_or("").to_owned());
        if let Some(last) = st.pods.last_mut() {
            *last = ps;
        }
        let ports: Vec<String> = PORTS
            .iter()
            .map(|p| format!("tcp:{p}"))
            .chain(UDP_PORTS.iter().map(|p| format!("udp:{p}")))
            .collect();
        let pid = spawn_logged(
            Command::new("ip")
                .args(["netns", "exec", &netns, "python3", "-c", SERVER])
                .args(&ports),
            &dir.join(format!("{netns}-server.log")),
        )?;
        st.pids.push(pid);
        st.save(dir)?;
    }

    step("waiting for the controller to bind every pod and every node to acknowledge");
    let want = st.pods.len();
    let mut last = None;
    let r = wait_until("the controller", Duration::from_secs(60), || {
        let Some(v) = read_status(dir) else {
            return false;
        };
        let bound = v["pods"]
            .as_object()
            .map_or(0, |p| p.values().filter(|p| !p["ofport"].is_null()).count());
        let ok = bound == want && all_acked(&v);
        last = Some(v);
        ok
    });
    if let Err(e) = r {
        bail!(
            "{e}; last controller status: {}; see {}",
            last.map(|v| v.to_string()).unwrap_or_default(),
            dir.join("controller.log").display()
        );
    }
    if let Some(v) = read_status(dir) {
        println!("    generation {}, {} pods bound", v["generation"], want);
    }
    // Servers listening.
    std::thread::sleep(Duration::from_millis(300));
    let _ = a;
    Ok(())
}

/// Node `i` of `n`'s slice of `net`'s host addresses (gateway excluded).
fn node_slice(
    net: ipnet::Ipv4Net,
    gw: Ipv4Addr,
    i: usize,
    n: usize,
) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let first = u32::from(net.network()) + 1;
    let last = u32::from(net.broadcast()) - 1;
    let first = if u32::from(gw) == first {
        first + 1
    } else {
        first
    };
    let hosts = last.saturating_sub(first) + 1;
    let per = hosts / u32::try_from(n.max(1))?;
    if per == 0 {
        bail!("subnet {net} is too small for {n} nodes");
    }
    let s = first + per * u32::try_from(i)?;
    Ok((Ipv4Addr::from(s), Ipv4Addr::from(s + per - 1)))
}

/// Runs weft-cni in the node's namespace as a runtime does.
fn cni(bin_dir: &Path, node_ns: &str, command: &str, p: &PodState) -> Result<Value> {
    let mut conf = p.conf.clone();
    if let Some(o) = conf.as_object_mut() {
        o.insert("cniVersion".into(), json!("1.1.0"));
        o.insert("name".into(), json!("weft"));
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", node_ns])
        .arg(bin_dir.join("weft-cni"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &p.container_id)
        .env("CNI_NETNS", format!("/run/netns/{}", p.netns))
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                p.namespace, p.name, p.container_id
            ),
        )
        .env("CNI_PATH", bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running weft-cni")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "weft-cni {command} for {}/{} failed: {} {}",
            p.namespace,
            p.name,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).with_context(|| format!("weft-cni {command} printed {stdout}"))
}

/// The pods' servers, one per argument: `tcp:PORT` sends `weft` on every
/// connection at once (what the probes read), then reads until the client
/// shuts its side down and answers with the number of bytes it received,
/// so a bulk sender can check that everything arrived (the demo test
/// streams megabytes through TSO with it); `udp:PORT` echoes every
/// datagram to its sender.
const SERVER: &str = r#"
import socket, sys, threading
def handle(c):
    try:
        c.sendall(b"weft\n")
        n = 0
        while True:
            d = c.recv(1 << 16)
            if not d: break
            n += len(d)
        c.sendall(b"%d\n" % n)
    except OSError: pass
    c.close()
def serve_tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
def serve_udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        d, a = s.recvfrom(2048)
        try: s.sendto(d, a)
        except OSError: pass
for a in sys.argv[1:]:
    kind, port = a.split(":")
    f = serve_tcp if kind == "tcp" else serve_udp
    threading.Thread(target=f, args=(int(port),), daemon=True).start()
threading.Event().wait()
"#;

/// The prober: lines `IP KIND PORT` on stdin (KIND `tcp`, `udp` or
/// `ping`), one `1`/`0` per line on stdout, in order; all probes run in
/// parallel. TCP: three attempts of a connect and the server's `weft`
/// within 0.8 s; UDP: three attempts of a datagram whose echo (same
/// payload, from the probed address and port: a connected socket) arrives
/// within 0.8 s; ping: two echo requests, each with a 1 s wait. A denied
/// probe costs about 2.4 s (ping 2 s), so the matrix takes about as long
/// as with TCP alone.
const PROBER: &str = r#"
import os, socket, subprocess, sys, threading
lines = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
res = [0] * len(lines)
def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.8)
    try:
        s.connect((ip, port))
        for _ in range(3):
            m = b"weft " + os.urandom(8).hex().encode()
            try:
                s.send(m)
                if s.recv(2048) == m: return 1
            except OSError:
                pass
    finally:
        s.close()
    return 0
def ping(ip):
    for _ in range(2):
        r = subprocess.run(["ping", "-n", "-c", "1", "-W", "1", ip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode == 0: return 1
    return 0
def tcp(ip, port):
    for _ in range(3):
        try:
            s = socket.create_connection((ip, port), timeout=0.8)
            s.settimeout(0.8)
            ok = s.recv(16) == b"weft\n"
            s.close()
            if ok: return 1
        except OSError:
            pass
    return 0
def run(i, l):
    ip, kind, port = l
    if kind == "ping":
        res[i] = ping(ip)
    elif kind == "udp":
        res[i] = udp(ip, int(port))
    else:
        res[i] = tcp(ip, int(port))
ts = [threading.Thread(target=run, args=(i, l)) for i, l in enumerate(lines)]
for t in ts: t.start()
for t in ts: t.join()
print("".join(str(r) for r in res))
"#;

/// The services the matrix probes, in column order.
fn services() -> Vec<Service> {
    std::iter::once(Service::Ping)
        .chain(PORTS.iter().map(|&p| Service::L4(L4Protocol::Tcp, p)))
        .chain(UDP_PORTS.iter().map(|&p| Service::L4(L4Protocol::Udp, p)))
        .collect()
}

fn check(dir: &Path, st: &State) -> Result<ExitCode> {
    let m = model(dir)?;
    let cluster = Cluster::new(m.clone()).map_err(|e| anyhow!("{e}"))?;
    let svcs = services();
    // Per service: Weft's round trip (expected) and the first packet alone
    // (Kubernetes' answer, to mark where they differ).
    let expected: Vec<(Service, Matrix, Matrix)> = svcs
        .iter()
        .map(|&s| {
            let rt = cluster.matrix_of(s, true).map_err(|e| anyhow!("{e}"))?;
            let fwd = cluster.matrix_of(s, false).map_err(|e| anyhow!("{e}"))?;
            Ok((s, rt, fwd))
        })
        .collect::<Result<_>>()?;
    let names: Vec<String> = expected
        .first()
        .map(|(_, x, _)| x.pods.clone())
        .unwrap_or_default();
    let addr = |name: &str| -> Option<String> {
        let (ns, pod) = name.split_once('/')?;
        binding::port_ipv4(&m, ns, pod).map(|a| a.to_string())
    };
    let netns = |name: &str| {
        st.pods
            .iter()
            .find(|p| format!("{}/{}", p.namespace, p.name) == name)
            .map(|p| p.netns.clone())
    };
    step(&format!(
        "connectivity matrix: {} pods; ping, TCP {:?}, UDP {:?} from inside the pod namespaces (expected = round trips of the compiled policy through the switchd pipelines)",
        names.len(),
        PORTS,
        UDP_PORTS
    ));
    // One prober per source pod, all in parallel.
    let mut jobs = Vec::new();
    for (i, from) in names.iter().enumerate() {
        let Some(ns) = netns(from) else {
            bail!("pod {from} is not in the demo state")
        };
        let mut input = String::new();
        for to in &names {
            let a = addr(to).ok_or_else(|| anyhow!("pod {to} has no IPv4 address"))?;
            for s in &svcs {
                input.push_str(&match s {
                    Service::Ping => format!("{a} ping 0\n"),
                    Service::L4(L4Protocol::Udp, p) => format!("{a} udp {p}\n"),
                    Service::L4(_, p) => format!("{a} tcp {p}\n"),
                });
            }
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", PROBER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a prober")?;
        if let Some(mut w) = child.stdin.take() {
            w.write_all(input.as_bytes())?;
        }
        jobs.push((i, child));
    }
    let mut observed: Vec<Vec<u8>> = vec![Vec::new(); names.len()];
    for (i, child) in jobs {
        let out = child.wait_with_output()?;
        observed[i] = String::from_utf8_lossy(&out.stdout)
            .trim()
            .as_bytes()
            .to_vec();
    }
    let per = svcs.len();
    // Per service: (as expected, differ).
    let mut tally = vec![(0usize, 0usize); per];
    let mut mismatches = Vec::new();
    let mut stateless = Vec::new();
    println!(
        "{:<22} {:<22} {}",
        "from",
        "to",
        svcs.iter()
            .map(|s| format!("{:<9}", s.to_string().replace("icmp", "ping")))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (i, from) in names.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            let mut cells = Vec::new();
            for (k, (svc, rt, fwd)) in expected.iter().enumerate() {
                let want = rt.cells[i][j];
                let got = observed[i].get(j * per + k).copied() == Some(b'1');
                let k8s = fwd.cells[i][j] != want;
                if k8s {
                    stateless.push(format!("{from} -> {to} {svc}"));
                }
                let mut mark = String::from(if got { "ok" } else { "X" });
                if want == got {
                    tally[k].0 += 1;
                } else {
                    tally[k].1 += 1;
                    mark.push('!');
                    mismatches.push(format!(
                        "{from} -> {to} {svc}: expected {}, observed {}",
                        if want { "allow" } else { "deny" },
                        if got { "allow" } else { "deny" }
                    ));
                }
                if k8s {
                    mark.push('*');
                }
                cells.push(format!("{mark:<9}"));
            }
            println!("{from:<22} {to:<22} {}", cells.join(" "));
        }
    }
    println!(
        "(ok = answered, X = refused by policy as expected, ! = differs from the expectation, * = Kubernetes would allow it: the first packet passes, Weft drops the reply (stateless return traffic, no conntrack yet))"
    );
    for s in &stateless {
        println!("STATELESS {s}: first packet allowed, reply dropped");
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    let pass: usize = tally.iter().map(|t| t.0).sum();
    let fail: usize = tally.iter().map(|t| t.1).sum();
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (svc, (p, f)) in svcs.iter().zip(&tally) {
        let kind = match svc {
            Service::Ping => "ping",
            Service::L4(L4Protocol::Tcp, _) => "TCP",
            Service::L4(L4Protocol::Udp, _) => "UDP",
            Service::L4(L4Protocol::Sctp, _) => "SCTP",
        };
        let e = by_kind.entry(kind).or_default();
        e.0 += p;
        e.1 += p + f;
    }
    println!(
        "matrix: {pass} of {} probes as expected ({}), {fail} differ: {}",
        pass + fail,
        ["ping", "TCP", "UDP"]
            .iter()
            .filter_map(|k| by_kind.get(k).map(|(p, t)| format!("{k} {p}/{t}")))
            .collect::<Vec<_>>()
            .join(", "),
        if fail == 0 { "PASS" } else { "FAIL" }
    );
    Ok(if fail == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn down(dir: &Path) -> Result<ExitCode> {
    let st = State::load(dir)?;
    step(&format!(
        "removing demo {} ({} namespaces, {} processes)",
        st.id,
        st.namespaces.len(),
        st.pids.len()
    ));
    let mut errors = Vec::new();
    // CNI DEL as the runtime would (releases addresses and ports), while
    // the switches still run.
    for p in &st.pods {
        if let Some(n) = st.nodes.iter().find(|n| n.name == p.node)
            && let Err(e) = cni(&st.bin_dir, &n.netns, "DEL", p)
        {
            errors.push(format!("{e:#}"));
        }
    }
    for pid in &st.pids {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
    let alive = |pid: &u32| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let t0 = Instant::now();
    while st.pids.iter().any(alive) && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in st.pids.iter().filter(|p| alive(p)) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
    for ns in st.namespaces.iter().rev() {
        if Path::new("/run/netns").join(ns).exists()
            && let Err(e) = ip(&["netns", "del", ns])
        {
            errors.push(format!("{e:#}"));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    for e in &errors {
        eprintln!("warning: {e}");
    }
    println!("demo {} removed", st.id);
    Ok(ExitCode::SUCCESS)
}
