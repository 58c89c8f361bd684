//! A published message. Shared as `Arc<Message>` between every queue it is routed to, so fan-out
//! copies no body bytes.

use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;

/// An immutable published message.
#[derive(Debug)]
pub struct Message {
    /// Exchange it was published to (reported in deliveries).
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Parsed properties, for routing decisions (headers, reply-to, delivery mode).
    /// Boxed: a message moves through decode, reassembly and routing, and moving the ~400-byte
    /// struct by value cost a `memcpy` at each step.
    pub properties: Box<BasicProperties>,
    /// Properties exactly as they go on the wire, so deliveries never re-serialise them.
    pub raw_properties: Bytes,
    /// The body, shared with the read buffer it arrived in.
    pub body: Bytes,
}

impl Message {
    /// delivery_mode 2.
    pub fn persistent(&self) -> bool {
        self.properties.delivery_mode() == &Some(2)
    }

    /// Bytes this message accounts for in queue length limits and memory figures.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}
