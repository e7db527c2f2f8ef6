//! Starting the other CPUs from a program that already runs on one CPU of a host kernel with
//! no SMP support (a Rust `std` program on a Unikraft kernel built without SMP, in ring 0).
//!
//! The program hands over what the library cannot know — memory, how physical memory is
//! mapped, which low pages it may borrow, the TSC frequency or a clock to measure it — and an
//! entry function; [`start_cpus`] does the rest and says which CPUs failed and why. The BSP's
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

use alloc::vec::Vec;
use core::fmt;

pub use ap::{current_ap, ApInfo};
pub use console::Console;
pub use heap::{ApHeap, HostedHeap};
pub use host::MAX_LOW_RANGES;

use crate::arch::x86_64::apic::{ApicError, ApicMode, LocalApic};
use crate::arch::x86_64::gdt::{self, CpuTables};
use crate::arch::x86_64::idt::Idt;
use crate::arch::x86_64::tsc::{self, Tsc};
use crate::boot::{start_aps, BringupError, CpuState, StartConfig};
use crate::bootinfo::PhysRange;
use crate::cmdline::{DelayPolicy, Strategy};
use crate::heap::MIN_ARENA_SIZE;
use crate::phys::LinearMapping;
use crate::tls::{self, TlsError, TlsTemplate};
use ap::{ApMarker, ApShared, ApSlot, AP_STARTED, SHARED};
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
    /// stay valid and otherwise unused for as long as the APs run, i.e. for ever (a leaked
    /// `Vec` is the usual source). Its size limits what can be started: see
    /// [`HostedError::Bringup`] with `OutOfMemory`.
    pub memory: &'static mut [u8],
    /// Physical memory is mapped at `virt = phys + phys_offset` for `phys < phys_limit`.
    pub phys_offset: u64,
    /// End of the physical mapping.
    pub phys_limit: u64,
    /// Free RAM below 1 MiB the library may borrow (the trampoline page and the transition page
    /// tables; restored afterwards).
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
}

impl<'a> HostedConfig<'a> {
    /// Defaults for everything but the memory, the mapping and the low pages.
    pub fn new(
        memory: &'static mut [u8],
        phys_offset: u64,
        phys_limit: u64,
        low_free: &'a [PhysRange],
        tsc: TscFrequency,
    ) -> HostedConfig<'a> {
        HostedConfig {
            memory,
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
        }
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
    /// The bring-up refused (no low page, out of memory, ...).
    Bringup(BringupError),
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
            HostedError::AlreadyStarted => write!(f, "the other CPUs were already started"),
            HostedError::Apic(e) => write!(f, "{e}"),
            HostedError::NoTscFrequency => write!(
                f,
                "cannot find the TSC frequency (no CPUID leaf 0x15/0x40000010, and the host clock did not advance)"
            ),
            HostedError::Tls(e) => write!(f, "{e}"),
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

/// Finds the other CPUs and starts each with `entry(&info, arg)`. Returns when every AP runs
/// the entry or has failed; an `Err` means no AP was started (and the program goes on, alone).
pub fn start_cpus(
    config: HostedConfig<'_>,
    entry: fn(&ApInfo, usize),
    arg: usize,
) -> Result<HostedReport, HostedError> {
    if HOST.is_completed() {
        return Err(HostedError::AlreadyStarted);
    }
    console::set(config.console);
    let tsc = tsc_of(&config)?;
    // SAFETY: the program vouches (HostedConfig docs) that [0, phys_limit) is mapped at the
    // offset; the mapping is used for firmware tables, the low pages and the xAPIC page.
    let phys = unsafe { LinearMapping::new(config.phys_offset, config.phys_limit) };
    let memory_len = config.memory.len();
    // SAFETY: the region is 'static, exclusively ours (moved in), and never freed.
    let bump = unsafe { Bump::new(config.memory.as_mut_ptr(), memory_len) };
    let host: &'static HostedHost =
        HOST.call_once(|| HostedHost::new(bump, phys, config.low_free, config.low_in_use));
    let apic = LocalApic::attach_bsp(&phys, config.allow_x2apic, config.xapic_mmio)
        .map_err(HostedError::Apic)?;
    let oom_for = |what: &'static str, cpu: usize, bytes: usize| {
        HostedError::Bringup(BringupError::OutOfMemory {
            what,
            cpu: cpu as u32,
            bytes,
        })
    };
    let oom = |what: &'static str, bytes: usize| oom_for(what, 0, bytes);
    let max = config.max_cpus.max(1);
    let storage = host
        .bump
        .alloc_zeroed(4 * max, 4)
        .ok_or(oom("the CPU list", 4 * max))?;
    // SAFETY: `max` zeroed u32s just taken from the region, used only here.
    let storage = unsafe { core::slice::from_raw_parts_mut(storage.as_ptr() as *mut u32, max) };
    let topo = crate::topology::discover(&phys, config.rsdp, apic.id(), storage);
    let ids = topo.apic_ids;
    let n = ids.len();

    // Everything per AP is taken now: running out later would leave APs half set up.
    let slots = host
        .bump
        .alloc_zeroed(core::mem::size_of::<ApSlot>() * n, 64)
        .ok_or(oom("the AP slots", core::mem::size_of::<ApSlot>() * n))?
        .as_ptr() as *mut ApSlot;
    let tls_layout = match &config.tls {
        Some(t) => Some(tls::layout(&t.template, t.tcb_size).map_err(HostedError::Tls)?),
        None => None,
    };
    for index in 0..n {
        let mut ist_tops = [0u64; 3];
        for top in ist_tops.iter_mut() {
            let stack = host.bump.alloc_zeroed(IST_STACK_SIZE, 16).ok_or(oom_for(
                "an IST stack",
                index,
                IST_STACK_SIZE,
            ))?;
            *top = stack.as_ptr() as u64 + IST_STACK_SIZE as u64;
        }
        let tables = host
            .bump
            .alloc_zeroed(core::mem::size_of::<CpuTables>(), 16)
            .ok_or(oom_for(
                "descriptor tables",
                index,
                core::mem::size_of::<CpuTables>(),
            ))?
            .as_ptr() as *mut CpuTables;
        let fs_base = match (&config.tls, &tls_layout) {
            (Some(t), Some(layout)) if index > 0 => {
                let area = host.bump.alloc_zeroed(layout.size, 16).ok_or(oom_for(
                    "a TLS block",
                    index,
                    layout.size,
                ))?;
                // SAFETY: `layout.size` bytes just taken; FS base is the BSP's thread pointer,
                // whose TCB (tcb_size bytes, the program vouches) is readable.
                let (area, tcb) = unsafe {
                    let bsp_tp = x86_64::registers::model_specific::FsBase::read().as_u64();
                    (
                        core::slice::from_raw_parts_mut(area.as_ptr(), layout.size),
                        core::slice::from_raw_parts(bsp_tp as *const u8, t.tcb_size),
                    )
                };
                tls::init_area(area, &t.template, layout, tcb).map_err(HostedError::Tls)?
            }
            _ => 0,
        };
        // SAFETY: slot `index` of the zeroed slot array taken above; written before any AP
        // can read it (published through SHARED before the bring-up).
        unsafe {
            slots.add(index).write(ApSlot {
                marker: ApMarker::new(index as u64),
                tables,
                ist_tops,
                fs_base,
                phase: core::sync::atomic::AtomicU32::new(AP_STARTED),
            })
        };
    }
    if let Some((heap, per_ap)) = config.heap.filter(|(_, per_ap)| *per_ap > 0) {
        let per_ap = per_ap.next_multiple_of(4096);
        if per_ap < MIN_ARENA_SIZE {
            return Err(HostedError::HeapTooSmall {
                per_ap,
                min: MIN_ARENA_SIZE,
            });
        }
        let bytes = per_ap.checked_mul(n).ok_or(oom("AP heaps", usize::MAX))?;
        let arenas = host
            .bump
            .alloc_zeroed(bytes, 4096)
            .ok_or(oom("AP heaps", bytes))?;
        // SAFETY: fresh memory from the region, the heap's alone from now on; the
        // `HOST` once-guard above makes this the only call.
        unsafe { heap.init_arenas(arenas.as_ptr(), per_ap, n) };
    }
    let idt = host
        .bump
        .alloc_zeroed(core::mem::size_of::<Idt>(), 16)
        .ok_or(oom("the AP IDT", core::mem::size_of::<Idt>()))?
        .as_ptr() as *mut Idt;
    let ist = [
        (crate::rt::vectors::DOUBLE_FAULT, gdt::IST_DOUBLE_FAULT),
        (crate::rt::vectors::NMI, gdt::IST_NMI),
        (crate::rt::vectors::MACHINE_CHECK, gdt::IST_MACHINE_CHECK),
    ];
    // SAFETY: room for one Idt just taken, 16-aligned, never freed: a 'static table.
    let idt: &'static Idt = unsafe {
        idt.write(Idt::new(gdt::KERNEL_CS.0, &ist));
        &*idt
    };
    SHARED.call_once(|| ApShared {
        slots,
        count: n,
        idt,
        entry,
        arg,
    });
    crate::rt::stop::set_fallback_host(host);

    let start = StartConfig {
        strategy: config.strategy,
        delays: config.delays,
        ap_stack_size: config.stack_size.next_multiple_of(4096),
    };
    let report = start_aps(host, &apic, &tsc, ids, &start, ap::hosted_ap_entry, 0)
        .map_err(HostedError::Bringup)?;
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
    Ok(HostedReport {
        cpus: n as u32,
        online: report.online(),
        failed,
        time_us: report.time_us,
        apic_mode: apic.mode(),
        tsc_hz: tsc.hz(),
        memory_used: host.bump.used(),
    })
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
