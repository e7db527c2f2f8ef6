//! The host's own stacks, in its image's bss: the system-call stack (percpu.rs, syscall/entry.S)
//! and the three interrupt-stack-table stacks (gdt.rs; SDM Vol. 3A §6.14.5 "Interrupt Stack
//! Table"). Low memory holds nothing of the host's: below 1 MiB there are only the dead boot
//! stack (lowmem.rs) and frames.
//!
//! Each stack sits right above a guard page that paging.rs leaves out of the identity map, so
//! that an overflow faults, and is reported on the exception stack, instead of overwriting what
//! lies below.

use core::cell::UnsafeCell;

use standin_core::ranges::{Range, PAGE};

/// One stack and the guard page below it.
#[repr(C, align(4096))]
pub struct Stack<const SIZE: usize> {
    guard: UnsafeCell<[u8; PAGE as usize]>,
    bytes: UnsafeCell<[u8; SIZE]>,
}

// SAFETY: the bytes are only reached through RSP (the CPU's pushes and the code running on the
// stack, on the host's one CPU); no Rust reference into them is ever made.
unsafe impl<const SIZE: usize> Sync for Stack<SIZE> {}

impl<const SIZE: usize> Stack<SIZE> {
    const fn new() -> Self {
        assert!(SIZE.is_multiple_of(PAGE as usize));
        Stack {
            guard: UnsafeCell::new([0; PAGE as usize]),
            bytes: UnsafeCell::new([0; SIZE]),
        }
    }

    /// The stack's bytes; its end is the initial RSP.
    pub fn range(&'static self) -> Range {
        Range::from_len(self.bytes.get() as u64, SIZE as u64)
    }

    /// The guard page below it.
    fn guard(&'static self) -> Range {
        Range::from_len(self.guard.get() as u64, PAGE)
    }

    /// Where the top is, from the start of the structure (for assembly that names the symbol).
    pub const TOP_OFFSET: usize = PAGE as usize + SIZE;
}

/// The system-call stack (its top goes into the per-CPU block).
pub static SYSCALL: Stack<{ 16 << 10 }> = Stack::new();
/// IST1: external interrupts (the timer).
pub static IRQ: Stack<{ 8 << 10 }> = Stack::new();
/// The exception stack's type, whose `TOP_OFFSET` syscall/entry.S uses.
pub type ExceptionStack = Stack<{ 8 << 10 }>;
/// IST2: exceptions, and the report of a system call made with a foreign GS base.
pub static EXCEPTION: ExceptionStack = Stack::new();
/// IST3: NMI, double fault, machine check (which may strike on any other stack).
pub static CRITICAL: Stack<{ 8 << 10 }> = Stack::new();

/// Each stack's guard page and name.
fn guards() -> [(Range, &'static str); 4] {
    [
        (SYSCALL.guard(), "system-call stack"),
        (IRQ.guard(), "interrupt stack"),
        (EXCEPTION.guard(), "exception stack"),
        (CRITICAL.guard(), "NMI/double-fault stack"),
    ]
}

/// Whether `page` is a guard page (left unmapped).
pub fn is_guard(page: u64) -> bool {
    guards().iter().any(|(g, _)| g.contains(page))
}

/// The stack whose guard page holds `addr`: the one that overflowed, for fault reports.
pub fn overflowed(addr: u64) -> Option<&'static str> {
    guards()
        .into_iter()
        .find(|(g, _)| g.contains(addr))
        .map(|(_, name)| name)
}
