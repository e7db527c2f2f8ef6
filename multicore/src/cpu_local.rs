//! Which CPU is this, what kind, and where its faults go: the one CPU-local layer beneath the
//! runtime (`rt`) and the hosted mode (`hosted`), on every CPU that runs library code.
//!
//! Each CPU of a bring-up has a [`CpuLocal`] block, allocated with the other per-CPU data in
//! step 1 of the bring-up (`boot/cpu_table.rs`) and published here before any AP starts. An AP
//! points its GS base at its block in its first Rust instruction (`boot/ap_entry.rs`). The
//! BSP's GS base depends on who owns it, which the host states once through [`GsOwner`]:
//!
//! - [`GsOwner::library`]: a kernel that leaves GS base to the library on every CPU (the demo
//!   kernel). The BSP's GS base is pointed at its block when the blocks are published, and
//!   [`current`] is one load of `gs:[0]`, the block's pointer to itself.
//! - [`GsOwner::HOST`] (the default): the host kernel uses GS base on its CPU (a hosted
//!   program on Unikraft). [`current`] then reads GS base and only *compares* it with the
//!   blocks' addresses, never dereferencing it; a CPU whose GS base is none of them is the
//!   host's own CPU, the BSP, because the host runs on that one CPU only (it knows nothing of
//!   the others). The BSP's GS base is never written.
//!
//! Before the blocks are published, [`current`] is `None` and GS is not touched at all. One
//! bring-up publishes blocks; a second one is refused (its CPUs would need a second table).

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::GsBase;
use x86_64::registers::segmentation::{Segment64, GS};
use x86_64::VirtAddr;

/// How a fault on a CPU that halts alone is reported: the host's after-stop console and its
/// fatal exit (for a hosted AP, halting that AP). Every `boot::Host` is one.
pub trait FaultReporter: Sync {
    /// Writes `args` without waiting for a lock another (stopped) CPU may hold.
    fn print_after_stop(&self, args: core::fmt::Arguments<'_>);
    /// Ends this CPU's part after the report.
    fn fatal_exit(&self) -> !;
}

/// What a CPU is to the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuRole {
    /// A CPU of a kernel that owns GS base everywhere (the demo's BSP and APs). A fault stops
    /// every CPU (`rt::stop`).
    Kernel,
    /// An AP the library started inside a hosted program. A fault is reported through the
    /// host's console and halts this CPU alone; the host's CPU goes on.
    HostedAp,
    /// The host's own CPU in a hosted program. Its faults are the host's: the library installs
    /// no handler on it.
    HostedBsp,
}

/// Where a fault on a CPU goes (see [`CpuRole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRoute {
    /// Every CPU is stopped, one report, the host's fatal exit.
    StopAll,
    /// Reported through the host's after-stop console; this CPU halts, the others go on.
    HaltAlone,
    /// The host's own handlers; the library's never run there.
    Host,
}

impl CpuRole {
    /// Where this CPU's faults go.
    pub fn faults(self) -> FaultRoute {
        match self {
            CpuRole::Kernel => FaultRoute::StopAll,
            CpuRole::HostedAp => FaultRoute::HaltAlone,
            CpuRole::HostedBsp => FaultRoute::Host,
        }
    }
}

/// Who owns GS base on the BSP. Only [`GsOwner::library`] (unsafe) says the library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsOwner(Owner);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Library,
    Host,
}

impl GsOwner {
    /// The host keeps GS base on its CPU (the default): the library compares, never reads
    /// through it.
    pub const HOST: GsOwner = GsOwner(Owner::Host);

    /// The library owns GS base on every CPU, the BSP included: it may point it at its own
    /// blocks and read through it.
    ///
    /// # Safety
    /// Nothing else may write or use GS base on any CPU that runs library code, from the
    /// bring-up on (no `swapgs`, no per-CPU scheme of the host's).
    pub const unsafe fn library() -> GsOwner {
        GsOwner(Owner::Library)
    }
}

/// One CPU's identity. Field 0 is the self-pointer `gs:[0]` reads.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct CpuLocal {
    self_ptr: *const CpuLocal,
    index: u32,
    apic_id: u32,
    role: CpuRole,
    in_runtime: AtomicBool,
}

// SAFETY: `self_ptr` is written once, before the block is shared (`publish`); everything else
// is immutable or atomic.
unsafe impl Sync for CpuLocal {}
// SAFETY: as above; nothing in a block is tied to the CPU that built it.
unsafe impl Send for CpuLocal {}

impl CpuLocal {
    /// The block of CPU `index` (0 = BSP).
    pub(crate) fn new(index: u32, apic_id: u32, role: CpuRole) -> CpuLocal {
        CpuLocal {
            self_ptr: core::ptr::null(),
            index,
            apic_id,
            role,
            in_runtime: AtomicBool::new(false),
        }
    }

    /// Dense CPU index: 0 for the BSP, 1..N for the APs in discovery order.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Local APIC ID.
    pub fn apic_id(&self) -> u32 {
        self.apic_id
    }

    /// What the CPU is to the library.
    pub fn role(&self) -> CpuRole {
        self.role
    }

    /// Where its faults go.
    pub fn faults(&self) -> FaultRoute {
        self.role.faults()
    }

    /// Whether the runtime (`rt`) has taken this CPU over.
    pub fn in_runtime(&self) -> bool {
        self.in_runtime.load(Ordering::Acquire)
    }

    /// Marks the CPU as the runtime's (`rt::start` / `rt::join`, on the CPU itself).
    pub(crate) fn enter_runtime(&self) {
        self.in_runtime.store(true, Ordering::Release);
    }
}

/// The published blocks and how to find one.
struct Registry {
    blocks: &'static [CpuLocal],
    owner: Owner,
    /// CR4.FSGSBASE was set at publication: `rdgsbase` works (the APs copy the BSP's CR4).
    rdgsbase: bool,
    /// Prints the report of a fault on a hosted AP.
    reporter: &'static dyn FaultReporter,
}

static REGISTRY: spin::Once<Registry> = spin::Once::new();

/// Blocks were already published by an earlier bring-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyPublished;

/// Publishes the bring-up's blocks (index order, `[0]` = BSP) and, when the library owns GS,
/// points the BSP's GS base at its block. Runs on the BSP before any AP starts.
pub(crate) fn publish(
    blocks: &'static mut [CpuLocal],
    owner: GsOwner,
    reporter: &'static dyn FaultReporter,
) -> Result<&'static [CpuLocal], AlreadyPublished> {
    if REGISTRY.is_completed() {
        return Err(AlreadyPublished);
    }
    for block in blocks.iter_mut() {
        block.self_ptr = block;
    }
    let blocks: &'static [CpuLocal] = blocks;
    let registry = REGISTRY.call_once(|| Registry {
        blocks,
        owner: owner.0,
        rdgsbase: Cr4::read().contains(Cr4Flags::FSGSBASE),
        reporter,
    });
    if !core::ptr::eq(registry.blocks, blocks) {
        return Err(AlreadyPublished); // lost a race with another publisher
    }
    if registry.owner == Owner::Library {
        // The BSP's block, before anything else can ask (GsOwner::library's contract: GS base
        // is the library's on this CPU).
        GsBase::write(VirtAddr::from_ptr(&blocks[0]));
    }
    Ok(blocks)
}

/// Points this AP's GS base at its identity block, at `block` (`CpuData::cpu_local_block`, the
/// address of a block [`publish`] published before any AP started). Called by the library's AP
/// entry before any other library code runs on the AP (the CPU is the library's: the host knows
/// nothing of it). One MSR write, no lookup: it is on the AP's path to check-in.
#[inline(always)]
pub(crate) fn install_on_ap(block: u64) {
    GsBase::write(VirtAddr::new_truncate(block));
}

/// The running CPU's block; `None` before a bring-up has published blocks, or on a CPU that is
/// not in it.
#[inline]
pub fn current() -> Option<&'static CpuLocal> {
    let registry = REGISTRY.get()?;
    match registry.owner {
        Owner::Library => {
            let ptr: *const CpuLocal;
            // SAFETY: the library owns GS base on every CPU (GsOwner::library's contract), and
            // every CPU that runs library code after publication has it pointing at its block:
            // the BSP since `publish`, each AP from its first Rust instruction
            // (`install_on_ap`). The first word is readable; reading it has no effect.
            unsafe {
                core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags))
            };
            // SAFETY: a block's self-pointer points at itself, in memory that is never freed.
            unsafe { ptr.as_ref() }
        }
        Owner::Host => {
            let gs = if registry.rdgsbase {
                // CR4.FSGSBASE was set at publication and the APs copy the BSP's CR4, so
                // RDGSBASE does not fault; it is cheaper than reading the MSR.
                GS::read_base().as_u64()
            } else {
                GsBase::read().as_u64()
            };
            let blocks = registry.blocks;
            let index = block_index(gs, blocks.as_ptr() as u64, blocks.len())
                .unwrap_or(0) /* not ours: the host's one CPU, the BSP */;
            blocks.get(index)
        }
    }
}

/// The index of the block at address `gs` in an array of `count` blocks at `start`, if it is
/// exactly one of them. Pure: `gs` is compared, never dereferenced.
fn block_index(gs: u64, start: u64, count: usize) -> Option<usize> {
    let size = core::mem::size_of::<CpuLocal>() as u64;
    let offset = gs.checked_sub(start)?;
    let index = offset / size;
    (offset % size == 0 && index < count as u64).then_some(index as usize)
}

/// The block of CPU `index`, once published.
pub fn block(index: usize) -> Option<&'static CpuLocal> {
    REGISTRY.get()?.blocks.get(index)
}

/// The running CPU's index, if it is one of the bring-up's.
pub fn current_index() -> Option<u32> {
    current().map(|c| c.index)
}

/// The host that prints a fault report on a CPU whose faults halt it alone.
pub(crate) fn reporter() -> Option<&'static dyn FaultReporter> {
    REGISTRY.get().map(|r| r.reporter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = core::mem::size_of::<CpuLocal>() as u64;

    #[test]
    fn a_block_is_a_cache_line_and_starts_with_its_self_pointer() {
        assert_eq!(SIZE, 64);
        assert_eq!(core::mem::offset_of!(CpuLocal, self_ptr), 0);
    }

    #[test]
    fn only_exact_block_addresses_are_blocks() {
        let start = 0x1000_0000;
        assert_eq!(block_index(start, start, 4), Some(0));
        assert_eq!(block_index(start + 3 * SIZE, start, 4), Some(3));
        assert_eq!(
            block_index(start + 4 * SIZE, start, 4),
            None,
            "one past the end"
        );
        assert_eq!(block_index(start + 8, start, 4), None, "inside a block");
        assert_eq!(block_index(start - SIZE, start, 4), None, "below");
        assert_eq!(block_index(0, start, 4), None, "a reset GS base");
        assert_eq!(block_index(u64::MAX, start, 4), None);
        assert_eq!(block_index(start, start, 0), None, "no blocks");
    }

    #[test]
    fn roles_route_faults() {
        assert_eq!(CpuRole::Kernel.faults(), FaultRoute::StopAll);
        assert_eq!(CpuRole::HostedAp.faults(), FaultRoute::HaltAlone);
        assert_eq!(CpuRole::HostedBsp.faults(), FaultRoute::Host);
    }
}
