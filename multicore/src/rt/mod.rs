//! The multicore runtime on the started CPUs: per-CPU data, traps, IPIs, cross-CPU calls.

pub mod call_queue;
