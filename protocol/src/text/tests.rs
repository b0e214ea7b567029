//! Unit tests: one per error kind (exact messages) and layout details.

use super::*;
use crate::flow::action::{ControllerReason, SubField};
use crate::flow::{Field, PortNo};
use crate::wire::EthernetAddress;

fn flow_err(s: &str) -> String {
    parse_flow(s).unwrap_err().to_string()
}

#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "ip,nw_src=10.0.0.300,actions=drop",
            "nw_src: \"10.0.0.300\" is not an IPv4 address",
        ),
        ("nw_srcc=1,actions=drop", "unknown field \"nw_srcc\""),
        (
            "nw_src=1.2.3.4,actions=drop",
            "nw_src: prerequisites not met (requires ip or arp)",
        ),
        (
            "ipv6,nw_dst=1.2.3.4,actions=drop",
            "nw_dst: prerequisites not met (requires ip or arp)",
        ),
        (
            "tp_dst=80,ip,actions=drop",
            "tp_dst: prerequisites not met (requires tcp, udp, sctp, tcp6, udp6 or sctp6)",
        ),
        (
            "udp,tcp_flags=+syn,actions=drop",
            "tcp_flags: prerequisites not met (requires tcp or tcp6)",
        ),
        (
            "icmp6,icmp_type=136,nd_sll=00:00:00:00:00:01,actions=drop",
            "nd_sll: prerequisites not met (requires icmp6 with icmp_type=135)",
        ),
        (
            "ip,icmp_type=3,actions=drop",
            "icmp_type: prerequisites not met (requires icmp or icmp6)",
        ),
        (
            "ip,arp_op=1,actions=drop",
            "arp_op: prerequisites not met (requires arp)",
        ),
        (
            "ip,ipv6_label=1,actions=drop",
            "ipv6_label: prerequisites not met (requires ipv6)",
        ),
        (
            "nw_ttl=3,actions=drop",
            "nw_ttl: prerequisites not met (requires ip or ipv6)",
        ),
        (
            "tcp,tp_dst=70000,actions=drop",
            "tp_dst: 70000 out of range (16 bits)",
        ),
        (
            "dl_vlan=5000,actions=drop",
            "dl_vlan: 5000 out of range (0..=4095, or 0xffff for no VLAN)",
        ),
        (
            "table=255,actions=drop",
            "table: 255 out of range (0..=254)",
        ),
        (
            "cookie=0x10000000000000000,actions=drop",
            "cookie: 0x10000000000000000 out of range (64 bits)",
        ),
        ("priority=,actions=drop", "priority: missing value"),
        ("ip,nw_src=,actions=drop", "nw_src: missing value"),
        (
            "ip,nw_proto=1/1,actions=drop",
            "nw_proto: \"1/1\": field cannot be masked",
        ),
        (
            "ip,ipv6,actions=drop",
            "ipv6: \"ipv6\" conflicts with an earlier value",
        ),
        (
            "ip,nw_src=1.1.1.1,nw_src=2.2.2.2,actions=drop",
            "nw_src: \"2.2.2.2\" conflicts with an earlier value",
        ),
        (
            "ip,nw_tos=5,actions=drop",
            "nw_tos: \"5\" is not a TOS value with the two ECN bits zero (a multiple of 4)",
        ),
        (
            "ip,nw_frag=maybe,actions=drop",
            "nw_frag: \"maybe\" is not a fragment type (no, yes, first, later or not_later)",
        ),
        (
            "tcp,tcp_flags=+ack-ack,actions=drop",
            "tcp_flags: \"+ack-ack\" is not a TCP flags value (e.g. +syn-ack, syn|ack, 0x002/0x012)",
        ),
        (
            "dl_src=00:11:22:33:44,actions=drop",
            "dl_src: \"00:11:22:33:44\" is not an Ethernet address",
        ),
        (
            "in_port=eth0,actions=drop",
            "in_port: \"eth0\" is not a port number or name",
        ),
        ("ip", "must specify an action (\"actions=...\")"),
        ("actions=outptu:1", "actions: unknown action \"outptu\""),
        (
            "actions=resubmit(,300)",
            "resubmit: table 300 out of range (0..=254)",
        ),
        (
            "actions=goto_table:300",
            "goto_table: table 300 out of range (0..=254)",
        ),
        (
            "table=2,actions=goto_table:1",
            "goto_table: table 1 is not after this flow's table 2",
        ),
        (
            "actions=conjunction(1,3/2)",
            "conjunction: clause 3 exceeds 2 clauses",
        ),
        (
            "actions=move:reg0[0..15]->reg1[0..7]",
            "move: source and destination widths differ (16 vs 8)",
        ),
        (
            "actions=load:1->reg0[0..40]",
            "load: \"reg0[0..40]\" is not a valid bit range of reg0 (32 bits)",
        ),
        (
            "actions=load:1->reg0[5..4]",
            "load: \"reg0[5..4]\" is not a valid bit range of reg0 (32 bits)",
        ),
        (
            "actions=set_field:0x800->dl_type",
            "set_field: field \"dl_type\" is not writable",
        ),
        (
            "actions=move:reg0[0..15]->dl_type[]",
            "move: field \"dl_type\" is not writable",
        ),
        (
            "actions=set_field:1->nosuch",
            "set_field: unknown field \"nosuch\"",
        ),
        (
            "actions=output:1,drop",
            "drop: must not be accompanied by any other action or instruction",
        ),
        (
            "actions=goto_table:1,output:1",
            "actions: out of order: actions come first, then clear_actions, write_actions, \
             write_metadata and goto_table",
        ),
        (
            "actions=write_actions(goto_table:1)",
            "goto_table: instruction not allowed inside write_actions",
        ),
        (
            "actions=write_actions(output:1",
            "\"write_actions(output:1\": unbalanced parentheses",
        ),
        (
            "actions=resubmit()",
            "resubmit: at least one of in_port and table must be given",
        ),
        (
            "actions=push_vlan:0x800",
            "push_vlan: \"0x800\" is not a VLAN ethertype (0x8100 or 0x88a8)",
        ),
        (
            "actions=mod_vlan_vid:4096",
            "mod_vlan_vid: 4096 out of range (0..=4095)",
        ),
        ("actions=pop_vlan:1", "pop_vlan: takes no argument"),
        (
            "dl_vlan_pcp1=7,actions=drop",
            "dl_vlan_pcp1: prerequisites not met (requires an outer VLAN tag match \
             (dl_vlan, dl_vlan_pcp or vlan_tci))",
        ),
        (
            "actions=controller(reason=bogus)",
            "controller: \"bogus\" is not a reason (action, no_match or invalid_ttl)",
        ),
        (
            "actions=controller(id=5)",
            "controller: unknown or unsupported key \"id\"",
        ),
        (
            "actions=output(port=1,max_len=100)",
            "output: output(...) is not supported",
        ),
    ];
    for (input, msg) in cases {
        assert_eq!(&flow_err(input), msg, "input: {input}");
    }
}

#[test]
fn error_fields_are_structured() {
    assert_eq!(
        parse_match("ip,nw_src=10.0.0.300").unwrap_err(),
        TextError::Invalid {
            field: "nw_src".into(),
            text: "10.0.0.300".into(),
            expected: "an IPv4 address",
        }
    );
    assert_eq!(
        parse_match("arp_op=1").unwrap_err(),
        TextError::Prerequisite {
            field: "arp_op".into(),
            requires: "arp",
        }
    );
}

#[test]
fn prerequisites_are_order_independent() {
    let a = parse_match("nw_src=1.2.3.4,tp_dst=80,tcp").unwrap();
    let b = parse_match("tcp,nw_src=1.2.3.4,tp_dst=80").unwrap();
    assert_eq!(a, b);
    assert_eq!(format_match(&a), "tcp,nw_src=1.2.3.4,tp_dst=80");
    // nw_src with arp is arp_spa, as in OVS.
    let m = parse_match("nw_src=10.0.0.1,arp").unwrap();
    assert_eq!(m, parse_match("arp,arp_spa=10.0.0.1").unwrap());
}

#[test]
fn match_values_and_masks() {
    let m = parse_match("ip,nw_dst=10.0.0.0/255.255.255.0,nw_src=10.1.2.3/8").unwrap();
    assert_eq!(m.get(Field::NwDst), (0x0a00_0000, 0xffff_ff00));
    assert_eq!(m.get(Field::NwSrc), (0x0a00_0000, 0xff00_0000));
    assert_eq!(format_match(&m), "ip,nw_src=10.0.0.0/8,nw_dst=10.0.0.0/24");
    let m = parse_match("dl_vlan=10").unwrap();
    assert_eq!(m.get(Field::VlanTci), (0x100a, 0x1fff));
    let m = parse_match("dl_vlan_pcp=5,dl_vlan=10").unwrap();
    assert_eq!(m.get(Field::VlanTci), (0xb00a, 0xffff));
    assert_eq!(format_match(&m), "dl_vlan=10,dl_vlan_pcp=5");
    let m = parse_match("vlan_vid=0x1005/0x1fff").unwrap();
    assert_eq!(format_match(&m), "dl_vlan=5");
    let m = parse_match("tcp,tcp_flags=syn|ack").unwrap();
    assert_eq!(m.get(Field::TcpFlags), (0x012, 0xfff));
    assert_eq!(format_match(&m), "tcp,tcp_flags=syn|ack");
    let m = parse_match("tcp,tcp_flags=0x002/0x012").unwrap();
    assert_eq!(format_match(&m), "tcp,tcp_flags=+syn-ack");
    let m = parse_match("tun_metadata3=0x5/0xff").unwrap();
    assert_eq!(m.get(Field::TunMetadata(3)), (5, 0xff));
    assert_eq!(m.key.tun_metadata_present(), 1 << 3);
    assert_eq!(format_match(&m), "tun_metadata3=0x5/0xff");
    let m = parse_match("ip,nw_src=*").unwrap();
    assert_eq!(format_match(&m), "ip");
    assert_eq!(format_match(&Match::CATCHALL), "");
    assert_eq!(parse_match("").unwrap(), Match::CATCHALL);
    let m = parse_match("in_port=LOCAL,reg3=0,metadata=0x1/0x1,conj_id=7").unwrap();
    assert_eq!(
        format_match(&m),
        "conj_id=7,reg3=0,metadata=0x1/0x1,in_port=LOCAL"
    );
}

#[test]
fn actions_forms() {
    let a = parse_actions(
        "output:3,LOCAL,in_port,ALL,normal,controller:100,controller(reason=no_match),\
         set_field:5->reg1,strip_vlan,push_vlan:0x88a8,write_metadata:0/0xff",
    )
    .unwrap();
    assert_eq!(
        a,
        vec![
            Action::Output(PortNo(3)),
            Action::Output(PortNo::LOCAL),
            Action::Output(PortNo::IN_PORT),
            Action::Output(PortNo::ALL),
            Action::Output(PortNo::NORMAL),
            Action::Controller {
                max_len: 100,
                reason: ControllerReason::Action
            },
            Action::Controller {
                max_len: u16::MAX,
                reason: ControllerReason::NoMatch
            },
            Action::SetField {
                field: Field::Reg(1),
                value: 5,
                mask: 0xffff_ffff
            },
            Action::StripVlan,
            Action::PushVlan(0x88a8),
            Action::WriteMetadata {
                value: 0,
                mask: 0xff
            },
        ]
    );
    assert_eq!(
        format_actions(&a),
        "output:3,LOCAL,IN_PORT,ALL,NORMAL,CONTROLLER:100,controller(reason=no_match),\
         set_field:0x5->reg1,strip_vlan,push_vlan:0x88a8,write_metadata:0/0xff"
    );
    assert_eq!(parse_actions("drop").unwrap(), vec![]);
    assert_eq!(parse_actions("").unwrap(), vec![]);
    assert_eq!(format_actions(&[]), "drop");
    let a = parse_actions("load:1->reg0[3],move:eth_src->eth_dst").unwrap();
    assert_eq!(
        a[0],
        Action::Load {
            dst: SubField {
                field: Field::Reg(0),
                ofs: 3,
                n_bits: 1
            },
            value: 1
        }
    );
    assert_eq!(
        format_actions(&a),
        "load:0x1->NXM_NX_REG0[3],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]"
    );
    assert_eq!(
        format_actions(&[Action::Output(PortNo::CONTROLLER)]),
        "output:CONTROLLER"
    );
    assert_eq!(
        parse_actions("output:CONTROLLER").unwrap(),
        vec![Action::Output(PortNo::CONTROLLER)]
    );
    assert_eq!(
        parse_actions("write_actions(output:1,dec_ttl),goto_table:3").unwrap(),
        vec![
            Action::WriteActions(vec![Action::Output(PortNo(1)), Action::DecTtl]),
            Action::GotoTable(TableId(3))
        ]
    );
}

#[test]
fn nxm_names_resolve_to_the_same_field() {
    for f in Field::all() {
        if let Some(n) = actions::nxm_name(f) {
            assert_eq!(Field::from_name(&n), Some(f), "{n}");
        }
    }
}

#[test]
fn dump_flows_layout_with_stats_reads_back() {
    let f = parse_flow("cookie=0x5,table=3,priority=100,idle_timeout=10,ip,actions=drop").unwrap();
    let st = FlowStats {
        duration_ms: 1500,
        n_packets: 3,
        n_bytes: 180,
        idle_age_s: 2,
    };
    let s = format_flow_with_stats(&f, &st);
    assert_eq!(
        s,
        "cookie=0x5, duration=1.500s, table=3, n_packets=3, n_bytes=180, idle_timeout=10, \
         idle_age=2, priority=100,ip actions=drop"
    );
    assert_eq!(parse_flow(&s).unwrap(), f);
    let d = FlowSpec::default();
    assert_eq!(
        format_flow_with_stats(&d, &FlowStats::default()),
        "cookie=0x0, duration=0s, table=0, n_packets=0, n_bytes=0, idle_age=0, actions=drop"
    );
    assert_eq!(format_flow(&d), "actions=drop");
    // A real `ovs-ofctl dump-flows` line (OVS FAQ style) reads back too.
    let f = parse_flow(
        " cookie=0x0, duration=29.473s, table=0, n_packets=4, n_bytes=280, idle_age=2, \
         hard_age=5, reset_counts priority=100,icmp actions=NORMAL",
    )
    .unwrap();
    assert_eq!(format_flow(&f), "priority=100,icmp actions=NORMAL");
    let f = parse_flow("cookie=0x1/0xff,priority=7,actions=drop").unwrap();
    assert_eq!((f.cookie.0, f.cookie_mask), (1, 0xff));
    assert_eq!(format_flow(&f), "cookie=0x1/0xff, priority=7 actions=drop");
}

#[test]
fn flow_key_fields_match_the_line() {
    let mut k = FlowKey::default();
    k.set_in_port(1);
    k.set_dl_src(EthernetAddress([0x50, 0x54, 0, 0, 0, 5]));
    k.set_dl_dst(EthernetAddress([0x50, 0x54, 0, 0, 0, 7]));
    k.set_dl_type(0x0800);
    k.set_nw_src("192.168.0.1".parse().unwrap());
    k.set_nw_dst("192.168.0.2".parse().unwrap());
    k.set_nw_proto(6);
    k.set_nw_ttl(64);
    k.set_tp_src(8);
    k.set_tp_dst(9);
    k.set_tcp_flags(2);
    k.set_reg(2, 0x10);
    let line = format_flow_key(&k);
    assert_eq!(
        line,
        "tcp,reg2=0x10,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,\
         dl_dst=50:54:00:00:00:07,nw_src=192.168.0.1,nw_dst=192.168.0.2,nw_tos=0,nw_ecn=0,\
         nw_ttl=64,nw_frag=no,tp_src=8,tp_dst=9,tcp_flags=syn"
    );
    let fields = flow_key_fields(&k);
    assert_eq!(fields[0], ("dl_type", "0x0800".to_owned()));
    assert_eq!(fields[1], ("nw_proto", "6".to_owned()));
    assert_eq!(fields.last(), Some(&("tcp_flags", "syn".to_owned())));
    // The line is a match that the packet itself matches.
    let m = parse_match(&line).unwrap();
    assert!(m.matches(&k));
    // So are the pairs.
    let joined: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
    assert_eq!(parse_match(&joined.join(",")).unwrap(), m);

    // ND: nd_target, nd_sll, nd_tll appear.
    let mut k = FlowKey::default();
    k.set_dl_type(0x86dd);
    k.set_nw_proto(58);
    k.set_tp_src(135);
    k.set_nd_target("fe80::1".parse().unwrap());
    k.set_arp_sha(EthernetAddress([0, 1, 2, 3, 4, 5]));
    k.set_nw_ttl(255);
    assert_eq!(
        format_flow_key(&k),
        "icmp6,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,\
         ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=255,nw_frag=no,\
         icmp_type=135,icmp_code=0,nd_target=fe80::1,nd_sll=00:01:02:03:04:05,\
         nd_tll=00:00:00:00:00:00"
    );
    // A later fragment has no L4 fields; an unknown ethertype stops at L2.
    let mut k = FlowKey::default();
    k.set_dl_type(0x0800);
    k.set_nw_proto(17);
    k.set_nw_frag(3);
    let line = format_flow_key(&k);
    assert!(line.starts_with("udp,"), "{line}");
    assert!(
        line.ends_with(",nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=later"),
        "{line}"
    );
    let mut k = FlowKey::default();
    k.set_dl_type(0x88cc);
    assert_eq!(
        format_flow_key(&k),
        "vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x88cc"
    );
    // Tunnel: shown when the tunnel destination is set.
    k.set_tun_dst("10.0.0.2".parse().unwrap());
    k.set_tun_flags(crate::flow::key::TUN_FLAG_KEY);
    k.set_tun_id(0x64);
    k.set_tun_metadata(1, 0xabcd);
    assert_eq!(
        format_flow_key(&k),
        "tun_id=0x64,tun_src=0.0.0.0,tun_dst=10.0.0.2,tun_ipv6_src=::,tun_ipv6_dst=::,\
         tun_flags=key,tun_metadata1=0xabcd,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,\
         dl_dst=00:00:00:00:00:00,dl_type=0x88cc"
    );
}
