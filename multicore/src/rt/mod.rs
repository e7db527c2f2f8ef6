//! The multicore runtime on the started CPUs: per-CPU data through GS, per-CPU GDT/TSS with
//! IST stacks, one IDT, the local APIC timer, IPIs, cross-CPU calls, idling, and the stop-all
//! path for panics and exceptions.
//!
//! Start-up, one step a line, as the demo kernel does it:
//! ```text
//! BSP:  start_aps(..., ap_entry)         APs: ap_entry(cpu): ...;
//!       rt::start(host, tsc, apic, cpus)           rt::join(cpu)  // online, then idles
//! ```
//! `rt::start` sets the BSP up, publishes the runtime, and waits for every online AP to join.

pub mod call_queue;
pub mod idle;
pub mod ipi;
pub mod percpu;
pub mod stop;
pub mod timer;
pub mod trap;
pub mod vectors;
pub mod workers;
pub mod xcall;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;

use crate::arch::x86_64::apic::icr::Icr;
use crate::arch::x86_64::apic::timer as apic_timer;
use crate::arch::x86_64::apic::LocalApic;
use crate::arch::x86_64::gdt::{self, CpuTables};
use crate::arch::x86_64::idt::Idt;
use crate::arch::x86_64::tsc::Tsc;
use crate::boot::{CpuData, CpuState, Host};
pub use percpu::{current, this_cpu, PerCpu, PerCpuCell, PerCpuVar};
pub use workers::scheduler;

/// Bytes of each IST stack (double fault, NMI, machine check).
const IST_STACK_SIZE: usize = 16 * 1024;

/// The runtime shared by every CPU.
pub struct Runtime {
    pub(crate) host: &'static dyn Host,
    pub(crate) tsc: Tsc,
    pub(crate) bsp_apic: LocalApic,
    pub(crate) cpus: Box<[&'static PerCpu]>,
    idt: &'static Idt,
    /// The work-stealing scheduler, one worker per CPU.
    pub(crate) sched: crate::sched::Registry,
    /// A hosted program's runtime: the BSP is the host's CPU and takes no part but as a worker
    /// that polls.
    pub(crate) hosted: bool,
}

static RUNTIME: spin::Once<Runtime> = spin::Once::new();

/// The runtime, once [`start`] has published it.
pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Number of CPU indexes the runtime knows (online or not); 0 before [`start`].
pub fn cpu_count() -> usize {
    runtime().map_or(0, |rt| rt.cpus.len())
}

/// CPU `index`'s block.
pub fn cpu(index: usize) -> Option<&'static PerCpu> {
    runtime().and_then(|rt| rt.cpus.get(index).copied())
}

/// CPUs that joined the runtime, by index.
pub fn online_cpus() -> impl Iterator<Item = &'static PerCpu> {
    runtime()
        .into_iter()
        .flat_map(|rt| rt.cpus.iter().copied())
        .filter(|c| c.joined())
}

/// The calibrated TSC the runtime uses.
pub fn tsc() -> Tsc {
    runtime().expect("runtime not started").tsc
}

/// The runtime could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeError {
    /// The heap ran out (IST stacks, tables).
    OutOfMemory,
    /// These many online APs did not join within the timeout.
    NotJoined(u32),
    /// The CPUs were not brought up by [`start_aps`](crate::boot::start_aps) (no CPU-local
    /// blocks), or not by a host that leaves GS base to the library.
    NotBroughtUp,
}

impl core::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeError::OutOfMemory => {
                write!(f, "out of memory for the runtime's per-CPU tables")
            }
            RuntimeError::NotJoined(n) => write!(f, "{n} online AP(s) did not join the runtime"),
            RuntimeError::NotBroughtUp => write!(
                f,
                "the runtime needs CPUs brought up by start_aps for a host that leaves GS base to the library (Host::gs_owner)"
            ),
        }
    }
}

/// Starts the runtime on the BSP and waits for the online APs (those whose entry calls
/// [`join`]) to join. `cpus` is the bring-up's table (index 0 = BSP). Needs the global
/// allocator, and the legacy PICs kept off the exception vectors
/// ([`pic::remap_and_mask`](crate::arch::x86_64::pic::remap_and_mask) with
/// [`vectors::LEGACY_PIC_BASE`]): the runtime enables interrupts.
pub fn start(
    host: &'static dyn Host,
    tsc: Tsc,
    apic: LocalApic,
    cpus: &'static [&'static CpuData],
) -> Result<&'static Runtime, RuntimeError> {
    // The runtime reaches its per-CPU state through GS, which must be the library's.
    bsp_is(crate::cpu_local::CpuRole::Kernel)?;
    let rt = publish(host, tsc, apic, cpus, false);
    setup_this_cpu(rt, rt.cpus[0], Tables::Install)?;
    wake_aps(rt);
    wait_for_aps(rt)?;
    Ok(rt)
}

/// The runtime of a hosted program: every AP a runtime CPU (IPIs, cross-CPU calls, its APIC
/// timer, halted when idle, a scheduler worker), the BSP (the host's CPU) left exactly as it
/// is: its GS, IDT, APIC mode and interrupts stay the host's. The BSP still takes part in the
/// scheduler as worker 0 when it calls `join`, `scope` or a parallel loop, polling instead of
/// sleeping (it never receives the library's IPIs). The APs call [`join_hosted`] when the
/// program's entry returns; this does not wait for them (an entry may run for long), and the
/// scheduler works with whichever have joined.
pub(crate) fn start_hosted(
    host: &'static dyn Host,
    tsc: Tsc,
    apic: LocalApic,
    cpus: &'static [&'static CpuData],
) -> Result<&'static Runtime, RuntimeError> {
    bsp_is(crate::cpu_local::CpuRole::HostedBsp)?;
    let rt = publish(host, tsc, apic, cpus, true);
    wake_aps(rt);
    Ok(rt)
}

/// The caller is the BSP of a bring-up whose CPUs have `role` (the blocks say how GS is owned).
fn bsp_is(role: crate::cpu_local::CpuRole) -> Result<(), RuntimeError> {
    match crate::cpu_local::current() {
        Some(local) if local.index() == 0 && local.role() == role => Ok(()),
        _ => Err(RuntimeError::NotBroughtUp),
    }
}

/// Builds and publishes the runtime for `cpus` (nothing set up on any CPU yet).
fn publish(
    host: &'static dyn Host,
    tsc: Tsc,
    apic: LocalApic,
    cpus: &'static [&'static CpuData],
    hosted: bool,
) -> &'static Runtime {
    let blocks: Vec<&'static PerCpu> = cpus
        .iter()
        .map(|data| PerCpu::new(data, apic).leak())
        .collect();
    let idt: &'static Idt = Box::leak(Box::new(Idt::new(
        gdt::KERNEL_CS.0,
        &vectors::ON_IST_STACKS,
    )));
    let sched = crate::sched::Registry::new(blocks.len(), &workers::PLATFORM);
    RUNTIME.call_once(|| Runtime {
        host,
        tsc,
        bsp_apic: apic,
        cpus: blocks.into_boxed_slice(),
        idt,
        sched,
        hosted,
    })
}

/// Wakes the APs halted in `join`: each takes the runtime and sets itself up.
fn wake_aps(rt: &'static Runtime) {
    for cpu in rt
        .cpus
        .iter()
        .skip(1)
        .filter(|c| c.data.state() == CpuState::Online)
    {
        let _ = rt
            .bsp_apic
            .send(Icr::fixed(vectors::CALL), cpu.apic_id, &rt.tsc);
    }
}

/// Waits until every online AP has joined, the timeout counting from the last progress.
fn wait_for_aps(rt: &'static Runtime) -> Result<(), RuntimeError> {
    let tsc = rt.tsc;
    let waiting = |c: &&&PerCpu| c.index != 0 && c.data.state() == CpuState::Online && !c.joined();
    let mut left = rt.cpus.iter().filter(waiting).count();
    let mut deadline = tsc.deadline_us(5_000_000);
    while left > 0 {
        let now_left = rt.cpus.iter().filter(waiting).count();
        if now_left < left {
            left = now_left;
            deadline = tsc.deadline_us(5_000_000);
        } else if tsc.passed(deadline) {
            return Err(RuntimeError::NotJoined(left as u32));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// An AP joins the runtime: marks itself online ([`CpuData::mark_online`], unless its entry
/// did) once it waits for [`start`] on the BSP, then sets itself up (GS, GDT/TSS, IDT, timer,
/// interrupts on) and idles, serving cross-CPU calls. Call it at the end of the AP's entry
/// function. Leaving the online mark to it lets the bring-up's wait for its pilot AP
/// (boot/kick.rs) cover the AP's whole way into the runtime, so that the APs after the pilot
/// find all of that code translated under TCG.
pub fn join(data: &'static CpuData) -> ! {
    join_with(data, Tables::Install)
}

/// A hosted program's AP joins the runtime ([`start_hosted`]): like [`join`], but its GDT/TSS
/// with IST stacks and its IDT are the ones the hosted bring-up already installed.
pub(crate) fn join_hosted(data: &'static CpuData) -> ! {
    join_with(data, Tables::Installed)
}

fn join_with(data: &'static CpuData, tables: Tables) -> ! {
    let rt = wait_for_runtime(data, tables == Tables::Install);
    let me = rt.cpus[data.index as usize];
    if let Err(e) = setup_this_cpu(rt, me, tables) {
        stop::fatal(format_args!(
            "CPU {} cannot join the runtime: {e}",
            data.index
        ));
    }
    // The AP's life from here: the scheduler's worker (halted between jobs, serving cross-CPU
    // calls all along).
    rt.sched.run_worker(data.index as usize);
    idle::idle_loop()
}

/// Whether a CPU joining the runtime still needs its descriptor tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tables {
    Install,
    Installed,
}

/// The IDT an AP uses while it waits for the runtime: no IST stacks (its TSS does not exist
/// yet), only so that the BSP's wake-up IPI (or a fault) has somewhere to go.
/// (`spin::Once`, not the loom-checkable `sync::Once`: loom types cannot live in statics.)
static WAITING_IDT: spin::Once<Idt> = spin::Once::new();

/// The waiting IDT, built on first use. The bring-up calls it on the BSP before the first AP
/// starts (boot/start.rs), so that an AP only loads the table: under TCG the first AP's path
/// into the runtime is translated while the others wait for it (boot/kick.rs), and building
/// the table's 256 gates is a stretch of code only the first caller runs.
pub(crate) fn waiting_idt() -> &'static Idt {
    WAITING_IDT.call_once(|| Idt::new(gdt::KERNEL_CS.0, &[]))
}

/// Halts (interrupts on, nothing else to serve) until the BSP publishes the runtime and sends
/// the wake-up IPI, instead of spinning: with many vCPUs on few host cores, spinning APs would
/// take the host time the BSP needs to get there. The CPU is marked online just before it
/// halts (or returns). Returns with interrupts off.
fn wait_for_runtime(data: &'static CpuData, needs_idt: bool) -> &'static Runtime {
    if let Some(rt) = RUNTIME.get() {
        mark_online_once(data);
        return rt;
    }
    if needs_idt {
        waiting_idt().load();
    }
    mark_online_once(data);
    loop {
        x86_64::instructions::interrupts::disable();
        if let Some(rt) = RUNTIME.get() {
            return rt;
        }
        // SAFETY: STI; HLT with the check above done with interrupts off: a wake-up IPI sent
        // after the check is taken by the HLT (see idle.rs). No memory is touched.
        unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
    }
}

/// Marks a joining AP online unless its entry did: online, it is waiting for the runtime,
/// with everything it runs before the runtime starts behind it.
fn mark_online_once(data: &'static CpuData) {
    if data.state() != CpuState::Online {
        data.mark_online();
    }
}

/// Per-CPU setup, interrupts off until the end: GS base, this CPU's GDT and TSS with IST
/// stacks, the shared IDT, the local APIC timer; then interrupts on.
fn setup_this_cpu(
    rt: &'static Runtime,
    me: &'static PerCpu,
    tables: Tables,
) -> Result<(), RuntimeError> {
    let Some(local) = crate::cpu_local::block(me.index as usize) else {
        return Err(RuntimeError::NotBroughtUp);
    };
    if tables == Tables::Installed {
        local.enter_runtime();
        return finish_setup(rt, me);
    }
    // From the global allocator: before GS is set this CPU draws on its shared pool.
    let stack_layout = Layout::from_size_align(IST_STACK_SIZE, 16).expect("valid layout");
    let mut ist_tops = [0u64; 3];
    for top in ist_tops.iter_mut() {
        // SAFETY: the layout has a non-zero size. Not zeroed: a stack needs no initial contents
        // (and clearing costs where ring-0 code is emulated).
        let stack = unsafe { alloc::alloc::alloc(stack_layout) };
        if stack.is_null() {
            return Err(RuntimeError::OutOfMemory);
        }
        *top = stack as u64 + IST_STACK_SIZE as u64;
    }
    let tables: &'static mut CpuTables = Box::leak(Box::new(CpuTables::empty()));
    local.enter_runtime();
    CpuTables::install(tables, ist_tops);
    rt.idt.load();
    finish_setup(rt, me)
}

/// The timer, then interrupts on: the CPU is the runtime's.
fn finish_setup(rt: &'static Runtime, me: &'static PerCpu) -> Result<(), RuntimeError> {
    me.timer
        .call_once(|| apic_timer::init(&me.apic, &rt.tsc, vectors::TIMER));
    me.mark_joined();
    x86_64::instructions::interrupts::enable();
    Ok(())
}
