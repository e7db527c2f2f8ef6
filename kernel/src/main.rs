//! rust_multicore: the demo kernel. Boots under QEMU (PVH or multiboot 1), finds the CPUs and
//! starts every AP with the `multicore` library, each printing `CPU N online! APIC ID: A`.
//!
//! `kmain` reads like a list of steps; the work is in the library. Kernel command line
//! (`-append`): `bringup=sequential|parallel delays=spec|fast maxcpus=N apstack=SIZE`.
#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod boot;
mod checks;
mod console;
mod exit;
mod heap;
mod host;
mod memory;
mod paging;

use exit::{exit, ExitCode};
use host::DemoHost;
use multicore::arch::x86_64::apic::timer::TimerMode;
use multicore::arch::x86_64::apic::{ApicMode, LocalApic};
use multicore::arch::x86_64::{cpu_state, tsc};
use multicore::boot::floor::FloorProbe;
use multicore::boot::{start_aps, CpuData, StartConfig};
use multicore::bootinfo::{self, BootInfo};
use multicore::cmdline::{self, BenchMode, TestCase, MAX_SUPPORTED_CPUS};
use multicore::topology::{self, CpuSource};
use x86_64::registers::xcontrol::XCr0Flags;

/// The host services, static so that the runtime (on every CPU) can keep using them.
static HOST: spin::Once<DemoHost> = spin::Once::new();

/// Prints the reason and takes the failure exit.
macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("error: {}", format_args!($($arg)*));
        exit(ExitCode::Failure)
    }};
}

/// Entered from entry.S on the BSP, in long mode on the boot stack, interrupts off.
#[no_mangle]
extern "C" fn kmain(boot_protocol: u32, boot_info: u32) -> ! {
    // SAFETY: the kernel owns GS: point it at the runtime's "no CPU yet" block before anything
    // (the heap) asks which CPU runs.
    unsafe { multicore::rt::percpu::install_no_cpu() };
    console::init();
    println!("Rust Multicore Boot Starting...");
    let boot = read_boot_info(boot_protocol, boot_info);
    let options = match cmdline::parse(boot.cmdline()) {
        Ok(options) => options,
        Err(e) => fail!("bad kernel command line: {e}"),
    };
    println!("Booted by {}; options: {}", boot.protocol.as_str(), options);
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
    let (tsc, source) = match tsc::calibrate(Some(&|v| Some(v))) {
        Ok(t) => t,
        Err(e) => fail!("{e}"),
    };
    println!("TSC: {} kHz (from {})", tsc.hz() / 1000, source.as_str());
    match memory::init(&boot) {
        Ok((start, end)) => println!("Memory for CPUs: {:#x}..{:#x}", start, end),
        Err(_) => fail!("no usable RAM after the kernel image in the boot memory map"),
    }
    let host: &'static DemoHost = HOST.call_once(|| DemoHost::new(&boot));
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

    let storage = match memory::alloc_zeroed(4 * options.max_cpus as usize, 4) {
        Some(p) => {
            // SAFETY: a fresh zeroed allocation of max_cpus u32s, used only here, never freed.
            unsafe {
                core::slice::from_raw_parts_mut(p.as_ptr() as *mut u32, options.max_cpus as usize)
            }
        }
        None => fail!("out of memory for the CPU list"),
    };
    let topo = topology::discover(&host::identity(), boot.rsdp, apic.id(), storage);
    report_topology(&topo, options.max_cpus);
    let apic_ids = match options.test {
        Some(TestCase::AbsentAp) => with_absent_ap(topo.apic_ids),
        _ => topo.apic_ids,
    };

    // The floor probe stays in the trampoline page until the bring-up is over (floor.rs says
    // why); the bring-up reuses that page.
    let mut probe = None;
    if options.bench == Some(BenchMode::Floor) {
        // Twice: the first wake of a vCPU pays one-time costs (under TCG, translating the
        // real-mode code), which the bring-up that follows no longer pays. The second run is
        // the floor; the first is printed as `cold_us`.
        let floor = FloorProbe::install(host).and_then(|mut p| {
            let cold = p.measure(&apic, &tsc, apic_ids, options.delays)?;
            let warm = p.measure(&apic, &tsc, apic_ids, options.delays)?;
            probe = Some(p);
            Ok((cold, warm))
        });
        match floor {
            Ok((cold, f)) => println!(
                "floor: cpus={} arrived={} time_us={} cold_us={} delays={}",
                f.aps + 1,
                f.arrived + 1,
                f.time_us,
                cold.time_us,
                options.delays.as_str()
            ),
            Err(e) => fail!("floor probe: {e}"),
        }
    }
    let config = StartConfig {
        strategy: options.strategy,
        delays: options.delays,
        ap_stack_size: options.ap_stack_size,
    };
    let report = match start_aps(host, &apic, &tsc, apic_ids, &config, ap_main, 0) {
        Ok(report) => report,
        Err(e) => fail!("cannot start the APs: {e}"),
    };
    if !report.stack_guards && report.cpus.len() > 1 {
        println!("warning: AP stacks have no guard pages");
    }
    let wanted = report.cpus.len() as u32;
    if report.online() == wanted {
        println!("All CPUs started!");
    }
    println!(
        "bringup: cpus={} online={} time_us={} strategy={} delays={}",
        wanted,
        report.online(),
        report.time_us,
        options.strategy.as_str(),
        options.delays.as_str()
    );
    if report.online() != wanted {
        fail!("{} of {} APs did not start", report.aps_failed, wanted - 1)
    }
    if let Some(probe) = probe {
        probe.restore();
    }
    if options.bench == Some(BenchMode::Floor) {
        exit(ExitCode::Success); // the benchmark runner wanted the bring-up figures only
    }

    match heap::init(report.cpus.len()) {
        Ok((arena, shared)) => println!(
            "Heap: {} per-CPU arenas of {} KiB, shared pool {} KiB",
            report.cpus.len(),
            arena / 1024,
            shared / 1024
        ),
        Err(e) => fail!("{e}"),
    }
    // The BIOS left the legacy PICs on the exception vectors; the runtime uses the local APIC.
    multicore::arch::x86_64::pic::remap_and_mask(multicore::rt::vectors::LEGACY_PIC_BASE);
    if let Err(e) = multicore::rt::start(host, tsc, apic, report.cpus) {
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
    if options.bench == Some(BenchMode::Runtime) {
        bench::run();
        exit(ExitCode::Success);
    }
    inject_fault(options.test);
    let iterations = if options.test == Some(TestCase::LockTorture) {
        20_000
    } else {
        1_000
    };
    match checks::run_all(iterations) {
        Ok(()) => println!("All checks passed"),
        Err(e) => fail!("check failed: {e}"),
    }
    exit(ExitCode::Success)
}

/// `test=panic-ap` / `test=fault-ap`: CPU 1 panics or touches unmapped memory; the stop-all
/// path must report it, naming CPU 1, and take the failure exit. The BSP meanwhile idles.
fn inject_fault(test: Option<TestCase>) {
    let fault: fn() = match test {
        Some(TestCase::PanicAp) => || panic!("deliberate panic (test=panic-ap)"),
        Some(TestCase::FaultAp) => || {
            // The boot page tables map 0..4 GiB only.
            let unmapped = 0x1_0000_0000 as *const u64;
            // SAFETY: not safe at all, on purpose: the read must fault (#PF) on CPU 1.
            let value = unsafe { core::ptr::read_volatile(unmapped) };
            println!("read {value:#x} from unmapped memory?!");
        },
        _ => return,
    };
    if multicore::rt::cpu(1).is_none_or(|c| !c.joined()) {
        fail!(
            "test={} needs a second CPU",
            test.map_or("", |t| t.as_str())
        );
    }
    println!(
        "test: injecting {} on CPU 1",
        test.map_or("", |t| t.as_str())
    );
    let _ = multicore::rt::xcall::run_on_async(1, fault);
    multicore::rt::idle::wait_until(|| false);
}

/// What each AP runs once the library has it in Rust: say so, be counted, join the runtime
/// (which idles it until cross-CPU calls come).
fn ap_main(cpu: &'static CpuData) -> ! {
    println!("CPU {} online! APIC ID: {}", cpu.index, cpu.apic_id);
    cpu.mark_online();
    multicore::rt::join(cpu)
}

/// `test=absent-ap`: the CPU list plus one APIC ID that no CPU has (one above the highest),
/// so that the start path meets an AP that never answers.
fn with_absent_ap(ids: &[u32]) -> &'static [u32] {
    let absent = ids.iter().max().map_or(1, |m| m + 1);
    let Some(p) = memory::alloc_zeroed(4 * (ids.len() + 1), 4) else {
        fail!("out of memory for the CPU list");
    };
    // SAFETY: a fresh zeroed allocation of len + 1 u32s, never freed or shared.
    let list = unsafe { core::slice::from_raw_parts_mut(p.as_ptr() as *mut u32, ids.len() + 1) };
    list[..ids.len()].copy_from_slice(ids);
    list[ids.len()] = absent;
    println!(
        "test: adding CPU {} with APIC ID {absent}, which no CPU has",
        ids.len()
    );
    list
}

fn read_boot_info(protocol: u32, info: u32) -> BootInfo {
    let mem = host::identity();
    let parsed = match protocol {
        boot::BOOT_PROTOCOL_PVH => bootinfo::parse_pvh(&mem, info as u64),
        boot::BOOT_PROTOCOL_MULTIBOOT1 => bootinfo::parse_multiboot(&mem, info as u64),
        other => fail!("unknown boot protocol {other}"),
    };
    match parsed {
        Ok(boot) => {
            if boot.cmdline_truncated {
                println!(
                    "warning: kernel command line longer than {} bytes, cut",
                    bootinfo::MAX_CMDLINE
                );
            }
            boot
        }
        Err(e) => fail!("{e}"),
    }
}

fn report_topology(topo: &topology::Topology<'_>, max_cpus: u32) {
    if let Some(e) = &topo.acpi_error {
        println!("warning: ACPI tables unusable ({e}); falling back");
    }
    if let Some(e) = &topo.mp_error {
        println!("warning: MP tables unusable ({e})");
    }
    match topo.source {
        CpuSource::Acpi {
            via_xsdt,
            rsdp,
            rsdp_from_boot,
        } => println!(
            "CPUs from ACPI MADT (RSDP {:#x} from {}, via {})",
            rsdp,
            if rsdp_from_boot {
                "the boot loader"
            } else {
                "the BIOS area scan"
            },
            if via_xsdt { "XSDT" } else { "RSDT" }
        ),
        CpuSource::MpTable => println!("CPUs from MP tables (no usable ACPI)"),
        CpuSource::BspOnly => {
            println!("warning: no ACPI MADT and no MP tables: running on the BSP alone")
        }
    }
    println!("Found {} CPUs", topo.enabled);
    if topo.online_capable > 0 {
        println!(
            "{} more CPU slots are online-capable (hot-plug): not started",
            topo.online_capable
        );
    }
    if topo.disabled > 0 {
        println!("{} disabled CPU entries ignored", topo.disabled);
    }
    if !topo.bsp_listed && topo.source != CpuSource::BspOnly {
        println!("warning: the BSP's APIC ID is not in the CPU table");
    }
    if topo.truncated() {
        println!(
            "note: {} CPUs found, starting {} (maxcpus={}, at most {})",
            topo.enabled,
            topo.apic_ids.len(),
            max_cpus,
            MAX_SUPPORTED_CPUS
        );
    }
}

/// A panic on any CPU: once the runtime runs, the stop-all path (every other CPU stopped by
/// NMI, then one report, then the failure exit); before that, only the BSP runs Rust code.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let location = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    if multicore::rt::runtime().is_some() {
        let cpu = multicore::rt::current().map_or(u32::MAX, |c| c.index);
        multicore::rt::stop::fatal(format_args!(
            "PANIC on CPU {cpu}: {} at {}:{}",
            info.message(),
            location.0,
            location.1
        ))
    }
    println!(
        "PANIC on the BSP: {} at {}:{}",
        info.message(),
        location.0,
        location.1
    );
    exit(ExitCode::Failure)
}
