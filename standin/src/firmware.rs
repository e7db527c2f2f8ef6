//! Finding the ACPI RSDP the firmware left (ACPI 6.5 §5.2.5.1 "Finding the RSDP on IA-PC
//! Systems"): the first KiB of the EBDA, whose segment is the word at 0x40E of the BIOS data
//! area, then the BIOS read-only area 0xE0000..0x100000. QEMU's SeaBIOS (pc) and qboot
//! (microvm) both place it in the latter.

use standin_core::{physmem, rsdp};

use crate::paging::phys_to_virt;

const EBDA_POINTER: u64 = 0x40E;
const BIOS_AREA: (u64, u64) = (0xE_0000, 0x10_0000);

fn physical(start: u64, len: u64) -> &'static [u8] {
    // SAFETY: firmware areas below 1 MiB (BIOS data area, EBDA, BIOS ROM), which the frame
    // allocator never hands out, through the physical view (the boot identity map or the
    // direct map), only read; nothing writes them meanwhile.
    unsafe { core::slice::from_raw_parts(phys_to_virt(start), len as usize) }
}

/// Where the EBDA starts, if the BIOS data area names one (the frame allocator stops below it).
pub fn ebda_base() -> Option<u64> {
    let segment = u16::from_le_bytes(physical(EBDA_POINTER, 2).try_into().ok()?);
    physmem::ebda_base(segment)
}

/// The RSDP's physical address, if the firmware left one.
pub fn find_rsdp() -> Option<u64> {
    if let Some(ebda) = ebda_base() {
        if let Some(found) = rsdp::find(physical(ebda, 1024), ebda) {
            return Some(found);
        }
    }
    rsdp::find(
        physical(BIOS_AREA.0, BIOS_AREA.1 - BIOS_AREA.0),
        BIOS_AREA.0,
    )
}
