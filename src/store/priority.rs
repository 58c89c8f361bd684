//! Priority queues (x-max-priority): one store per priority level, each in its own directory,
//! sharing the queue's sequence numbers. Pop takes from the highest non-empty level, so
//! delivery is by priority and FIFO within a priority; a message's level is its priority
//! property capped at the maximum, so it always maps back to the same level for acks.

use super::{QueueStore, QueuedMessage};

/// Stores indexed by priority level.
pub struct PriorityStore {
    levels: Vec<Box<dyn QueueStore>>,
}

impl PriorityStore {
    pub fn new(levels: Vec<Box<dyn QueueStore>>) -> Self {
        PriorityStore { levels }
    }

    fn level(&self, m: &QueuedMessage) -> usize {
        let p = m.msg.properties.priority().unwrap_or(0) as usize;
        p.min(self.levels.len().saturating_sub(1))
    }
}

impl QueueStore for PriorityStore {
    fn push(&mut self, m: QueuedMessage) -> bool {
        let l = self.level(&m);
        self.levels[l].push(m)
    }

    fn flush(&mut self) -> bool {
        // Every level, even after one fails: the others' records must still be written.
        let mut ok = true;
        for s in &mut self.levels {
            ok &= s.flush();
        }
        ok
    }

    fn pop(&mut self) -> Option<QueuedMessage> {
        self.levels.iter_mut().rev().find_map(|s| s.pop())
    }

    fn requeue(&mut self, m: QueuedMessage) {
        let l = self.level(&m);
        self.levels[l].requeue(m)
    }

    fn ack(&mut self, m: &QueuedMessage) {
        let l = self.level(m);
        self.levels[l].ack(m)
    }

    fn delivered(&mut self, seq: u64) {
        // Each level keeps its own watermark; the seq space is shared, so telling all of them
        // is correct (a level only marks what it holds at or below seq).
        for s in &mut self.levels {
            s.delivered(seq);
        }
    }

    fn write_delivered(&mut self) {
        for s in &mut self.levels {
            s.write_delivered();
        }
    }

    fn destroy(&mut self) {
        for s in &mut self.levels {
            s.destroy();
        }
    }

    fn len(&self) -> usize {
        self.levels.iter().map(|s| s.len()).sum()
    }

    fn bytes(&self) -> u64 {
        self.levels.iter().map(|s| s.bytes()).sum()
    }

    fn purge(&mut self) -> usize {
        self.levels.iter_mut().map(|s| s.purge()).sum()
    }
}
