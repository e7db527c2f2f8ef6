//! The AP trampoline blob (`trampoline.S`), its parameter block and its relocation table.
//!
//! The blob is assembled into the library, copied at run time to a page below 1 MiB, and
//! patched there: every absolute address in it is listed in a relocation table emitted by the
//! assembler next to the code, so the page can be any SIPI-reachable page and the kernel (or a
//! position-independent program) can be loaded anywhere. The parameter block's field offsets
//! reach the assembly as `const` operands computed with `offset_of!`: there are no offsets kept
//! in step by hand.

use core::mem::{offset_of, size_of};

/// What the BSP leaves in the trampoline for the APs (layout shared with `trampoline.S`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TrampolineParams {
    /// The page-table root loaded in real mode, before paging (so below 4 GiB): the host's own
    /// when it maps this page to itself (trampoline_page.rs), else the transition tables'.
    pub cr3_before_paging: u64,
    /// The host's page-table root, loaded by the long-mode entry (any address).
    pub host_cr3: u64,
    /// Virtual address of `ap_long_mode_entry` (boot/long_mode_entry.rs).
    pub long_mode_entry: u64,
    /// CR0 to load when enabling paging.
    pub cr0: u64,
    /// CR4 to load once in 64-bit mode (skipped when it equals `cr4_before_paging`).
    pub cr4: u64,
    /// CR4 to load in real mode, before paging: `cr4` without the bits that need long mode
    /// or CR0.WP ([`ApControlState::cr4_before_paging`](super::cpu_state::ApControlState)).
    pub cr4_before_paging: u64,
    /// EFER to load before paging (LME, NXE, SCE).
    pub efer: u64,
    /// XCR0 to load when CR4.OSXSAVE is set.
    pub xcr0: u64,
}

/// Which of the trampoline's two 64-bit-mode loads the APs run; the BSP writes a NOP over the
/// others ([`patch_long_mode_work`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongModeWork {
    /// `mov cr4`: `cr4` has bits that `cr4_before_paging` leaves out.
    pub cr4_write: bool,
    /// `xsetbv`: CR4.OSXSAVE is set, so XCR0 is the BSP's to copy (SDM Vol. 1 §13.3).
    pub xsetbv: bool,
}

impl LongModeWork {
    /// The loads an AP needs to end up with `cr4`, given the `cr4_before_paging` it loaded in
    /// real mode.
    pub fn needed(cr4: u64, cr4_before_paging: u64) -> LongModeWork {
        let osxsave = x86_64::registers::control::Cr4Flags::OSXSAVE.bits();
        LongModeWork {
            cr4_write: cr4 != cr4_before_paging,
            xsetbv: cr4 & osxsave != 0,
        }
    }
}

/// A 3-byte NOP (`nop dword ptr [rax]`, SDM Vol. 2B NOP), the length of both patched loads.
const NOP3: [u8; 3] = [0x0F, 0x1F, 0x00];
/// `mov cr4, rax` (SDM Vol. 2B MOV—Move to/from Control Registers: 0F 22 /r).
const MOV_CR4_RAX: [u8; 3] = [0x0F, 0x22, 0xE0];
/// `xsetbv` (SDM Vol. 2D XSETBV: 0F 01 D1).
const XSETBV: [u8; 3] = [0x0F, 0x01, 0xD1];

/// Writes a NOP over each 64-bit-mode load of the (copied) trampoline `blob` that `work` does
/// not need. A branch around each would end a TCG translation block on every AP's path; the
/// patch is done once, on the BSP.
pub fn patch_long_mode_work(blob: &mut [u8], work: LongModeWork) {
    for (offset, keep, bytes) in [
        (cr4_write_offset(), work.cr4_write, MOV_CR4_RAX),
        (xsetbv_offset(), work.xsetbv, XSETBV),
    ] {
        let site = &mut blob[offset..offset + 3];
        assert_eq!(site, &bytes, "a patch site of trampoline.S");
        if !keep {
            site.copy_from_slice(&NOP3);
        }
    }
}

core::arch::global_asm!(
    include_str!("trampoline.S"),
    P_CR3_BEFORE_PAGING = const offset_of!(TrampolineParams, cr3_before_paging),
    P_HOST_CR3 = const offset_of!(TrampolineParams, host_cr3),
    P_LONG_MODE_ENTRY = const offset_of!(TrampolineParams, long_mode_entry),
    P_CR0 = const offset_of!(TrampolineParams, cr0),
    P_CR4 = const offset_of!(TrampolineParams, cr4),
    P_CR4_BEFORE_PAGING = const offset_of!(TrampolineParams, cr4_before_paging),
    P_EFER = const offset_of!(TrampolineParams, efer),
    P_XCR0 = const offset_of!(TrampolineParams, xcr0),
    P_SIZE = const size_of::<TrampolineParams>(),
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_params: u8;
    static ap_trampoline_gdt: u8;
    static ap_trampoline_cr4_write: u8;
    static ap_trampoline_xsetbv: u8;
    static ap_trampoline_relocs_start: u32;
    static ap_trampoline_relocs_end: u32;
}

/// The largest blob that fits the one page a SIPI vector names.
pub const PAGE_SIZE: usize = 4096;

/// The assembled trampoline, as linked (not yet relocated).
pub fn image() -> &'static [u8] {
    // SAFETY: both symbols are labels in the same section of trampoline.S, start before end;
    // the bytes between them are the assembled blob, immutable code/data of this image.
    unsafe {
        let start = &raw const ap_trampoline_start;
        let end = &raw const ap_trampoline_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// Offset of [`TrampolineParams`] inside the blob.
pub fn params_offset() -> usize {
    (&raw const ap_trampoline_params) as usize - (&raw const ap_trampoline_start) as usize
}

/// Offset of the trampoline's GDT inside the blob (three descriptors: null, 0x08 64-bit code,
/// 0x10 data), followed by its 6-byte descriptor-table pointer.
pub fn gdt_offset() -> usize {
    (&raw const ap_trampoline_gdt) as usize - (&raw const ap_trampoline_start) as usize
}

/// Offset of the trampoline's `mov cr4, rax` inside the blob.
fn cr4_write_offset() -> usize {
    (&raw const ap_trampoline_cr4_write) as usize - (&raw const ap_trampoline_start) as usize
}

/// Offset of the trampoline's `xsetbv` inside the blob.
fn xsetbv_offset() -> usize {
    (&raw const ap_trampoline_xsetbv) as usize - (&raw const ap_trampoline_start) as usize
}

/// Offsets in the blob of the 32-bit fields that need the page's physical base added.
pub fn relocations() -> &'static [u32] {
    // SAFETY: the labels bracket the table trampoline.S emits in .rodata.ap_trampoline_relocs
    // (4-byte aligned entries, start label before the first, end label after the last).
    unsafe {
        let start = &raw const ap_trampoline_relocs_start;
        let end = &raw const ap_trampoline_relocs_end;
        core::slice::from_raw_parts(start, (end as usize - start as usize) / 4)
    }
}

/// A relocation that cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocError {
    /// The field at `offset` does not lie inside the blob.
    OutOfRange {
        /// Offset of the field.
        offset: u32,
    },
    /// Adding the base overflowed 32 bits.
    Overflow {
        /// Offset of the field.
        offset: u32,
    },
}

impl core::fmt::Display for RelocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RelocError::OutOfRange { offset } => {
                write!(
                    f,
                    "trampoline relocation at offset {offset:#x} is outside the blob"
                )
            }
            RelocError::Overflow { offset } => {
                write!(
                    f,
                    "trampoline relocation at offset {offset:#x} overflows 32 bits"
                )
            }
        }
    }
}

/// Adds `base` to each little-endian u32 field of `blob` listed in `relocs`.
pub fn apply_relocations(blob: &mut [u8], relocs: &[u32], base: u32) -> Result<(), RelocError> {
    for &offset in relocs {
        let at = offset as usize;
        let field = blob
            .get_mut(at..at + 4)
            .ok_or(RelocError::OutOfRange { offset })?;
        let value = u32::from_le_bytes(field.try_into().expect("4-byte slice"));
        let patched = value
            .checked_add(base)
            .ok_or(RelocError::Overflow { offset })?;
        field.copy_from_slice(&patched.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_and_params_fit_one_page() {
        let blob = image();
        assert!(!blob.is_empty());
        assert!(
            blob.len() <= PAGE_SIZE,
            "trampoline is {} bytes",
            blob.len()
        );
        assert_eq!(params_offset() % 8, 0);
        assert!(params_offset() + size_of::<TrampolineParams>() <= blob.len());
    }

    #[test]
    fn long_mode_work_only_where_64_bit_mode_has_some() {
        use x86_64::registers::control::Cr4Flags;
        let pae = Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits();
        let pcide = Cr4Flags::PCID.bits();
        let osxsave = Cr4Flags::OSXSAVE.bits();
        let work = |cr4_write, xsetbv| LongModeWork { cr4_write, xsetbv };
        assert_eq!(LongModeWork::needed(pae, pae), work(false, false));
        assert_eq!(LongModeWork::needed(pae | pcide, pae), work(true, false));
        assert_eq!(
            LongModeWork::needed(pae | osxsave, pae | osxsave),
            work(false, true)
        );
        assert_eq!(
            LongModeWork::needed(pae | pcide | osxsave, pae | osxsave),
            work(true, true)
        );
    }

    #[test]
    fn patching_writes_nops_over_the_unneeded_loads_only() {
        let blob = image();
        let (cr4, xsetbv) = (cr4_write_offset(), xsetbv_offset());
        assert_eq!(&blob[cr4..cr4 + 3], &MOV_CR4_RAX);
        assert_eq!(&blob[xsetbv..xsetbv + 3], &XSETBV);
        for cr4_write in [false, true] {
            for keep_xsetbv in [false, true] {
                let mut patched = blob.to_vec();
                let work = LongModeWork {
                    cr4_write,
                    xsetbv: keep_xsetbv,
                };
                patch_long_mode_work(&mut patched, work);
                let want = |keep: bool, bytes: [u8; 3]| if keep { bytes } else { NOP3 };
                assert_eq!(&patched[cr4..cr4 + 3], &want(cr4_write, MOV_CR4_RAX));
                assert_eq!(&patched[xsetbv..xsetbv + 3], &want(keep_xsetbv, XSETBV));
                let changed = patched.iter().zip(blob).filter(|(a, b)| a != b).count();
                assert!(changed <= 6, "only the two sites change");
            }
        }
    }

    #[test]
    fn blob_starts_with_real_mode_cli() {
        assert_eq!(
            image()[0],
            0xFA,
            "SIPI enters at offset 0: first byte must be cli"
        );
    }

    #[test]
    fn relocation_table_lists_the_two_absolute_fields() {
        let relocs = relocations();
        // The GDT base and the far jump from real mode into 64-bit code.
        assert_eq!(relocs.len(), 2);
        let blob = image();
        for &r in relocs {
            let value = u32::from_le_bytes(blob[r as usize..r as usize + 4].try_into().unwrap());
            assert!(
                (value as usize) < blob.len(),
                "unrelocated value {value:#x} at {r:#x}"
            );
        }
        // First the far jump, whose selector follows its offset: 0x08, the 64-bit code
        // descriptor (L set, D clear); then the GDT base, in the descriptor-table pointer that
        // follows the GDT, pointing at its null descriptor.
        let at = |r: u32| {
            u32::from_le_bytes(blob[r as usize..r as usize + 4].try_into().unwrap()) as usize
        };
        let sel =
            |r: u32| u16::from_le_bytes(blob[r as usize + 4..r as usize + 6].try_into().unwrap());
        assert_eq!(sel(relocs[0]), 0x08);
        let gdt = gdt_offset();
        assert_eq!(relocs[1] as usize, gdt + 3 * 8 + 2);
        assert_eq!(at(relocs[1]), gdt);
        assert_eq!(&blob[gdt..gdt + 8], &[0u8; 8]);
        let code = u64::from_le_bytes(blob[gdt + 8..gdt + 16].try_into().unwrap());
        assert_eq!(code >> 53 & 0b11, 0b01, "L = 1, D = 0: 64-bit code");
    }

    #[test]
    fn relocating_adds_the_page_base_everywhere_listed() {
        let mut blob = image().to_vec();
        let before = blob.clone();
        apply_relocations(&mut blob, relocations(), 0x8000).unwrap();
        for &r in relocations() {
            let r = r as usize;
            let old = u32::from_le_bytes(before[r..r + 4].try_into().unwrap());
            let new = u32::from_le_bytes(blob[r..r + 4].try_into().unwrap());
            assert_eq!(new, old + 0x8000);
        }
        let changed = blob.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert!(changed <= relocations().len() * 4);
    }

    #[test]
    fn bad_relocations_are_errors() {
        let mut blob = vec![0u8; 16];
        assert_eq!(
            apply_relocations(&mut blob, &[14], 0x1000),
            Err(RelocError::OutOfRange { offset: 14 })
        );
        blob[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            apply_relocations(&mut blob, &[0], 1),
            Err(RelocError::Overflow { offset: 0 })
        );
    }
}
