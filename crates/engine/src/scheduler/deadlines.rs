//! Deadlines in the order they fall due: the scheduler's timeouts and
//! window unloads, one or two per probe.
//!
//! A binary heap costs a sift of about log2(n) levels per push and pop,
//! with n the probes in flight (up to 65,536 in a sweep): a fifth of the
//! engine's time in an `--offline` sweep went to its pops. Most deadlines
//! are pushed in the order they fall due, since most probes of a scan
//! wait the same timeout after they go; those go to a queue at O(1), and
//! only the others to a heap. The earliest deadline is the earlier of the
//! queue's front and the heap's top. Equal deadlines fall due in the
//! order they were pushed (a heap of tuples would order them by their
//! payload, slot numbers reused out of order, and send most pushes to
//! the heap).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A min-queue of payloads `P` by deadline `K`.
#[derive(Debug)]
pub(super) struct Deadlines<K: Ord + Copy, P: Ord + Copy> {
    /// Pushed in non-decreasing order of deadline, so sorted.
    in_order: VecDeque<(K, P)>,
    /// The rest, by (deadline, push number).
    out_of_order: BinaryHeap<Reverse<(K, u64, P)>>,
    pushed: u64,
}

impl<K: Ord + Copy, P: Ord + Copy> Deadlines<K, P> {
    pub(super) fn new() -> Deadlines<K, P> {
        Deadlines {
            in_order: VecDeque::new(),
            out_of_order: BinaryHeap::new(),
            pushed: 0,
        }
    }

    pub(super) fn push(&mut self, due: K, payload: P) {
        if self.in_order.back().is_none_or(|&(last, _)| last <= due) {
            self.in_order.push_back((due, payload));
        } else {
            self.out_of_order.push(Reverse((due, self.pushed, payload)));
        }
        self.pushed += 1;
    }

    /// Whether the next item comes from the in-order queue.
    fn next_in_order(&self) -> Option<bool> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(&(a, _)), Some(&Reverse((b, ..)))) => Some(a <= b),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// The earliest item.
    pub(super) fn peek(&self) -> Option<(K, P)> {
        if self.next_in_order()? {
            self.in_order.front().copied()
        } else {
            self.out_of_order
                .peek()
                .map(|&Reverse((due, _, p))| (due, p))
        }
    }

    /// Takes the earliest item out.
    pub(super) fn pop(&mut self) -> Option<(K, P)> {
        if self.next_in_order()? {
            self.in_order.pop_front()
        } else {
            self.out_of_order.pop().map(|Reverse((due, _, p))| (due, p))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pops_by_deadline_as_a_heap_would(ops in proptest::collection::vec((any::<bool>(), 0u32..50), 0..400)) {
            // Pushes of a clock that mostly moves forward, and pops; the
            // deadlines come out as a heap gives them, ties in the order
            // pushed.
            let mut d = Deadlines::new();
            let mut heap = BinaryHeap::new();
            let mut clock = 0u32;
            for (i, (pop, step)) in ops.into_iter().enumerate() {
                if pop {
                    let want = heap.pop().map(|Reverse((due, _, p))| (due, p));
                    prop_assert_eq!(d.pop(), want);
                } else {
                    // Most steps forward, some back (a shorter timeout).
                    clock = if step < 40 { clock + step } else { clock.saturating_sub(step) };
                    let payload = 1000 - i as u32;
                    d.push(clock, payload);
                    heap.push(Reverse((clock, i, payload)));
                }
                let want = heap.peek().map(|&Reverse((due, _, p))| (due, p));
                prop_assert_eq!(d.peek(), want);
                prop_assert_eq!(d.len(), heap.len());
            }
            while let Some(Reverse((due, _, p))) = heap.pop() {
                prop_assert_eq!(d.pop(), Some((due, p)));
            }
            prop_assert_eq!(d.pop(), None);
        }
    }

    #[test]
    fn deadlines_pushed_in_order_stay_out_of_the_heap() {
        // Equal deadlines with payloads in any order (slots reused).
        let mut d = Deadlines::new();
        for i in 0..1000u32 {
            d.push(i / 3, 1000 - i);
        }
        assert_eq!(d.out_of_order.len(), 0);
        d.push(5, 0);
        assert_eq!(d.out_of_order.len(), 1);
        assert_eq!(d.pop(), Some((0, 1000)));
    }
}
