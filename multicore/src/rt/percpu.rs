//! The runtime's per-CPU state: each CPU's [`PerCpu`], found through the CPU-local layer
//! ([`crate::cpu_local`]: which CPU is this) and the runtime's table (index → block). A CPU
//! that has not joined the runtime (before [`super::start`], or a hosted program's CPU) has no
//! `PerCpu`: [`current`] is `None` there.
//!
//! Rules. The runtime has no preemption: code keeps running on the CPU it started on, so a
//! `&PerCpu` or a [`PerCpuVar`] reference stays this CPU's. Interrupt handlers do run on the
//! same CPU in between, so per-CPU state that both change is reached only through
//! [`PerCpuCell::with`], which turns interrupts off for its closure. Another CPU's copy may be
//! read only when the type is `Sync` ([`PerCpuVar::get_for`]).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};

use super::call_queue::CallQueue;
use crate::arch::x86_64::apic::timer::TimerMode;
use crate::arch::x86_64::apic::LocalApic;
use crate::arch::x86_64::irq::IrqGuard;
use crate::boot::CpuData;
use crate::sync::primitives::{AtomicBool, AtomicU64, Ordering};

/// One CPU's runtime state.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Dense CPU index (0 = BSP).
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    /// The CPU's bring-up data.
    pub data: &'static CpuData,
    /// This CPU's local APIC (its mode is the same on every CPU).
    pub(crate) apic: LocalApic,
    /// The timer mode chosen on this CPU (set once, before interrupts are enabled).
    pub(crate) timer: spin::Once<TimerMode>,
    /// Cross-CPU calls waiting to run here.
    pub calls: CallQueue,
    /// Timer interrupts taken.
    pub timer_interrupts: AtomicU64,
    /// Call/wake-up IPIs taken.
    pub ipis: AtomicU64,
    /// Set once the CPU runs the runtime (GS, IDT, timer): it can take IPIs and NMIs.
    joined: AtomicBool,
}

impl PerCpu {
    /// A block for `data`'s CPU.
    pub(crate) fn new(data: &'static CpuData, apic: LocalApic) -> PerCpu {
        PerCpu {
            index: data.index,
            apic_id: data.apic_id,
            data,
            apic,
            timer: spin::Once::new(),
            calls: CallQueue::new(),
            timer_interrupts: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            joined: AtomicBool::new(false),
        }
    }

    /// Moves the block to the heap for good.
    pub(crate) fn leak(self) -> &'static PerCpu {
        Box::leak(Box::new(self))
    }
}

/// The running CPU's block, or `None` if the runtime does not run on this CPU.
#[inline]
pub fn current() -> Option<&'static PerCpu> {
    let local = crate::cpu_local::current()?;
    if !local.in_runtime() {
        return None;
    }
    super::cpu(local.index() as usize)
}

/// The running CPU's block.
///
/// # Panics
/// If the runtime has not been set up on this CPU.
#[inline]
pub fn this_cpu() -> &'static PerCpu {
    current().expect("this_cpu() on a CPU the runtime has not set up")
}

/// The running CPU's index, if the runtime runs here (the kernel heap's `CurrentCpu`).
pub fn current_index() -> Option<usize> {
    current().map(|c| c.index as usize)
}

/// One value per CPU, shared: each CPU reads its own with [`get`](PerCpuVar::get), any CPU may
/// read another's with [`get_for`](PerCpuVar::get_for). For values that change, use atomics
/// inside `T` or [`PerCpuCell`].
pub struct PerCpuVar<T: Sync> {
    slots: Box<[Padded<T>]>,
}

#[repr(align(64))]
struct Padded<T>(T);

impl<T: Sync> PerCpuVar<T> {
    /// One value per CPU the runtime knows, made by `init(cpu_index)`.
    pub fn new(init: impl FnMut(usize) -> T) -> PerCpuVar<T> {
        let n = super::cpu_count();
        PerCpuVar {
            slots: (0..n)
                .map(init)
                .map(Padded)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        }
    }

    /// The running CPU's value.
    pub fn get(&self) -> &T {
        &self.slots[this_cpu().index as usize].0
    }

    /// CPU `cpu`'s value.
    pub fn get_for(&self, cpu: usize) -> &T {
        &self.slots[cpu].0
    }

    /// Every CPU's value, by index.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|p| &p.0)
    }
}

/// One value per CPU, private to it: only the owning CPU reaches it, through
/// [`with`](PerCpuCell::with), with interrupts off so a handler on the same CPU cannot get
/// at it in between. Re-entering `with` on the same CPU (from inside the closure) panics.
pub struct PerCpuCell<T: Send> {
    slots: Box<[Padded<CellSlot<T>>]>,
}

struct CellSlot<T> {
    busy: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: each slot is only touched by its own CPU (with() indexes by this_cpu()), with
// interrupts off and a busy flag against re-entry, so no two contexts share a slot; values move
// between CPUs only at construction, hence `T: Send`.
unsafe impl<T: Send> Sync for PerCpuCell<T> {}

impl<T: Send> PerCpuCell<T> {
    /// One value per CPU the runtime knows, made by `init(cpu_index)`.
    pub fn new(mut init: impl FnMut(usize) -> T) -> PerCpuCell<T> {
        let n = super::cpu_count();
        let slots = (0..n)
            .map(|i| {
                Padded(CellSlot {
                    busy: Cell::new(false),
                    value: UnsafeCell::new(init(i)),
                })
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        PerCpuCell { slots }
    }

    /// Runs `f` on the running CPU's value, interrupts off.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _irq = IrqGuard::new();
        let slot = &self.slots[this_cpu().index as usize].0;
        assert!(
            !slot.busy.replace(true),
            "PerCpuCell::with re-entered on CPU {}",
            this_cpu().index
        );
        // SAFETY: only this CPU reaches this slot, interrupts are off, and the busy flag rules
        // out a nested call: this is the only reference to the value right now.
        let result = f(unsafe { &mut *slot.value.get() });
        slot.busy.set(false);
        result
    }
}

impl PerCpu {
    /// Whether the CPU runs the runtime (GS, IDT and timer set up, interrupts on).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    pub(crate) fn mark_joined(&self) {
        self.joined.store(true, Ordering::Release);
    }

    /// The mode this CPU's timer runs in (set when it joined).
    pub fn timer_mode(&self) -> Option<TimerMode> {
        self.timer.get().copied()
    }

    /// Counts a timer interrupt.
    pub(crate) fn count_timer(&self) {
        self.timer_interrupts.fetch_add(1, Ordering::Relaxed);
    }
}
