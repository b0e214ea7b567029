//! Table statistics (`dump-tables`: lookups and matches per table) count
//! the traffic sent: a real worker thread forwards frames between memory
//! ports through a two-table pipeline; the controller sums the worker's
//! private counters on request.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use protocol::ctl::{Body, TableStat};
use protocol::flow::{PortNo, TableId};
use weft_switchd::control::Controller;
use weft_switchd::port::MemoryPort;
use weft_switchd::state::SwitchState;
use weft_switchd::worker::{STATS_INTERVAL_MS, Workers};

fn tables(c: &mut Controller) -> Vec<TableStat> {
    match c.handle(&Body::DumpTables) {
        Body::Tables(t) => t,
        b => panic!("unexpected reply {b:?}"),
    }
}

#[test]
fn dump_tables_counts_lookups_and_matches_of_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let pl = Controller::empty_pipeline().unwrap();
    let h = Workers::spawn(&pl, 1).unwrap();
    let (p1, h1) = MemoryPort::new("m1").unwrap();
    let (p2, h2) = MemoryPort::new("m2").unwrap();
    h.add_port(PortNo(1), vec![Box::new(p1)]).unwrap();
    h.add_port(PortNo(2), vec![Box::new(p2)]).unwrap();
    let mut c = Controller::start(
        SwitchState::default(),
        dir.path().to_path_buf(),
        pl,
        Box::new(h),
    )
    .unwrap();
    // Table 0: every packet goes on to table 1. Table 1: TCP to port 80
    // is forwarded, the rest misses (dropped).
    let flows = common::flows(
        "table=0,actions=goto_table:1
         table=1,tcp,tp_dst=80,actions=output:2",
    );
    assert!(matches!(
        c.handle(&Body::AddFlows { flows }),
        Body::FlowsChanged(_)
    ));
    let web = common::pkt("tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=5000,tp_dst=80");
    let ssh = common::pkt("tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=5000,tp_dst=22");
    // 70 web (cache hits after the first) and 30 ssh frames.
    for i in 0..100 {
        h1.inject(if i % 10 < 7 { &web } else { &ssh });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while sent < 70 && Instant::now() < deadline {
        sent += h2.take_sent().len();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sent, 70);
    // The worker publishes its counters every STATS_INTERVAL_MS.
    let want = vec![
        TableStat {
            table: TableId(0),
            active: 1,
            lookups: 100,
            matched: 100,
        },
        TableStat {
            table: TableId(1),
            active: 1,
            lookups: 100,
            matched: 70,
        },
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = tables(&mut c);
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(STATS_INTERVAL_MS));
        got = tables(&mut c);
    }
    assert_eq!(got, want);
}
