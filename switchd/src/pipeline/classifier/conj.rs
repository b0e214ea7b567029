//! Conjunctive matches: the `conjunction(id,k/n)` clauses of soft rules and
//! the per-lookup tally that decides which conjunctions are complete.
//!
//! Semantics are in the [classifier module doc](super#conjunctive-matches);
//! the OVS model is `find_conjunctive_match` in `lib/classifier.c` and the
//! "Conjunctive Match Fields" section of `ovs-fields(7)`.

use smallvec::SmallVec;

/// One `conjunction(id,k/n)` clause of a soft rule: this rule satisfies
/// dimension `clause` (1-based) of the `n_clauses`-dimensional conjunctive
/// flow `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conjunction {
    /// The conjunction id; on a complete match the lookup is repeated with
    /// `conj_id` set to it.
    pub id: u32,
    /// Which dimension this rule belongs to, `1..=n_clauses`.
    pub clause: u8,
    /// Number of dimensions, `2..=64` (OVS `parse_CONJUNCTION` limits).
    pub n_clauses: u8,
}

/// Why a soft rule's clause list was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConjError {
    /// A soft rule needs at least one clause.
    #[error("a soft rule needs at least one conjunction clause")]
    Empty,
    /// `n_clauses` outside `2..=64` (OVS: "conjunction must have at least
    /// 2 clauses" / "at most 64 clauses").
    #[error("conjunction {id}: {n_clauses} clauses, want 2..=64")]
    BadClauseCount {
        /// The conjunction id.
        id: u32,
        /// The rejected count.
        n_clauses: u8,
    },
    /// `clause` outside `1..=n_clauses`.
    #[error("conjunction {id}: clause {clause} not in 1..={n_clauses}")]
    BadClause {
        /// The conjunction id.
        id: u32,
        /// The rejected clause number.
        clause: u8,
        /// The conjunction's clause count.
        n_clauses: u8,
    },
    /// The same id twice in one rule (one rule is one value of one
    /// dimension; two clauses of one id in one rule would let a single rule
    /// satisfy two dimensions).
    #[error("conjunction {id} appears twice in one rule")]
    DuplicateId {
        /// The repeated id.
        id: u32,
    },
}

/// Checks a soft rule's clause list.
pub(crate) fn validate(conj: &[Conjunction]) -> Result<(), ConjError> {
    if conj.is_empty() {
        return Err(ConjError::Empty);
    }
    for (i, c) in conj.iter().enumerate() {
        if !(2..=64).contains(&c.n_clauses) {
            return Err(ConjError::BadClauseCount {
                id: c.id,
                n_clauses: c.n_clauses,
            });
        }
        if !(1..=c.n_clauses).contains(&c.clause) {
            return Err(ConjError::BadClause {
                id: c.id,
                clause: c.clause,
                n_clauses: c.n_clauses,
            });
        }
        if conj.iter().take(i).any(|d| d.id == c.id) {
            return Err(ConjError::DuplicateId { id: c.id });
        }
    }
    Ok(())
}

/// Conjunctions tracked inline per lookup before spilling to the heap.
const TALLY_INLINE: usize = 16;

/// Which clauses of which conjunctions the soft rules of one priority level
/// have satisfied (OVS `struct conjunctive_match`, with `n` in the key so
/// that a misconfigured id with two different `n` cannot complete by mixing
/// them).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// `(id, n_clauses, bit k-1 set if clause k seen)`.
    seen: SmallVec<[(u32, u8, u64); TALLY_INLINE]>,
}

impl Tally {
    /// Records clause `c`.
    #[inline]
    pub(crate) fn add(&mut self, c: &Conjunction) {
        let bit = 1u64 << (c.clause.saturating_sub(1) & 63);
        if let Some(e) = self
            .seen
            .iter_mut()
            .find(|e| e.0 == c.id && e.1 == c.n_clauses)
        {
            e.2 |= bit;
        } else {
            self.seen.push((c.id, c.n_clauses, bit));
        }
    }

    /// The ids with every clause seen, ascending, without duplicates.
    pub(crate) fn complete(&self) -> SmallVec<[u32; 8]> {
        let mut out: SmallVec<[u32; 8]> = self
            .seen
            .iter()
            .filter(|(_, n, bits)| *bits == all_clauses(*n))
            .map(|(id, _, _)| *id)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The bit set of clauses `1..=n`.
#[inline]
fn all_clauses(n: u8) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u32, clause: u8, n_clauses: u8) -> Conjunction {
        Conjunction {
            id,
            clause,
            n_clauses,
        }
    }

    #[test]
    fn validate_rejects_each_bad_case() {
        assert_eq!(validate(&[]), Err(ConjError::Empty));
        assert_eq!(
            validate(&[c(1, 1, 1)]),
            Err(ConjError::BadClauseCount {
                id: 1,
                n_clauses: 1
            })
        );
        assert_eq!(
            validate(&[c(1, 1, 65)]),
            Err(ConjError::BadClauseCount {
                id: 1,
                n_clauses: 65
            })
        );
        assert_eq!(
            validate(&[c(1, 0, 2)]),
            Err(ConjError::BadClause {
                id: 1,
                clause: 0,
                n_clauses: 2
            })
        );
        assert_eq!(
            validate(&[c(1, 3, 2)]),
            Err(ConjError::BadClause {
                id: 1,
                clause: 3,
                n_clauses: 2
            })
        );
        assert_eq!(
            validate(&[c(1, 1, 2), c(2, 1, 2), c(1, 2, 2)]),
            Err(ConjError::DuplicateId { id: 1 })
        );
        assert_eq!(validate(&[c(1, 1, 2), c(2, 64, 64)]), Ok(()));
    }

    #[test]
    fn tally_completes_only_full_sets() {
        let mut t = Tally::default();
        t.add(&c(7, 1, 3));
        t.add(&c(7, 3, 3));
        t.add(&c(5, 2, 2));
        assert!(t.complete().is_empty());
        t.add(&c(7, 2, 3));
        t.add(&c(5, 1, 2));
        assert_eq!(t.complete().as_slice(), &[5, 7]);
        // Same id with a different n does not mix into the first tally.
        let mut t = Tally::default();
        t.add(&c(9, 1, 2));
        t.add(&c(9, 2, 3));
        assert!(t.complete().is_empty());
        // 64 clauses.
        let mut t = Tally::default();
        for k in 1..=64 {
            t.add(&c(1, k, 64));
        }
        assert_eq!(t.complete().as_slice(), &[1]);
    }
}
