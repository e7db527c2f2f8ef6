//! Synchronization for code running on every CPU.

pub mod primitives;
