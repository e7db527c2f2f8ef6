//! The first Rust an AP runs (step c of the map in `boot/mod.rs`), called by the long-mode
//! entry (`long_mode_entry.S`) on the AP's own stack.

use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::cpu_data::CpuData;
use crate::arch::x86_64::apic::LocalApic;

/// The GDT APs switch to, in the library's own memory: the trampoline's GDT lives in the
/// borrowed low page, which is given back after the bring-up. Its descriptors are the
/// trampoline's, at the same selectors (0x08 64-bit code, 0x10 data; unit-tested), so the CS
/// the trampoline's far jump loaded stays what a reload would give and it is not reloaded
/// (SDM Vol. 3A §3.4.3: a segment register's hidden part changes only when it is loaded); nor
/// SS, loaded by the trampoline from its data descriptor. DS, ES, FS and GS hold the null
/// selectors INIT left (trampoline.S).
static AP_GDT: GlobalDescriptorTable = {
    let mut gdt = GlobalDescriptorTable::new();
    gdt.append(Descriptor::kernel_code_segment());
    gdt.append(Descriptor::kernel_data_segment());
    gdt
};

/// Called by the long-mode entry with the AP's own `CpuData`, on its own stack, interrupts off.
///
/// What runs here is the AP's cold path up to check-in: kept to straight-line code (its callees
/// inline, values the BSP could compute in `CpuData`), since under TCG each call, return and
/// branch ends a translation block that the first AP translates while the others wait on it.
pub(crate) extern "C" fn ap_rust_entry(cpu: &'static CpuData) -> ! {
    cpu.stamps.stamp_rust(crate::arch::x86_64::tsc::now());
    // The long-mode entry loaded AP_GDT (ap_boot_table.gdt, `gdt_pointer`). This AP is the
    // library's alone (the host knows nothing of it): its GS base points at its identity block
    // before any other library code runs here.
    crate::cpu_local::install_on_ap(cpu.cpu_local_block);
    LocalApic::init_ap();
    cpu.mark_arrived();
    (cpu.entry)(cpu)
}

/// The pointer to AP_GDT that the long-mode entry loads (`lgdt`, through `ap_boot_table`).
pub(super) fn gdt_pointer() -> DescriptorTablePointer {
    DescriptorTablePointer {
        limit: AP_GDT.limit(),
        base: VirtAddr::new_truncate(AP_GDT.entries().as_ptr() as u64),
    }
}

/// Parks this CPU for good: interrupts off, halted. It uses no host CPU time (a halted vCPU
/// sleeps in QEMU/KVM) and only an NMI, SMI or INIT would wake it.
pub fn park_this_cpu() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::AP_GDT;
    use crate::arch::x86_64::trampoline;

    /// The trampoline's GDT is the library's, descriptor for descriptor: the AP keeps the CS
    /// it loaded from the first when it switches to the second.
    #[test]
    fn trampoline_gdt_matches_the_libraries() {
        let blob = trampoline::image();
        let gdt = trampoline::gdt_offset();
        let pointer = gdt + 8 * AP_GDT.entries().len();
        let limit = u16::from_le_bytes(blob[pointer..pointer + 2].try_into().unwrap());
        assert_eq!(limit, AP_GDT.limit());
        for (i, entry) in AP_GDT.entries().iter().enumerate() {
            let at = gdt + 8 * i;
            let quad = u64::from_le_bytes(blob[at..at + 8].try_into().unwrap());
            assert_eq!(quad, entry.raw(), "descriptor {:#x}", 8 * i);
        }
    }
}
