//! Stopping every CPU: the one path for panics and fatal exceptions.
//!
//! The first CPU to fail claims the stop, sends an NMI to every other runtime CPU (an NMI gets
//! through even with interrupts off), waits briefly for each to check in as stopped, and only
//! then prints its report, so no other CPU's output interleaves with it and no lock held by a
//! stopped CPU is waited for (the host prints through its after-stop path). A CPU that fails
//! while another is stopping just stops; a fault while reporting does not recurse.

use core::fmt;

use super::percpu::current;
use super::runtime;
use crate::arch::x86_64::apic::icr::Icr;
use crate::boot::park_this_cpu;
use crate::cpu_local::{self, FaultRoute};
// core atomics, not the loom-switchable ones: these are statics, and the stop path is not
// model-checked (it ends the machine).
use core::sync::atomic::{AtomicU32, Ordering};

/// 0: running normally; else 1 + the initial APIC ID of the CPU that is stopping the machine
/// (the APIC ID, not the runtime index, so that CPUs the runtime does not know yet are told
/// apart too).
static STOPPER: AtomicU32 = AtomicU32::new(0);
/// CPUs that took the stop NMI.
static STOPPED: AtomicU32 = AtomicU32::new(0);

fn my_tag() -> u32 {
    let apic_id = cpu_local::current().map_or_else(cpuid_apic_id, |c| c.apic_id());
    apic_id.wrapping_add(1).max(1)
}

/// This CPU's x2APIC ID (CPUID 0x0B) or initial APIC ID (CPUID 0x01), without the runtime.
fn cpuid_apic_id() -> u32 {
    let cpuid = raw_cpuid::CpuId::new();
    cpuid
        .get_extended_topology_info()
        .and_then(|mut levels| levels.next())
        .map(|level| level.x2apic_id())
        .or_else(|| {
            cpuid
                .get_feature_info()
                .map(|f| f.initial_local_apic_id() as u32)
        })
        .unwrap_or(0)
}

/// Whether a stop is under way.
pub fn stopping() -> bool {
    STOPPER.load(Ordering::Acquire) != 0
}

/// Reports `message` once and stops every CPU, then takes the host's fatal exit; on a CPU whose
/// faults halt it alone ([`FaultRoute::HaltAlone`]), reports and halts this CPU only.
pub fn fatal(message: fmt::Arguments<'_>) -> ! {
    if cpu_local::current().is_some_and(|c| c.faults() == FaultRoute::HaltAlone) {
        // A hosted program's AP: it reports and halts alone; the host's CPU goes on.
        if let Some(host) = cpu_local::reporter() {
            host.print_after_stop(format_args!("{message}\n"));
            host.fatal_exit()
        }
        park_this_cpu()
    }
    let me = my_tag();
    match STOPPER.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            let stopped = stop_others();
            if let Some(rt) = runtime() {
                rt.host.print_after_stop(format_args!("{message}\n"));
                rt.host.print_after_stop(format_args!(
                    "stopped {} of {} other CPUs; halting\n",
                    stopped.0, stopped.1
                ));
                rt.host.fatal_exit()
            }
            park_this_cpu()
        }
        Err(owner) if owner == me => {
            // A fault while this CPU was already reporting: say so without formatting more.
            if let Some(rt) = runtime() {
                rt.host
                    .print_after_stop(format_args!("(another fault while stopping; halting)\n"));
                rt.host.fatal_exit()
            }
            park_this_cpu()
        }
        Err(_) => {
            // Another CPU is stopping the machine; its NMI may already be masked here (we may
            // be in an NMI handler), so count ourselves stopped.
            STOPPED.fetch_add(1, Ordering::AcqRel);
            park_this_cpu()
        }
    }
}

/// NMIs every other CPU that runs the runtime and waits up to 100 ms for them; returns
/// (stopped, asked).
fn stop_others() -> (u32, u32) {
    let Some(rt) = runtime() else { return (0, 0) };
    let me = current().map(|c| c.index);
    // Sent from this CPU's APIC (or in the BSP's mode, which every CPU shares).
    let apic = current().map_or(rt.bsp_apic, |c| c.apic);
    let mut asked = 0;
    for cpu in rt.cpus.iter().filter(|c| Some(c.index) != me && c.joined()) {
        if apic.send(Icr::nmi(), cpu.apic_id, &rt.tsc).is_ok() {
            asked += 1;
        }
    }
    let deadline = rt.tsc.deadline_us(100_000);
    while STOPPED.load(Ordering::Acquire) < asked && !rt.tsc.passed(deadline) {
        core::hint::spin_loop();
    }
    (STOPPED.load(Ordering::Acquire).min(asked), asked)
}

/// The NMI handler: during a stop, count this CPU stopped and halt for good (NMIs stay
/// blocked until an IRET that never comes). Otherwise an NMI is unexpected: fatal.
pub(crate) fn on_nmi(frame: &super::trap::TrapFrame) {
    if stopping() {
        STOPPED.fetch_add(1, Ordering::AcqRel);
        park_this_cpu();
    }
    fatal(format_args!(
        "unexpected NMI on CPU {} at RIP {:#x}",
        current().map_or(u32::MAX, |c| c.index),
        frame.rip
    ))
}
