//! Starting the other CPUs from a program that already runs on one CPU of a host kernel with
//! no SMP support (a Rust `std` program on a Unikraft kernel built without SMP, in ring 0).
//!
//! The program says what the library cannot know — how physical memory is mapped, which low
//! pages it may borrow (for a known kernel, a preset: [`presets`]), the TSC frequency or a
//! clock to measure it — and gives an entry function; [`start_cpus`] checks those settings
//! against the machine (mapping.rs, boot/live_pages.rs), takes the memory N CPUs need, and
//! does the rest, saying which CPUs failed and why. A wrong setting is an `Err` naming it. The BSP's
//! GDT, IDT, page tables, GS base and APIC mode are left as they are (unless x2APIC is allowed);
//! the borrowed low pages are restored and the transition page tables dropped before it
//! returns. Each AP gets its own descriptor tables, TLS block (from the program's PT_TLS), a
//! console ([`console`], [`ap_println!`](crate::ap_println)) and, with [`HostedHeap`], a heap;
//! it runs the entry with interrupts off, then halts.
//!
//! docs/hosted.md is the guide: what the host must provide, what an AP may call, the errors.

pub mod ap;
mod bump;
pub mod console;
pub mod heap;
mod host;
pub mod mapping;
pub mod presets;

use alloc::vec::Vec;
use core::fmt;

pub use ap::{current_ap, ApInfo};
pub use console::Console;
pub use heap::{ApHeap, HostedHeap};
pub use host::MAX_LOW_RANGES;
pub use mapping::MappingError;
pub use presets::HostLayout;

use crate::acpi::AcpiError;
use crate::arch::x86_64::apic::{ApicError, ApicMode, LocalApic};
use crate::arch::x86_64::gdt::{self, CpuTables};
use crate::arch::x86_64::idt::Idt;
use crate::arch::x86_64::tsc::{self, Tsc};
use crate::boot::lowmem::NoLowPage;
use crate::boot::{
    memory_needed, start_aps, BringupError, BringupPlan, Budget, CpuState, Host, StartConfig,
};
use crate::boot::{DelayPolicy, Strategy};
use crate::heap::MIN_ARENA_SIZE;
use crate::phys::PhysRange;
use crate::tls::{self, TlsError, TlsTemplate};
use ap::{ApShared, ApSlot, SHARED};
use bump::Bump;
use host::HostedHost;

/// How the TSC frequency is found.
#[derive(Clone, Copy)]
pub enum TscFrequency {
    /// The host knows it.
    Hz(u64),
    /// CPUID leaf 0x15 or 0x4000_0010 if the CPU has one, else measured for 10 ms against this
    /// monotonic nanosecond clock of the host's (e.g. `std::time::Instant`), on the BSP.
    /// (The library's other sources, kvmclock and PIT channel 0, would reprogram what the host
    /// kernel may be using, so they are not tried.)
    Measure(&'static (dyn Fn() -> u64 + Sync)),
}

/// The program's TLS, for per-AP copies.
#[derive(Debug, Clone, Copy)]
pub struct TlsConfig {
    /// The PT_TLS segment.
    pub template: TlsTemplate,
    /// Bytes of thread control block at FS:0 to copy from the BSP's for each AP (the C
    /// library's thread structure; musl's is below 256 bytes). Its first word becomes the AP's
    /// self-pointer.
    pub tcb_size: usize,
}

/// Everything [`start_cpus`] needs from the program.
pub struct HostedConfig<'a> {
    /// Memory for AP stacks, per-CPU data, descriptor tables, TLS blocks and AP heaps: must
    /// stay valid and otherwise unused for as long as the APs run, i.e. for ever. `None` (the
    /// default): [`start_cpus`] takes [`HostedConfig::memory_needed`] bytes for the CPUs it
    /// found from the program's global allocator, and never frees them. A region given
    /// here limits what can be started: see [`HostedError::Bringup`] with `OutOfMemory`.
    pub memory: Option<&'static mut [u8]>,
    /// Physical memory is mapped at `virt = phys + phys_offset` for `phys < phys_limit`
    /// (checked: [`mapping`]).
    pub phys_offset: u64,
    /// End of the physical mapping.
    pub phys_limit: u64,
    /// Free RAM below 1 MiB the library may borrow: the trampoline page (restored afterwards),
    /// and the transition page tables' only if `memory` is above 4 GiB. Pages the library
    /// sees in use (the host's page tables and mapped memory, the BSP's stack and descriptor
    /// tables, `memory`) are refused whatever this says.
    pub low_free: &'a [PhysRange],
    /// Pages inside `low_free` that are in use all the same.
    pub low_in_use: &'a [PhysRange],
    /// The ACPI RSDP's physical address if the host knows it (else the BIOS area is scanned).
    pub rsdp: Option<u64>,
    /// The TSC frequency.
    pub tsc: TscFrequency,
    /// Where APs print.
    pub console: Console,
    /// Whether the BSP's local APIC may be switched from xAPIC to x2APIC (it is never
    /// switched otherwise).
    pub allow_x2apic: bool,
    /// A mapping of the xAPIC page the host made uncached; `None`: through the physical
    /// mapping (fine under QEMU and KVM, whose local APIC is emulated whatever the memory
    /// type; real hardware wants an uncached mapping).
    pub xapic_mmio: Option<u64>,
    /// The program's TLS, if it has any.
    pub tls: Option<TlsConfig>,
    /// The per-AP heaps: the program's [`HostedHeap`] and bytes per AP (0: none).
    pub heap: Option<(&'static dyn ApHeap, usize)>,
    /// Most CPUs to use, the BSP included.
    pub max_cpus: usize,
    /// Bytes of stack per AP.
    pub stack_size: usize,
    /// Start order and waits.
    pub strategy: Strategy,
    /// Which waits to keep.
    pub delays: DelayPolicy,
    /// Whether each AP joins the library's runtime after the entry returns (default): cross-CPU
    /// calls, its APIC timer, halted when idle, and a worker of the scheduler
    /// ([`scheduler`]), which `main` uses with `join`, `scope` and the parallel loops. Without
    /// it an AP halts for good after the entry.
    pub runtime: bool,
}

impl<'a> HostedConfig<'a> {
    /// Defaults for everything but the mapping and the low pages; memory sized by the library.
    pub fn new(
        phys_offset: u64,
        phys_limit: u64,
        low_free: &'a [PhysRange],
        tsc: TscFrequency,
    ) -> HostedConfig<'a> {
        HostedConfig {
            memory: None,
            phys_offset,
            phys_limit,
            low_free,
            low_in_use: &[],
            rsdp: None,
            tsc,
            console: Console::Uart(0x3F8),
            allow_x2apic: false,
            xapic_mmio: None,
            tls: None,
            heap: None,
            max_cpus: 256,
            stack_size: 64 * 1024,
            strategy: Strategy::Parallel,
            delays: DelayPolicy::Fast,
            runtime: true,
        }
    }

    /// Defaults, with the mapping and the low pages of a known kernel ([`presets`]).
    pub fn for_host(layout: &'static HostLayout, tsc: TscFrequency) -> HostedConfig<'static> {
        HostedConfig::new(layout.phys_offset, layout.phys_limit, layout.low_free, tsc)
    }

    /// Bytes of `memory` a start of `cpus` CPUs (the BSP included) takes with this
    /// configuration, at most: stacks, per-CPU data, descriptor tables, TLS blocks, heaps.
    pub fn memory_needed(&self, cpus: usize) -> usize {
        let cpus = cpus.clamp(1, self.max_cpus.max(1));
        let aps = cpus - 1;
        let mut budget = Budget::default();
        budget.add(core::mem::size_of::<ApSlot>() * cpus, 64);
        let tls = match &self.tls {
            Some(t) => tls::layout(&t.template, t.tcb_size).map_or(0, |l| l.size),
            None => 0,
        };
        for _ in 0..aps {
            for _ in 0..3 {
                budget.add(IST_STACK_SIZE, 16);
            }
            budget.add(core::mem::size_of::<CpuTables>(), 16);
            if self.tls.is_some() {
                budget.add(tls, 16);
            }
        }
        if let Some((_, per_ap)) = self.heap.filter(|(_, per_ap)| *per_ap > 0) {
            budget.add(per_ap.next_multiple_of(4096).saturating_mul(cpus), 4096);
        }
        budget.add(core::mem::size_of::<Idt>(), 16);
        budget.total + memory_needed(cpus, self.stack_size.next_multiple_of(4096))
    }
}

/// A CPU that did not come online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedCpu {
    /// Its index.
    pub index: u32,
    /// Its local APIC ID.
    pub apic_id: u32,
    /// How far it got.
    pub state: CpuState,
}

impl fmt::Display for FailedCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPU {} (APIC ID {}) did not come online: {}",
            self.index,
            self.apic_id,
            self.state.describe()
        )
    }
}

/// What [`start_cpus`] did.
#[derive(Debug)]
pub struct HostedReport {
    /// CPUs found (the BSP included).
    pub cpus: u32,
    /// CPUs online (the BSP included).
    pub online: u32,
    /// The APs that failed; each was sent INIT (halted, waiting for a SIPI that never comes).
    pub failed: Vec<FailedCpu>,
    /// Microseconds from the first INIT to the last AP's arrival.
    pub time_us: u64,
    /// The local APIC mode used.
    pub apic_mode: ApicMode,
    /// The TSC frequency used.
    pub tsc_hz: u64,
    /// Bytes of the program's memory used.
    pub memory_used: usize,
    /// Bytes of memory there were (taken by the library, or the region given).
    pub memory_size: usize,
    /// Whether the APs join the runtime once their entry returns ([`HostedConfig::runtime`]).
    pub runtime: bool,
}

/// Why nothing was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostedError {
    /// `start_cpus` was called before: the APs of that call are the program's.
    AlreadyStarted,
    /// The local APIC cannot be used.
    Apic(ApicError),
    /// The TSC frequency could not be found (no CPUID leaf, the clock did not advance).
    NoTscFrequency,
    /// The program's TLS segment is not usable.
    Tls(TlsError),
    /// `phys_offset`, `phys_limit` or `xapic_mmio` is wrong.
    Mapping(MappingError),
    /// No page of `low_free` can be borrowed.
    LowFree(NoLowPage),
    /// The memory for the CPUs found could not be allocated.
    NoMemory {
        /// Bytes asked of the global allocator.
        bytes: usize,
        /// For this many CPUs.
        cpus: usize,
    },
    /// The ACPI tables lie beyond `phys_limit`.
    AcpiBeyondLimit {
        /// The limit.
        limit: u64,
        /// The address read.
        addr: u64,
    },
    /// The bring-up refused (out of memory, ...).
    Bringup(BringupError),
    /// The runtime could not be started (the CPUs are up and ran the entry).
    Runtime(crate::rt::RuntimeError),
    /// Fewer bytes per AP heap than an arena needs.
    HeapTooSmall {
        /// Bytes per AP asked for.
        per_ap: usize,
        /// The least that works.
        min: usize,
    },
}

impl fmt::Display for HostedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostedError::Runtime(e) => write!(f, "the APs are up, but {e}"),
            HostedError::AlreadyStarted => write!(f, "the other CPUs were already started"),
            HostedError::Apic(e) => write!(f, "{e}"),
            HostedError::NoTscFrequency => write!(
                f,
                "cannot find the TSC frequency (no CPUID leaf 0x15/0x40000010, and the host clock did not advance)"
            ),
            HostedError::Tls(e) => write!(f, "{e}"),
            HostedError::Mapping(e) => write!(f, "{e}"),
            HostedError::LowFree(e) => write!(f, "low_free: {e}"),
            HostedError::NoMemory { bytes, cpus } => write!(
                f,
                "cannot allocate {bytes} bytes for {cpus} CPUs from the program's allocator"
            ),
            HostedError::AcpiBeyondLimit { limit, addr } => write!(
                f,
                "phys_limit {limit:#x} is too small: the ACPI tables are at physical {addr:#x}"
            ),
            HostedError::Bringup(e) => write!(f, "{e}"),
            HostedError::HeapTooSmall { per_ap, min } => write!(
                f,
                "{per_ap} bytes of heap per AP is too little (at least {min})"
            ),
        }
    }
}

static HOST: spin::Once<HostedHost> = spin::Once::new();

/// IST stack per vector class (double fault, NMI, machine check), per AP.
const IST_STACK_SIZE: usize = 8 * 1024;

/// Finds the other CPUs and starts each with `entry(&info)`. Returns when every AP runs
/// the entry or has failed; an `Err` means no AP was started (and the program goes on, alone,
/// with the host as it was).
///
/// The steps, in order (docs/hosted.md has the whole story):
/// 1. the TSC frequency;
/// 2. the physical mapping checked under a probe ([`mapping::check`]), the local APIC's page
///    reachable through it;
/// 3. the CPUs from the ACPI MADT (else MP tables) through the checked mapping;
/// 4. the memory for that many CPUs ([`HostedConfig::memory_needed`]), and every AP's slot,
///    descriptor tables, TLS block and heap carved from it before any AP starts;
/// 5. the bring-up ([`start_aps`]): low pages chosen and checked, trampoline, INIT/SIPI;
///    each AP then runs `ap::hosted_ap_entry`.
pub fn start_cpus(
    mut config: HostedConfig<'_>,
    entry: &'static (dyn Fn(&ApInfo) + Sync),
) -> Result<HostedReport, HostedError> {
    if HOST.is_completed() {
        return Err(HostedError::AlreadyStarted);
    }
    console::set(config.console);
    if x86_64::registers::control::Cr4::read()
        .contains(x86_64::registers::control::Cr4Flags::L5_PAGING)
    {
        // The checks below walk 4-level tables, as the trampoline builds them.
        return Err(HostedError::Bringup(BringupError::FiveLevelPaging));
    }
    let tsc = tsc_of(&config)?;
    let checked =
        mapping::check(config.phys_offset, config.phys_limit).map_err(HostedError::Mapping)?;
    let phys = checked.mapping;
    let apic_mode = LocalApic::attach_mode(&phys, config.allow_x2apic, config.xapic_mmio)
        .map_err(HostedError::Apic)?;
    if let ApicMode::XApic { phys: page, .. } = apic_mode {
        match config.xapic_mmio {
            Some(mmio) => checked.check_xapic_mmio(mmio, page),
            None => checked.reaches(page, "the local APIC's page"),
        }
        .map_err(HostedError::Mapping)?;
    }
    let apic = LocalApic::attach_bsp(&phys, config.allow_x2apic, config.xapic_mmio)
        .map_err(HostedError::Apic)?;

    let mut storage = alloc::vec![0u32; config.max_cpus.max(1)];
    let topo = crate::topology::discover(&phys, config.rsdp, apic.id(), &mut storage);
    if let Some(AcpiError::Read { source, .. }) = topo.acpi_error {
        if source.addr.saturating_add(source.len as u64) > checked.limit {
            return Err(HostedError::AcpiBeyondLimit {
                limit: checked.limit,
                addr: source.addr,
            });
        }
    }
    let ids = topo.apic_ids;
    let n = ids.len();

    let needed = config.memory_needed(n);
    let memory: &'static mut [u8] = match config.memory.take() {
        Some(region) => region,
        None => take_memory(needed).ok_or(HostedError::NoMemory {
            bytes: needed,
            cpus: n,
        })?,
    };
    let memory_size = memory.len();
    // SAFETY: the region is 'static, exclusively ours (moved in or just allocated), and never
    // freed.
    let bump = unsafe { Bump::new(memory.as_mut_ptr(), memory_size) };
    let host: &'static HostedHost =
        HOST.call_once(|| HostedHost::new(bump, phys, config.low_free, config.low_in_use));
    let slots = carve_ap_resources(host, &config, n)?;
    let idt = Idt::new(gdt::KERNEL_CS.0, &crate::rt::vectors::ON_IST_STACKS);
    let idt: &'static Idt =
        host.alloc_value(idt, 16)
            .ok_or(oom("the AP IDT", 0, size_of::<Idt>()))?;
    let runtime = config.runtime;
    SHARED.call_once(|| ApShared {
        slots,
        idt,
        entry,
        runtime,
    });

    let plan = BringupPlan {
        apic_ids: ids,
        config: StartConfig {
            strategy: config.strategy,
            delays: config.delays,
            ap_stack_size: config.stack_size.next_multiple_of(4096),
        },
        entry: ap::hosted_ap_entry,
        arg: 0,
    };
    let report = start_aps(host, &apic, &tsc, &plan).map_err(|e| match e {
        BringupError::NoLowPage(e) => HostedError::LowFree(e),
        e => HostedError::Bringup(e),
    })?;
    let failed = report
        .cpus
        .iter()
        .skip(1)
        .filter(|c| c.state() != CpuState::Online)
        .map(|c| FailedCpu {
            index: c.index,
            apic_id: c.apic_id,
            state: c.state(),
        })
        .collect();
    // The APs join the runtime as their entry returns; one still in it joins later (the
    // scheduler works with whichever workers are there).
    let runtime = config.runtime && report.online() > 1;
    if runtime {
        crate::rt::start_hosted(host, tsc, apic, report.cpus).map_err(HostedError::Runtime)?;
    }
    Ok(HostedReport {
        runtime,
        cpus: n as u32,
        online: report.online(),
        failed,
        time_us: report.time_us,
        apic_mode: apic.mode(),
        tsc_hz: tsc.hz(),
        memory_used: host.bump.used(),
        memory_size,
    })
}

fn oom(what: &'static str, cpu: usize, bytes: usize) -> HostedError {
    HostedError::Bringup(BringupError::OutOfMemory {
        what,
        cpu: cpu as u32,
        bytes,
    })
}

use core::mem::size_of;

/// `bytes` zeroed, page-aligned bytes from the global allocator, never freed.
fn take_memory(bytes: usize) -> Option<&'static mut [u8]> {
    let layout = core::alloc::Layout::from_size_align(bytes.max(1), 4096).ok()?;
    // SAFETY: a non-zero size; the block is never freed, so a 'static slice over it is sound.
    unsafe {
        let ptr = alloc::alloc::alloc_zeroed(layout);
        (!ptr.is_null()).then(|| core::slice::from_raw_parts_mut(ptr, bytes))
    }
}

/// Every AP's slot (IST stacks, descriptor tables, TLS block) and heap arena, taken before any
/// AP starts: running out later would leave APs half set up. Slot 0 (the BSP's) stays empty.
fn carve_ap_resources(
    host: &'static HostedHost,
    config: &HostedConfig<'_>,
    n: usize,
) -> Result<&'static [ApSlot], HostedError> {
    let tls_layout = match &config.tls {
        Some(t) => Some(tls::layout(&t.template, t.tcb_size).map_err(HostedError::Tls)?),
        None => None,
    };
    let no_slots = oom("the AP slots", 0, n * core::mem::size_of::<ApSlot>());
    let slots = host.try_alloc_slice_with(n, 64, no_slots, |index| {
        if index == 0 {
            return Ok(ApSlot::new(None, [0; 3], 0));
        }
        let mut ist_tops = [0u64; 3];
        for top in ist_tops.iter_mut() {
            let stack = host.bump.alloc_zeroed(IST_STACK_SIZE, 16).ok_or(oom(
                "an IST stack",
                index,
                IST_STACK_SIZE,
            ))?;
            *top = stack.as_ptr() as u64 + IST_STACK_SIZE as u64;
        }
        let tables = host.alloc_value(CpuTables::empty(), 16).ok_or(oom(
            "descriptor tables",
            index,
            size_of::<CpuTables>(),
        ))?;
        let fs_base = match (&config.tls, &tls_layout) {
            (Some(t), Some(layout)) => {
                let area = host.alloc_slice_with(layout.size, 16, |_| 0u8).ok_or(oom(
                    "a TLS block",
                    index,
                    layout.size,
                ))?;
                // SAFETY: FS base is the BSP's thread pointer, whose TCB (tcb_size bytes, the
                // program vouches) is readable for the program's life.
                let tcb = unsafe {
                    let bsp_tp = x86_64::registers::model_specific::FsBase::read().as_u64();
                    core::slice::from_raw_parts(bsp_tp as *const u8, t.tcb_size)
                };
                tls::init_area(area, &t.template, layout, tcb).map_err(HostedError::Tls)?
            }
            _ => 0,
        };
        Ok(ApSlot::new(Some(tables), ist_tops, fs_base))
    })?;
    if let Some((heap, per_ap)) = config.heap.filter(|(_, per_ap)| *per_ap > 0) {
        let per_ap = per_ap.next_multiple_of(4096);
        if per_ap < MIN_ARENA_SIZE {
            return Err(HostedError::HeapTooSmall {
                per_ap,
                min: MIN_ARENA_SIZE,
            });
        }
        // One arena per CPU index; the BSP's (index 0) is unused: the BSP allocates from the
        // program's allocator.
        let bytes = per_ap
            .checked_mul(n)
            .ok_or(oom("AP heaps", 0, usize::MAX))?;
        let arenas = host
            .bump
            .alloc_zeroed(bytes, 4096)
            .ok_or(oom("AP heaps", 0, bytes))?;
        // SAFETY: fresh memory from the region, the heap's alone from now on; the `HOST`
        // once-guard in start_cpus makes this the only call.
        unsafe { heap.init_arenas(arenas.as_ptr(), per_ap, n) };
    }
    Ok(slots)
}

/// The scheduler on the APs (and on `main`'s CPU when it calls in), once [`start_cpus`] has
/// started the runtime ([`HostedConfig::runtime`]).
pub fn scheduler() -> Option<&'static crate::sched::Registry> {
    crate::rt::runtime()
        .filter(|rt| rt.hosted)
        .map(|_| crate::rt::scheduler())
}

/// Ends the running AP after a panic in the program's code on it: every scheduler job it was
/// running for another CPU is reported panicked to whoever waits for it (a `join` re-raises
/// it, a scope or a detached task's handle reports it: nobody hangs), then the AP halts for
/// good. For the program's panic hook on an AP (`hello_cpus` shows it); the AP's stack is never
/// reused, so jobs it had pushed stay valid for the CPUs that steal them.
pub fn halt_after_panic() -> ! {
    if let Some(sched) = scheduler() {
        sched.abandon_this_worker();
    }
    crate::boot::park_this_cpu()
}

/// How many APs reported a fault (a CPU exception, an unexpected NMI) after the bring-up and
/// halted: their report is on the console once they are counted here.
pub fn stopped_aps() -> u32 {
    host::STOPPED_APS.load(core::sync::atomic::Ordering::Acquire)
}

/// The TSC frequency as the configuration says.
fn tsc_of(config: &HostedConfig<'_>) -> Result<Tsc, HostedError> {
    match config.tsc {
        TscFrequency::Hz(hz) if hz > 0 => Ok(Tsc::from_hz(hz)),
        TscFrequency::Hz(_) => Err(HostedError::NoTscFrequency),
        TscFrequency::Measure(clock) => {
            if let Ok((t, _)) = tsc::calibrate_from_cpuid() {
                return Ok(t);
            }
            let (ns0, t0) = (clock(), tsc::now());
            let mut ns1 = ns0;
            while ns1.wrapping_sub(ns0) < 10_000_000 {
                ns1 = clock();
                if ns1 < ns0 {
                    return Err(HostedError::NoTscFrequency);
                }
            }
            let ticks = tsc::now() - t0;
            let hz = (ticks as u128 * 1_000_000_000 / (ns1 - ns0) as u128) as u64;
            if hz == 0 {
                return Err(HostedError::NoTscFrequency);
            }
            Ok(Tsc::from_hz(hz))
        }
    }
}
