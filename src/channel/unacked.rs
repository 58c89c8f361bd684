//! A channel's deliveries awaiting settlement, in delivery-tag order.
//!
//! Tags grow by one per delivery and clients mostly settle the oldest first (a multiple ack
//! takes a prefix), so a deque sorted by tag serves the common cases in O(1): a delivery is
//! pushed at the back, an in-order ack pops the front, a multiple ack drains a prefix. A
//! `BTreeMap` cost a node walk per delivery and a split per multiple ack. Out-of-order settles
//! and a rolled-back transaction's re-inserts find their place by binary search; the deque
//! never holds more than the outstanding deliveries.

use std::collections::VecDeque;

pub(super) trait Tagged {
    fn tag(&self) -> u64;
}

pub(super) struct UnackedList<T> {
    items: VecDeque<T>,
}

impl<T: Tagged> Default for UnackedList<T> {
    fn default() -> Self {
        UnackedList {
            items: VecDeque::new(),
        }
    }
}

impl<T: Tagged> UnackedList<T> {
    fn find(&self, tag: u64) -> Result<usize, usize> {
        // Fast path for the newest delivery (the usual single ack when prefetch is 1).
        match self.items.back() {
            Some(b) if b.tag() < tag => return Err(self.items.len()),
            _ => {}
        }
        self.items.binary_search_by_key(&tag, Tagged::tag)
    }

    /// Adds an entry; a tag already present is replaced (callers never reuse a live tag).
    pub fn insert(&mut self, item: T) {
        match self.find(item.tag()) {
            Err(i) if i == self.items.len() => self.items.push_back(item),
            Err(i) => self.items.insert(i, item),
            Ok(i) => self.items[i] = item,
        }
    }

    pub fn contains(&self, tag: u64) -> bool {
        self.find(tag).is_ok()
    }

    pub fn remove(&mut self, tag: u64) -> Option<T> {
        match self.find(tag) {
            Ok(0) => self.items.pop_front(),
            Ok(i) => self.items.remove(i),
            Err(_) => None,
        }
    }

    /// Takes every entry with a tag up to and including `tag`, oldest first.
    pub fn take_upto(&mut self, tag: u64) -> Vec<T> {
        let n = match self.find(tag) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.items.drain(..n).collect()
    }

    pub fn take_all(&mut self) -> Vec<T> {
        self.items.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    impl Tagged for (u64, u32) {
        fn tag(&self) -> u64 {
            self.0
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Deliver,
        Remove(u64),
        TakeUpto(u64),
        TakeAll,
        Reinsert(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Deliver),
            2 => (0u64..80).prop_map(Op::Remove),
            1 => (0u64..80).prop_map(Op::TakeUpto),
            1 => (0u64..80).prop_map(Op::Reinsert),
            1 => Just(Op::TakeAll),
        ]
    }

    proptest! {
        /// Same answers as the ordered map it replaced, for any sequence of deliveries,
        /// single and multiple settles and rollback re-inserts.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut model: BTreeMap<u64, u32> = BTreeMap::new();
            let mut removed: BTreeMap<u64, u32> = BTreeMap::new();
            let mut u: UnackedList<(u64, u32)> = UnackedList::default();
            let mut next = 1u64;
            for (i, op) in ops.into_iter().enumerate() {
                let v = i as u32;
                match op {
                    Op::Deliver => {
                        model.insert(next, v);
                        u.insert((next, v));
                        next += 1;
                    }
                    Op::Remove(t) => {
                        let want = model.remove(&t);
                        if let Some(w) = want { removed.insert(t, w); }
                        prop_assert_eq!(u.remove(t).map(|x| x.1), want);
                    }
                    Op::TakeUpto(t) => {
                        let rest = model.split_off(&(t + 1));
                        let want: Vec<u32> = std::mem::replace(&mut model, rest).into_values().collect();
                        let got: Vec<u32> = u.take_upto(t).into_iter().map(|x| x.1).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::TakeAll => {
                        let want: Vec<u32> = std::mem::take(&mut model).into_values().collect();
                        let got: Vec<u32> = u.take_all().into_iter().map(|x| x.1).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Reinsert(t) => {
                        if let Some(w) = removed.remove(&t)
                            && !model.contains_key(&t)
                        {
                            model.insert(t, w);
                            u.insert((t, w));
                        }
                    }
                }
                prop_assert_eq!(u.len(), model.len());
                for t in 0..next + 1 {
                    prop_assert_eq!(u.contains(t), model.contains_key(&t));
                }
                let order: Vec<u64> = u.iter().map(|x| x.0).collect();
                let want: Vec<u64> = model.keys().copied().collect();
                prop_assert_eq!(order, want);
            }
        }
    }
}
