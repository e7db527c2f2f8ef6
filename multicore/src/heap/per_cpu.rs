//! [`PerCpuHeap`]: per-CPU arenas in front of a shared pool.
//!
//! # Why the fast path needs no lock
//! Arena `i`'s allocator is only ever touched by code running on CPU `i` with interrupts off:
//! allocations on CPU `i`, frees of arena `i`'s blocks on CPU `i`, and the draining of its
//! remote-free list (which CPU `i` does at the start of each allocation). Other CPUs never touch
//! it: they push the blocks they free onto the remote-free list, a lock-free atomic stack. With
//! interrupts off, the only other code that could run on CPU `i` (an interrupt handler that
//! allocates) is held off, so the `&mut` to the allocator is unique. The contract of
//! [`CurrentCpu`] (no two contexts report the same index) is what ties a context to its arena.
//!
//! # Block size and alignment
//! Every request is rounded up to at least [`MIN_BLOCK_SIZE`] bytes (24: the link and the
//! layout) and [`MIN_BLOCK_ALIGN`] alignment (8), so that any block, freed on any CPU, can be
//! pushed onto its owner's remote-free list with the header stored in the block itself: freeing
//! never allocates and never fails. `dealloc` applies the same rounding to the caller's layout,
//! so the arena sees the same layout at both ends.
//!
//! # Where a block goes back to
//! The owner is found from the address: arenas are `cpus` equal, contiguous slices, so the
//! arena index is `(addr - base) / arena_size`; addresses in the shared range go to the shared
//! pool. So blocks always return to where they came from, whatever CPU frees them and whatever
//! the mode ([`PerCpuHeap::set_shared_only`]) is at the time.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use ::spin::{Mutex, MutexGuard};
use talc::base::Talc;
use talc::source::Manual;
use talc::DefaultBinning;

use super::remote_free::{RemoteFreeList, MIN_BLOCK_ALIGN, MIN_BLOCK_SIZE};
use super::CurrentCpu;
use crate::arch::x86_64::irq::IrqGuard;
use crate::sync::primitives::{AtomicBool, AtomicU32, AtomicU64, Ordering, UnsafeCell};

/// The allocator behind every arena and the shared pool: memory is only ever claimed at init.
type Allocator = Talc<Manual, DefaultBinning>;

/// How many arenas a [`PerCpuHeap`] has room for unless told otherwise (the kernel's limit).
pub const DEFAULT_MAX_CPUS: usize = 1024;

/// The smallest arena (or shared pool) [`PerCpuHeap::init`] accepts: room for the allocator's
/// own bookkeeping (about 1.5 KiB) plus a little. Useful arenas are far larger.
pub const MIN_ARENA_SIZE: usize = talc::min_first_heap_size::<DefaultBinning>() + 256;

/// Requests larger than `arena_size / LARGE_DIVISOR` go to the shared pool: a few large blocks
/// would otherwise fill an arena and push all of that CPU's small requests to the shared pool.
const LARGE_DIVISOR: usize = 8;

/// Where a block lives, from [`PerCpuHeap::pool_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// CPU `n`'s arena.
    Arena(usize),
    /// The shared pool.
    Shared,
}

/// Counters of one CPU's arena, from [`PerCpuHeap::stats`]. Each is written only by its CPU
/// (plain load and store, no locked instruction) and read with relaxed loads: a snapshot whose
/// fields may be a few operations apart when the CPU is busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Allocations made on this CPU, whichever pool served them.
    pub allocs: u64,
    /// Blocks returned to this CPU's arena: freed here, plus those received from other CPUs.
    pub frees: u64,
    /// Of `frees`, the blocks other CPUs freed and handed back through the remote-free list.
    pub remote_frees: u64,
    /// Of `allocs`, those the shared pool served (large request, arena full, or shared-only).
    pub fallbacks: u64,
}

/// Per-CPU arenas in front of a shared pool; a [`GlobalAlloc`].
///
/// `MAX_CPUS` is how many arenas the structure has room for (a `static` of 128 bytes each,
/// zero-initialised so it lands in `.bss`); CPUs with a higher index, or before
/// [`CurrentCpu::current`] knows them, use the shared pool.
///
/// ```text
/// #[global_allocator]
/// static HEAP: PerCpuHeap<KernelCpu> = PerCpuHeap::new();
/// // BSP, once, before anything allocates:
/// unsafe { HEAP.init(arenas, 1 << 20, cpus, shared, 64 << 20) };
/// ```
pub struct PerCpuHeap<C: CurrentCpu, const MAX_CPUS: usize = DEFAULT_MAX_CPUS> {
    /// `UNINIT` → `INITIALIZING` → `READY`. `READY` is stored with Release after `config` and
    /// every allocator were set up, and loaded with Acquire before they are used.
    state: AtomicU32,
    /// Written once by `init`, before `state` becomes `READY`; read-only after.
    config: UnsafeCell<Config>,
    /// Benchmark switch: every allocation goes to the shared pool.
    shared_only: AtomicBool,
    shared: Mutex<Allocator>,
    arenas: [Arena; MAX_CPUS],
    _cpu: PhantomData<fn() -> C>,
}

const UNINIT: u32 = 0;
const INITIALIZING: u32 = 1;
const READY: u32 = 2;

/// The memory layout `init` was given.
#[derive(Debug, Clone, Copy)]
struct Config {
    arenas_base: usize,
    arena_size: usize,
    cpus: usize,
    /// Larger requests go to the shared pool.
    large: usize,
    shared_base: usize,
    shared_size: usize,
}

impl Config {
    const EMPTY: Config = Config {
        arenas_base: 0,
        arena_size: 0,
        cpus: 0,
        large: 0,
        shared_base: 0,
        shared_size: 0,
    };

    fn arena_of(&self, addr: usize) -> Option<usize> {
        let offset = addr.checked_sub(self.arenas_base)?;
        // `arena_size` is nonzero whenever `cpus` is: `init` checked it.
        let index = offset.checked_div(self.arena_size)?;
        (index < self.cpus).then_some(index)
    }

    fn in_shared(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.shared_base) < self.shared_size
    }
}

/// One CPU's arena. 128-byte aligned so that no two CPUs' arenas share a cache line (or an
/// adjacent-line prefetch pair); the remote-free list, which other CPUs write, gets its own
/// line so their pushes do not steal the line holding the owner's allocator and counters.
#[repr(C, align(128))]
struct Arena {
    allocator: UnsafeCell<Allocator>,
    allocs: AtomicU64,
    frees: AtomicU64,
    remote_frees: AtomicU64,
    fallbacks: AtomicU64,
    remote: CacheLine<RemoteFreeList>,
}

#[repr(align(64))]
struct CacheLine<T>(T);

const _: () = assert!(
    core::mem::size_of::<Arena>() == 128,
    "one arena, two cache lines"
);

impl Arena {
    const fn new() -> Arena {
        Arena {
            allocator: UnsafeCell::new(Talc::new(Manual)),
            allocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            remote_frees: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            remote: CacheLine(RemoteFreeList::new()),
        }
    }

    /// Runs `f` with the arena's allocator.
    ///
    /// # Safety
    /// The caller is running on this arena's CPU (per [`CurrentCpu`]) with interrupts off, and
    /// the heap is initialised (so the allocator's state is the one `init` published).
    unsafe fn with_allocator<R>(&self, f: impl FnOnce(&mut Allocator) -> R) -> R {
        // SAFETY: per the contract only this CPU touches the allocator, and interrupts are off
        // so nothing else on this CPU runs until `f` returns: the `&mut` is unique.
        self.allocator.with_mut(|a| f(unsafe { &mut *a }))
    }

    /// Gives the blocks other CPUs freed back to `allocator` (this arena's own).
    fn drain_remote(&self, allocator: &mut Allocator) {
        let mut drained = 0;
        for (block, layout) in self.remote.0.take_all() {
            // SAFETY: every block on this list was allocated from this arena with `layout`
            // (`dealloc` pushes only blocks whose address is in this arena, with the rounded
            // layout they were allocated with), and is freed exactly once.
            unsafe { allocator.deallocate(block.as_ptr(), layout) };
            drained += 1;
        }
        if drained > 0 {
            bump(&self.remote_frees, drained);
            bump(&self.frees, drained);
        }
    }

    fn stats(&self) -> ArenaStats {
        ArenaStats {
            allocs: self.allocs.load(Ordering::Relaxed),
            frees: self.frees.load(Ordering::Relaxed),
            remote_frees: self.remote_frees.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// Adds to a counter only its own CPU writes (with interrupts off): a plain load and store, no
/// locked read-modify-write on the allocation path. Readers on other CPUs see some recent value.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// The layout every pool actually allocates for `layout`: see "Block size and alignment".
#[inline]
fn block_layout(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(
        layout.size().max(MIN_BLOCK_SIZE),
        layout.align().max(MIN_BLOCK_ALIGN),
    )
    .ok()
}

/// The shared pool, locked with interrupts off on this CPU (an interrupt handler may allocate
/// from it while the interrupted code holds it). Field order matters: the lock is released
/// before interrupts come back.
struct SharedGuard<'a> {
    allocator: MutexGuard<'a, Allocator>,
    _irq: IrqGuard,
}

impl<C: CurrentCpu, const MAX_CPUS: usize> PerCpuHeap<C, MAX_CPUS> {
    /// A heap with no memory yet: every allocation fails until [`PerCpuHeap::init`].
    pub const fn new() -> Self {
        PerCpuHeap {
            state: AtomicU32::new(UNINIT),
            config: UnsafeCell::new(Config::EMPTY),
            shared_only: AtomicBool::new(false),
            shared: Mutex::new(Talc::new(Manual)),
            arenas: [const { Arena::new() }; MAX_CPUS],
            _cpu: PhantomData,
        }
    }

    /// Gives the heap its memory: `cpus` arenas of `arena_size` bytes each, contiguous from
    /// `arenas` (CPU `i`'s at `arenas + i * arena_size`), and a shared pool of `shared_size`
    /// bytes at `shared` (0 for none). CPUs with an index `>= cpus` use the shared pool.
    ///
    /// # Panics
    /// If called twice, if `cpus > MAX_CPUS`, if an arena (when `cpus > 0`) or a non-empty
    /// shared pool is smaller than [`MIN_ARENA_SIZE`], or if the ranges overlap or wrap.
    ///
    /// # Safety
    /// The memory is valid for reads and writes, used by nothing else from now on, and lives
    /// as long as the heap is used. No other call to `init` runs concurrently (allocations on
    /// other CPUs may: they fail until `init` returns).
    pub unsafe fn init(
        &self,
        arenas: *mut u8,
        arena_size: usize,
        cpus: usize,
        shared: *mut u8,
        shared_size: usize,
    ) {
        assert!(
            self.state
                .compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok(),
            "PerCpuHeap::init called twice"
        );
        assert!(
            cpus <= MAX_CPUS,
            "PerCpuHeap: {cpus} arenas, room for {MAX_CPUS}"
        );
        assert!(
            cpus == 0 || arena_size >= MIN_ARENA_SIZE,
            "PerCpuHeap: arenas of {arena_size} bytes, need at least {MIN_ARENA_SIZE}"
        );
        assert!(
            shared_size == 0 || shared_size >= MIN_ARENA_SIZE,
            "PerCpuHeap: shared pool of {shared_size} bytes, need 0 or at least {MIN_ARENA_SIZE}"
        );
        let arenas_base = arenas as usize;
        let arenas_end = arena_size
            .checked_mul(cpus)
            .and_then(|total| arenas_base.checked_add(total))
            .expect("PerCpuHeap: the arenas wrap around the address space");
        let shared_base = shared as usize;
        let shared_end = shared_base
            .checked_add(shared_size)
            .expect("PerCpuHeap: the shared pool wraps around the address space");
        assert!(
            arenas_end == arenas_base
                || shared_size == 0
                || shared_end <= arenas_base
                || arenas_end <= shared_base,
            "PerCpuHeap: the shared pool overlaps the arenas"
        );

        let config = Config {
            arenas_base,
            arena_size,
            cpus,
            large: arena_size / LARGE_DIVISOR,
            shared_base,
            shared_size,
        };
        // SAFETY: we won the UNINIT → INITIALIZING exchange, and readers only look at `config`
        // after seeing READY, so nothing else accesses it.
        self.config.with_mut(|c| unsafe { *c = config });

        for (i, arena) in self.arenas[..cpus].iter().enumerate() {
            // SAFETY: before READY no CPU touches an arena's allocator (allocations fail and
            // frees of heap blocks cannot happen); the caller gives us the memory, and this
            // slice of it belongs to arena `i` alone.
            let claimed = arena.allocator.with_mut(|a| unsafe {
                (*a).claim(arenas.wrapping_add(i * arena_size), arena_size)
            });
            assert!(
                claimed.is_some(),
                "PerCpuHeap: arena {i} could not be claimed"
            );
        }
        if shared_size > 0 {
            // SAFETY: the caller gives us this memory for the shared pool.
            let claimed = unsafe { self.shared.lock().claim(shared, shared_size) };
            assert!(
                claimed.is_some(),
                "PerCpuHeap: the shared pool could not be claimed"
            );
        }

        // Release: the config and every allocator's initial state happen-before any use, which
        // starts with an Acquire load seeing READY.
        self.state.store(READY, Ordering::Release);
    }

    /// The configuration, once `init` has published it.
    #[inline]
    fn config(&self) -> Option<Config> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY (seen with Acquire) means `init` finished writing and nobody writes
        // the config again.
        Some(self.config.with(|c| unsafe { *c }))
    }

    /// Sends every later allocation to the shared pool (`true`), or back to the per-CPU
    /// arenas (`false`): for benchmarks comparing per-CPU arenas with one shared heap. Safe to
    /// flip at any time: frees go by address, so blocks return to the pool they came from.
    pub fn set_shared_only(&self, shared_only: bool) {
        self.shared_only.store(shared_only, Ordering::Relaxed);
    }

    /// Whether every allocation currently goes to the shared pool.
    pub fn is_shared_only(&self) -> bool {
        self.shared_only.load(Ordering::Relaxed)
    }

    /// CPU `cpu`'s counters (all zero for a CPU without an arena).
    pub fn stats(&self, cpu: usize) -> ArenaStats {
        self.arenas
            .get(cpu)
            .map_or(ArenaStats::default(), Arena::stats)
    }

    /// Which pool `ptr` lies in, if any (`None` before `init` and for foreign memory).
    pub fn pool_of(&self, ptr: *const u8) -> Option<Pool> {
        let config = self.config()?;
        let addr = ptr as usize;
        if let Some(cpu) = config.arena_of(addr) {
            Some(Pool::Arena(cpu))
        } else {
            config.in_shared(addr).then_some(Pool::Shared)
        }
    }

    /// Takes back the blocks other CPUs freed into this CPU's arena, now rather than at its
    /// next allocation (for the idle loop). Does nothing on a CPU without an arena.
    pub fn drain_remote_frees(&self) {
        let Some(config) = self.config() else { return };
        let _irq = IrqGuard::new();
        if let Some(cpu) = C::current().filter(|&cpu| cpu < config.cpus) {
            let arena = &self.arenas[cpu];
            // SAFETY: on CPU `cpu`, interrupts off, heap initialised.
            unsafe { arena.with_allocator(|a| arena.drain_remote(a)) };
        }
    }

    fn lock_shared(&self) -> SharedGuard<'_> {
        let irq = IrqGuard::new();
        SharedGuard {
            allocator: self.shared.lock(),
            _irq: irq,
        }
    }

    /// Allocates `block` (already rounded) from the shared pool.
    fn alloc_shared(&self, config: &Config, block: Layout) -> Option<NonNull<u8>> {
        if config.shared_size == 0 {
            return None;
        }
        // SAFETY: `block` has a nonzero size (at least MIN_BLOCK_SIZE).
        unsafe { self.lock_shared().allocator.allocate(block) }
    }
}

impl<C: CurrentCpu, const MAX_CPUS: usize> Default for PerCpuHeap<C, MAX_CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: CurrentCpu, const MAX_CPUS: usize> fmt::Debug for PerCpuHeap<C, MAX_CPUS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerCpuHeap")
            .field("config", &self.config())
            .field("shared_only", &self.is_shared_only())
            .finish_non_exhaustive()
    }
}

// SAFETY: the heap is shared by every CPU. Arena `i`'s allocator is only accessed on CPU `i`
// with interrupts off (see the module docs and the `CurrentCpu` contract); the shared pool is
// behind a lock; the remote-free lists and counters are atomics; the config is written once
// before a Release store and read after an Acquire load.
unsafe impl<C: CurrentCpu, const MAX_CPUS: usize> Sync for PerCpuHeap<C, MAX_CPUS> {}
// SAFETY: as for `Sync`; the allocators' raw pointers point into memory the heap owns.
unsafe impl<C: CurrentCpu, const MAX_CPUS: usize> Send for PerCpuHeap<C, MAX_CPUS> {}

// SAFETY: blocks come from talc allocators over disjoint memory, with at least the requested
// size and alignment; each is returned to the allocator it came from (found by address) with
// the same rounded layout, exactly once (directly or through the owner's remote-free list).
unsafe impl<C: CurrentCpu, const MAX_CPUS: usize> GlobalAlloc for PerCpuHeap<C, MAX_CPUS> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(config) = self.config() else {
            return ptr::null_mut();
        };
        let Some(block) = block_layout(layout) else {
            return ptr::null_mut();
        };
        // Interrupts off for the whole request: an interrupt handler on this CPU may allocate,
        // and it must not find the arena in the middle of an update.
        let _irq = IrqGuard::new();
        let cpu = C::current().filter(|&cpu| cpu < config.cpus);
        if let Some(cpu) = cpu {
            let arena = &self.arenas[cpu];
            let use_arena = block.size() <= config.large && !self.is_shared_only();
            // Take back what other CPUs freed first (one plain load when there is nothing),
            // also when the request goes elsewhere, so the list never grows unboundedly.
            // SAFETY: on CPU `cpu` (per `CurrentCpu`), interrupts off, heap initialised;
            // `block` has a nonzero size.
            let got = unsafe {
                arena.with_allocator(|a| {
                    arena.drain_remote(a);
                    if use_arena {
                        a.allocate(block)
                    } else {
                        None
                    }
                })
            };
            if let Some(p) = got {
                bump(&arena.allocs, 1);
                return p.as_ptr();
            }
        }
        let Some(p) = self.alloc_shared(&config, block) else {
            return ptr::null_mut();
        };
        if let Some(cpu) = cpu {
            bump(&self.arenas[cpu].allocs, 1);
            bump(&self.arenas[cpu].fallbacks, 1);
        }
        p.as_ptr()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let config = self.config();
        let (Some(config), Some(block), Some(nonnull)) =
            (config, block_layout(layout), NonNull::new(ptr))
        else {
            panic!("PerCpuHeap: dealloc of {ptr:p} ({layout:?}), which it never allocated");
        };
        let addr = ptr as usize;
        if let Some(owner) = config.arena_of(addr) {
            let arena = &self.arenas[owner];
            let _irq = IrqGuard::new();
            if C::current() == Some(owner) {
                // SAFETY: on the owner CPU, interrupts off, heap initialised; the block came
                // from this arena with `block` (the same rounding as in `alloc`).
                unsafe { arena.with_allocator(|a| a.deallocate(ptr, block)) };
                bump(&arena.frees, 1);
            } else {
                // SAFETY: the caller frees the block, so it is ours to reuse; it is at least
                // MIN_BLOCK_SIZE bytes and MIN_BLOCK_ALIGN aligned (every block is rounded).
                unsafe { arena.remote.0.push(nonnull, block) };
            }
        } else if config.in_shared(addr) {
            // SAFETY: the block came from the shared pool with `block`.
            unsafe { self.lock_shared().allocator.deallocate(ptr, block) };
        } else {
            panic!("PerCpuHeap: dealloc of {ptr:p} ({layout:?}), outside every arena and the shared pool");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::{mpsc, Arc};
    use std::vec::Vec;

    std::thread_local!(static CPU: Cell<Option<usize>> = const { Cell::new(None) });

    /// Host stand-in for the kernel's per-CPU block: each test thread says which CPU it plays.
    struct TestCpu;
    // SAFETY: every test gives each of its threads a distinct index per heap it uses.
    unsafe impl CurrentCpu for TestCpu {
        fn current() -> Option<usize> {
            CPU.with(Cell::get)
        }
    }

    fn become_cpu(cpu: Option<usize>) {
        CPU.with(|c| c.set(cpu));
    }

    type Heap = PerCpuHeap<TestCpu, 8>;

    const ARENA: usize = 64 * 1024;
    const SHARED: usize = 256 * 1024;

    /// Page-aligned host memory for one heap.
    struct Memory {
        ptr: *mut u8,
        layout: Layout,
    }
    // SAFETY: plain owned memory.
    unsafe impl Send for Memory {}
    // SAFETY: plain owned memory; only handed to the heap.
    unsafe impl Sync for Memory {}

    impl Memory {
        fn new(size: usize) -> Memory {
            let layout = Layout::from_size_align(size.max(1), 4096).unwrap();
            // SAFETY: nonzero size.
            let ptr = unsafe { std::alloc::alloc(layout) };
            assert!(!ptr.is_null());
            Memory { ptr, layout }
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with `layout`.
            unsafe { std::alloc::dealloc(self.ptr, self.layout) };
        }
    }

    /// A heap with `cpus` arenas of `arena` bytes and a shared pool of `shared` bytes. The
    /// memory is returned too and must outlive the heap's use (it is leaked by neither).
    fn heap(cpus: usize, arena: usize, shared: usize) -> (Arc<Heap>, Arc<(Memory, Memory)>) {
        let mem = Arc::new((Memory::new(cpus * arena), Memory::new(shared)));
        let heap = Arc::new(Heap::new());
        // SAFETY: fresh memory owned by `mem`, which the tests keep alive while they use `heap`.
        unsafe { heap.init(mem.0.ptr, arena, cpus, mem.1.ptr, shared) };
        (heap, mem)
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn fill(p: *mut u8, len: usize, seed: u8) {
        for i in 0..len {
            // SAFETY: the tests pass blocks of at least `len` bytes.
            unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
        }
    }

    fn check(p: *const u8, len: usize, seed: u8) {
        for i in 0..len {
            // SAFETY: as in `fill`.
            let got = unsafe { p.add(i).read() };
            assert_eq!(
                got,
                seed.wrapping_add(i as u8),
                "block {p:p} byte {i} corrupted"
            );
        }
    }

    #[test]
    fn heap_is_sync_and_default_size_fits_in_bss() {
        fn check<T: Send + Sync>() {}
        check::<PerCpuHeap<TestCpu>>();
        // The kernel's static: 1024 arenas of 128 bytes plus a little.
        assert!(core::mem::size_of::<PerCpuHeap<TestCpu>>() < 129 * 1024);
    }

    #[test]
    fn before_init_every_allocation_fails() {
        become_cpu(Some(0));
        let heap = Heap::new();
        // SAFETY: valid layouts with nonzero size.
        unsafe {
            assert!(heap.alloc(layout(16, 8)).is_null());
            assert!(heap.alloc_zeroed(layout(1, 1)).is_null());
        }
        heap.drain_remote_frees();
        assert_eq!(heap.stats(0), ArenaStats::default());
        assert_eq!(heap.pool_of(ptr::null()), None);
    }

    #[test]
    fn allocates_from_the_current_cpus_arena() {
        let (heap, _mem) = heap(4, ARENA, SHARED);
        for cpu in 0..4 {
            let heap = heap.clone();
            std::thread::spawn(move || {
                become_cpu(Some(cpu));
                // SAFETY: valid layout.
                let p = unsafe { heap.alloc(layout(100, 16)) };
                assert_eq!(heap.pool_of(p), Some(Pool::Arena(cpu)));
                assert_eq!(p as usize % 16, 0);
                fill(p, 100, cpu as u8);
                check(p, 100, cpu as u8);
                // SAFETY: allocated above with this layout.
                unsafe { heap.dealloc(p, layout(100, 16)) };
                assert_eq!(
                    heap.stats(cpu),
                    ArenaStats {
                        allocs: 1,
                        frees: 1,
                        ..Default::default()
                    }
                );
            })
            .join()
            .unwrap();
        }
    }

    #[test]
    fn unknown_cpu_or_cpu_without_arena_uses_the_shared_pool() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        for cpu in [None, Some(2), Some(7)] {
            become_cpu(cpu);
            // SAFETY: valid layout.
            let p = unsafe { heap.alloc(layout(64, 8)) };
            assert_eq!(heap.pool_of(p), Some(Pool::Shared), "{cpu:?}");
            // SAFETY: allocated above with this layout.
            unsafe { heap.dealloc(p, layout(64, 8)) };
        }
        assert_eq!(heap.stats(0), ArenaStats::default());
        assert_eq!(heap.stats(7), ArenaStats::default());
    }

    #[test]
    fn large_requests_go_to_the_shared_pool() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        become_cpu(Some(1));
        let small = layout(ARENA / LARGE_DIVISOR, 8);
        let large = layout(ARENA / LARGE_DIVISOR + 1, 8);
        // SAFETY: valid layouts.
        let (s, l) = unsafe { (heap.alloc(small), heap.alloc(large)) };
        assert_eq!(heap.pool_of(s), Some(Pool::Arena(1)));
        assert_eq!(heap.pool_of(l), Some(Pool::Shared));
        assert_eq!(heap.stats(1).fallbacks, 1);
        assert_eq!(heap.stats(1).allocs, 2);
        // SAFETY: allocated above with these layouts.
        unsafe {
            heap.dealloc(s, small);
            heap.dealloc(l, large);
        }
    }

    #[test]
    fn small_and_over_aligned_requests_are_honoured() {
        let (heap, _mem) = heap(1, ARENA, SHARED);
        become_cpu(Some(0));
        for (size, align) in [
            (1, 1),
            (3, 2),
            (8, 8),
            (24, 8),
            (33, 32),
            (100, 256),
            (5, 4096),
        ] {
            let l = layout(size, align);
            // SAFETY: valid layout.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "{l:?}");
            assert_eq!(heap.pool_of(p), Some(Pool::Arena(0)), "{l:?}");
            fill(p, size, 1);
            check(p, size, 1);
            // SAFETY: allocated above with `l`.
            unsafe { heap.dealloc(p, l) };
        }
    }

    /// Fills CPU 0's arena until the shared pool takes over, then checks that a block freed by
    /// CPU 1 goes back to CPU 0's arena (not the shared pool) and is the one CPU 0 gets next.
    #[test]
    fn exhaustion_falls_back_and_remote_free_reaches_the_owner() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        become_cpu(Some(0));
        let l = layout(512, 8);
        let mut in_arena = Vec::new();
        let first_shared = loop {
            // SAFETY: valid layout.
            let p = unsafe { heap.alloc(l) };
            assert!(!p.is_null());
            match heap.pool_of(p) {
                Some(Pool::Arena(0)) => in_arena.push(p as usize),
                Some(Pool::Shared) => break p,
                other => panic!("{other:?}"),
            }
        };
        assert!(
            in_arena.len() > ARENA / 512 / 2,
            "the arena held only {}",
            in_arena.len()
        );
        let stats = heap.stats(0);
        assert_eq!(stats.fallbacks, 1);
        assert_eq!(stats.allocs, in_arena.len() as u64 + 1);

        let victim = in_arena[in_arena.len() / 2];
        {
            let heap = heap.clone();
            std::thread::spawn(move || {
                become_cpu(Some(1));
                // SAFETY: allocated by CPU 0 with `l`; freed once, here.
                unsafe { heap.dealloc(victim as *mut u8, l) };
            })
            .join()
            .unwrap();
        }
        assert_eq!(
            heap.stats(1),
            ArenaStats::default(),
            "CPU 1's arena is untouched"
        );
        assert_eq!(
            heap.stats(0).remote_frees,
            0,
            "handed back only when CPU 0 next allocates"
        );

        // SAFETY: valid layout.
        let again = unsafe { heap.alloc(l) };
        assert_eq!(
            again as usize, victim,
            "the remotely freed block is reused by its owner"
        );
        let stats = heap.stats(0);
        assert_eq!(
            (stats.remote_frees, stats.frees, stats.fallbacks),
            (1, 1, 1)
        );

        // SAFETY: all allocated above with `l` and not freed yet (victim's slot is `again`).
        unsafe {
            heap.dealloc(first_shared, l);
            for p in in_arena {
                heap.dealloc(p as *mut u8, l);
            }
        }
        let stats = heap.stats(0);
        assert_eq!(
            stats.frees,
            stats.allocs - stats.fallbacks,
            "every arena block came home"
        );
    }

    #[test]
    fn drain_remote_frees_takes_blocks_back_without_allocating() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        become_cpu(Some(0));
        let l = layout(40, 8);
        // SAFETY: valid layout.
        let p = unsafe { heap.alloc(l) } as usize;
        {
            let heap = heap.clone();
            std::thread::spawn(move || {
                become_cpu(Some(1));
                // SAFETY: allocated above with `l`.
                unsafe { heap.dealloc(p as *mut u8, l) };
            })
            .join()
            .unwrap();
        }
        heap.drain_remote_frees();
        assert_eq!(
            heap.stats(0),
            ArenaStats {
                allocs: 1,
                frees: 1,
                remote_frees: 1,
                fallbacks: 0
            }
        );
    }

    #[test]
    fn arena_and_shared_pool_exhausted_returns_null() {
        let (heap, _mem) = heap(1, MIN_ARENA_SIZE + 4096, MIN_ARENA_SIZE + 4096);
        become_cpu(Some(0));
        let l = layout(256, 8);
        let mut blocks = Vec::new();
        loop {
            // SAFETY: valid layout.
            let p = unsafe { heap.alloc(l) };
            if p.is_null() {
                break;
            }
            blocks.push(p);
        }
        assert!(blocks
            .iter()
            .any(|&p| heap.pool_of(p) == Some(Pool::Shared)));
        for p in blocks {
            // SAFETY: allocated above with `l`.
            unsafe { heap.dealloc(p, l) };
        }
        // SAFETY: valid layout.
        let p = unsafe { heap.alloc(l) };
        assert_eq!(
            heap.pool_of(p),
            Some(Pool::Arena(0)),
            "space is reusable after the frees"
        );
        // SAFETY: allocated above with `l`.
        unsafe { heap.dealloc(p, l) };
    }

    #[test]
    fn realloc_and_alloc_zeroed_through_the_default_methods() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        become_cpu(Some(1));
        let l = layout(64, 8);
        // SAFETY: valid layout.
        let p = unsafe { heap.alloc_zeroed(l) };
        check_zero(p, 64);
        fill(p, 64, 9);
        // Grow within the arena, then past the large threshold into the shared pool.
        // SAFETY: `p` is live with `l`; new sizes are nonzero and valid with align 8.
        let q = unsafe { heap.realloc(p, l, 1000) };
        check(q, 64, 9);
        assert_eq!(heap.pool_of(q), Some(Pool::Arena(1)));
        // SAFETY: as above.
        let r = unsafe { heap.realloc(q, layout(1000, 8), ARENA) };
        check(r, 64, 9);
        assert_eq!(heap.pool_of(r), Some(Pool::Shared));
        // SAFETY: as above (shrinking back into the arena).
        let s = unsafe { heap.realloc(r, layout(ARENA, 8), 32) };
        check(s, 32, 9);
        assert_eq!(heap.pool_of(s), Some(Pool::Arena(1)));
        // SAFETY: live with this layout.
        unsafe { heap.dealloc(s, layout(32, 8)) };
    }

    fn check_zero(p: *const u8, len: usize) {
        // SAFETY: the block has `len` bytes.
        assert!(unsafe { core::slice::from_raw_parts(p, len) }
            .iter()
            .all(|&b| b == 0));
    }

    #[test]
    fn shared_only_mode_routes_everything_to_the_shared_pool() {
        let (heap, _mem) = heap(2, ARENA, SHARED);
        become_cpu(Some(0));
        let l = layout(48, 8);
        // SAFETY: valid layout.
        let in_arena = unsafe { heap.alloc(l) };
        heap.set_shared_only(true);
        assert!(heap.is_shared_only());
        // SAFETY: valid layout.
        let in_shared = unsafe { heap.alloc(l) };
        assert_eq!(heap.pool_of(in_arena), Some(Pool::Arena(0)));
        assert_eq!(heap.pool_of(in_shared), Some(Pool::Shared));
        // Frees go by address, whatever the mode.
        // SAFETY: both allocated above with `l`.
        unsafe { heap.dealloc(in_arena, l) };
        heap.set_shared_only(false);
        // SAFETY: as above.
        unsafe { heap.dealloc(in_shared, l) };
        assert_eq!(
            heap.stats(0),
            ArenaStats {
                allocs: 2,
                frees: 1,
                remote_frees: 0,
                fallbacks: 1
            }
        );
    }

    #[test]
    #[should_panic(expected = "outside every arena")]
    fn freeing_foreign_memory_panics() {
        let (heap, _mem) = heap(1, ARENA, SHARED);
        let mut x = 0u64;
        // SAFETY: deliberately wrong: the heap must catch it before touching any allocator.
        unsafe { heap.dealloc((&raw mut x).cast(), layout(8, 8)) };
    }

    #[test]
    #[should_panic(expected = "called twice")]
    fn init_twice_panics() {
        let (heap, mem) = heap(1, ARENA, SHARED);
        // SAFETY: panics before touching the memory.
        unsafe { heap.init(mem.0.ptr, ARENA, 1, mem.1.ptr, SHARED) };
    }

    #[test]
    #[should_panic(expected = "room for 8")]
    fn more_cpus_than_room_panics() {
        let mem = Memory::new(9 * ARENA);
        // SAFETY: panics before touching the memory.
        unsafe { Heap::new().init(mem.ptr, ARENA, 9, ptr::null_mut(), 0) };
    }

    /// Threads playing CPUs allocate blocks of many sizes, write a pattern, and pass half of
    /// them to the next CPU, which checks the pattern and frees them (a remote free); the rest
    /// they check and free themselves. No block is corrupted, every block is returned, and the
    /// owners received the remote frees.
    #[test]
    fn many_cpus_cross_frees_without_corruption() {
        const CPUS: usize = 4;
        const ROUNDS: usize = 3_000;
        let (heap, _mem) = heap(CPUS, 256 * 1024, 8 * 1024 * 1024);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..CPUS)
            .map(|_| mpsc::channel::<(usize, usize, u8)>())
            .unzip();
        let threads: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(cpu, inbox)| {
                let heap = heap.clone();
                let next = senders[(cpu + 1) % CPUS].clone();
                std::thread::spawn(move || {
                    become_cpu(Some(cpu));
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ cpu as u64;
                    let mut mine = Vec::new();
                    let free_received = |heap: &Heap, (p, size, seed): (usize, usize, u8)| {
                        check(p as *const u8, size, seed);
                        // SAFETY: allocated by another CPU with `layout(size, 8)`, sent to us
                        // to free, once.
                        unsafe { heap.dealloc(p as *mut u8, layout(size, 8)) };
                    };
                    for round in 0..ROUNDS {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Mostly small, sometimes past the large threshold (shared pool).
                        let size = if rng.is_multiple_of(64) {
                            40_000
                        } else {
                            1 + (rng >> 8) as usize % 700
                        };
                        let seed = (round as u8).wrapping_mul(31).wrapping_add(cpu as u8);
                        // SAFETY: valid layout.
                        let p = unsafe { heap.alloc(layout(size, 8)) };
                        assert!(!p.is_null(), "out of memory at round {round}");
                        fill(p, size, seed);
                        if rng & 0x100 != 0 {
                            next.send((p as usize, size, seed)).unwrap();
                        } else {
                            mine.push((p as usize, size, seed));
                        }
                        if mine.len() > 32 {
                            let (q, size, seed) =
                                mine.swap_remove((rng >> 20) as usize % mine.len());
                            check(q as *const u8, size, seed);
                            // SAFETY: allocated above with this layout, freed once.
                            unsafe { heap.dealloc(q as *mut u8, layout(size, 8)) };
                        }
                        while let Ok(msg) = inbox.try_recv() {
                            free_received(&heap, msg);
                        }
                    }
                    drop(next);
                    for (q, size, seed) in mine {
                        check(q as *const u8, size, seed);
                        // SAFETY: as above.
                        unsafe { heap.dealloc(q as *mut u8, layout(size, 8)) };
                    }
                    // Senders drop as the other threads finish; drain whatever is left.
                    for msg in inbox {
                        free_received(&heap, msg);
                    }
                    heap.drain_remote_frees();
                })
            })
            .collect();
        drop(senders);
        for t in threads {
            t.join().unwrap();
        }

        let mut total_remote = 0;
        for cpu in 0..CPUS {
            let s = heap.stats(cpu);
            assert!(
                s.allocs >= ROUNDS as u64 && s.fallbacks > 0,
                "CPU {cpu}: {s:?}"
            );
            total_remote += s.remote_frees;
        }
        assert!(total_remote > 0);
        // A CPU's last remote frees may still sit in its list if it drained before they came;
        // take them back as that CPU, then every arena block must have come home.
        for cpu in 0..CPUS {
            become_cpu(Some(cpu));
            heap.drain_remote_frees();
            let s = heap.stats(cpu);
            assert_eq!(
                s.frees,
                s.allocs - s.fallbacks,
                "CPU {cpu}: every arena block returned"
            );
        }
    }
}
