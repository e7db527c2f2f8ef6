//! The BSP's own set-up around the bring-up: FPU/SSE/AVX, the TSC, its local APIC, and the
//! runtime once every CPU is up.

use multicore::arch::x86_64::apic::timer::TimerMode;
use multicore::arch::x86_64::apic::{ApicMode, LocalApic};
use multicore::arch::x86_64::cpu_state;
use multicore::arch::x86_64::tsc::{self, Tsc};
use multicore::boot::CpuData;
use x86_64::registers::xcontrol::XCr0Flags;

use crate::host::{self, DemoHost};
use crate::{heap, println};

/// FPU, SSE and (where the CPU has them) XSAVE and AVX, which the APs then copy.
pub fn enable_fpu() {
    match cpu_state::enable_fpu_sse_avx() {
        Some(xcr0) if xcr0.contains(XCr0Flags::AVX) => {
            println!(
                "FPU, SSE, XSAVE, AVX enabled on BSP (XCR0 {:#x})",
                xcr0.bits()
            )
        }
        Some(xcr0) => println!("FPU, SSE, XSAVE enabled on BSP (XCR0 {:#x})", xcr0.bits()),
        None => println!("FPU, SSE enabled on BSP (no XSAVE)"),
    }
}

/// The TSC frequency, from CPUID or kvmclock, else measured against the PIT.
pub fn calibrate_tsc() -> Tsc {
    let (tsc, source) = match tsc::calibrate(Some(&|v| Some(v))) {
        Ok(t) => t,
        Err(e) => fail!("{e}"),
    };
    println!("TSC: {} kHz (from {})", tsc.hz() / 1000, source.as_str());
    tsc
}

/// The BSP's local APIC: x2APIC when CPUID offers it, else the xAPIC.
pub fn enable_apic() -> LocalApic {
    let apic = match LocalApic::init_bsp(&host::identity(), true) {
        Ok(apic) => apic,
        Err(e) => fail!("{e}"),
    };
    match apic.mode() {
        ApicMode::X2Apic => println!("x2APIC enabled on BSP"),
        ApicMode::XApic { phys, .. } => {
            println!("xAPIC enabled on BSP (MMIO at {phys:#x}; CPUID offers no x2APIC)")
        }
    }
    apic
}

/// The heap (per-CPU arenas) and the runtime on every CPU (the APs wait in `rt::join`).
pub fn start_runtime(
    host: &'static DemoHost,
    tsc: Tsc,
    apic: LocalApic,
    cpus: &'static [&'static CpuData],
) {
    match heap::init(cpus.len()) {
        Ok((arena, shared)) => println!(
            "Heap: {} per-CPU arenas of {} KiB, shared pool {} KiB",
            cpus.len(),
            arena / 1024,
            shared / 1024
        ),
        Err(e) => fail!("{e}"),
    }
    // The BIOS left the legacy PICs on the exception vectors; the runtime uses the local APIC.
    multicore::arch::x86_64::pic::remap_and_mask(multicore::rt::vectors::LEGACY_PIC_BASE);
    if let Err(e) = multicore::rt::start(host, tsc, apic, cpus) {
        fail!("runtime: {e}");
    }
    let timer = match multicore::rt::this_cpu().timer_mode() {
        Some(TimerMode::TscDeadline) => "TSC-deadline",
        _ => "one-shot",
    };
    println!(
        "Runtime: {} CPUs joined (GS per-CPU data, IDT, IST stacks, {timer} APIC timer)",
        multicore::rt::online_cpus().count()
    );
}
