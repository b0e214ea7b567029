//! Deterministic generator of flow tables and packets over the subset of
//! OpenFlow where Weft and Open vSwitch semantics overlap.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use protocol::flow::FlowKey;
use protocol::wire::EthernetAddress;
use weft_switchd::pipeline::packet::packet_from_key;

/// Number of data ports `p1..pN` on both switches (plus LOCAL).
pub(crate) const NPORTS: u32 = 4;

/// splitmix64: small, deterministic, good enough for test generation.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `pct` percent.
    pub(crate) fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

const MACS: [&str; 4] = [
    "00:00:00:00:00:01",
    "00:00:00:00:00:02",
    "00:00:00:00:00:03",
    "02:00:00:00:00:aa",
];
const MAC_MASKS: [&str; 3] = [
    "ff:ff:ff:ff:ff:ff",
    "ff:ff:ff:ff:ff:00",
    "fe:ff:ff:ff:ff:ff",
];
const IPS: [[u8; 4]; 5] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 0, 1, 5],
    [10, 1, 2, 3],
    [192, 168, 1, 1],
];
const PREFIXES: [u32; 5] = [32, 24, 16, 8, 31];
const TP_PORTS: [u16; 4] = [80, 443, 1234, 53];
const REG_VALUES: [u32; 4] = [0, 1, 2, 7];
const VIDS: [u16; 3] = [5, 10, 100];

/// One differential case: a flow table (add-flows text) and one packet.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// Index in the generated sequence.
    pub(crate) id: usize,
    /// Flows, one per line, `ovs-ofctl add-flows` syntax.
    pub(crate) flows: Vec<String>,
    /// The input port.
    pub(crate) in_port: u32,
    /// The packet bytes.
    pub(crate) packet: Vec<u8>,
}

impl Case {
    /// Whether any flow floods (FLOOD/ALL), whose output order OVS derives
    /// from a hash map.
    pub(crate) fn floods(&self) -> bool {
        self.flows
            .iter()
            .any(|f| f.contains("FLOOD") || f.contains("ALL"))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Any,
    Ip,
    Tcp,
    Udp,
    Icmp,
}

fn prefix(rng: &mut Rng) -> String {
    let ip = u32::from(Ipv4Addr::from(*rng.pick(&IPS)));
    let len = *rng.pick(&PREFIXES);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = Ipv4Addr::from(ip & mask);
    if len == 32 {
        net.to_string()
    } else {
        format!("{net}/{len}")
    }
}

fn gen_match(rng: &mut Rng, table: u8) -> (String, Proto, bool) {
    let proto = match rng.below(10) {
        0..=2 => Proto::Any,
        3..=4 => Proto::Ip,
        5..=6 => Proto::Tcp,
        7..=8 => Proto::Udp,
        _ => Proto::Icmp,
    };
    let mut m: Vec<String> = Vec::new();
    match proto {
        Proto::Any => {
            if rng.pct(15) {
                m.push(format!(
                    "dl_type={}",
                    rng.pick(&["0x0800", "0x86dd", "0x0806"])
                ));
            }
        }
        Proto::Ip => m.push(if rng.pct(50) { "ip" } else { "dl_type=0x0800" }.into()),
        Proto::Tcp => m.push("tcp".into()),
        Proto::Udp => m.push("udp".into()),
        Proto::Icmp => m.push(if rng.pct(50) { "icmp" } else { "ip,nw_proto=1" }.into()),
    }
    if rng.pct(25) {
        m.push(format!("in_port={}", 1 + rng.below(u64::from(NPORTS))));
    }
    if rng.pct(25) {
        let mac = rng.pick(&MACS);
        let mask = rng.pick(&MAC_MASKS);
        m.push(if *mask == "ff:ff:ff:ff:ff:ff" {
            format!("dl_src={mac}")
        } else {
            format!("dl_src={mac}/{mask}")
        });
    }
    if rng.pct(25) {
        m.push(format!("dl_dst={}", rng.pick(&MACS)));
    }
    if rng.pct(if table > 0 { 40 } else { 10 }) {
        m.push(format!("reg0={}", rng.pick(&REG_VALUES)));
    }
    let mut tagged = false;
    if rng.pct(if table > 0 { 20 } else { 10 }) {
        if rng.pct(50) {
            m.push("vlan_tci=0x1000/0x1000".into());
        } else {
            m.push(format!("dl_vlan={}", rng.pick(&VIDS)));
        }
        tagged = true;
    }
    if proto != Proto::Any {
        if rng.pct(35) {
            m.push(format!("nw_src={}", prefix(rng)));
        }
        if rng.pct(35) {
            m.push(format!("nw_dst={}", prefix(rng)));
        }
    }
    if matches!(proto, Proto::Tcp | Proto::Udp) {
        if rng.pct(30) {
            m.push(format!("tp_src={}", rng.pick(&TP_PORTS)));
        }
        if rng.pct(30) {
            m.push(format!("tp_dst={}", rng.pick(&TP_PORTS)));
        }
    }
    (m.join(","), proto, tagged)
}

fn gen_actions(rng: &mut Rng, table: u8, ntables: u8, proto: Proto, tagged: bool) -> String {
    // 1 in 10 flows drops explicitly; the others have 1-4 actions.
    let n = if rng.pct(10) { 0 } else { 1 + rng.below(4) };
    let mut a: Vec<String> = Vec::new();
    // VLAN tags the flow's own actions can rely on: OVS (OpenFlow 1.5)
    // rejects a `strip_vlan` without a tag and a third tag (OFPBAC_BAD_TAG).
    let mut depth = u8::from(tagged);
    for _ in 0..n {
        let choice = rng.below(18);
        let s = match choice {
            0..=3 => format!("output:{}", 1 + rng.below(u64::from(NPORTS))),
            4 => rng.pick(&["FLOOD", "ALL", "IN_PORT", "LOCAL"]).to_string(),
            5 if table + 1 < ntables => format!(
                "resubmit(,{})",
                table + 1 + rng.below(u64::from(ntables - table - 1)) as u8
            ),
            6 => {
                let v = rng.pick(&REG_VALUES);
                if rng.pct(50) {
                    format!("load:{v}->NXM_NX_REG0[]")
                } else {
                    format!("set_field:{v}->reg0")
                }
            }
            7 => format!("mod_dl_src:{}", rng.pick(&MACS)),
            8 => format!("mod_dl_dst:{}", rng.pick(&MACS)),
            9 if proto != Proto::Any => {
                format!("mod_nw_src:{}", Ipv4Addr::from(*rng.pick(&IPS)))
            }
            10 if proto != Proto::Any => {
                format!("mod_nw_dst:{}", Ipv4Addr::from(*rng.pick(&IPS)))
            }
            11 if proto != Proto::Any => "dec_ttl".into(),
            12 if matches!(proto, Proto::Tcp | Proto::Udp) => {
                format!("mod_tp_dst:{}", rng.pick(&TP_PORTS))
            }
            13 if depth < 2 => {
                depth += 1;
                format!("push_vlan:0x8100,mod_vlan_vid:{}", rng.pick(&VIDS))
            }
            15 if matches!(proto, Proto::Tcp | Proto::Udp) => {
                format!("mod_tp_src:{}", rng.pick(&TP_PORTS))
            }
            16 if depth > 0 => format!("mod_vlan_pcp:{}", rng.below(8)),
            14 if depth > 0 => {
                depth -= 1;
                "strip_vlan".into()
            }
            _ => continue,
        };
        a.push(s);
    }
    // Rewrites only show if something is sent: most flows that would
    // send nothing get a final output.
    let sends = |x: &String| {
        x.starts_with("output")
            || x.starts_with("resubmit")
            || x.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    };
    if n > 0 && !a.iter().any(sends) && rng.pct(60) {
        a.push(format!("output:{}", 1 + rng.below(u64::from(NPORTS))));
    }
    if table + 1 < ntables && rng.pct(25) {
        a.push(format!(
            "goto_table:{}",
            table + 1 + rng.below(u64::from(ntables - table - 1)) as u8
        ));
    }
    if a.is_empty() {
        "drop".into()
    } else {
        a.join(",")
    }
}

fn gen_packet(rng: &mut Rng) -> Vec<u8> {
    let mut k = FlowKey::default();
    fn mac(s: &str) -> EthernetAddress {
        let b: Vec<u8> = s
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).expect("MACS are valid"))
            .collect();
        EthernetAddress::from_bytes(&b)
    }
    let src: &&str = rng.pick(&MACS);
    let dst: &&str = rng.pick(&MACS);
    k.set_dl_src(mac(src));
    k.set_dl_dst(mac(dst));
    k.set_dl_type(0x0800);
    if rng.pct(20) {
        // One 802.1Q tag (CFI bit = present), priority 0 or 3.
        let pcp = if rng.pct(50) { 0 } else { 3 << 13 };
        k.set_vlan0_tci(0x1000 | pcp | *rng.pick(&VIDS));
        k.set_vlan0_tpid(0x8100);
    }
    k.set_nw_src(Ipv4Addr::from(*rng.pick(&IPS)));
    k.set_nw_dst(Ipv4Addr::from(*rng.pick(&IPS)));
    k.set_nw_ttl(64);
    match rng.below(3) {
        0 => {
            k.set_nw_proto(6);
            k.set_tp_src(*rng.pick(&TP_PORTS));
            k.set_tp_dst(*rng.pick(&TP_PORTS));
        }
        1 => {
            k.set_nw_proto(17);
            k.set_tp_src(*rng.pick(&TP_PORTS));
            k.set_tp_dst(*rng.pick(&TP_PORTS));
        }
        _ => {
            // ICMP echo request: type 8 code 0 in tp_src/tp_dst.
            k.set_nw_proto(1);
            k.set_tp_src(8);
            k.set_tp_dst(0);
        }
    }
    match rng.below(10) {
        0 => {
            // ARP request: nw_src/nw_dst are the protocol addresses.
            k.set_dl_type(0x0806);
            k.set_nw_proto(1);
            k.set_nw_ttl(0);
            k.set_tp_src(0);
            k.set_tp_dst(0);
            k.set_arp_sha(k.dl_src());
        }
        1 => {
            // IPv6 TCP: only L2 and port matches/actions apply to it.
            k.set_dl_type(0x86dd);
            k.set_nw_src(Ipv4Addr::UNSPECIFIED);
            k.set_nw_dst(Ipv4Addr::UNSPECIFIED);
            k.set_ipv6_src("fd00::1".parse().expect("literal"));
            k.set_ipv6_dst("fd00::2".parse().expect("literal"));
            k.set_nw_proto(6);
            k.set_tp_src(*rng.pick(&TP_PORTS));
            k.set_tp_dst(*rng.pick(&TP_PORTS));
        }
        _ => {}
    }
    packet_from_key(&k)
}

/// The `n` cases of seed `seed`.
pub(crate) fn cases(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|id| {
            let ntables = 1 + rng.below(3) as u8;
            let mut flows = Vec::new();
            for t in 0..ntables {
                let nflows = 1 + rng.below(5);
                // Distinct priorities: equal-priority overlaps are
                // unspecified in OpenFlow.
                let mut prios: Vec<u64> = Vec::new();
                while (prios.len() as u64) < nflows {
                    let p = 1 + rng.below(200);
                    if !prios.contains(&p) {
                        prios.push(p);
                    }
                }
                for p in prios {
                    let (m, proto, tagged) = gen_match(&mut rng, t);
                    let acts = gen_actions(&mut rng, t, ntables, proto, tagged);
                    let mut line = format!("table={t},priority={p}");
                    if !m.is_empty() {
                        let _ = write!(line, ",{m}");
                    }
                    let _ = write!(line, ",actions={acts}");
                    flows.push(line);
                }
                // Catch-all so that no table miss policy is exercised.
                let acts = gen_actions(&mut rng, t, ntables, Proto::Any, false);
                flows.push(format!("table={t},priority=0,actions={acts}"));
            }
            let in_port = 1 + rng.below(u64::from(NPORTS)) as u32;
            let packet = gen_packet(&mut rng);
            Case {
                id,
                flows,
                in_port,
                packet,
            }
        })
        .collect()
}

/// Hand-written cases where the packet meets a third `push_vlan` (two
/// tags already tracked) across tables, which random tables almost never
/// produce (OVS refuses a third push within one flow, so it can only
/// happen through `resubmit`/`goto_table`). Ids start at `first_id`.
pub(crate) fn vlan_stack_cases(first_id: usize) -> Vec<Case> {
    let tcp = |vid: Option<u16>| {
        let mut k = FlowKey::default();
        k.set_dl_src(EthernetAddress::from_bytes(&[2, 0, 0, 0, 0, 1]));
        k.set_dl_dst(EthernetAddress::from_bytes(&[2, 0, 0, 0, 0, 2]));
        k.set_dl_type(0x0800);
        if let Some(v) = vid {
            k.set_vlan0_tci(0x1000 | v);
            k.set_vlan0_tpid(0x8100);
        }
        k.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
        k.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
        k.set_nw_ttl(64);
        k.set_nw_proto(6);
        k.set_tp_src(1234);
        k.set_tp_dst(80);
        packet_from_key(&k)
    };
    let tables: [(&[&str], Option<u16>); 5] = [
        // Tagged input, two pushes.
        (
            &[
                "table=0,priority=10,dl_vlan=5,actions=push_vlan:0x8100,mod_vlan_vid:10,output:2,resubmit(,1)",
                "table=1,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:100,output:3",
            ],
            Some(5),
        ),
        // Untagged input, three pushes over three tables, outputs between.
        (
            &[
                "table=0,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:5,resubmit(,1)",
                "table=1,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:10,output:2,goto_table:2",
                "table=2,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:100,mod_vlan_pcp:3,output:3,output:4",
            ],
            None,
        ),
        // A third push, then a pop: the lost tag does not come back.
        (
            &[
                "table=0,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:10,resubmit(,1)",
                "table=1,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:100,output:2,strip_vlan,output:3",
            ],
            Some(5),
        ),
        // Four pushes: only the last two tags stay.
        (
            &[
                "table=0,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:10,resubmit(,1),output:4",
                "table=1,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:100,resubmit(,2)",
                "table=2,priority=0,actions=push_vlan:0x8100,mod_vlan_vid:5,output:2",
            ],
            Some(7),
        ),
        // Third push with L3 rewrites around it.
        (
            &[
                "table=0,priority=0,ip,actions=push_vlan:0x8100,mod_vlan_vid:10,mod_nw_dst:10.0.0.9,goto_table:1",
                "table=1,priority=5,tcp,actions=push_vlan:0x8100,mod_vlan_vid:100,dec_ttl,mod_tp_dst:443,output:2",
                "table=1,priority=0,actions=drop",
            ],
            Some(5),
        ),
    ];
    tables
        .iter()
        .enumerate()
        .map(|(i, (flows, vid))| Case {
            id: first_id + i,
            flows: flows.iter().map(|f| (*f).to_owned()).collect(),
            in_port: 1,
            packet: tcp(*vid),
        })
        .collect()
}
