//! Wire bytes: frame decoding/encoding on top of amq-protocol, and per-channel content reassembly.

pub mod assembler;
pub mod codec;
