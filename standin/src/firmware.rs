//! Finding the ACPI RSDP the firmware left (ACPI 6.5 §5.2.5.1 "Finding the RSDP on IA-PC
//! Systems"): the first KiB of the EBDA, whose segment is the word at 0x40E of the BIOS data
//! area, then the BIOS read-only area 0xE0000..0x100000. QEMU's SeaBIOS (pc) and qboot
//! (microvm) both place it in the latter.

use standin_core::rsdp;

use crate::paging::phys_to_virt;

const EBDA_POINTER: u64 = 0x40E;
const BIOS_AREA: (u64, u64) = (0xE_0000, 0x10_0000);

fn physical(start: u64, len: u64) -> &'static [u8] {
    // SAFETY: low physical memory (below 1 MiB: RAM or firmware ROM) through the direct map,
    // only read; nothing writes it meanwhile.
    unsafe { core::slice::from_raw_parts(phys_to_virt(start), len as usize) }
}

/// The RSDP's physical address, if the firmware left one.
pub fn find_rsdp() -> Option<u64> {
    let segment = u16::from_le_bytes(physical(EBDA_POINTER, 2).try_into().ok()?) as u64;
    let ebda = segment << 4;
    if (0x8_0000..0xA_0000).contains(&ebda) {
        if let Some(found) = rsdp::find(physical(ebda, 1024), ebda) {
            return Some(found);
        }
    }
    rsdp::find(
        physical(BIOS_AREA.0, BIOS_AREA.1 - BIOS_AREA.0),
        BIOS_AREA.0,
    )
}
