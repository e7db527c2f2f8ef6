//! rust_multicore: the demo kernel. Boots under QEMU (PVH or multiboot 1), finds the CPUs and
//! starts every AP with the `multicore` library, each printing `CPU N online! APIC ID: A`, then
//! runs the library's runtime on every CPU and checks it.
//!
//! `kmain` is the list of steps; the work is in the library. Kernel command line (`-append`):
//! see the `demo_options` crate (kernel/options).
#![no_std]
#![no_main]

extern crate alloc;

/// Prints the reason and takes the failure exit.
macro_rules! fail {
    ($($arg:tt)*) => {{
        $crate::println!("error: {}", format_args!($($arg)*));
        $crate::exit::exit($crate::exit::ExitCode::Failure)
    }};
}

mod bench;
mod bench_sched;
mod boot;
mod bringup;
mod bsp;
mod checks;
mod console;
mod exit;
mod fault_injection;
mod floor;
mod heap;
mod host;
mod memory;
mod paging;

use bootinfo::BootInfo;
use demo_options::{BenchMode, Options, TestCase};
use exit::{exit, ExitCode};
use host::DemoHost;

/// The host services, static so that the runtime (on every CPU) can keep using them.
static HOST: spin::Once<DemoHost> = spin::Once::new();

/// Entered from entry.S on the BSP, in long mode on the boot stack, interrupts off.
#[no_mangle]
extern "C" fn kmain(boot_protocol: u32, boot_info: u32) -> ! {
    console::init();
    println!("Rust Multicore Boot Starting...");
    let boot = read_boot_info(boot_protocol, boot_info);
    let options = parse_options(&boot);
    bsp::enable_fpu();
    let tsc = bsp::calibrate_tsc();
    let host = init_memory(&boot);
    let apic = bsp::enable_apic();
    let apic_ids = bringup::find_cpus(&apic, &boot, &options);
    if options.bench == Some(BenchMode::Floor) {
        floor::measure_then_bring_up(host, &apic, &tsc, apic_ids, &options);
    }
    let cpus = bringup::bring_up(host, &apic, &tsc, apic_ids, &options).cpus;
    bsp::start_runtime(host, tsc, apic, cpus);
    match options.bench {
        Some(BenchMode::Runtime) => {
            bench::run();
            exit(ExitCode::Success);
        }
        Some(mode @ (BenchMode::Sched | BenchMode::SchedSmall | BenchMode::SchedTiny)) => {
            bench_sched::run(mode);
            exit(ExitCode::Success);
        }
        Some(BenchMode::Floor) | None => {}
    }
    fault_injection::inject(options.test);
    run_checks(&options)
}

/// What the loader handed over (PVH start info or multiboot 1 info).
fn read_boot_info(protocol: u32, info: u32) -> BootInfo {
    let mem = host::LoaderMemory;
    let parsed = match protocol {
        boot::BOOT_PROTOCOL_PVH => bootinfo::parse_pvh(&mem, info as u64),
        boot::BOOT_PROTOCOL_MULTIBOOT1 => bootinfo::parse_multiboot(&mem, info as u64),
        other => fail!("unknown boot protocol {other}"),
    };
    match parsed {
        Ok(boot) => boot,
        Err(e) => fail!("{e}"),
    }
}

/// The options on the kernel command line; a bad one ends the run with the list of valid ones.
fn parse_options(boot: &BootInfo) -> Options {
    // Whole or not at all: a line cut short or at a bad byte could drop an option unseen.
    let line = match boot.strict_cmdline() {
        Ok(line) => line,
        Err(e) => fail!("bad kernel command line: {e}"),
    };
    let options = match demo_options::parse(line) {
        Ok(options) => options,
        Err(e) => fail!("bad kernel command line: {e}"),
    };
    println!("Booted by {}; options: {}", boot.protocol.as_str(), options);
    options
}

/// The memory the CPUs get (stacks, per-CPU data, later the heap), and the host services.
fn init_memory(boot: &BootInfo) -> &'static DemoHost {
    match memory::init(boot) {
        Ok((start, end)) => println!("Memory for CPUs: {:#x}..{:#x}", start, end),
        Err(_) => fail!("no usable RAM after the kernel image in the boot memory map"),
    }
    HOST.call_once(|| DemoHost::new(boot))
}

/// The runtime checks, one line each, then the exit.
fn run_checks(options: &Options) -> ! {
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
