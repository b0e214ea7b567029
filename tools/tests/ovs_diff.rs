//! Differential test against Open vSwitch: the same flow tables and packets
//! through Weft's pipeline and through a real `ovs-vswitchd` (OVS 3.1,
//! `apt-get install openvswitch-switch`), outcomes compared.
//!
//! # How
//!
//! `generator` builds [`CASES`] cases from a fixed seed ([`SEED`]): 1-3
//! tables, each with 1-5 flows of distinct priorities plus a priority-0
//! catch-all (so no table-miss policy is involved), matching on
//! `in_port`, `dl_src` (with masks), `dl_dst`, `dl_type`, `nw_proto`,
//! `nw_src`/`nw_dst` prefixes, `tp_src`/`tp_dst`, `reg0`, VLAN presence
//! and `dl_vlan`; actions `output:N`, `IN_PORT`, `LOCAL`, `FLOOD`, `ALL`,
//! drop, `resubmit(,T)`, `goto_table:T` (forward only), `load`/`set_field`
//! to `reg0`, `mod_dl_src/dst`, `mod_nw_src/dst`, `mod_tp_dst`, `dec_ttl`,
//! `push_vlan:0x8100,mod_vlan_vid:V` (always as a pair), `strip_vlan`
//! and `mod_vlan_pcp` (only where the flow guarantees a tag), `mod_tp_src`.
//! Packets (built by `packet_from_key`) are mostly IPv4 TCP/UDP/ICMP with
//! TTL 64, a fifth of them with an 802.1Q tag, plus some ARP requests and
//! IPv6 TCP packets (which only L2 matches and actions concern).
//!
//! `ovs` starts ONE private OVS (own temp directory, `OVS_*DIR` variables
//! pointing into it, `ovsdb-server` and `ovs-vswitchd
//! --enable-dummy=override` as child processes killed on drop), bridge
//! `br0` on the dummy datapath with ports `p1..p4` (`ofport_request=i`;
//! the dummy datapath numbers them `i` too, and `br0` itself is datapath
//! port 100 = `LOCAL`). Each case: `ovs-ofctl -O OpenFlow15 replace-flows`
//! then `ovs-appctl ofproto/trace br0 in_port=P <hex>`.
//!
//! # What is compared
//!
//! The "Datapath actions:" line is replayed by `odp::apply` on the input
//! packet's header fields: each `set(eth|ipv4|tcp|udp(...))`,
//! `push_vlan`, `pop_vlan` updates the fields, each port number is an
//! output of the current fields; `drop` is no output. This gives, per
//! output, the exact header OVS would send. Weft's outputs (from
//! `Pipeline::process`) are re-extracted with `protocol::flow::extract`.
//! Compared per output, in order: port, `dl_src`, `dl_dst`, outer VLAN
//! (vid, pcp), `dl_type`, `nw_src`, `nw_dst`, `nw_ttl`, `tp_src`,
//! `tp_dst`. Replaying `set()` actions is more robust than the trace's
//! "Final flow:" line, which only shows the state after the last action
//! and not what each output carried. Any datapath action the replayer does
//! not know (`userspace(...)` = controller, partially masked `set`, ...)
//! makes the case a mismatch, so nothing is silently ignored.
//!
//! Order: OVS emits outputs in action order, like Weft, so the lists are
//! compared as ordered lists. The one exception: `FLOOD`/`ALL` expand in
//! OVS's port hash-map order, so for a case that floods, equal multisets
//! in a different order count as agreement (`order_only` in the summary).
//!
//! # Deliberate differences (allow-list)
//!
//! [`ALLOWED`] names each accepted difference with the predicate that
//! recognises it:
//!
//! None today. `third_vlan_tag` (a third `push_vlan`, where OVS keeps
//! two tags and Weft used to send three) was one; Weft now does what OVS
//! does (see `switchd::pipeline::exec`, `push_vlan`). Random tables almost
//! never reach a third push (OVS refuses one within a flow), so
//! `generator::vlan_stack_cases` adds five hand-written cases that do
//! (three and four pushes across tables, a pop after the third push,
//! rewrites around it); they run after the generated ones.
//!
//! Flows OVS refuses under OpenFlow 1.5 are not generated: `strip_vlan`
//! without a VLAN match (or an earlier `push_vlan` in the same flow), and
//! a push that would make a third tag within one flow (`OFPBAC_BAD_TAG`).
//! Weft accepts both (OpenFlow 1.0 semantics).
//!
//! # Running
//!
//! Under `CI=true` a missing OVS fails the test (`scripts/test.sh` installs
//! `openvswitch-switch`); elsewhere it is skipped with a loud message.
//! `WEFT_OVS_DIFF_KEEP=1` keeps the temp directory (logs, last flows);
//! `WEFT_OVS_DIFF_SHOW=1` prints every case's datapath actions;
//! `WEFT_OVS_DIFF_SEED=N` / `WEFT_OVS_DIFF_CASES=N` explore other seeds
//! and sizes (the sanity bounds on drops/rewrites assume the default
//! size).

#[path = "ovs_diff/generator.rs"]
mod generator;
#[path = "ovs_diff/odp.rs"]
mod odp;
#[path = "ovs_diff/ovs.rs"]
mod ovs;

use std::time::Instant;

use generator::{Case, NPORTS};
use odp::Hdr;
use protocol::flow::{FlowSpec, PortNo};
use protocol::text::parse_flow;
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{CollectSink, NoTrace, SwitchConfig, WorkerState, compile};

/// The generator's seed.
const SEED: u64 = 0x5745_4654_4f56_5331;
/// How many cases are compared.
const CASES: usize = 400;

/// An accepted difference: a name and a predicate on (case, OVS outcome,
/// Weft outcome). See the module doc.
type Allowed = (&'static str, fn(&Case, &Outcome, &Outcome) -> bool);
const ALLOWED: &[Allowed] = &[];

/// What one switch did with a case's packet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// (port, header) in the order sent; empty = dropped.
    Outputs(Vec<(String, Hdr)>),
    /// The switch refused the flows or the replay failed.
    Error(String),
}

fn weft_port(p: PortNo) -> String {
    if p == PortNo::LOCAL {
        "LOCAL".into()
    } else {
        p.0.to_string()
    }
}

fn run_weft(case: &Case) -> Outcome {
    let flows: Result<Vec<FlowSpec>, String> = case
        .flows
        .iter()
        .map(|l| parse_flow(l).map_err(|e| format!("parse {l:?}: {e}")))
        .collect();
    let flows = match flows {
        Ok(f) => f,
        Err(e) => return Outcome::Error(e),
    };
    let cfg = SwitchConfig::with_ports((1..=NPORTS).map(PortNo).chain([PortNo::LOCAL]));
    let pl = match compile(&flows, cfg) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(format!("compile: {e}")),
    };
    let mut ws = WorkerState::new(pl.config());
    let mut buf = PacketBuf::from_slice(&case.packet);
    let mut sink = CollectSink::default();
    let _verdict = pl.process(
        &mut buf,
        PortNo(case.in_port),
        0,
        &mut ws,
        &mut sink,
        &mut NoTrace,
    );
    let mut outs: Vec<(String, Hdr)> = sink
        .outputs
        .iter()
        .map(|(p, b)| (weft_port(*p), Hdr::of_frame(b)))
        .collect();
    // Packet-ins have no counterpart in the generated subset; keep them
    // visible as a pseudo-port so they show up as a mismatch.
    for (reason, table, _, b) in &sink.packet_ins {
        outs.push((
            format!("CONTROLLER({reason:?},{table:?})"),
            Hdr::of_frame(b),
        ));
    }
    Outcome::Outputs(outs)
}

fn run_ovs(ovs: &ovs::Ovs, case: &Case) -> (Outcome, String) {
    if let Err(e) = ovs.replace_flows(&case.flows) {
        return (Outcome::Error(e), String::new());
    }
    let trace = match ovs.trace(case.in_port, &case.packet) {
        Ok(t) => t,
        Err(e) => return (Outcome::Error(e), String::new()),
    };
    let input = Hdr::of_frame(&case.packet);
    if std::env::var_os("WEFT_OVS_DIFF_SHOW").is_some() {
        eprintln!("case {}: {:?}", case.id, odp::datapath_actions(&trace));
    }
    let out = odp::datapath_actions(&trace)
        .and_then(|a| odp::apply(a, &input))
        .map_or_else(Outcome::Error, Outcome::Outputs);
    (out, trace)
}

fn sorted(v: &[(String, Hdr)]) -> Vec<(String, Hdr)> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[test]
fn weft_agrees_with_open_vswitch() {
    if !ovs::available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Open vSwitch (ovs-vswitchd, ovs-ofctl, ...) is missing under CI=true");
        }
        eprintln!(
            "\n*** SKIPPED ovs_diff: Open vSwitch not installed \
             (apt-get install openvswitch-switch) ***\n"
        );
        return;
    }
    let start = Instant::now();
    let ovs = ovs::Ovs::start(NPORTS).expect("start private ovs-vswitchd");
    control_case(&ovs);
    let env_num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env_num("WEFT_OVS_DIFF_SEED").unwrap_or(SEED);
    let n = env_num("WEFT_OVS_DIFF_CASES").map_or(CASES, |n| n as usize);
    let mut cases = generator::cases(seed, n);
    cases.extend(generator::vlan_stack_cases(cases.len()));
    let (mut exact, mut order_only, mut allowed, mut dropped, mut modified) = (0, 0, 0, 0, 0);
    let mut bad: Vec<String> = Vec::new();
    for case in &cases {
        let (o, trace) = run_ovs(&ovs, case);
        let w = run_weft(case);
        if let Outcome::Outputs(outs) = &o {
            if outs.is_empty() {
                dropped += 1;
            }
            let input = Hdr::of_frame(&case.packet);
            if outs.iter().any(|(_, h)| *h != input) {
                modified += 1;
            }
        }
        let verdict = match (&o, &w) {
            (Outcome::Outputs(a), Outcome::Outputs(b)) if a == b => {
                exact += 1;
                continue;
            }
            (Outcome::Outputs(a), Outcome::Outputs(b))
                if case.floods() && sorted(a) == sorted(b) =>
            {
                order_only += 1;
                continue;
            }
            _ => ALLOWED.iter().find(|(_, f)| f(case, &o, &w)),
        };
        if let Some((name, _)) = verdict {
            eprintln!("case {}: allowed difference {name}", case.id);
            allowed += 1;
            continue;
        }
        let hex: String = case.packet.iter().map(|b| format!("{b:02x}")).collect();
        bad.push(format!(
            "case {} in_port={} packet={hex}\n  flows:\n    {}\n  OVS:  {o:?}\n  Weft: {w:?}\n  OVS trace:\n{trace}",
            case.id,
            case.in_port,
            case.flows.join("\n    "),
        ));
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ovs_diff: {} cases in {secs:.1}s: {exact} exact, {order_only} order-only (flood), \
         {allowed} allowed, {} mismatches; OVS dropped {dropped}, modified headers in {modified}",
        cases.len(),
        bad.len()
    );
    for b in bad.iter().take(15) {
        eprintln!("{b}");
    }
    assert!(
        bad.is_empty(),
        "{} cases differ from OVS (first shown above)",
        bad.len()
    );
    // The generator must exercise both outcomes and rewrites, or the
    // comparison proves little.
    assert!(dropped >= n / 20, "too few dropped cases: {dropped}");
    assert!(dropped <= n * 3 / 4, "too many dropped cases: {dropped}");
    assert!(modified >= n / 10, "too few rewriting cases: {modified}");
}

/// A hand-written case with known results on both sides, so that a
/// harness that silently reads nothing (no flows installed, unparsed
/// trace) cannot pass.
fn control_case(ovs: &ovs::Ovs) {
    let mut k = protocol::flow::FlowKey::default();
    k.set_dl_src(protocol::wire::EthernetAddress::from_bytes(&[
        0, 0, 0, 0, 0, 1,
    ]));
    k.set_dl_dst(protocol::wire::EthernetAddress::from_bytes(&[
        0, 0, 0, 0, 0, 2,
    ]));
    k.set_dl_type(0x0800);
    k.set_nw_src(std::net::Ipv4Addr::new(10, 0, 0, 1));
    k.set_nw_dst(std::net::Ipv4Addr::new(10, 0, 0, 2));
    k.set_nw_ttl(64);
    k.set_nw_proto(6);
    k.set_tp_src(1234);
    k.set_tp_dst(80);
    let case = Case {
        id: usize::MAX,
        flows: vec![
            "table=0,priority=10,tcp,tp_dst=80,actions=dec_ttl,mod_nw_dst:10.0.0.9,output:2,\
             push_vlan:0x8100,mod_vlan_vid:5,resubmit(,1)"
                .into(),
            "table=0,priority=0,actions=drop".into(),
            "table=1,priority=0,tcp,actions=mod_tp_dst:8080,output:3".into(),
        ],
        in_port: 1,
        packet: weft_switchd::pipeline::packet::packet_from_key(&k),
    };
    let (o, trace) = run_ovs(ovs, &case);
    let w = run_weft(&case);
    let Outcome::Outputs(outs) = &o else {
        panic!("control case: OVS {o:?}\n{trace}");
    };
    assert_eq!(outs.len(), 2, "{trace}");
    assert_eq!(outs[0].0, "2");
    assert_eq!(outs[0].1.nw_ttl, 63);
    assert_eq!(outs[0].1.nw_dst, std::net::Ipv4Addr::new(10, 0, 0, 9));
    assert!(outs[0].1.vlans.is_empty());
    assert_eq!(outs[0].1.tp_dst, 80);
    assert_eq!(outs[1].0, "3");
    assert_eq!(outs[1].1.vlans, [(5, 0)]);
    assert_eq!(outs[1].1.tp_dst, 8080);
    assert_eq!(o, w, "control case: OVS vs Weft");
}
