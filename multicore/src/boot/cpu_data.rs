//! `CpuData`: what each started CPU owns, and its state as the BSP sees it.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::phases::{ApPhases, PhaseStamps};

/// Signature of the function an AP runs once it is in Rust: it gets its own [`CpuData`] and
/// never returns.
pub type ApEntry = fn(&'static CpuData) -> !;

/// Where an AP is on its way up. Stored in [`CpuData`]; the long-mode entry
/// (`long_mode_entry.S`) writes `InLongMode`, the AP's Rust entry `Arrived`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CpuState {
    /// Not started yet (or not answering).
    NotStarted = 0,
    /// Through the trampoline into 64-bit mode, on the host's page tables, and found its slot
    /// in the long-mode entry; Rust not reached yet.
    InLongMode = 1,
    /// In Rust on its own stack with the library's GDT and its local APIC enabled.
    Arrived = 2,
    /// Its entry function declared it online ([`CpuData::mark_online`]).
    Online = 3,
}

impl CpuState {
    fn from_u32(v: u32) -> CpuState {
        match v {
            1 => CpuState::InLongMode,
            2 => CpuState::Arrived,
            3 => CpuState::Online,
            _ => CpuState::NotStarted,
        }
    }

    /// Short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            CpuState::NotStarted => "no sign of life after INIT/SIPI",
            CpuState::InLongMode => "reached 64-bit mode and found its slot but not Rust",
            CpuState::Arrived => "reached Rust but its entry never marked it online",
            CpuState::Online => "online",
        }
    }
}

/// One CPU's data, allocated by the BSP before the CPU starts. The long-mode entry reads
/// `stack_top` and writes `state` at offsets it gets from [`CpuData::STACK_TOP_OFFSET`] and
/// [`CpuData::STATE_OFFSET`].
#[repr(C)]
#[derive(Debug)]
pub struct CpuData {
    /// Dense CPU index: 0 for the BSP, 1..N for the APs in discovery order.
    pub index: u32,
    /// The CPU's local APIC ID (may be sparse, may exceed 255).
    pub apic_id: u32,
    state: AtomicU32,
    _reserved: u32,
    stack_top: u64,
    /// Lowest address of the stack (just above its guard page).
    pub stack_bottom: u64,
    /// Address of the CPU's identity block (cpu_local.rs), which its GS base points at.
    pub(crate) cpu_local_block: u64,
    /// TSC when the CPU reached Rust (0 before).
    arrived_tsc: AtomicU64,
    /// TSC when the CPU was marked online (0 before).
    online_tsc: AtomicU64,
    /// Where its start-up time went (phases.rs).
    pub(crate) stamps: PhaseStamps,
    /// What the AP runs after the library's setup.
    pub entry: ApEntry,
    /// A value for `entry`'s use (e.g. a pointer to host data).
    pub arg: usize,
}

impl CpuData {
    /// Offset of the stack top, read by the long-mode entry.
    pub const STACK_TOP_OFFSET: usize = offset_of!(CpuData, stack_top);
    /// Offset of the state word, written by the long-mode entry.
    pub const STATE_OFFSET: usize = offset_of!(CpuData, state);
    /// Offset of the phase stamps, written by the long-mode entry ([`PhaseStamps`]' offsets).
    pub const STAMPS_OFFSET: usize = offset_of!(CpuData, stamps);

    /// A CPU that has not started, with `stack` (bottom, top; the top 16-byte aligned) and
    /// its identity block at `cpu_local_block`.
    pub(crate) fn new(
        (index, apic_id): (u32, u32),
        stack: (u64, u64),
        cpu_local_block: u64,
        entry: ApEntry,
        arg: usize,
    ) -> Self {
        let (stack_bottom, stack_top) = stack;
        debug_assert_eq!(stack_top % 16, 0);
        CpuData {
            index,
            apic_id,
            state: AtomicU32::new(CpuState::NotStarted as u32),
            _reserved: 0,
            stack_top,
            stack_bottom,
            cpu_local_block,
            arrived_tsc: AtomicU64::new(0),
            online_tsc: AtomicU64::new(0),
            stamps: PhaseStamps::default(),
            entry,
            arg,
        }
    }

    /// Where the CPU is on its way up.
    #[inline]
    pub fn state(&self) -> CpuState {
        CpuState::from_u32(self.state.load(Ordering::Acquire))
    }

    /// Top of the CPU's stack.
    pub fn stack_top(&self) -> u64 {
        self.stack_top
    }

    /// Called by the library's AP entry once the CPU runs Rust.
    #[inline(always)]
    pub(crate) fn mark_arrived(&self) {
        self.arrived_tsc
            .store(crate::arch::x86_64::tsc::now(), Ordering::Relaxed);
        self.state
            .store(CpuState::Arrived as u32, Ordering::Release);
    }

    /// Declares this CPU online: the BSP's wait for it ends. Call it from the AP's entry.
    pub fn mark_online(&self) {
        self.online_tsc
            .store(crate::arch::x86_64::tsc::now(), Ordering::Relaxed);
        self.state.store(CpuState::Online as u32, Ordering::Release);
    }

    /// TSC at which the CPU reached Rust, if it has.
    pub fn arrived_tsc(&self) -> Option<u64> {
        Some(self.arrived_tsc.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// TSC at which the CPU was marked online, if it was.
    pub fn online_tsc(&self) -> Option<u64> {
        Some(self.online_tsc.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// The TSC stamps of its way up (phases.rs). Read them after the bring-up: the AP's own
    /// stamps are complete once its state is `Arrived`.
    pub fn phases(&self) -> ApPhases {
        // The acquire orders the reads after the AP's stores that came before its state.
        let _ = self.state();
        self.stamps.read(self.arrived_tsc(), self.online_tsc())
    }
}
