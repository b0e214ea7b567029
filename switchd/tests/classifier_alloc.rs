//! The classifier's per-packet path does not allocate: `lookup` and
//! `lookup_wc` over hits, misses and conjunctive matches, counted by a
//! global allocator wrapper.

#![allow(unsafe_code)]

use protocol::flow::{Field, FlowKey, FlowMask, Match, Priority};
use weft_switchd::pipeline::classifier::{Classifier, Conjunction};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

fn field(f: Field, v: u128) -> Match {
    let mut m = Match::default();
    m.set_exact(f, v);
    m
}

fn key(dst: u32, tp_dst: u16, in_port: u32) -> FlowKey {
    let mut k = FlowKey::default();
    k.set_dl_type(0x0800);
    k.set_nw_dst(dst.into());
    k.set_nw_proto(6);
    k.set_tp_dst(tp_dst);
    k.set_in_port(in_port);
    k
}

#[test]
fn lookup_does_not_allocate() {
    let mut cls: Classifier<u32> = Classifier::new();
    for i in 0..1000u32 {
        let mut m = Match::default();
        m.set_exact(Field::DlType, 0x0800);
        m.set_masked(
            Field::NwDst,
            u128::from(0x0a00_0000 | (i << 8)),
            0xffff_ff00,
        );
        cls.insert(m, Priority((i % 7) as u16 + 10), i);
    }
    cls.insert(field(Field::TpDst, 22), Priority(5), 22);
    cls.insert(Match::CATCHALL, Priority(0), 0);
    // A 2-dimensional conjunction at priority 100 with 8 values per
    // dimension, and its conj_id rule.
    for v in 0..8u32 {
        let c1 = [Conjunction {
            id: 9,
            clause: 1,
            n_clauses: 2,
        }];
        let c2 = [Conjunction {
            id: 9,
            clause: 2,
            n_clauses: 2,
        }];
        cls.insert_soft(field(Field::InPort, u128::from(v)), Priority(100), 0, &c1)
            .unwrap();
        cls.insert_soft(
            field(Field::TpDst, u128::from(80 + v)),
            Priority(100),
            0,
            &c2,
        )
        .unwrap();
    }
    cls.insert(field(Field::ConjId, 9), Priority(100), 9);

    let keys = [
        key(0x0a00_0501, 22, 100), // hit in the prefix table
        key(0x0b00_0001, 22, 100), // tp_dst rule
        key(0x0b00_0001, 1, 100),  // catch-all
        key(0x0a00_0501, 81, 3),   // conjunction
        key(0x0a00_0501, 81, 300), // incomplete conjunction
    ];
    let want = [Some(5), Some(22), Some(0), Some(9), Some(5)];
    // Warm up (first-touch lazy statics, if any).
    for k in &keys {
        let _ = cls.lookup(k);
    }
    let before = allocs();
    let mut sum = 0u64;
    for _ in 0..1000 {
        for (k, w) in keys.iter().zip(want) {
            let h = cls.lookup(k).map(|h| *h.value);
            assert_eq!(h, w);
            let mut wc = FlowMask::default();
            let h2 = cls.lookup_wc(k, &mut wc).map(|h| *h.value);
            assert_eq!(h2, w);
            sum += u64::from(h.unwrap_or(0));
        }
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "lookups allocated {} times",
        after - before
    );
    assert!(sum > 0);
}
