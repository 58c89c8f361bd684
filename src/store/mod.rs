//! Where a queue keeps its ready messages. The queue talks only to [`QueueStore`], so the disk
//! store slots in beside the in-memory one without the queue changing.

pub mod memory;

use crate::message::Message;
use std::sync::Arc;

/// A message inside a queue: its queue-local sequence number orders it, so a requeued message
/// goes back to its original place.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Monotonic per queue; ready messages are kept in `seq` order.
    pub seq: u64,
    pub msg: Arc<Message>,
    /// Set once the message has been delivered and returned.
    pub redelivered: bool,
}

/// Storage of a queue's ready messages. Unacked messages are held by the channel that received
/// them; the store hears about them again only through `requeue` or `ack`.
pub trait QueueStore: Send {
    /// Appends a newly published message (its `seq` is larger than any before).
    fn push(&mut self, m: QueuedMessage);
    /// Takes the oldest ready message.
    fn pop(&mut self) -> Option<QueuedMessage>;
    /// Puts a delivered message back at its `seq` position.
    fn requeue(&mut self, m: QueuedMessage);
    /// Records that a delivered message is done with.
    fn ack(&mut self, seq: u64);
    /// Ready messages.
    fn len(&self) -> usize;
    /// Body bytes of ready messages.
    fn bytes(&self) -> u64;
    /// Drops every ready message, returning how many.
    fn purge(&mut self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
