//! The Root System Description Pointer (ACPI 6.5 §5.2.5): where the ACPI table tree starts.

use super::bios::{ebda_base, scan_paragraphs, EBDA_SEARCH_LEN};
use super::checksum::{byte_sum, slice_sum};
use super::AcpiError;
use crate::le_fields::{array_at, u32_at, u64_at};
use crate::phys::PhysRead;

// ACPI 6.5 §5.2.5.3 Root System Description Pointer (RSDP) Structure.
/// The RSDP signature (note the trailing space).
pub const RSDP_SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Size of the ACPI 1.0 part of the RSDP, which the first checksum covers.
pub const RSDP_V1_LEN: usize = 20;
/// Size of the revision 2 RSDP; its Length field must be at least this.
pub const RSDP_V2_LEN: usize = 36;
/// Upper bound accepted for the Length field: the structure is 36 bytes today, so anything
/// much larger is corruption and should not drive a long checksum read.
pub const RSDP_MAX_LEN: u32 = 4096;

// Field offsets, ACPI 6.5 §5.2.5.3 (Table "RSDP Structure").
const OFF_OEM_ID: usize = 9;
const OFF_REVISION: usize = 15;
const OFF_RSDT_ADDRESS: usize = 16;
const OFF_LENGTH: usize = 20;
const OFF_XSDT_ADDRESS: usize = 24;

/// Revision value of ACPI 2.0 and later RSDPs, which add Length, XSDT address and the extended
/// checksum (ACPI 1.0 used 0). ACPI 6.5 §5.2.5.3.
const FIRST_EXTENDED_REVISION: u8 = 2;

/// A validated RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// 0 for ACPI 1.0, 2 for ACPI 2.0 and later.
    pub revision: u8,
    /// OEM-supplied identification string.
    pub oem_id: [u8; 6],
    /// 32-bit physical address of the RSDT (may be 0 on systems that only have an XSDT).
    pub rsdt_address: u32,
    /// 64-bit physical address of the XSDT: `None` for revision 0 RSDPs, and also when a
    /// revision 2+ RSDP stores 0 there (no XSDT).
    pub xsdt_address: Option<u64>,
}

/// Reads and validates the RSDP at `pa`: signature, the checksum over the first 20 bytes, and
/// for revision 2+ also a sane Length and the extended checksum over Length bytes.
///
/// Only the 20-byte ACPI 1.0 part is read before the revision is known, so a revision 0 RSDP
/// at the very end of readable memory still parses.
pub fn parse_rsdp(mem: &impl PhysRead, pa: u64) -> Result<Rsdp, AcpiError> {
    let read_err = |source| AcpiError::Read {
        what: "RSDP",
        source,
    };
    let v1: [u8; RSDP_V1_LEN] = mem.read_array(pa).map_err(read_err)?;
    if v1[..8] != RSDP_SIGNATURE {
        return Err(AcpiError::RsdpSignature { address: pa });
    }
    if slice_sum(&v1) != 0 {
        return Err(AcpiError::RsdpChecksum { address: pa });
    }
    let revision = v1[OFF_REVISION];
    let oem_id = array_at(&v1, OFF_OEM_ID);
    let rsdt_address = u32_at(&v1, OFF_RSDT_ADDRESS);
    let mut rsdp = Rsdp {
        revision,
        oem_id,
        rsdt_address,
        xsdt_address: None,
    };
    if revision < FIRST_EXTENDED_REVISION {
        return Ok(rsdp);
    }

    let v2: [u8; RSDP_V2_LEN] = mem.read_array(pa).map_err(read_err)?;
    let length = u32_at(&v2, OFF_LENGTH);
    if !(RSDP_V2_LEN as u32..=RSDP_MAX_LEN).contains(&length) {
        return Err(AcpiError::RsdpLength {
            address: pa,
            length,
        });
    }
    if byte_sum(mem, pa, length.into()).map_err(read_err)? != 0 {
        return Err(AcpiError::RsdpExtendedChecksum {
            address: pa,
            length,
        });
    }
    let xsdt = u64_at(&v2, OFF_XSDT_ADDRESS);
    rsdp.xsdt_address = (xsdt != 0).then_some(xsdt);
    Ok(rsdp)
}

/// Searches the legacy BIOS areas for a valid RSDP, as ACPI 6.5 §5.2.5.1 prescribes for
/// IA-PC systems booted without a firmware-provided pointer: the first KiB of the EBDA, then
/// the BIOS read-only area 0xE0000..0x100000, on 16-byte boundaries.
///
/// A signature match only counts if [`parse_rsdp`] accepts it (checksums valid); bad
/// candidates are passed over. Returns the physical address of the first valid RSDP.
pub fn find_rsdp_in_bios_area(mem: &impl PhysRead) -> Option<u64> {
    // ACPI 6.5 §5.2.5.1: "The BIOS read-only memory space between 0E0000h and 0FFFFFh".
    const ROM_START: u64 = 0xE_0000;
    const ROM_END: u64 = 0x10_0000;
    let valid = |pa| parse_rsdp(mem, pa).is_ok();
    ebda_base(mem)
        .and_then(|ebda| scan_paragraphs(mem, ebda, ebda + EBDA_SEARCH_LEN, &RSDP_SIGNATURE, valid))
        .or_else(|| scan_paragraphs(mem, ROM_START, ROM_END, &RSDP_SIGNATURE, valid))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_mem::{low_memory, FakeMem};

    /// Builds an RSDP image with correct checksums.
    pub(crate) fn rsdp_image(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let len = if revision >= 2 {
            RSDP_V2_LEN
        } else {
            RSDP_V1_LEN
        };
        let mut b = vec![0u8; len];
        b[..8].copy_from_slice(&RSDP_SIGNATURE);
        b[OFF_OEM_ID..OFF_OEM_ID + 6].copy_from_slice(b"BOCHS ");
        b[OFF_REVISION] = revision;
        b[OFF_RSDT_ADDRESS..OFF_RSDT_ADDRESS + 4].copy_from_slice(&rsdt.to_le_bytes());
        if revision >= 2 {
            b[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&(RSDP_V2_LEN as u32).to_le_bytes());
            b[OFF_XSDT_ADDRESS..OFF_XSDT_ADDRESS + 8].copy_from_slice(&xsdt.to_le_bytes());
        }
        fix_checksums(&mut b);
        b
    }

    /// Recomputes both checksums of an RSDP image (after a test edits it).
    pub(crate) fn fix_checksums(b: &mut [u8]) {
        b[8] = 0;
        b[8] = 0u8.wrapping_sub(slice_sum(&b[..RSDP_V1_LEN]));
        if b.len() >= RSDP_V2_LEN {
            b[32] = 0;
            b[32] = 0u8.wrapping_sub(slice_sum(b));
        }
    }

    pub(crate) fn rsdp_v0(rsdt: u32) -> Vec<u8> {
        rsdp_image(0, rsdt, 0)
    }

    pub(crate) fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
        rsdp_image(2, rsdt, xsdt)
    }

    #[test]
    fn parses_revision_0() {
        // A 20-byte region: parsing must not read past the ACPI 1.0 structure.
        let mem = FakeMem::new().with(0xF_0000, rsdp_v0(0x7FE_1000));
        let rsdp = parse_rsdp(&mem, 0xF_0000).unwrap();
        assert_eq!(
            rsdp,
            Rsdp {
                revision: 0,
                oem_id: *b"BOCHS ",
                rsdt_address: 0x7FE_1000,
                xsdt_address: None
            }
        );
    }

    #[test]
    fn parses_revision_2() {
        let mem = FakeMem::new().with(0xF_0000, rsdp_v2(0x7FE_1000, 0x1_2345_6000));
        let rsdp = parse_rsdp(&mem, 0xF_0000).unwrap();
        assert_eq!(rsdp.revision, 2);
        assert_eq!(rsdp.rsdt_address, 0x7FE_1000);
        assert_eq!(rsdp.xsdt_address, Some(0x1_2345_6000));
    }

    #[test]
    fn revision_2_with_zero_xsdt_has_none() {
        let mem = FakeMem::new().with(0x1000, rsdp_v2(0x2000, 0));
        assert_eq!(parse_rsdp(&mem, 0x1000).unwrap().xsdt_address, None);
    }

    #[test]
    fn rejects_bad_signature() {
        let mut img = rsdp_v0(0x2000);
        img[0] = b'X';
        fix_checksums(&mut img);
        let mem = FakeMem::new().with(0x1000, img);
        assert_eq!(
            parse_rsdp(&mem, 0x1000),
            Err(AcpiError::RsdpSignature { address: 0x1000 })
        );
    }

    #[test]
    fn rejects_bad_checksum() {
        let mut img = rsdp_v2(0x2000, 0x3000);
        img[8] = img[8].wrapping_add(1);
        let mem = FakeMem::new().with(0x1000, img);
        let err = parse_rsdp(&mem, 0x1000).unwrap_err();
        assert_eq!(err, AcpiError::RsdpChecksum { address: 0x1000 });
        assert_eq!(
            err.to_string(),
            "ACPI RSDP at 0x1000 has a bad checksum (first 20 bytes)"
        );
    }

    #[test]
    fn rejects_bad_extended_checksum() {
        let mut img = rsdp_v2(0x2000, 0x3000);
        img[32] = img[32].wrapping_add(1);
        let mem = FakeMem::new().with(0x1000, img);
        let err = parse_rsdp(&mem, 0x1000).unwrap_err();
        assert_eq!(
            err,
            AcpiError::RsdpExtendedChecksum {
                address: 0x1000,
                length: 36
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI RSDP at 0x1000 has a bad extended checksum (over 36 bytes)"
        );
    }

    #[test]
    fn rejects_bad_length() {
        for length in [0u32, 20, 35, RSDP_MAX_LEN + 1, u32::MAX] {
            let mut img = rsdp_v2(0x2000, 0x3000);
            img[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_le_bytes());
            fix_checksums(&mut img);
            let mem = FakeMem::new().with(0x1000, img);
            assert_eq!(
                parse_rsdp(&mem, 0x1000),
                Err(AcpiError::RsdpLength {
                    address: 0x1000,
                    length
                })
            );
        }
    }

    #[test]
    fn unreadable_rsdp_is_a_read_error() {
        let mem = FakeMem::new().with(0x1000, rsdp_v2(0x2000, 0x3000)[..20].to_vec());
        // The v1 part checks out but the v2 part is cut off.
        let mut img = rsdp_v2(0x2000, 0x3000)[..20].to_vec();
        img[8] = 0;
        img[8] = 0u8.wrapping_sub(slice_sum(&img));
        let mem2 = FakeMem::new().with(0x1000, img);
        for m in [&mem, &mem2] {
            let err = parse_rsdp(m, 0x1000).unwrap_err();
            assert!(
                matches!(err, AcpiError::Read { what: "RSDP", .. }),
                "{err:?}"
            );
        }
        assert!(matches!(
            parse_rsdp(&FakeMem::new(), 0x1000),
            Err(AcpiError::Read { .. })
        ));
    }

    #[test]
    fn scan_finds_rsdp_in_ebda() {
        let mut mem = low_memory();
        mem.poke(0x40E, &0x9FC0u16.to_le_bytes());
        mem.poke(0x9_FC40, &rsdp_v2(0x2000, 0x3000));
        // A valid one in the ROM area too: the EBDA comes first.
        mem.poke(0xE_0000, &rsdp_v0(0x2000));
        assert_eq!(find_rsdp_in_bios_area(&mem), Some(0x9_FC40));
    }

    #[test]
    fn scan_only_searches_first_kib_of_ebda() {
        let mut mem = low_memory();
        mem.poke(0x40E, &0x9000u16.to_le_bytes());
        mem.poke(0x9_0400, &rsdp_v0(0x2000));
        assert_eq!(find_rsdp_in_bios_area(&mem), None);
    }

    #[test]
    fn scan_finds_rsdp_in_rom_area() {
        let mut mem = low_memory();
        mem.poke(0xF_5A30, &rsdp_v0(0x2000));
        assert_eq!(find_rsdp_in_bios_area(&mem), Some(0xF_5A30));
        // A chunked scan: far fewer reads than the 8192 paragraphs it covers.
        assert!(mem.reads() < 200, "{} reads", mem.reads());
    }

    #[test]
    fn scan_skips_bad_candidates() {
        let mut mem = low_memory();
        mem.poke(0x40E, &0x9FC0u16.to_le_bytes());
        // Bad checksum in the EBDA, bad extended checksum and misaligned ones in the ROM area.
        let mut bad = rsdp_v0(0x2000);
        bad[8] ^= 0xFF;
        mem.poke(0x9_FC00, &bad);
        let mut bad_ext = rsdp_v2(0x2000, 0x3000);
        bad_ext[32] ^= 0xFF;
        mem.poke(0xE_0000, &bad_ext);
        mem.poke(0xE_1008, &rsdp_v0(0x2000));
        mem.poke(0xE_2000, b"RSD PTR ");
        mem.poke(0xF_FFE0, &rsdp_v0(0x2000));
        assert_eq!(find_rsdp_in_bios_area(&mem), Some(0xF_FFE0));
    }

    #[test]
    fn scan_finds_nothing_in_empty_memory() {
        assert_eq!(find_rsdp_in_bios_area(&low_memory()), None);
        assert_eq!(find_rsdp_in_bios_area(&FakeMem::new()), None);
    }
}
