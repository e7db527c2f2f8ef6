//! `multicore`: bring up every CPU of an x86_64 KVM/QEMU machine from `no_std` Rust.
//!
//! The library finds the CPUs (ACPI MADT, else MP tables), starts them with INIT/SIPI through
//! a relocatable real-mode trampoline (x2APIC or xAPIC), and calls a Rust function on each.
//! What it needs from the kernel it runs in comes through [`boot::Host`].
#![cfg_attr(not(any(test, loom)), no_std)]

extern crate alloc;

pub mod acpi;
pub mod arch;
pub mod boot;
pub mod cpu_local;
pub mod heap;
// Not under loom: its statics (console lock, heap) need const constructors loom lacks.
#[cfg(not(loom))]
pub mod hosted;
mod le_fields;
#[cfg(not(loom))]
pub mod line_ring;
pub mod mptable;
pub mod phys;
pub mod program_headers;
pub mod rt;
pub mod sched;
pub mod sync;
pub mod tls;
pub mod topology;

#[cfg(test)]
mod test_mem;

/// The README's example compiles against this API (checked by `cargo test` as a doctest).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
