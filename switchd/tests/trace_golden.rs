//! Golden traces of the pipeline (insta snapshots under
//! `tests/snapshots/`), one per behaviour, each with concrete assertions on
//! outputs, bytes, checksums and verdicts besides the snapshot.
//!
//! Packets are built from flow text with `packet_from_key`; every output
//! that carries IP is re-parsed and its checksums verified.
#![allow(clippy::unwrap_used)]

mod common;

use common::{pkt, ports, run, run_on, verify_checksums};
use protocol::flow::{ControllerReason, PortNo, TableId};
use protocol::text::parse_match;
use weft_switchd::pipeline::{
    DropReason, FragMode, MissBehavior, PortConfig, SwitchConfig, WorkerState, compile,
};

const TCP: &str = "tcp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,\
                   nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=1234,tp_dst=80";
const UDP: &str = "udp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,\
                   nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=5353,tp_dst=53";

fn p(n: u32) -> PortNo {
    PortNo(n)
}

macro_rules! golden {
    ($name:literal, $run:expr) => {{
        let r = $run;
        insta::assert_snapshot!($name, r.text());
        r
    }};
}

#[test]
fn priority_higher_wins() {
    let r = golden!(
        "priority",
        run(
            "priority=10,ip,actions=output:2\n priority=20,tcp,tp_dst=80,actions=output:3",
            ports(4),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(3)]);
    assert_eq!(r.out(0), &pkt(TCP)[..]);
}

#[test]
fn masked_match_and_miss() {
    let flows = "ip,nw_dst=10.0.0.0/24,actions=output:2";
    let r = golden!("mask_hit", run(flows, ports(3), 1, &pkt(TCP)));
    assert_eq!(r.ports(), [p(2)]);
    let other = pkt("tcp,nw_src=10.0.0.1,nw_dst=10.0.1.2,tp_dst=80");
    let r = golden!("mask_miss", run(flows, ports(3), 1, &other));
    assert!(r.verdict.dropped());
    assert_eq!(r.verdict.reason, Some(DropReason::TableMiss));
    assert_eq!(r.ws.counters.drops_for(DropReason::TableMiss), 1);
}

#[test]
fn table_miss_controller() {
    let mut cfg = ports(3);
    cfg.table_miss.insert(TableId(0), MissBehavior::Controller);
    let r = golden!(
        "miss_controller",
        run("udp,actions=output:2", cfg, 1, &pkt(TCP))
    );
    assert_eq!(r.trace.packet_ins.len(), 1);
    let pi = &r.trace.packet_ins[0];
    assert_eq!(pi.reason, ControllerReason::NoMatch);
    assert_eq!(pi.cookie.0, u64::MAX);
    assert_eq!(pi.bytes, pkt(TCP));
    assert_eq!(r.verdict.reason, None);
}

#[test]
fn table_miss_controller_suppressed_by_no_packet_in() {
    let mut cfg = ports(3);
    cfg.table_miss.insert(TableId(0), MissBehavior::Controller);
    cfg.ports.get_mut(&p(1)).unwrap().no_packet_in = true;
    let r = run("udp,actions=output:2", cfg, 1, &pkt(TCP));
    assert!(r.trace.packet_ins.is_empty());
    assert_eq!(r.verdict.reason, Some(DropReason::TableMiss));
}

#[test]
fn table_miss_continue() {
    let mut cfg = ports(3);
    cfg.table_miss.insert(TableId(0), MissBehavior::Continue);
    let r = golden!(
        "miss_continue",
        run(
            "table=0,udp,actions=output:3\n table=1,tcp,actions=output:2",
            cfg,
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2)]);
}

#[test]
fn goto_chain() {
    let r = golden!(
        "goto_chain",
        run(
            "table=0,ip,actions=write_metadata:0x5/0xff,goto_table:1\n\
             table=1,metadata=0x5/0xff,actions=goto_table:2\n\
             table=2,tcp,actions=output:4",
            ports(4),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(4)]);
}

#[test]
fn goto_into_empty_table_drops() {
    let r = run(
        "table=0,ip,actions=output:2,goto_table:7",
        ports(3),
        1,
        &pkt(TCP),
    );
    assert_eq!(r.ports(), [p(2)], "outputs before the miss stay done");
    assert_eq!(r.verdict.reason, None);
}

#[test]
fn resubmit_chain_continues_after_return() {
    let r = golden!(
        "resubmit_chain",
        run(
            "table=0,ip,actions=resubmit(,1),output:3,resubmit(,2),output:4\n\
             table=1,ip,actions=output:2\n\
             table=2,udp,actions=output:1",
            ports(4),
            1,
            &pkt(TCP)
        )
    );
    // Table 2 misses (TCP): a resubmit miss does nothing, the list goes on.
    assert_eq!(r.ports(), [p(2), p(3), p(4)]);
}

#[test]
fn resubmit_in_port_is_for_the_lookup_only() {
    let r = golden!(
        "resubmit_in_port",
        run(
            "table=0,in_port=1,actions=resubmit(2,1)\n\
             table=1,in_port=2,actions=output:1,output:2,output:in_port",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    // in_port is 1 again while the actions run: output:1 skipped, in_port -> 1.
    assert_eq!(r.ports(), [p(2), p(1)]);
}

#[test]
fn resubmit_loop_limit() {
    let r = run(
        "table=0,ip,actions=output:2,resubmit(,0)",
        ports(3),
        1,
        &pkt(TCP),
    );
    // The full trace nests 64 levels; the head and the end tell the story.
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    let head = lines[..8].join("\n");
    let tail = lines
        .iter()
        .map(|l| l.trim_start())
        .filter(|l| l.contains("limit") || l.starts_with("Final"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("resubmit_loop", format!("{head}\n...\n{tail}"));
    assert_eq!(r.verdict.reason, Some(DropReason::ResubmitLimit));
    assert_eq!(r.verdict.outputs, 65, "64 nested resubmits, then the limit");
    assert_eq!(r.ws.counters.drops_for(DropReason::ResubmitLimit), 1);
}

#[test]
fn resubmit_fanout_total_limit() {
    // Each level resubmits twice: 2^n lookups without the total limit.
    let mut text = String::new();
    for t in 0..20 {
        text.push_str(&format!(
            "table={t},ip,actions=resubmit(,{}),resubmit(,{})\n",
            t + 1,
            t + 1
        ));
    }
    text.push_str("table=20,ip,actions=output:2\n");
    let r = run(&text, ports(3), 1, &pkt(TCP));
    assert_eq!(r.verdict.reason, Some(DropReason::ResubmitLimit));
    assert!(r.verdict.outputs > 0 && r.verdict.outputs < 4096);
}

#[test]
fn dec_ttl_decrements_with_valid_checksum() {
    let r = golden!(
        "dec_ttl",
        run("ip,actions=dec_ttl,output:2", ports(3), 1, &pkt(TCP))
    );
    let k = verify_checksums(r.out(0));
    assert_eq!(k.nw_ttl(), 63);
}

#[test]
fn dec_ttl_expiry_packet_in_and_stop() {
    let expiring = pkt("udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=1,tp_dst=53");
    let r = golden!(
        "dec_ttl_expiry",
        run(
            "table=0,ip,actions=resubmit(,1),output:3\n table=1,ip,actions=dec_ttl,output:2",
            ports(3),
            1,
            &expiring
        )
    );
    assert_eq!(r.trace.packet_ins.len(), 1);
    assert_eq!(r.trace.packet_ins[0].reason, ControllerReason::InvalidTtl);
    assert_eq!(r.trace.packet_ins[0].table, TableId(1));
    // output:2 after dec_ttl skipped; the caller's output:3 still runs.
    assert_eq!(r.ports(), [p(3)]);
}

#[test]
fn dec_ttl_ipv6_hop_limit() {
    let v6 = pkt("udp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,nw_ttl=5,tp_dst=53");
    let r = run("ipv6,actions=dec_ttl,output:2", ports(3), 1, &v6);
    let k = verify_checksums(r.out(0));
    assert_eq!(k.nw_ttl(), 4);
}

#[test]
fn push_vlan_and_set_vid() {
    let r = golden!(
        "push_vlan",
        run(
            "ip,actions=push_vlan:0x8100,mod_vlan_vid:10,mod_vlan_pcp:5,output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    let out = r.out(0);
    assert_eq!(out.len(), pkt(TCP).len() + 4);
    assert_eq!(&out[12..18], &[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00]);
    let k = verify_checksums(out);
    assert_eq!(k.vlan0_tci(), 0x1000 | 0xa000 | 10);
}

#[test]
fn pop_vlan() {
    let tagged = pkt(&format!("dl_vlan=7,{TCP}"));
    let r = golden!(
        "pop_vlan",
        run("dl_vlan=7,actions=pop_vlan,output:2", ports(3), 1, &tagged)
    );
    assert_eq!(r.out(0), &pkt(TCP)[..]);
}

#[test]
fn mod_vlan_vid_tags_untagged() {
    let r = golden!(
        "mod_vlan_vid_push",
        run(
            "ip,actions=mod_vlan_vid:100,output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    let out = r.out(0);
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 100]);
    verify_checksums(out);
}

#[test]
fn mod_vlan_pcp_on_tagged_and_strip() {
    let tagged = pkt(&format!("dl_vlan=7,dl_vlan_pcp=1,{TCP}"));
    let r = golden!(
        "mod_vlan_pcp_strip",
        run(
            "dl_vlan=7,actions=mod_vlan_pcp:6,output:2,strip_vlan,output:3",
            ports(3),
            1,
            &tagged
        )
    );
    assert_eq!(&r.out(0)[14..16], &[0xc0, 0x07]);
    assert_eq!(r.out(1), &pkt(TCP)[..]);
}

#[test]
fn vlan_match_after_push_with_vlan_limit_2() {
    let mut cfg = ports(3);
    cfg.vlan_limit = 2;
    let tagged = pkt(&format!("dl_vlan=7,{TCP}"));
    let r = run(
        "table=0,dl_vlan=7,actions=push_vlan:0x88a8,mod_vlan_vid:20,resubmit(,1)\n\
         table=1,dl_vlan=20,tcp,actions=output:2",
        cfg,
        1,
        &tagged,
    );
    assert_eq!(r.ports(), [p(2)]);
    assert_eq!(
        &r.out(0)[12..20],
        &[0x88, 0xa8, 0x00, 20, 0x81, 0x00, 0x00, 7]
    );
}

/// A push onto two tracked tags removes the inner one first, as OVS (its
/// flow holds two tags; the datapath commit rewrites the packet to them):
/// input tag 5, push 10 -> out 2 with tags 10,5; push 5 -> out 1 with
/// tags 5,10 and the original 5 gone. Same length as the first output.
#[test]
fn third_push_vlan_drops_the_inner_tag() {
    let tagged = pkt(&format!("dl_vlan=5,{TCP}"));
    let r = golden!(
        "push_vlan_third",
        run(
            "dl_vlan=5,actions=push_vlan:0x8100,mod_vlan_vid:10,output:2,\
             push_vlan:0x8100,mod_vlan_vid:5,output:3",
            ports(3),
            1,
            &tagged
        )
    );
    assert_eq!(r.ports(), [p(2), p(3)]);
    assert_eq!(
        &r.out(0)[12..22],
        &[0x81, 0x00, 0x00, 10, 0x81, 0x00, 0x00, 5, 0x08, 0x00]
    );
    assert_eq!(
        &r.out(1)[12..22],
        &[0x81, 0x00, 0x00, 5, 0x81, 0x00, 0x00, 10, 0x08, 0x00]
    );
    assert_eq!(r.out(1).len(), r.out(0).len());
    assert_eq!(&r.out(1)[22..], &tagged[18..]);
    verify_checksums(r.out(1));
}

#[test]
fn registers_load_and_match() {
    let r = golden!(
        "registers_load",
        run(
            "table=0,ip,actions=load:0x2a->NXM_NX_REG0[0..7],load:0x1->NXM_NX_REG1[31],resubmit(,1)\n\
             table=1,reg0=0x2a,reg1=0x80000000,actions=output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2)]);
    assert_eq!(r.out(0), &pkt(TCP)[..], "registers do not touch bytes");
}

#[test]
fn registers_move() {
    let r = golden!(
        "registers_move",
        run(
            "table=0,ip,actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG3[],move:NXM_NX_REG3[0..7]->NXM_NX_REG4[8..15],resubmit(,1)\n\
             table=1,reg3=0x0a000001,reg4=0x100,actions=output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2)]);
}

#[test]
fn move_into_header_rewrites_bytes() {
    // Swap source and destination MACs through a register pair.
    let r = run(
        "ip,actions=move:NXM_OF_ETH_SRC[]->OXM_OF_METADATA[0..47],move:NXM_OF_ETH_DST[]->NXM_OF_ETH_SRC[],move:OXM_OF_METADATA[0..47]->NXM_OF_ETH_DST[],output:2",
        ports(3),
        1,
        &pkt(TCP),
    );
    let out = r.out(0);
    assert_eq!(&out[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
}

#[test]
fn set_field_ipv4_and_tcp_port_checksums() {
    let r = golden!(
        "set_field_ipv4_tcp",
        run(
            "tcp,actions=set_field:192.168.7.9->nw_dst,set_field:8080->tcp_dst,output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    let k = verify_checksums(r.out(0));
    assert_eq!(k.nw_dst().to_string(), "192.168.7.9");
    assert_eq!(k.tp_dst(), 8080);
}

#[test]
fn mod_nw_and_tp_on_udp_checksums() {
    let r = golden!(
        "mod_nw_tp_udp",
        run(
            "udp,actions=mod_nw_src:172.16.0.1,mod_tp_src:1000,mod_nw_tos:184,output:2",
            ports(3),
            1,
            &pkt(UDP)
        )
    );
    let out = r.out(0);
    let k = verify_checksums(out);
    assert_eq!(k.nw_src().to_string(), "172.16.0.1");
    assert_eq!(k.tp_src(), 1000);
    assert_eq!(k.nw_tos(), 184);
    assert_ne!(&out[40..42], &[0, 0], "UDP checksum present");
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut frame = pkt(UDP);
    frame[40] = 0;
    frame[41] = 0;
    let r = run(
        "udp,actions=mod_nw_dst:10.9.9.9,mod_tp_dst:99,output:2",
        ports(3),
        1,
        &frame,
    );
    let out = r.out(0);
    assert_eq!(&out[40..42], &[0, 0]);
    let k = verify_checksums(out);
    assert_eq!(k.tp_dst(), 99);
}

#[test]
fn set_field_ipv6_tcp_checksum() {
    let v6 = pkt("tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,tp_src=1,tp_dst=443");
    let r = golden!(
        "set_field_ipv6",
        run(
            "tcp6,actions=set_field:2001:db8::99->ipv6_dst,mod_tp_dst:8443,output:2",
            ports(3),
            1,
            &v6
        )
    );
    let k = verify_checksums(r.out(0));
    assert_eq!(k.ipv6_dst().to_string(), "2001:db8::99");
    assert_eq!(k.tp_dst(), 8443);
}

#[test]
fn mod_dl_src_dst() {
    let r = golden!(
        "mod_dl",
        run(
            "ip,actions=mod_dl_src:0a:00:00:00:00:01,mod_dl_dst:0a:00:00:00:00:02,output:2",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(&r.out(0)[..12], &[10, 0, 0, 0, 0, 2, 10, 0, 0, 0, 0, 1]);
}

#[test]
fn set_field_unmet_prerequisite_ignored() {
    let arp = pkt("arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2");
    let r = golden!(
        "prereq_unmet",
        run(
            "arp,actions=set_field:10.9.9.9->nw_src,set_field:10.8.8.8->arp_spa,output:2",
            ports(3),
            1,
            &arp
        )
    );
    assert_eq!(&r.out(0)[28..32], &[10, 8, 8, 8]);
}

#[test]
fn conjunctive_match() {
    let flows = "priority=100,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)\n\
                 priority=100,ip,nw_src=10.0.0.3,actions=conjunction(7,1/2)\n\
                 priority=100,tcp,tp_dst=80,actions=conjunction(7,2/2)\n\
                 priority=100,tcp,tp_dst=443,actions=conjunction(7,2/2)\n\
                 priority=50,conj_id=7,ip,actions=output:2\n\
                 priority=1,actions=output:3";
    let r = golden!("conjunction", run(flows, ports(3), 1, &pkt(TCP)));
    assert_eq!(r.ports(), [p(2)]);
    let r = run(
        flows,
        ports(3),
        1,
        &pkt("tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_dst=22"),
    );
    assert_eq!(r.ports(), [p(3)], "one clause missing");
}

#[test]
fn write_actions_run_after_apply_actions() {
    let r = golden!(
        "write_actions",
        run(
            "table=0,ip,actions=output:2,write_actions(dec_ttl,output:3),goto_table:1\n\
             table=1,ip,actions=output:4,write_actions(mod_nw_dst:10.7.7.7)",
            ports(4),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2), p(4), p(3)]);
    let k = verify_checksums(r.out(2));
    assert_eq!(
        (k.nw_ttl(), k.nw_dst().to_string().as_str()),
        (63, "10.7.7.7")
    );
    assert_eq!(verify_checksums(r.out(0)).nw_ttl(), 64);
}

#[test]
fn action_set_order_pop_push_ttl_set_output() {
    let tagged = pkt(&format!("dl_vlan=7,{TCP}"));
    let r = run(
        "dl_vlan=7,actions=write_actions(output:2,mod_vlan_vid:9,dec_ttl,push_vlan:0x8100,pop_vlan)",
        ports(3),
        1,
        &tagged,
    );
    // pop (tag 7 gone), push (new tag), dec_ttl, set vid 9, output.
    let out = r.out(0);
    assert_eq!(&out[12..18], &[0x81, 0x00, 0x00, 9, 0x08, 0x00]);
    assert_eq!(verify_checksums(out).nw_ttl(), 63);
}

#[test]
fn clear_actions_empties_the_set() {
    let r = golden!(
        "clear_actions",
        run(
            "table=0,ip,actions=write_actions(output:3),goto_table:1\n\
             table=1,ip,actions=clear_actions,write_actions(output:2)",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2)]);
}

#[test]
fn output_in_port_skipped_vs_in_port_action() {
    let r = golden!(
        "in_port",
        run(
            "ip,actions=output:1,output:2,in_port",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.ports(), [p(2), p(1)]);
}

#[test]
fn flood_skips_no_flood_and_in_port_all_does_not() {
    let mut cfg = ports(4);
    cfg.ports.get_mut(&p(3)).unwrap().no_flood = true;
    let r = golden!("flood", run("ip,actions=FLOOD", cfg.clone(), 1, &pkt(TCP)));
    assert_eq!(r.ports(), [p(2), p(4)]);
    let r = golden!("all", run("ip,actions=ALL", cfg, 1, &pkt(TCP)));
    assert_eq!(r.ports(), [p(2), p(3), p(4)]);
}

#[test]
fn no_forward_and_local() {
    let mut cfg = ports(3);
    cfg.ports.insert(PortNo::LOCAL, PortConfig::default());
    cfg.ports.get_mut(&p(2)).unwrap().no_forward = true;
    let r = golden!(
        "no_forward_local",
        run("ip,actions=output:2,LOCAL,output:3", cfg, 1, &pkt(TCP))
    );
    assert_eq!(r.ports(), [PortNo::LOCAL, p(3)]);
}

#[test]
fn normal_floods_then_learns() {
    let pl = compile(&common::flows("actions=NORMAL"), ports(4)).unwrap();
    let mut ws = WorkerState::new(pl.config());
    let a_to_b = pkt(
        "tcp,dl_src=02:00:00:00:00:0a,dl_dst=02:00:00:00:00:0b,nw_src=10.0.0.1,nw_dst=10.0.0.2",
    );
    let b_to_a = pkt(
        "tcp,dl_src=02:00:00:00:00:0b,dl_dst=02:00:00:00:00:0a,nw_src=10.0.0.2,nw_dst=10.0.0.1",
    );
    let r1 = run_on(&pl, &mut ws, 1, &a_to_b, 1000);
    insta::assert_snapshot!("normal_flood", r1.text());
    assert_eq!(r1.ports(), [p(2), p(3), p(4)]);
    let r2 = run_on(&pl, &mut ws, 3, &b_to_a, 2000);
    insta::assert_snapshot!("normal_unicast", r2.text());
    assert_eq!(r2.ports(), [p(1)]);
    // Now A -> B is unicast too (B learned on 3).
    let r3 = run_on(&pl, &mut ws, 1, &a_to_b, 3000);
    assert_eq!(r3.ports(), [p(3)]);
    // After aging (300 s), B is unknown again.
    let r4 = run_on(&pl, &mut ws, 1, &a_to_b, 2000 + 300_001);
    assert_eq!(r4.ports(), [p(2), p(3), p(4)]);
}

#[test]
fn frag_modes() {
    let first = pkt("tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_frag=first,tp_src=1234,tp_dst=80");
    let flows = "priority=10,tcp,tp_dst=80,actions=output:2\n priority=5,ip,actions=output:3";
    let r = golden!("frag_normal", run(flows, ports(3), 1, &first));
    assert_eq!(r.ports(), [p(3)], "normal: ports read as 0");
    assert_eq!(r.out(0), &first[..], "bytes keep their ports");
    let mut cfg = ports(3);
    cfg.frag_mode = FragMode::NxMatch;
    let r = golden!("frag_nx_match", run(flows, cfg, 1, &first));
    assert_eq!(r.ports(), [p(2)]);
    let mut cfg = ports(3);
    cfg.frag_mode = FragMode::Drop;
    let r = golden!("frag_drop", run(flows, cfg, 1, &first));
    assert_eq!(r.verdict.reason, Some(DropReason::Fragment));
    assert!(r.verdict.dropped());
}

#[test]
fn malformed_packet_dropped() {
    let mut frame = pkt(TCP);
    frame.truncate(14 + 12); // IPv4 header cut short
    let r = golden!("malformed", run("actions=output:2", ports(3), 1, &frame));
    assert_eq!(r.verdict.reason, Some(DropReason::Malformed));
    assert_eq!(r.ws.counters.drops_for(DropReason::Malformed), 1);
}

#[test]
fn no_receive_port_drops() {
    let mut cfg = ports(3);
    cfg.ports.get_mut(&p(1)).unwrap().no_receive = true;
    let r = run("actions=output:2", cfg, 1, &pkt(TCP));
    assert_eq!(r.verdict.reason, Some(DropReason::NoReceive));
}

#[test]
fn controller_action_with_max_len() {
    let r = golden!(
        "controller",
        run(
            "cookie=0x99,ip,actions=controller(max_len=20),CONTROLLER:65535",
            ports(3),
            1,
            &pkt(TCP)
        )
    );
    assert_eq!(r.trace.packet_ins.len(), 2);
    assert_eq!(r.trace.packet_ins[0].bytes, pkt(TCP)[..20].to_vec());
    assert_eq!(r.trace.packet_ins[0].cookie.0, 0x99);
    assert_eq!(r.trace.packet_ins[1].bytes, pkt(TCP));
    assert!(!r.verdict.dropped());
}

#[test]
fn explicit_drop_is_no_output() {
    let r = golden!(
        "explicit_drop",
        run("ip,actions=drop", ports(3), 1, &pkt(TCP))
    );
    assert_eq!(r.verdict.reason, Some(DropReason::NoOutput));
}

#[test]
fn json_shape() {
    let mut cfg = ports(3);
    cfg.ports.insert(PortNo::LOCAL, PortConfig::default());
    let pl = compile(
        &common::flows("cookie=0x5,ip,actions=output:2,LOCAL,controller"),
        cfg,
    )
    .unwrap();
    let mut ws = WorkerState::new(pl.config());
    let r = run_on(&pl, &mut ws, 1, &pkt(TCP), 0);
    let j = r.trace.to_json(&r.verdict);
    insta::assert_json_snapshot!("json_shape", j);
    assert_eq!(j["outputs"][1]["port"], "LOCAL");
    assert_eq!(j["packet_ins"][0]["reason"], "action");
    assert_eq!(j["dropped"], false);
}

#[test]
fn rule_stats_are_credited() {
    let pl = compile(
        &common::flows("table=0,ip,actions=resubmit(,1)\n table=1,ip,actions=output:2"),
        ports(3),
    )
    .unwrap();
    let mut ws = WorkerState::new(pl.config());
    for i in 0..3 {
        run_on(&pl, &mut ws, 1, &pkt(TCP), 100 + i);
    }
    let len = pkt(TCP).len() as u64;
    for r in pl.rules() {
        // Each packet is run twice by `run_on` (traced and untraced).
        assert_eq!(r.stats.get(), (6, 6 * len, 102));
    }
    assert_eq!(ws.counters.packets, 3);
}

#[test]
fn compile_errors_name_flow_and_field() {
    use protocol::flow::{Action, FlowSpec};
    let mut bad = common::flows("table=1,ip,actions=output:2");
    bad[0].actions = vec![Action::GotoTable(TableId(1))];
    let e = compile(&bad, SwitchConfig::default()).unwrap_err();
    assert_eq!((e.index, e.field.as_str()), (0, "goto_table"));
    let e = compile(
        &common::flows("ip,actions=drop\n ip,actions=output:9"),
        ports(3),
    )
    .unwrap_err();
    assert_eq!((e.index, e.field.as_str()), (1, "output"));
    assert!(
        e.to_string().contains("flow 1 (ip actions=output:9)"),
        "{e}"
    );
    let e = compile(
        &common::flows("ip,actions=write_actions(controller)"),
        ports(3),
    )
    .unwrap_err();
    assert_eq!(e.field, "write_actions");
    let mut order = common::flows("ip,actions=output:3,write_actions(output:2)");
    order[0].actions.reverse();
    let e = compile(&order, ports(3)).unwrap_err();
    assert!(e.reason.contains("out of order"), "{e}");
    let e = compile(
        &common::flows("ip,actions=conjunction(1,1/2),output:3"),
        ports(3),
    )
    .unwrap_err();
    assert_eq!(e.field, "conjunction");
    let spec = FlowSpec {
        r#match: parse_match("ip").unwrap(),
        actions: vec![Action::Resubmit {
            port: None,
            table: Some(TableId(255)),
        }],
        ..FlowSpec::default()
    };
    let e = compile(&[spec], ports(3)).unwrap_err();
    assert_eq!(e.field, "resubmit");
}
