//! What the library needs from the kernel it runs in.
//!
//! The demo kernel is one host; a kernel whose `main()` already runs on one CPU is another.
//! The library asks for memory, a console, a view of physical memory and the low pages it may
//! borrow, and never assumes how the host laid out its address space.

use core::fmt;
use core::ptr::NonNull;

use crate::cpu_local::GsOwner;
use crate::phys::LinearMapping;
use crate::phys::PhysRange;

/// Types for which all-zero bytes are a valid value, so that zeroed memory from the host can be
/// handed out as them without initialization.
///
/// # Safety
/// The all-zero bit pattern must be a valid value of the type.
pub unsafe trait Zeroable {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(
        // SAFETY: integers and atomics of integers are valid at every bit pattern, zero included.
        unsafe impl Zeroable for $t {}
    )* };
}
zeroable!(u8, u16, u32, u64, usize, i32, i64);
zeroable!(
    core::sync::atomic::AtomicBool,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicUsize
);
// SAFETY: an array of zeroable values is zeroable element by element.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// Physical memory below 1 MiB that the trampoline page may be taken from.
#[derive(Debug, Clone, Copy)]
pub struct LowMemory<'a> {
    /// Free RAM ranges (they may extend past 1 MiB; only the part below counts).
    pub free: &'a [PhysRange],
    /// Ranges inside `free` that are in use all the same (boot structures, the host's data).
    pub in_use: &'a [PhysRange],
}

/// Services the host kernel provides to the bring-up.
pub trait Host: Sync {
    /// Writes `args` to the console. Called from any CPU, possibly at the same time: the host
    /// serializes (one call's text is never interleaved with another's).
    fn print(&self, args: fmt::Arguments<'_>);

    /// Returns zeroed memory of `size` bytes aligned to `align` (a power of two ≤ 4096) that
    /// stays valid and unused by the host for as long as the CPUs run: AP stacks, `CpuData`,
    /// the CPU tables. `None` when memory is exhausted. The library asks through the typed
    /// [`Host::alloc_slice_with`], [`Host::alloc_zeroed_slice`] and [`Host::alloc_value`].
    fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>>;

    /// `len` values `f(0)..f(len - 1)` in memory from [`Host::alloc_zeroed`], aligned to
    /// `align` (at least `T`'s alignment), never freed: the CPU tables.
    fn alloc_slice_with<T>(
        &self,
        len: usize,
        align: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Option<&'static mut [T]>
    where
        Self: Sized,
    {
        self.try_alloc_slice_with(len, align, (), |i| Ok(f(i))).ok()
    }

    /// Like [`Host::alloc_slice_with`] for an `f` that can fail: its first error is returned
    /// (`no_memory` if the slice itself cannot be had). The slots already filled are not
    /// dropped (the host's memory is never freed).
    fn try_alloc_slice_with<T, E>(
        &self,
        len: usize,
        align: usize,
        no_memory: E,
        mut f: impl FnMut(usize) -> Result<T, E>,
    ) -> Result<&'static mut [T], E>
    where
        Self: Sized,
    {
        let Some(bytes) = core::mem::size_of::<T>().checked_mul(len) else {
            return Err(no_memory);
        };
        let Some(base) = self.alloc_zeroed(bytes.max(1), align.max(core::mem::align_of::<T>()))
        else {
            return Err(no_memory);
        };
        let base = base.cast::<T>();
        for i in 0..len {
            let value = f(i)?;
            // SAFETY: the host handed out `bytes` = len × size_of::<T>() bytes at `base`, aligned
            // for T, to this call alone; slot i is inside and written once.
            unsafe { base.as_ptr().add(i).write(value) };
        }
        // SAFETY: all len slots were initialized above; the memory is never freed or handed out
        // again (host contract), so the one mutable borrow may live for 'static.
        Ok(unsafe { core::slice::from_raw_parts_mut(base.as_ptr(), len) })
    }

    /// `len` zeroed values (see [`Zeroable`]) from [`Host::alloc_zeroed`], never freed.
    fn alloc_zeroed_slice<T: Zeroable>(&self, len: usize) -> Option<&'static mut [T]>
    where
        Self: Sized,
    {
        let bytes = core::mem::size_of::<T>().checked_mul(len)?;
        let base = self
            .alloc_zeroed(bytes.max(1), core::mem::align_of::<T>())?
            .cast::<T>();
        // SAFETY: the host's memory is zeroed, aligned for T and `bytes` long, and all-zero is a
        // valid T (Zeroable); it is never freed or handed out again.
        Some(unsafe { core::slice::from_raw_parts_mut(base.as_ptr(), len) })
    }

    /// `value` moved into memory from [`Host::alloc_zeroed`] aligned to `align` (at least `T`'s
    /// alignment), never freed: per-CPU data.
    fn alloc_value<T>(&self, value: T, align: usize) -> Option<&'static mut T>
    where
        Self: Sized,
    {
        let mut value = Some(value);
        let slot = self.alloc_slice_with(1, align, |_| value.take().expect("one slot"))?;
        slot.first_mut()
    }

    /// Makes the 4 KiB page at virtual address `addr` (from [`Host::alloc_zeroed`]) fault on any
    /// access, as a stack guard. Returns `false` if the host cannot (the stack then has no
    /// guard, and the bring-up says so).
    fn guard_page(&self, addr: u64) -> bool {
        let _ = addr;
        false
    }

    /// How physical memory is reached: firmware tables, the trampoline page and the xAPIC page
    /// (which must be mapped uncached) are accessed through it.
    fn phys(&self) -> LinearMapping;

    /// Physical address of the virtual address `virt` (memory from `alloc_zeroed`, statics and
    /// the BSP's stack), or `None` if unknown.
    fn virt_to_phys(&self, virt: u64) -> Option<u64>;

    /// Where the trampoline page may go (the host's word; pages the library sees in use are
    /// refused all the same, boot/live_pages.rs).
    fn low_memory(&self) -> LowMemory<'_>;

    /// The virtual range [`Host::alloc_zeroed`] hands memory out of, if it is one range: its
    /// pages below 1 MiB are never borrowed. Default: not known.
    fn library_memory(&self) -> Option<(u64, usize)> {
        None
    }

    /// Writes `args` after every other CPU has been stopped (a panic or fatal exception
    /// report): must not wait for a lock that a stopped CPU may hold. Default: [`Host::print`].
    fn print_after_stop(&self, args: fmt::Arguments<'_>) {
        self.print(args);
    }

    /// Ends the run after a fatal error, once the other CPUs are stopped (the demo kernel
    /// takes QEMU's failure exit). Default: halt this CPU for good.
    fn fatal_exit(&self) -> ! {
        super::park_this_cpu()
    }

    /// Who owns GS base on the BSP: the host (the default; the library then never writes or
    /// reads through it there) or, for a kernel that leaves GS to the library on every CPU,
    /// the library ([`GsOwner::library`], unsafe). See `cpu_local`.
    fn gs_owner(&self) -> GsOwner {
        GsOwner::HOST
    }

    /// The page-table root APs load (below 4 GiB). Default: the BSP's CR3.
    fn page_table_root(&self) -> u64 {
        x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64()
    }
}

impl<H: Host> crate::cpu_local::FaultReporter for H {
    fn print_after_stop(&self, args: fmt::Arguments<'_>) {
        Host::print_after_stop(self, args);
    }

    fn fatal_exit(&self) -> ! {
        Host::fatal_exit(self)
    }
}
