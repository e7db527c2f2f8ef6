//! The System Description Table header shared by every ACPI table (ACPI 6.5 §5.2.6), its
//! checksum, and the search of the root tables: the RSDT (§5.2.7, 32-bit entries) and the XSDT
//! (§5.2.8, 64-bit entries).

use super::checksum::byte_sum;
use super::{AcpiError, Rsdp};
use crate::le_fields::{array_at, u32_at, u64_at};
use crate::phys::PhysRead;

/// Size of the System Description Table header. ACPI 6.5 §5.2.6.
pub const SDT_HEADER_LEN: usize = 36;

/// Longest table accepted. Real tables are a few KiB at most (a 4096-CPU MADT with x2APIC
/// entries is about 64 KiB); a larger Length is corruption and must not turn into a huge read.
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Signature of the Root System Description Table. ACPI 6.5 §5.2.7.
pub const RSDT_SIGNATURE: [u8; 4] = *b"RSDT";
/// Signature of the Extended System Description Table. ACPI 6.5 §5.2.8.
pub const XSDT_SIGNATURE: [u8; 4] = *b"XSDT";

// Header field offsets, ACPI 6.5 §5.2.6 (Table "DESCRIPTION_HEADER Fields").
const OFF_LENGTH: usize = 4;
const OFF_REVISION: usize = 8;
const OFF_CHECKSUM: usize = 9;
const OFF_OEM_ID: usize = 10;
const OFF_OEM_TABLE_ID: usize = 16;
const OFF_OEM_REVISION: usize = 24;
const OFF_CREATOR_ID: usize = 28;
const OFF_CREATOR_REVISION: usize = 32;

/// Bytes of root-table entries read at once while searching (16 XSDT or 32 RSDT entries).
const ENTRY_CHUNK: usize = 128;

/// Most bytes one search sums for its candidates' checksums (tables with the wanted signature;
/// others are passed over unsummed): four tables of the largest length accepted, where real
/// firmware has one MADT of a few KiB. Without a bound, a root table of 131 072 entries
/// each naming a 1 MiB candidate with a bad checksum (or one candidate, many times) would have
/// the boot sum 128 GiB.
const MAX_CANDIDATE_BYTES: u64 = 4 * MAX_TABLE_LEN as u64;

/// The 36-byte header that starts every ACPI system description table. ACPI 6.5 §5.2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Table identifier, e.g. `*b"APIC"` for the MADT.
    pub signature: [u8; 4],
    /// Length of the whole table in bytes, header included.
    pub length: u32,
    /// Revision of the table's structure (its meaning depends on the signature).
    pub revision: u8,
    /// Byte that makes the whole table sum to zero.
    pub checksum: u8,
    /// OEM identification string.
    pub oem_id: [u8; 6],
    /// OEM identifier of this particular table.
    pub oem_table_id: [u8; 8],
    /// OEM revision of the table.
    pub oem_revision: u32,
    /// Vendor ID of the tool that created the table.
    pub creator_id: [u8; 4],
    /// Revision of that tool.
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Decodes a header from its 36 raw bytes (no validation).
    pub fn from_bytes(b: &[u8; SDT_HEADER_LEN]) -> Self {
        Self {
            signature: array_at(b, 0),
            length: u32_at(b, OFF_LENGTH),
            revision: b[OFF_REVISION],
            checksum: b[OFF_CHECKSUM],
            oem_id: array_at(b, OFF_OEM_ID),
            oem_table_id: array_at(b, OFF_OEM_TABLE_ID),
            oem_revision: u32_at(b, OFF_OEM_REVISION),
            creator_id: array_at(b, OFF_CREATOR_ID),
            creator_revision: u32_at(b, OFF_CREATOR_REVISION),
        }
    }
}

/// Where a validated table lives in physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLocation {
    /// Physical address of the table header.
    pub address: u64,
    /// The table's Length field (header included), already checked against its checksum.
    pub length: u32,
    /// Whether it was found through the XSDT (`false`: through the RSDT).
    pub via_xsdt: bool,
}

/// Reads the table header at `pa` and validates it: the signature (when `expected` is given),
/// a Length between [`SDT_HEADER_LEN`] and [`MAX_TABLE_LEN`], and the checksum over Length
/// bytes, which is computed by streaming through memory in small chunks.
pub fn validate_table(
    mem: &impl PhysRead,
    pa: u64,
    expected: Option<&[u8; 4]>,
) -> Result<SdtHeader, AcpiError> {
    let raw = mem
        .read_array::<SDT_HEADER_LEN>(pa)
        .map_err(|source| AcpiError::Read {
            what: "ACPI table header",
            source,
        })?;
    let header = SdtHeader::from_bytes(&raw);
    if let Some(expected) = expected {
        if header.signature != *expected {
            return Err(AcpiError::TableSignature {
                address: pa,
                expected: *expected,
                found: header.signature,
            });
        }
    }
    let (signature, length) = (header.signature, header.length);
    if !(SDT_HEADER_LEN as u32..=MAX_TABLE_LEN).contains(&length) {
        return Err(AcpiError::TableLength {
            address: pa,
            signature,
            length,
        });
    }
    let sum = byte_sum(mem, pa, length.into()).map_err(|source| AcpiError::Read {
        what: "ACPI table (for its checksum)",
        source,
    })?;
    if sum != 0 {
        return Err(AcpiError::TableChecksum {
            address: pa,
            signature,
            length,
        });
    }
    Ok(header)
}

/// Finds the table with `signature` through the root table the RSDP points to.
///
/// The XSDT is preferred whenever the RSDP has one with a valid header: ACPI 6.5 §5.2.5.3 and
/// §5.2.8 make it supersede the RSDT, and some firmware (QEMU's `microvm`) ships a revision 2
/// RSDP whose RSDT has no entries at all. The RSDT is used when there is no XSDT or it is
/// invalid (bad signature, length or checksum). Only the chosen root table is searched.
///
/// Entries that point to a table with the wanted signature but a bad length or checksum, or
/// whose header cannot be read, are skipped: the first valid match wins. When none is found the
/// error counts what was skipped.
pub fn find_table(
    mem: &impl PhysRead,
    rsdp: &Rsdp,
    signature: &[u8; 4],
) -> Result<TableLocation, AcpiError> {
    if let Some(xsdt) = rsdp.xsdt_address {
        if let Ok(header) = validate_table(mem, xsdt, Some(&XSDT_SIGNATURE)) {
            return search_root(mem, xsdt, &header, signature);
        }
    }
    let rsdt = u64::from(rsdp.rsdt_address);
    if rsdt == 0 {
        return Err(AcpiError::NoRootTable {
            xsdt_address: rsdp.xsdt_address,
        });
    }
    let header = validate_table(mem, rsdt, Some(&RSDT_SIGNATURE))?;
    search_root(mem, rsdt, &header, signature)
}

/// Walks the entries of a validated RSDT or XSDT (told apart by `root.signature`).
fn search_root(
    mem: &impl PhysRead,
    root_address: u64,
    root: &SdtHeader,
    signature: &[u8; 4],
) -> Result<TableLocation, AcpiError> {
    let via_xsdt = root.signature == XSDT_SIGNATURE;
    // ACPI 6.5 §5.2.7 / §5.2.8: an array of 32-bit (RSDT) or 64-bit (XSDT) physical addresses
    // right after the header; a trailing partial entry is ignored.
    let entry_size = if via_xsdt { 8 } else { 4 };
    let entries = (root.length as usize - SDT_HEADER_LEN) / entry_size;
    let (mut invalid, mut unreadable) = (0, 0);
    let mut budget = MAX_CANDIDATE_BYTES;

    let mut buf = [0u8; ENTRY_CHUNK];
    let mut index = 0;
    while index < entries {
        let n = (entries - index).min(ENTRY_CHUNK / entry_size);
        let at = root_address + (SDT_HEADER_LEN + index * entry_size) as u64;
        let chunk = &mut buf[..n * entry_size];
        mem.read(at, chunk).map_err(|source| AcpiError::Read {
            what: if via_xsdt {
                "XSDT entries"
            } else {
                "RSDT entries"
            },
            source,
        })?;
        for entry in chunk.chunks_exact(entry_size) {
            let address = if via_xsdt {
                u64_at(entry, 0)
            } else {
                u32_at(entry, 0).into()
            };
            if address == 0 {
                continue;
            }
            let Ok(raw) = mem.read_array::<8>(address) else {
                unreadable += 1;
                continue;
            };
            if raw[..4] != *signature {
                continue;
            }
            // Only a length validate_table accepts costs a checksum; one that no longer fits
            // the budget makes the candidate invalid without being summed.
            let length = u32_at(&raw, OFF_LENGTH);
            if (SDT_HEADER_LEN as u32..=MAX_TABLE_LEN).contains(&length) {
                match budget.checked_sub(length.into()) {
                    Some(left) => budget = left,
                    None => {
                        invalid += 1;
                        continue;
                    }
                }
            }
            match validate_table(mem, address, Some(signature)) {
                Ok(header) => {
                    return Ok(TableLocation {
                        address,
                        length: header.length,
                        via_xsdt,
                    })
                }
                Err(AcpiError::Read { .. }) => unreadable += 1,
                Err(_) => invalid += 1,
            }
        }
        index += n;
    }
    Err(AcpiError::TableNotFound {
        signature: *signature,
        root: root.signature,
        root_address,
        entries,
        invalid,
        unreadable,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acpi::checksum::slice_sum;
    use crate::acpi::rsdp::tests::{rsdp_v0, rsdp_v2};
    use crate::acpi::{parse_rsdp, Rsdp};
    use crate::test_mem::FakeMem;

    /// Builds a table image: header (with a correct checksum) followed by `body`.
    pub(crate) fn sdt_image(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; SDT_HEADER_LEN];
        b[..4].copy_from_slice(signature);
        b[OFF_REVISION] = revision;
        b[OFF_OEM_ID..OFF_OEM_ID + 6].copy_from_slice(b"BOCHS ");
        b[OFF_OEM_TABLE_ID..OFF_OEM_TABLE_ID + 8].copy_from_slice(b"BXPC    ");
        b[OFF_CREATOR_ID..OFF_CREATOR_ID + 4].copy_from_slice(b"BXPC");
        b.extend_from_slice(body);
        let len = b.len() as u32;
        b[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut b);
        b
    }

    /// Recomputes a table image's checksum over its whole length.
    pub(crate) fn fix_checksum(b: &mut [u8]) {
        b[OFF_CHECKSUM] = 0;
        b[OFF_CHECKSUM] = 0u8.wrapping_sub(slice_sum(b));
    }

    /// Builds an RSDT (32-bit entries) or XSDT (64-bit entries) pointing at `tables`.
    pub(crate) fn root_table(signature: &[u8; 4], tables: &[u64]) -> Vec<u8> {
        let mut body = Vec::new();
        for &t in tables {
            if signature == b"XSDT" {
                body.extend_from_slice(&t.to_le_bytes());
            } else {
                body.extend_from_slice(&u32::try_from(t).unwrap().to_le_bytes());
            }
        }
        sdt_image(signature, 1, &body)
    }

    fn table(sig: &[u8; 4]) -> Vec<u8> {
        sdt_image(sig, 1, &[0x5A; 20])
    }

    fn rsdp(mem: &FakeMem) -> Rsdp {
        parse_rsdp(mem, 0x1000).unwrap()
    }

    #[test]
    fn header_fields_decode() {
        let img = sdt_image(b"APIC", 5, &[1, 2, 3, 4]);
        let h = SdtHeader::from_bytes(&img[..SDT_HEADER_LEN].try_into().unwrap());
        assert_eq!(h.signature, *b"APIC");
        assert_eq!(h.length, 40);
        assert_eq!(h.revision, 5);
        assert_eq!(h.oem_id, *b"BOCHS ");
        assert_eq!(h.oem_table_id, *b"BXPC    ");
        assert_eq!(h.creator_id, *b"BXPC");
    }

    #[test]
    fn validate_rejects_signature_length_checksum() {
        let mut bad_sum = table(b"APIC");
        bad_sum[30] ^= 1;
        let mut short = table(b"APIC");
        short[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&35u32.to_le_bytes());
        let mut huge = table(b"APIC");
        huge[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&(MAX_TABLE_LEN + 1).to_le_bytes());
        let mem = FakeMem::new()
            .with(0x1000, table(b"APIC"))
            .with(0x2000, bad_sum)
            .with(0x3000, short)
            .with(0x4000, huge);
        assert_eq!(
            validate_table(&mem, 0x1000, Some(b"APIC")).unwrap().length,
            56
        );
        assert_eq!(
            validate_table(&mem, 0x1000, Some(b"FACP")),
            Err(AcpiError::TableSignature {
                address: 0x1000,
                expected: *b"FACP",
                found: *b"APIC"
            })
        );
        let err = validate_table(&mem, 0x2000, None).unwrap_err();
        assert_eq!(
            err,
            AcpiError::TableChecksum {
                address: 0x2000,
                signature: *b"APIC",
                length: 56
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI `APIC` table at 0x2000 has a bad checksum (over 56 bytes)"
        );
        assert_eq!(
            validate_table(&mem, 0x3000, None),
            Err(AcpiError::TableLength {
                address: 0x3000,
                signature: *b"APIC",
                length: 35
            })
        );
        let err = validate_table(&mem, 0x4000, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ACPI `APIC` table at 0x4000 has an invalid length 1048577 (expected 36..=1048576)"
        );
        // A length running past readable memory is a read error, not a panic.
        let mut past_end = table(b"APIC");
        past_end[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&4096u32.to_le_bytes());
        let mem = FakeMem::new().with(0x1000, past_end);
        assert!(matches!(
            validate_table(&mem, 0x1000, None),
            Err(AcpiError::Read { .. })
        ));
    }

    #[test]
    fn checksum_streams_through_large_tables() {
        let img = sdt_image(b"APIC", 1, &vec![0xA5; 100_000]);
        let mem = FakeMem::new().with(0x10_0000, img);
        assert_eq!(
            validate_table(&mem, 0x10_0000, Some(b"APIC"))
                .unwrap()
                .length,
            100_036
        );
        assert!(
            mem.largest_read() <= 512,
            "largest read {}",
            mem.largest_read()
        );
    }

    #[test]
    fn xsdt_is_preferred_over_rsdt() {
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0x2000, 0x3000))
            .with(0x2000, root_table(b"RSDT", &[0x4000]))
            .with(0x3000, root_table(b"XSDT", &[0x5000]))
            .with(0x4000, table(b"APIC"))
            .with(0x5000, table(b"APIC"));
        assert_eq!(
            find_table(&mem, &rsdp(&mem), b"APIC"),
            Ok(TableLocation {
                address: 0x5000,
                length: 56,
                via_xsdt: true
            })
        );
    }

    #[test]
    fn xsdt_entries_above_4g() {
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x1_0000_3000))
            .with(0x1_0000_3000, root_table(b"XSDT", &[0x2_0000_0000]))
            .with(0x2_0000_0000, table(b"APIC"));
        let loc = find_table(&mem, &rsdp(&mem), b"APIC").unwrap();
        assert_eq!(loc.address, 0x2_0000_0000);
    }

    #[test]
    fn rsdt_used_without_xsdt() {
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v0(0x2000))
            .with(0x2000, root_table(b"RSDT", &[0x3000, 0x4000]))
            .with(0x3000, table(b"FACP"))
            .with(0x4000, table(b"APIC"));
        assert_eq!(
            find_table(&mem, &rsdp(&mem), b"APIC"),
            Ok(TableLocation {
                address: 0x4000,
                length: 56,
                via_xsdt: false
            })
        );
    }

    #[test]
    fn rsdt_fallback_when_xsdt_is_bad() {
        let mut bad_xsdt = root_table(b"XSDT", &[0x5000]);
        bad_xsdt[40] ^= 0xFF;
        let mut wrong_sig = root_table(b"XSDT", &[0x5000]);
        wrong_sig[..4].copy_from_slice(b"XSDX");
        fix_checksum(&mut wrong_sig);
        for xsdt in [bad_xsdt, wrong_sig] {
            let mem = FakeMem::new()
                .with(0x1000, rsdp_v2(0x2000, 0x3000))
                .with(0x2000, root_table(b"RSDT", &[0x4000]))
                .with(0x3000, xsdt)
                .with(0x4000, table(b"APIC"))
                .with(0x5000, table(b"APIC"));
            let loc = find_table(&mem, &rsdp(&mem), b"APIC").unwrap();
            assert_eq!((loc.address, loc.via_xsdt), (0x4000, false));
        }
        // An unreadable XSDT also falls back.
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0x2000, 0xDEAD_0000))
            .with(0x2000, root_table(b"RSDT", &[0x4000]))
            .with(0x4000, table(b"APIC"));
        assert_eq!(
            find_table(&mem, &rsdp(&mem), b"APIC").unwrap().address,
            0x4000
        );
    }

    #[test]
    fn microvm_empty_rsdt_with_valid_xsdt() {
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0x2000, 0x3000))
            .with(0x2000, root_table(b"RSDT", &[]))
            .with(0x3000, root_table(b"XSDT", &[0x4000, 0x5000]))
            .with(0x4000, table(b"FACP"))
            .with(0x5000, table(b"APIC"));
        let loc = find_table(&mem, &rsdp(&mem), b"APIC").unwrap();
        assert_eq!((loc.address, loc.via_xsdt), (0x5000, true));
    }

    #[test]
    fn bad_xsdt_and_no_rsdt() {
        let mut bad_xsdt = root_table(b"XSDT", &[0x5000]);
        bad_xsdt[40] ^= 0xFF;
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x3000))
            .with(0x3000, bad_xsdt);
        let err = find_table(&mem, &rsdp(&mem), b"APIC").unwrap_err();
        assert_eq!(
            err,
            AcpiError::NoRootTable {
                xsdt_address: Some(0x3000)
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI: the XSDT at 0x3000 is invalid and the RSDP has no RSDT (address 0)"
        );
    }

    #[test]
    fn bad_rsdt_is_reported() {
        let mut rsdt = root_table(b"RSDT", &[0x4000]);
        rsdt[36] ^= 1;
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v0(0x2000))
            .with(0x2000, rsdt);
        assert!(matches!(
            find_table(&mem, &rsdp(&mem), b"APIC"),
            Err(AcpiError::TableChecksum {
                address: 0x2000,
                signature: [b'R', b'S', b'D', b'T'],
                ..
            })
        ));
    }

    #[test]
    fn tables_with_bad_checksum_are_skipped() {
        let mut bad = table(b"APIC");
        bad[40] ^= 1;
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x3000))
            .with(
                0x3000,
                root_table(b"XSDT", &[0, 0x4000, 0xBAD_0000, 0x5000]),
            )
            .with(0x4000, bad.clone())
            .with(0x5000, table(b"APIC"));
        let loc = find_table(&mem, &rsdp(&mem), b"APIC").unwrap();
        assert_eq!(loc.address, 0x5000);

        // Only bad candidates: reported with what was skipped.
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x3000))
            .with(0x3000, root_table(b"XSDT", &[0x4000, 0xBAD_0000]))
            .with(0x4000, bad);
        let err = find_table(&mem, &rsdp(&mem), b"APIC").unwrap_err();
        assert_eq!(
            err,
            AcpiError::TableNotFound {
                signature: *b"APIC",
                root: *b"XSDT",
                root_address: 0x3000,
                entries: 2,
                invalid: 1,
                unreadable: 1,
            }
        );
    }

    #[test]
    fn bad_candidates_cost_a_bounded_number_of_bytes() {
        // Found with the acpi_sdt fuzz target's work bound (fuzz/corpus/acpi_sdt/
        // quadratic-candidates): every XSDT entry naming one big APIC table with a bad
        // checksum summed it again, so the work grew with entries × length.
        let mut big = sdt_image(b"APIC", 5, &vec![0x11; MAX_TABLE_LEN as usize - 36]);
        big[40] ^= 1;
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x3000))
            .with(0x3000, root_table(b"XSDT", &[0x10_0000; 64]))
            .with(0x10_0000, big);
        let err = find_table(&mem, &rsdp(&mem), b"APIC").unwrap_err();
        assert!(
            matches!(
                err,
                AcpiError::TableNotFound {
                    entries: 64,
                    invalid: 64,
                    ..
                }
            ),
            "{err:?}"
        );
        // 4 checksums of 2048 chunks each, plus the headers: not 64 of them.
        assert!(mem.reads() < 5 * 2048 + 200, "{} reads", mem.reads());
    }

    #[test]
    fn many_root_entries_are_read_in_chunks() {
        let tables: Vec<u64> = (0..100).map(|i| 0x10_0000 + i * 0x100).collect();
        let mut mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x3000))
            .with(0x3000, root_table(b"XSDT", &tables));
        for (i, &t) in tables.iter().enumerate() {
            let sig = if i == 99 { b"APIC" } else { b"SSDT" };
            mem = mem.with(t, table(sig));
        }
        let loc = find_table(&mem, &rsdp(&mem), b"APIC").unwrap();
        assert_eq!(loc.address, tables[99]);
    }
}
