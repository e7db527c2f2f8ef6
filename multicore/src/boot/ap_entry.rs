//! The first Rust an AP runs (step c of the map in `boot/mod.rs`), called by the long-mode
//! entry (`long_mode_entry.S`) on the AP's own stack.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};

use super::cpu_data::CpuData;
use crate::arch::x86_64::apic::LocalApic;

/// The GDT APs switch to, in the library's own memory: the trampoline's GDT lives in the
/// borrowed low page, which is given back after the bring-up.
static AP_GDT: GlobalDescriptorTable = {
    let mut gdt = GlobalDescriptorTable::new();
    gdt.append(Descriptor::kernel_code_segment());
    gdt.append(Descriptor::kernel_data_segment());
    gdt
};
const KERNEL_CS: SegmentSelector = SegmentSelector(0x08);
const KERNEL_DS: SegmentSelector = SegmentSelector(0x10);

/// Called by the long-mode entry with the AP's own `CpuData`, on its own stack, interrupts off.
pub(crate) extern "C" fn ap_rust_entry(cpu: &'static CpuData) -> ! {
    cpu.stamps.stamp_rust(crate::arch::x86_64::tsc::now());
    AP_GDT.load();
    // SAFETY: AP_GDT has a 64-bit kernel code descriptor at 0x08 and a data descriptor at 0x10
    // (appended in that order above), and it is now loaded.
    unsafe {
        CS::set_reg(KERNEL_CS);
        SS::set_reg(KERNEL_DS);
        DS::set_reg(KERNEL_DS);
        ES::set_reg(KERNEL_DS);
    }
    // This AP is the library's alone (the host knows nothing of it): its GS base points at its
    // identity block before any other library code runs here.
    crate::cpu_local::install_on_ap(cpu.index);
    LocalApic::init_ap();
    cpu.mark_arrived();
    (cpu.entry)(cpu)
}

/// Parks this CPU for good: interrupts off, halted. It uses no host CPU time (a halted vCPU
/// sleeps in QEMU/KVM) and only an NMI, SMI or INIT would wake it.
pub fn park_this_cpu() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
