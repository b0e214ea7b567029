//! Differential test: our wire decoders against tshark (4.0).
//!
//! # Where the packets come from
//!
//! * `generated_packets_match_tshark`: 2,400 Ethernet frames from a seeded
//!   xorshift generator (`tshark_diff/generator.rs`, fixed [`SEED`], no
//!   flakiness). Every header is written with OUR emitters (`Repr::emit`),
//!   plus view setters where a `Repr` cannot say it (IPv4 options + IHL,
//!   TCP options + data offset, IPv6 extension headers, ND/Geneve options),
//!   and checksums come from our `fill_checksum*`. Kinds: Ethernet, 802.1Q
//!   and 802.1ad+802.1Q, ARP request/reply, IPv4 (options, DF/MF, first and
//!   later fragments), IPv6 with hop-by-hop / destination options / segment
//!   routing (segments left 0) / fragment headers, ICMPv4 echo and
//!   frag-needed, ICMPv6 echo, NS+SLL, NA+TLL, TCP (all 9 flag bits, options),
//!   UDP (zero checksum sometimes over IPv4), SCTP with a DATA chunk, VXLAN
//!   and Geneve (0..3 options, critical or not, inner Ethernet or bare IP)
//!   over IPv4 and IPv6 underlays, carrying inner Ethernet/VLAN/IP/L4.
//!   About 3% get one wrong checksum (IPv4, TCP, UDP, ICMP, ICMPv6, SCTP)
//!   and about 20% one defect: cut at a random point, IHL < 5, IPv4 total
//!   length beyond the frame, TCP data offset < 5, UDP length < 8, a Geneve
//!   option overrunning the options area, a wrong IP version nibble.
//!   Enclosing UDP checksums are refilled after a defect so that the
//!   defect is the only thing wrong.
//! * `shared_captures_match_tshark`: every frame of every capture in the
//!   shared pcaps dir (`$WEFT_PCAPS`, default
//!   `CARGO_MANIFEST_DIR/../../shared/pcaps`).
//!
//! Each set is written to ONE pcap in a temp dir and dissected by ONE
//! tshark run (`-T json --no-duplicate-keys`, checksum checks on for IP,
//! TCP, UDP and SCTP CRC32c, reassembly off, every protocol but the ones
//! compared switched off: see `theirs::TSHARK_ARGS`).
//!
//! # What is compared
//!
//! Our side (`tshark_diff/ours.rs`) decodes each frame layer by layer with
//! the wire views and `Repr::parse` (inner layers of tunnels included) and
//! renders tshark field names and value forms. A layer that occurs more
//! than once (outer/inner `eth`, `ip`, ...) is matched by occurrence: with
//! `--no-duplicate-keys` tshark gives an array, outer first. Nested trees
//! are flattened; a field repeated within a layer (Geneve options) is
//! compared as the ordered list. Fields, per layer:
//!
//! * `eth.dst/src/type`; `vlan.priority/dei/id/etype`;
//!   `ieee8021ad.priority/dei/id` and `ieee8021ah.etype` (sic, tshark 4.0);
//!   `arp.opcode`, `arp.{src,dst}.{hw_mac,proto_ipv4}`;
//! * `ip.version/hdr_len/len/id/flags.df/flags.mf/frag_offset` (8-byte
//!   units)`/ttl/proto/dsfield.dscp/dsfield.ecn/checksum.status/src/dst`;
//! * `ipv6.version/tclass/tclass.dscp/tclass.ecn/flow/plen/nxt/hlim/src/
//!   dst`, `ipv6.{hopopts,dstopts,routing}.{nxt,len}`,
//!   `ipv6.routing.type/segleft`, `ipv6.fraghdr.nxt/offset/more/ident`
//!   (our header views walked by hand, and cross-checked against
//!   `ipv6::walk_extension_headers`);
//! * `tcp.srcport/dstport/seq_raw/ack_raw/hdr_len/flags/window_size_value/
//!   checksum.status`; `udp.srcport/dstport/length/checksum.status` (3 =
//!   zero checksum over IPv4); `sctp.srcport/dstport/verification_tag/
//!   checksum.status/chunk_type/chunk_flags/chunk_length`;
//! * `icmp.type/code/checksum.status/ident/seq/mtu`;
//!   `icmpv6.type/code/checksum.status/echo.identifier/
//!   echo.sequence_number/nd.ns.target_address/nd.na.target_address/
//!   nd.na.flag.{r,s,o}/opt.linkaddr`;
//! * `vxlan.vni/flag_i`; `geneve.version/options_length` (tshark's
//!   top-level `geneve.option.length`)`/flags.oam/flags.critical/proto_type/
//!   vni` and per option `geneve.option.class/type/type.critical/length`.
//!
//! The FlowKey from `protocol::flow::extract` (2 VLAN tags) is compared
//! too, on the outer headers (the extractor does not enter tunnels), under
//! the same tshark names, counted as `flow:<name>`: MACs, the innermost
//! EtherType, VLAN id/priority, ARP fields, IPv4/IPv6 addresses, proto,
//! TOS/traffic class, TTL/hop limit, flow label, ports, TCP flags,
//! ICMP/ICMPv6 type and code, ND target and link-layer address.
//!
//! Every field both sides produce must agree; a mismatch fails with the
//! packet index, field, both values and the packet hex. For well-formed
//! and bad-checksum packets additionally: every field we produce must exist
//! in tshark's output, our layer chain must equal tshark's
//! `frame.protocols` (reduced to header layers), `flow::extract` must not
//! fail, and (well-formed only) we must not reject the packet and tshark
//! must report no `_ws.malformed` and no error-severity expert info in a
//! header layer. Against vacuous passes, every field in [`REQUIRED`] and
//! [`FLOW_REQUIRED`] must have been compared at least [`MIN_PER_FIELD`]
//! times and the total must exceed [`MIN_TOTAL`].
//!
//! # The malformed rule
//!
//! For a packet with a defect: our decoder must reject it (some
//! view/`Repr` returns `Err`) at layer index E of our chain; let T be the
//! index, in tshark's reduced chain, of the first header layer where tshark
//! reports `_ws.malformed` or an error-severity expert info, or the chain
//! length if it reports none. We require E <= T (we never accept deeper
//! than tshark complains) and that our chain and tshark's agree before E.
//! The rule is made non-vacuous by asserting that tshark flags every
//! IHL / total-length / data-offset / UDP-length defect. tshark does not
//! flag a Geneve option overrun and decodes an `0x0800` frame with version
//! 6 as IPv6, so for those kinds the rule only says that we reject them.
//!
//! # Not compared, on purpose
//!
//! * L4 checksums of fragments (neither side can verify), L4 of later
//!   fragments (tshark shows data), the packet quoted by an ICMP error
//!   (tshark nests it inside `icmp`; we do not decode it).
//! * Contents of IPv4 options, TCP options, IPv6 option TLVs and Geneve
//!   option data: our decoders skip them, they do not interpret them.
//! * In the FlowKey: VLAN DEI (OVS keeps the CFI bit as "tag present"),
//!   IP flags/offset (`nw_frag` is a 2-bit summary), `ipv6.nxt`
//!   (`nw_proto` is after the extension headers), `eth.type` of tagged
//!   frames (`dl_type` is the innermost EtherType, compared with the last
//!   tag's `etype` instead).
//! * Payload dissectors tshark leaves on despite `--disable-protocol ALL`:
//!   their layers and errors are ignored.
//!
//! # tshark missing
//!
//! Without `tshark` on PATH the tests print a loud SKIPPED line and pass,
//! unless `WEFT_REQUIRE_TSHARK=1` (CI), where they fail.
//! `WEFT_TSHARK_KEEP=path` keeps a copy of the generated pcap.

#![allow(clippy::unwrap_used)] // tests may unwrap (PREAMBLE)

#[path = "tshark_diff/generator.rs"]
mod generator;
#[path = "tshark_diff/ours.rs"]
mod ours;
#[path = "tshark_diff/theirs.rs"]
mod theirs;

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::pcap::{LINKTYPE_ETHERNET, PcapReader, PcapWriter};

use generator::{Generated, Generator, Malform, Variant};
use theirs::TsharkPacket;

/// Number of generated packets.
const PACKETS: usize = 2400;
/// The generator seed (fixed: the test is deterministic).
const SEED: u64 = 0x5745_4654_7473_6872;

/// Comparisons known to disagree because of a bug in a wire module, not in
/// this test: (tshark field name, reason). Each entry suppresses the
/// comparison of exactly that field; remove it once the bug is fixed.
const KNOWN_DIFFS: &[(&str, &str)] = &[];

/// Every field that must have been compared at least `MIN_PER_FIELD` times
/// over the generated set.
const REQUIRED: &[&str] = &[
    "eth.dst",
    "eth.src",
    "eth.type",
    "vlan.priority",
    "vlan.id",
    "vlan.etype",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.hw_mac",
    "arp.dst.proto_ipv4",
    "ip.version",
    "ip.hdr_len",
    "ip.len",
    "ip.id",
    "ip.flags.df",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.ttl",
    "ip.proto",
    "ip.dsfield.dscp",
    "ip.dsfield.ecn",
    "ip.checksum.status",
    "ip.src",
    "ip.dst",
    "ipv6.tclass",
    "ipv6.flow",
    "ipv6.plen",
    "ipv6.nxt",
    "ipv6.hlim",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.hdr_len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.checksum.status",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.checksum.status",
    "icmp.type",
    "icmp.code",
    "icmp.checksum.status",
    "icmpv6.type",
    "icmpv6.code",
    "icmpv6.checksum.status",
    "icmpv6.nd.ns.target_address",
    "icmpv6.nd.na.target_address",
    "icmpv6.opt.linkaddr",
    "sctp.srcport",
    "sctp.dstport",
    "sctp.verification_tag",
    "sctp.checksum.status",
    "sctp.chunk_type",
    "ieee8021ad.id",
    "ieee8021ah.etype",
    "ipv6.hopopts.nxt",
    "ipv6.dstopts.nxt",
    "ipv6.routing.type",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.ident",
    "vxlan.vni",
    "geneve.version",
    "geneve.vni",
    "geneve.proto_type",
    "geneve.options_length",
    "geneve.option.class",
    "geneve.option.type",
    "geneve.option.length",
    "geneve.flags.critical",
    "geneve.flags.oam",
];
/// The FlowKey fields (as tshark names) that must have been compared at
/// least `MIN_PER_FIELD` times.
const FLOW_REQUIRED: &[&str] = &[
    "eth.dst",
    "eth.src",
    "eth.type",
    "vlan.id",
    "vlan.priority",
    "vlan.etype",
    "ieee8021ad.id",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.hw_mac",
    "arp.dst.proto_ipv4",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.dsfield.dscp",
    "ip.dsfield.ecn",
    "ip.ttl",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.flow",
    "ipv6.tclass",
    "ipv6.hlim",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "icmpv6.nd.ns.target_address",
    "icmpv6.nd.na.target_address",
    "icmpv6.opt.linkaddr",
];
const MIN_PER_FIELD: usize = 10;
const MIN_TOTAL: usize = 30_000;

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("weft-tshark-diff-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Tally of the comparisons.
#[derive(Default)]
struct Stats {
    /// Field -> comparisons; `flow:` prefixes comparisons of FlowKey
    /// fields from `protocol::flow::extract`.
    per_field: BTreeMap<String, usize>,
    known: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    /// (defect, rule held) -> packets.
    malformed: BTreeMap<(generator::Malform, bool), usize>,
    /// defect -> packets where tshark flags an error in a header layer.
    tshark_flagged: BTreeMap<generator::Malform, usize>,
}

impl Stats {
    fn total(&self) -> usize {
        self.per_field.values().sum()
    }
    fn fail(&mut self, msg: String) {
        if self.failures.len() < 40 {
            self.failures.push(msg);
        } else if self.failures.len() == 40 {
            self.failures.push("... (more failures cut)".into());
        }
    }
}

/// The protocol chain as tshark names it, reduced to the header layers we
/// decode: pseudo-layers (`frame`, `ethertype`, `data`), the IPv6
/// extension headers (fields of our `ipv6` layer, as they are fields of
/// tshark's `ipv6` layer in the JSON), payload dissectors the protocol
/// filter does not switch off, and the packet quoted by an ICMP error
/// (tshark nests it inside the `icmp` layer; we do not decode it).
fn tshark_chain(t: &TsharkPacket) -> Vec<String> {
    filter_chain(&t.chain)
}

fn filter_chain(chain: &[String]) -> Vec<String> {
    let mut out = vec![];
    for p in chain {
        if HEADER_LAYERS.contains(&p.as_str()) {
            out.push(p.clone());
        }
        if p == "icmp" || p == "icmpv6" {
            break;
        }
    }
    out
}

/// tshark layer names of the headers we decode.
const HEADER_LAYERS: &[&str] = &[
    "eth",
    "vlan",
    "ieee8021ad",
    "arp",
    "ip",
    "ipv6",
    "icmp",
    "icmpv6",
    "tcp",
    "udp",
    "sctp",
    "vxlan",
    "geneve",
];

/// The errors tshark reports in the header layers we decode: layers
/// holding `_ws.malformed` or an expert info of severity error, as
/// positions in [`tshark_chain`]. Errors of payload dissectors (the
/// protocol filter cannot switch off every port-registered one) are not
/// ours to judge and are left out.
fn header_error_positions(t: &TsharkPacket) -> Vec<usize> {
    let chain = tshark_chain(t);
    let mut out = vec![];
    for (name, occurrence) in &t.error_layers {
        if name == "_ws.malformed" {
            // A top-level marker: it belongs to the layer right before it
            // in frame.protocols (the one whose dissector threw).
            let upto: Vec<&String> = t
                .chain
                .iter()
                .take_while(|p| p.as_str() != "_ws.malformed")
                .collect();
            let Some(last) = upto
                .iter()
                .rev()
                .find(|p| !matches!(p.as_str(), "data" | "ethertype"))
            else {
                continue;
            };
            let is_header = HEADER_LAYERS.contains(&last.as_str()) || last.starts_with("ipv6.");
            if is_header {
                let owned: Vec<String> = upto.iter().map(|s| (*s).clone()).collect();
                out.push(filter_chain(&owned).len().saturating_sub(1));
            }
            continue;
        }
        if let Some(i) = chain
            .iter()
            .enumerate()
            .filter(|(_, p)| *p == name)
            .nth(*occurrence)
            .map(|(i, _)| i)
        {
            out.push(i);
        }
    }
    out
}

/// Where tshark's dissection goes wrong, as an index into its filtered
/// chain: the first header layer with an error; if there is none, the
/// chain length (tshark went as far as it could without complaint).
fn tshark_error_position(t: &TsharkPacket) -> usize {
    header_error_positions(t)
        .into_iter()
        .min()
        .unwrap_or(tshark_chain(t).len())
}

/// Compares one packet; `strict` is set for well-formed generated packets.
fn compare(
    tag: &str,
    what: &str,
    bytes: &[u8],
    ours: &ours::Decoded,
    theirs: &TsharkPacket,
    strict: bool,
    stats: &mut Stats,
) {
    let mut occ: BTreeMap<&str, usize> = BTreeMap::new();
    for layer in &ours.layers {
        let k = occ.entry(layer.proto).or_default();
        let index = *k;
        *k += 1;
        let Some(their_layer) = theirs.layers.get(layer.proto).and_then(|v| v.get(index)) else {
            if strict {
                stats.fail(format!(
                    "{what}: tshark has no layer {}[{index}]\n  packet {}",
                    layer.proto,
                    hex(bytes)
                ));
            }
            continue;
        };
        let mut ours_by_name: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
        for (name, value) in &layer.fields {
            ours_by_name.entry(name).or_default().push(value);
        }
        for (name, values) in ours_by_name {
            let Some(their_values) = their_layer.get(name) else {
                if strict {
                    stats.fail(format!(
                        "{what}: tshark has no {tag}{name} in {}[{index}]\n  packet {}",
                        layer.proto,
                        hex(bytes)
                    ));
                }
                continue;
            };
            if KNOWN_DIFFS.iter().any(|(f, _)| *f == name) {
                *stats.known.entry(name).or_default() += values.len();
                continue;
            }
            if values != *their_values {
                stats.fail(format!(
                    "{what}: {}[{index}] {tag}{name}: ours {values:?} tshark {their_values:?}\n  packet {}",
                    layer.proto,
                    hex(bytes)
                ));
            }
            *stats.per_field.entry(format!("{tag}{name}")).or_default() += values.len();
        }
    }
}

fn write_pcap(path: &std::path::Path, packets: &[&[u8]]) {
    let mut w = PcapWriter::new(LINKTYPE_ETHERNET);
    for (i, p) in packets.iter().enumerate() {
        w.push(1_700_000_000 + i as u32, 0, p);
    }
    std::fs::write(path, w.as_bytes()).unwrap();
}

fn pcaps_dir() -> PathBuf {
    match std::env::var_os("WEFT_PCAPS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps"),
    }
}

fn tshark_or_skip() -> bool {
    if theirs::available() {
        return true;
    }
    if std::env::var("WEFT_REQUIRE_TSHARK").as_deref() == Ok("1") {
        panic!("tshark is not installed but WEFT_REQUIRE_TSHARK=1");
    }
    // Straight to the stderr handle: the test harness does not capture it,
    // so the skip is visible even in a passing run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!! SKIPPED: tshark_diff needs `tshark` on PATH (set WEFT_REQUIRE_TSHARK=1 to make this a failure) !!!!!!!!!!\n"
    );
    false
}

#[test]
fn generated_packets_match_tshark() {
    if !tshark_or_skip() {
        return;
    }
    let start = std::time::Instant::now();
    let packets: Vec<Generated> = Generator::new(SEED).packets(PACKETS);
    let dir = TempDir::new();
    let path = dir.0.join("generated.pcap");
    write_pcap(
        &path,
        &packets.iter().map(|p| &p.bytes[..]).collect::<Vec<_>>(),
    );
    if let Some(keep) = std::env::var_os("WEFT_TSHARK_KEEP") {
        std::fs::copy(&path, keep).unwrap();
    }
    let theirs = theirs::run(&path, &[]);
    assert_eq!(theirs.len(), packets.len(), "tshark frame count");

    let mut stats = Stats::default();
    for (i, (g, t)) in packets.iter().zip(&theirs).enumerate() {
        let ours = ours::decode(&g.bytes);
        let what = format!(
            "generated #{i} (frame {}) {:?} {}",
            i + 1,
            g.variant,
            g.desc
        );
        let good = g.variant == Variant::Good;
        let strict = matches!(g.variant, Variant::Good | Variant::BadChecksum);
        compare("", &what, &g.bytes, &ours, t, strict, &mut stats);
        // The flow extractor on the same bytes: on well-formed packets it
        // must not fail and must agree with tshark on the outer headers.
        if strict {
            let (flow, err) = ours::flow(&g.bytes);
            if let Some(err) = err {
                stats.fail(format!(
                    "{what}: flow::extract fails on a well-formed packet: {err}\n  packet {}",
                    hex(&g.bytes)
                ));
            }
            compare("flow:", &what, &g.bytes, &flow, t, true, &mut stats);
        }
        for msg in &ours.internal {
            stats.fail(format!("{what}: {msg}\n  packet {}", hex(&g.bytes)));
        }
        if let Variant::Malformed(kind) = g.variant {
            let e = malformed_rule(&ours, t);
            *stats.malformed.entry((kind, e.is_ok())).or_default() += 1;
            if !header_error_positions(t).is_empty() {
                *stats.tshark_flagged.entry(kind).or_default() += 1;
            }
            if let Err(msg) = e {
                stats.fail(format!("{what}: {msg}\n  packet {}", hex(&g.bytes)));
            }
        }
        if g.variant == Variant::BadChecksum {
            // (The comparison of the `*.checksum.status` fields then shows
            // that tshark agrees on which one is bad.)
            if !ours
                .layers
                .iter()
                .flat_map(|l| &l.fields)
                .any(|(n, v)| n.ends_with("checksum.status") && v == "0")
            {
                stats.fail(format!(
                    "{what}: we do not see the bad checksum\n  packet {}",
                    hex(&g.bytes)
                ));
            }
        }
        if strict {
            let our_chain: Vec<&str> = ours.layers.iter().map(|l| l.proto).collect();
            if our_chain != tshark_chain(t) {
                stats.fail(format!(
                    "{what}: layer chains differ: ours {our_chain:?} tshark {:?}\n  packet {}",
                    tshark_chain(t),
                    hex(&g.bytes)
                ));
            }
        }
        if good {
            if let Some((_, proto, e)) = ours.error {
                stats.fail(format!(
                    "{what}: we reject a well-formed packet at {proto}: {e:?}\n  packet {}",
                    hex(&g.bytes)
                ));
            }
            if !header_error_positions(t).is_empty() {
                stats.fail(format!(
                    "{what}: tshark reports errors on a well-formed packet: {:?}\n  packet {}",
                    t.error_layers,
                    hex(&g.bytes)
                ));
            }
        }
    }
    report(&stats, "generated");
    for f in REQUIRED {
        let n = stats.per_field.get(*f).copied().unwrap_or(0);
        assert!(n >= MIN_PER_FIELD, "field {f} compared only {n} times");
    }
    for f in FLOW_REQUIRED {
        let f = format!("flow:{f}");
        let n = stats.per_field.get(&f).copied().unwrap_or(0);
        assert!(n >= MIN_PER_FIELD, "field {f} compared only {n} times");
    }
    assert!(
        stats.total() > MIN_TOTAL,
        "only {} comparisons",
        stats.total()
    );
    // The malformed rule is not vacuous: tshark itself flags these defects
    // (so "at or below tshark's error layer" is a real bound), and every
    // defect kind was generated.
    for kind in [
        Malform::IhlTooSmall,
        Malform::Ipv4TotalLenTooBig,
        Malform::TcpDataOffsetSmall,
        Malform::UdpLenSmall,
    ] {
        let n: usize = [true, false]
            .iter()
            .map(|ok| stats.malformed.get(&(kind, *ok)).copied().unwrap_or(0))
            .sum();
        let flagged = stats.tshark_flagged.get(&kind).copied().unwrap_or(0);
        assert!(n >= MIN_PER_FIELD, "only {n} packets with {kind:?}");
        assert_eq!(
            flagged, n,
            "tshark flags only {flagged} of {n} {kind:?} packets"
        );
    }
    assert!(
        stats.failures.is_empty(),
        "{} failures:\n{}",
        stats.failures.len(),
        stats.failures.join("\n")
    );
    eprintln!("generated: done in {:?}", start.elapsed());
}

/// The malformed rule (see the module doc): we must reject the packet, at a
/// layer no deeper than the one where tshark reports an error (or stops),
/// and the layers before ours must be the same as tshark's.
fn malformed_rule(ours: &ours::Decoded, t: &TsharkPacket) -> Result<(), String> {
    let Some((e, proto, err)) = ours.error else {
        return Err("malformed packet accepted by our decoder".into());
    };
    let tpos = tshark_error_position(t);
    let our_chain: Vec<&str> = ours.layers.iter().map(|l| l.proto).collect();
    let their_chain = tshark_chain(t);
    if e > tpos {
        return Err(format!(
            "we reject at layer {e} ({proto}: {err:?}) but tshark already fails at layer {tpos}: ours {our_chain:?} tshark {their_chain:?} errors {:?}",
            t.error_layers
        ));
    }
    if their_chain.len() < e || our_chain[..e] != their_chain[..e] {
        return Err(format!(
            "chains differ before our error layer {e}: ours {our_chain:?} tshark {their_chain:?}"
        ));
    }
    Ok(())
}

fn report(stats: &Stats, what: &str) {
    for ((kind, ok), n) in &stats.malformed {
        eprintln!(
            "  malformed {kind:?}: rule {} on {n} (tshark flags an error in {})",
            if *ok { "held" } else { "FAILED" },
            stats.tshark_flagged.get(kind).copied().unwrap_or(0)
        );
    }
    eprintln!(
        "{what}: {} comparisons over {} fields",
        stats.total(),
        stats.per_field.len()
    );
    for (f, n) in &stats.per_field {
        eprintln!("  {f:32} {n}");
    }
    for (f, n) in &stats.known {
        eprintln!("  KNOWN DIFF skipped: {f:24} {n}");
    }
}

#[test]
fn shared_captures_match_tshark() {
    if !tshark_or_skip() {
        return;
    }
    let dir = pcaps_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    let mut stats = Stats::default();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let reader = PcapReader::new(&bytes).unwrap();
        let records: Vec<Vec<u8>> = reader.records().map(|r| r.unwrap().data.to_vec()).collect();
        let theirs = theirs::run(file, &[]);
        assert_eq!(theirs.len(), records.len(), "{}", file.display());
        for (i, (rec, t)) in records.iter().zip(&theirs).enumerate() {
            let ours = ours::decode(rec);
            let what = format!(
                "{} frame {}",
                file.file_name().unwrap().to_string_lossy(),
                i + 1
            );
            compare("", &what, rec, &ours, t, false, &mut stats);
            let (flow, err) = ours::flow(rec);
            if err.is_none() {
                compare("flow:", &what, rec, &flow, t, true, &mut stats);
            }
        }
    }
    report(&stats, "captures");
    assert!(stats.total() > 500, "only {} comparisons", stats.total());
    assert!(
        stats.failures.is_empty(),
        "{} failures:\n{}",
        stats.failures.len(),
        stats.failures.join("\n")
    );
}
