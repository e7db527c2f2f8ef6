//! standin_host: a stand-in for a Unikraft kernel built without SMP, to test the `multicore`
//! library in its user's real setting. It boots on one CPU (multiboot 1), finds a static-pie
//! Linux program in the initrd, loads it high and runs it **in ring 0** with interrupts on,
//! answering its Linux system calls; it never starts another CPU (the program may, through the
//! library). Low memory is laid out as on Unikraft (standin_core::layout): the page-table root
//! at 0x11000, page tables and the program's pages above it, and 0x1000..0x11000 a dead boot
//! stack, the only low RAM the program may borrow, filled with a pattern and checked at exit.
//!
//! Command line (`-append`): `[load=ADDR] [stack=SIZE] [occupy=PAGE]... [env.KEY=VALUE]...
//! -- /program args...`; see `standin_core::cmdline`. The program's exit status 0 ends QEMU
//! with 33 (isa-debug-exit 0x10), anything else with 35.
#![no_std]
#![no_main]

mod boot;
mod clock;
mod console;
mod cpu;
mod exit;
mod fault;
mod finish;
mod firmware;
mod frames;
mod gdt;
mod idt;
mod lowmem;
mod paging;
mod percpu;
mod pic;
mod pit;
mod program;
mod random;
mod rtc;
mod stacks;
mod syscall;
mod timer;
mod trap;
mod user;
mod virtual_wire;

use standin_core::cmdline;
use standin_core::linux::auxv::HWCAP2_FSGSBASE;
use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::{Efer, Msr};

/// IA32_APIC_BASE (SDM Vol. 4 Table 2-2): reported, never changed (the local APIC stays in
/// the xAPIC mode the firmware left).
const IA32_APIC_BASE: u32 = 0x1B;

/// Entered from entry.S in long mode on the boot stack, interrupts off, under the boot
/// identity map of the first 4 GiB.
#[no_mangle]
extern "C" fn kmain(magic: u32, info: u32) -> ! {
    console::init();
    println!("standin: stand-in for a Unikraft kernel without SMP: one CPU, the program in ring 0");
    let boot = match boot::read_multiboot(magic, info) {
        Ok(boot) => boot,
        Err(why) => fail!("{why}"),
    };
    println!("standin: command line: {}", boot.cmdline());
    let line = match cmdline::parse(boot.cmdline()) {
        Ok(line) => line,
        Err(e) => fail!("{e}"),
    };
    let features = cpu::detect();
    let (ram, for_frames) = frames::init(boot);
    let cr3 = match paging::init(features.nx, features.page_1g, frames::top_of_ram(boot)) {
        Ok(cr3) => cr3,
        Err(e) => fail!("cannot build the page tables: {e:?}"),
    };
    let mut low_free = lowmem::free_ranges(boot);
    for &page in line.occupied_pages() {
        if !lowmem::take_page(&mut low_free, page) {
            fail!("occupy={page:#x} is not in the free low RAM ({low_free})");
        }
    }
    // The multiboot information QEMU left in the dead boot stack was copied by read_multiboot.
    lowmem::init(&low_free, line.occupied_pages());
    finish::low_memory_is_live();
    println!(
        "standin: RAM {} MiB, {} MiB for the program; low RAM left to it: {low_free}; all RAM at {:#x} ({} pages)",
        ram >> 20,
        for_frames >> 20,
        standin_core::layout::PHYS_OFFSET,
        if features.page_1g { "1 GiB" } else { "2 MiB" }
    );
    percpu::init();
    gdt::init();
    idt::init();
    let xcr0 = match cpu::enable_fpu_sse(&features) {
        Ok(xcr0) => xcr0,
        Err(why) => fail!("{why}"),
    };
    timer::start();
    let wire = virtual_wire::ensure();
    let tsc_hz = match clock::calibrate() {
        Ok(hz) => hz,
        Err(why) => fail!("{why}"),
    };
    clock::set_boot_time(rtc::unix_seconds().unwrap_or(0));
    random::init(features.rdrand);
    syscall::init();
    // SAFETY: reading IA32_APIC_BASE has no side effect; every x86_64 CPU with an APIC has it.
    let apic_base = unsafe { Msr::new(IA32_APIC_BASE).read() };
    println!(
        "standin: CR0 {:#x} CR4 {:#x} EFER {:#x} XCR0 {xcr0:#x} CR3 {cr3:#x} APIC_BASE {apic_base:#x}{}",
        Cr0::read_raw(),
        Cr4::read_raw(),
        Efer::read_raw(),
        if features.x2apic { " (x2APIC offered, xAPIC kept)" } else { "" }
    );
    println!(
        "standin: TSC {} kHz (calibrated against the PIT); timer: PIT at {} Hz on IRQ 0, 8259 PIC, {wire}{}",
        tsc_hz / 1000,
        pit::TICK_HZ,
        if random::uses_rdrand() { "; RDRAND" } else { "" }
    );
    let rsdp = firmware::find_rsdp();
    match rsdp {
        Some(at) => println!("standin: ACPI RSDP at {at:#x}"),
        None => println!("standin: no ACPI RSDP found"),
    }
    let facts = program::HostFacts {
        rsdp,
        low_free: &low_free,
        hwcap: features.leaf1_edx as u64,
        hwcap2: if features.fsgsbase {
            HWCAP2_FSGSBASE
        } else {
            0
        },
    };
    program::run(&line, boot, &facts)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    fail!("host panic: {} at {file}:{line}", info.message())
}
