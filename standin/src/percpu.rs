//! The host's per-CPU block, which GS base points to while the program runs (as on the Unikraft
//! kernel this host stands in for; the program must leave GS alone). The system-call entry uses
//! it to find its stack without touching the program's stack or registers.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::{GsBase, KernelGsBase};
use x86_64::VirtAddr;

use crate::stacks;

/// The block (one CPU: one block).
#[repr(C)]
pub struct PerCpu {
    /// `gs:0`: the block's own address (the usual convention: code can find it from GS).
    self_addr: AtomicU64,
    /// The system-call stack's top, loaded into RSP by the entry code.
    syscall_stack_top: AtomicU64,
    /// Where the entry code keeps the program's RSP while it switches stacks.
    program_rsp: AtomicU64,
}

// entry.S compares `gs:0` with the block's address.
const _: () = assert!(offset_of!(PerCpu, self_addr) == 0);

/// The offsets the system-call entry assembly uses (`gs:OFFSET`).
pub const SYSCALL_STACK_TOP: usize = offset_of!(PerCpu, syscall_stack_top);
/// See [`SYSCALL_STACK_TOP`].
pub const PROGRAM_RSP: usize = offset_of!(PerCpu, program_rsp);

/// The block; its address is also compared by the system-call entry (entry.S).
pub static PER_CPU: PerCpu = PerCpu {
    self_addr: AtomicU64::new(0),
    syscall_stack_top: AtomicU64::new(0),
    program_rsp: AtomicU64::new(0),
};

/// Fills the block and points GS base at it (KERNEL_GS_BASE cleared: nothing swaps GS here,
/// the program runs in ring 0).
pub fn init() {
    let addr = &PER_CPU as *const PerCpu as u64;
    PER_CPU.self_addr.store(addr, Ordering::Relaxed);
    PER_CPU
        .syscall_stack_top
        .store(stacks::SYSCALL.range().end, Ordering::Relaxed);
    GsBase::write(VirtAddr::new(addr));
    KernelGsBase::write(VirtAddr::new(0));
}

/// The block's address (what GS base must hold).
pub fn address() -> u64 {
    &PER_CPU as *const PerCpu as u64
}
