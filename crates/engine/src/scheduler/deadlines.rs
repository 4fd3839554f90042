//! Deadlines in the order they fall due: the scheduler's timeouts and
//! window unloads, one or two per probe.
//!
//! A binary heap costs a sift of about log2(n) levels per push and pop,
//! with n the probes in flight (up to 65,536 in a sweep): a fifth of the
//! engine's time in an `--offline` sweep went to its pops. Most deadlines
//! are pushed in the order they fall due, since most probes of a scan
//! wait the same timeout after they go; those go to sorted queues at
//! O(1), and only the others to a heap. The earliest deadline is the
//! earliest of the queues' fronts and the heap's top. Equal deadlines
//! fall due in the order they were pushed (a heap of tuples would order
//! them by their payload, slot numbers reused out of order, and send
//! most pushes to the heap).
//!
//! There are a few queues, not one: a deadline goes to the queue whose
//! last deadline is the latest not after it (patience sorting). With a
//! single queue, one long deadline at its back sent every shorter one
//! after it to the heap until it fell due: a sweep's first probes wait
//! the initial timeout (a second), its later ones the measured one
//! (100 ms), and half of a sparse 16-port sweep's million timeouts went
//! through the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Sorted queues before the heap: one for the initial timeout, one for
/// the measured one, and room for a change of either.
const RUNS: usize = 4;

/// A min-queue of payloads `P` by deadline `K`.
#[derive(Debug)]
pub(super) struct Deadlines<K: Ord + Copy, P: Ord + Copy> {
    /// Each pushed in non-decreasing order of deadline, so sorted; by
    /// (deadline, push number).
    runs: [VecDeque<(K, u64, P)>; RUNS],
    /// The rest, by (deadline, push number).
    out_of_order: BinaryHeap<Reverse<(K, u64, P)>>,
    pushed: u64,
}

/// Where the earliest item is.
#[derive(Clone, Copy)]
enum Earliest {
    Run(usize),
    Heap,
}

impl<K: Ord + Copy, P: Ord + Copy> Deadlines<K, P> {
    pub(super) fn new() -> Deadlines<K, P> {
        Deadlines {
            runs: Default::default(),
            out_of_order: BinaryHeap::new(),
            pushed: 0,
        }
    }

    pub(super) fn push(&mut self, due: K, payload: P) {
        let item = (due, self.pushed, payload);
        self.pushed += 1;
        // The run whose last deadline is the latest not after `due`; an
        // empty run if none.
        let mut fit: Option<(usize, Option<K>)> = None;
        for (i, run) in self.runs.iter().enumerate() {
            match run.back() {
                Some(&(last, ..)) if last <= due => {
                    if fit.is_none_or(|(_, best)| best.is_none_or(|b| b < last)) {
                        fit = Some((i, Some(last)));
                    }
                }
                Some(_) => {}
                None => {
                    if fit.is_none() {
                        fit = Some((i, None));
                    }
                }
            }
        }
        match fit {
            Some((i, _)) => self.runs[i].push_back(item),
            None => self.out_of_order.push(Reverse(item)),
        }
    }

    /// Where the earliest item is.
    fn earliest(&self) -> Option<Earliest> {
        let mut best = self
            .out_of_order
            .peek()
            .map(|&Reverse((due, n, _))| ((due, n), Earliest::Heap));
        for (i, run) in self.runs.iter().enumerate() {
            if let Some(&(due, n, _)) = run.front()
                && best.is_none_or(|(key, _)| (due, n) < key)
            {
                best = Some(((due, n), Earliest::Run(i)));
            }
        }
        best.map(|(_, at)| at)
    }

    /// The earliest item.
    pub(super) fn peek(&self) -> Option<(K, P)> {
        let item = match self.earliest()? {
            Earliest::Run(i) => self.runs[i].front().copied(),
            Earliest::Heap => self.out_of_order.peek().map(|&Reverse(item)| item),
        };
        item.map(|(due, _, p)| (due, p))
    }

    /// Takes the earliest item out.
    pub(super) fn pop(&mut self) -> Option<(K, P)> {
        let item = match self.earliest()? {
            Earliest::Run(i) => self.runs[i].pop_front(),
            Earliest::Heap => self.out_of_order.pop().map(|Reverse(item)| item),
        };
        item.map(|(due, _, p)| (due, p))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.runs.iter().map(VecDeque::len).sum::<usize>() + self.out_of_order.len()
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
        // Deadlines later than the last, in order, with shorter ones
        // interleaved: two runs, no heap.
        for i in 0..1000u32 {
            d.push(10_000 + i, i);
            d.push(400 + i, i);
        }
        assert_eq!(d.out_of_order.len(), 0);
        // Decreasing deadlines fill the remaining runs, then the heap.
        for i in 0..4u32 {
            d.push(300 - i, 0);
        }
        assert_eq!(d.out_of_order.len(), 2);
        assert_eq!(d.pop(), Some((0, 1000)));
    }

    #[test]
    fn a_long_deadline_pushed_first_keeps_the_shorter_ones_after_it_out_of_the_heap() {
        // A sweep's first probe waits the initial timeout, the next ones
        // the measured, shorter one.
        let mut d = Deadlines::new();
        d.push(1_000_000u32, 0u32);
        for i in 1..10_000u32 {
            d.push(100_000 + i, i);
        }
        assert_eq!(d.out_of_order.len(), 0);
        assert_eq!(d.pop(), Some((100_001, 1)));
        assert_eq!(d.len(), 9_999);
    }
}
