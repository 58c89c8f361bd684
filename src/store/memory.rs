//! In-memory store: a deque kept in `seq` order.

use super::{QueueStore, QueuedMessage};
use std::collections::VecDeque;

/// Ready messages in `seq` order; requeues binary-search their place.
#[derive(Default)]
pub struct MemoryStore {
    ready: VecDeque<QueuedMessage>,
    bytes: u64,
}

impl QueueStore for MemoryStore {
    fn push(&mut self, m: QueuedMessage) -> bool {
        self.bytes += m.msg.size() as u64;
        self.ready.push_back(m);
        true
    }

    fn pop(&mut self) -> Option<QueuedMessage> {
        let m = self.ready.pop_front()?;
        self.bytes -= m.msg.size() as u64;
        Some(m)
    }

    fn requeue(&mut self, m: QueuedMessage) {
        self.bytes += m.msg.size() as u64;
        let at = self.ready.partition_point(|x| x.seq < m.seq);
        self.ready.insert(at, m);
    }

    fn ack(&mut self, _m: &QueuedMessage) {}

    fn len(&self) -> usize {
        self.ready.len()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn purge(&mut self) -> usize {
        let n = self.ready.len();
        self.ready.clear();
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::sync::Arc;

    fn qm(seq: u64) -> QueuedMessage {
        QueuedMessage {
            seq,
            msg: Arc::new(Message {
                exchange: String::new(),
                routing_key: String::new(),
                properties: Default::default(),
                raw_properties: bytes::Bytes::from_static(&[0, 0]),
                body: bytes::Bytes::from(vec![0u8; seq as usize]),
            }),
            redelivered: false,
            stored: false,
            expires_at: 0,
            delivery_count: 0,
        }
    }

    #[test]
    fn requeue_restores_order() {
        let mut s = MemoryStore::default();
        for i in 1..=4 {
            s.push(qm(i));
        }
        let a = s.pop().unwrap();
        let b = s.pop().unwrap();
        s.requeue(b);
        s.requeue(a);
        let order: Vec<u64> = std::iter::from_fn(|| s.pop()).map(|m| m.seq).collect();
        assert_eq!(order, vec![1, 2, 3, 4]);
        assert_eq!(s.bytes(), 0);
    }
}
