//! The Multiple APIC Description Table (ACPI 6.5 §5.2.12): the list of processors (as local
//! APIC / x2APIC IDs) and the local APIC's physical address.

use super::sdt::validate_table;
use super::{AcpiError, TableLocation};
use crate::le_fields::{u32_at, u64_at};
use crate::phys::PhysRead;

/// Signature of the MADT. ACPI 6.5 §5.2.12.
pub const MADT_SIGNATURE: [u8; 4] = *b"APIC";

// ACPI 6.5 §5.2.12 (Table "Multiple APIC Description Table (MADT) Format"): after the 36-byte
// header come the 32-bit Local Interrupt Controller Address, the 32-bit Flags, then the
// variable-length interrupt controller structures.
const OFF_LOCAL_APIC_ADDRESS: u64 = 36;
/// Offset of the first interrupt controller structure (= smallest valid MADT length).
pub const MADT_ENTRIES_OFFSET: u32 = 44;
/// MADT Flags bit 0, PCAT_COMPAT: the system also has dual 8259 PICs that must be masked
/// before the APICs are used. ACPI 6.5 §5.2.12 (Table "Multiple APIC Flags").
const FLAG_PCAT_COMPAT: u32 = 1 << 0;

// Interrupt controller structure types, ACPI 6.5 §5.2.12.1 (Table "Interrupt Controller
// Structure Types"), with the size each one is defined to have.
/// Processor Local APIC. ACPI 6.5 §5.2.12.2.
const TYPE_LOCAL_APIC: u8 = 0;
const LOCAL_APIC_LEN: u8 = 8;
/// Local APIC Address Override. ACPI 6.5 §5.2.12.8.
const TYPE_LOCAL_APIC_ADDRESS_OVERRIDE: u8 = 5;
const LOCAL_APIC_ADDRESS_OVERRIDE_LEN: u8 = 12;
/// Processor Local x2APIC. ACPI 6.5 §5.2.12.12.
const TYPE_LOCAL_X2APIC: u8 = 9;
const LOCAL_X2APIC_LEN: u8 = 16;

/// Bytes of one entry copied out of memory: enough for the largest structure decoded here
/// (the 16-byte x2APIC entry); longer entries are skipped by their Length.
const ENTRY_READ: usize = LOCAL_X2APIC_LEN as usize;

// Local APIC Flags, shared by Processor Local APIC and Processor Local x2APIC entries.
// ACPI 6.5 §5.2.12.2 (Table "Local APIC Flags"), referenced from §5.2.12.12.
/// Enabled: the processor is usable and the OS may start it.
const LAPIC_FLAG_ENABLED: u32 = 1 << 0;
/// Online Capable: the processor is disabled now but can be enabled (hot-added) later. Only
/// meaningful when Enabled is 0; defined from ACPI 6.3 (MADT revision 5), reserved (0) before.
const LAPIC_FLAG_ONLINE_CAPABLE: u32 = 1 << 1;

/// Which MADT structure described a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtCpuKind {
    /// Processor Local APIC structure (type 0, 8-bit APIC ID). ACPI 6.5 §5.2.12.2.
    LocalApic,
    /// Processor Local x2APIC structure (type 9, 32-bit x2APIC ID). ACPI 6.5 §5.2.12.12.
    LocalX2Apic,
}

/// One processor listed in the MADT.
///
/// Firmware lists processors with APIC IDs below 255 as Local APIC entries and the others as
/// x2APIC entries; the same processor is not expected to appear in both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadtCpu {
    /// Local APIC ID (x2APIC ID for [`MadtCpuKind::LocalX2Apic`]); not necessarily dense.
    pub apic_id: u32,
    /// ACPI Processor UID, matching the processor object in the ACPI namespace.
    pub acpi_uid: u32,
    /// Flags bit 0: the processor is ready for use.
    pub enabled: bool,
    /// Flags bit 1: the processor is not enabled but can be brought online later. Reported as
    /// the bit reads; it is only defined when `enabled` is false and the MADT revision is 5 or
    /// more (ACPI 6.3+), older firmware leaves it 0.
    pub online_capable: bool,
    /// Which structure type the entry was.
    pub kind: MadtCpuKind,
}

/// Facts about the MADT as a whole, returned after its processors have been reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadtInfo {
    /// Physical address of the local APIC: the 32-bit header field, replaced by the 64-bit
    /// address of a Local APIC Address Override entry if there is one (the last one wins).
    pub local_apic_address: u64,
    /// Flags bit 0: legacy 8259 PICs are present as well.
    pub pcat_compat: bool,
    /// The MADT header's revision (5 for ACPI 6.3+, which defines Online Capable).
    pub revision: u8,
    /// Number of interrupt controller structures in the table, of every type.
    pub entries: usize,
}

/// Walks the MADT at `loc` and calls `on_cpu` for each Processor Local APIC and Processor
/// Local x2APIC entry, in table order, disabled ones included.
///
/// The table is validated first (signature `APIC`, length, checksum) and its entries are
/// checked in a first pass, so `on_cpu` is only called once the whole table is known to be
/// well formed: a malformed table reports no processors at all. Entry types other than 0, 5 and
/// 9 are skipped by their Length.
pub fn parse_madt(
    mem: &impl PhysRead,
    loc: &TableLocation,
    mut on_cpu: impl FnMut(MadtCpu),
) -> Result<MadtInfo, AcpiError> {
    let address = loc.address;
    let header = validate_table(mem, address, Some(&MADT_SIGNATURE))?;
    if header.length < MADT_ENTRIES_OFFSET {
        return Err(AcpiError::MadtTooShort {
            address,
            length: header.length,
        });
    }
    let fixed = mem
        .read_array::<8>(address + OFF_LOCAL_APIC_ADDRESS)
        .map_err(|source| AcpiError::Read {
            what: "MADT",
            source,
        })?;
    let mut local_apic_address = u64::from(u32_at(&fixed, 0));
    let flags = u32_at(&fixed, 4);

    // Pass 1: structure checks, and the address override (which may come after the CPUs).
    let entries = walk(mem, address, header.length, |entry| {
        if entry[0] == TYPE_LOCAL_APIC_ADDRESS_OVERRIDE {
            // ACPI 6.5 §5.2.12.8: reserved u16 at 2, 64-bit Local APIC Address at 4.
            local_apic_address = u64_at(entry, 4);
        }
    })?;
    // Pass 2: report the processors.
    walk(mem, address, header.length, |entry| {
        if let Some(cpu) = decode_cpu(entry) {
            on_cpu(cpu);
        }
    })?;

    Ok(MadtInfo {
        local_apic_address,
        pcat_compat: flags & FLAG_PCAT_COMPAT != 0,
        revision: header.revision,
        entries,
    })
}

/// Decodes a processor entry whose length has already been checked.
fn decode_cpu(entry: &[u8]) -> Option<MadtCpu> {
    let (apic_id, acpi_uid, flags, kind) = match entry[0] {
        // ACPI 6.5 §5.2.12.2: UID u8 at 2, APIC ID u8 at 3, Flags u32 at 4.
        TYPE_LOCAL_APIC => (
            u32::from(entry[3]),
            u32::from(entry[2]),
            u32_at(entry, 4),
            MadtCpuKind::LocalApic,
        ),
        // ACPI 6.5 §5.2.12.12: reserved u16 at 2, x2APIC ID u32 at 4, Flags u32 at 8,
        // UID u32 at 12.
        TYPE_LOCAL_X2APIC => (
            u32_at(entry, 4),
            u32_at(entry, 12),
            u32_at(entry, 8),
            MadtCpuKind::LocalX2Apic,
        ),
        _ => return None,
    };
    Some(MadtCpu {
        apic_id,
        acpi_uid,
        enabled: flags & LAPIC_FLAG_ENABLED != 0,
        online_capable: flags & LAPIC_FLAG_ONLINE_CAPABLE != 0,
        kind,
    })
}

/// Visits every interrupt controller structure of the MADT at `address` (whose Length is
/// `table_length`), passing its first bytes (the whole structure for the types decoded here).
/// Returns the number of structures.
fn walk(
    mem: &impl PhysRead,
    address: u64,
    table_length: u32,
    mut visit: impl FnMut(&[u8]),
) -> Result<usize, AcpiError> {
    let mut buf = [0u8; ENTRY_READ];
    let mut offset = MADT_ENTRIES_OFFSET;
    let mut count = 0;
    while offset < table_length {
        let available = (table_length - offset).min(ENTRY_READ as u32) as usize;
        let truncated = |length| AcpiError::MadtEntryTruncated {
            address,
            offset,
            length,
            table_length,
        };
        // ACPI 6.5 §5.2.12.1: every structure starts with Type (u8) and Length (u8).
        if available < 2 {
            return Err(truncated(0));
        }
        let bytes = &mut buf[..available];
        mem.read(address + u64::from(offset), bytes)
            .map_err(|source| AcpiError::Read {
                what: "MADT entry",
                source,
            })?;
        let (entry_type, length) = (bytes[0], bytes[1]);
        if length < 2 {
            return Err(AcpiError::MadtEntryLength {
                address,
                offset,
                entry_type,
                length,
            });
        }
        if u32::from(length) > table_length - offset {
            return Err(truncated(length));
        }
        let expected = match entry_type {
            TYPE_LOCAL_APIC => LOCAL_APIC_LEN,
            TYPE_LOCAL_APIC_ADDRESS_OVERRIDE => LOCAL_APIC_ADDRESS_OVERRIDE_LEN,
            TYPE_LOCAL_X2APIC => LOCAL_X2APIC_LEN,
            _ => 2,
        };
        if length < expected {
            return Err(AcpiError::MadtEntryTooShort {
                address,
                offset,
                entry_type,
                length,
                expected,
            });
        }
        visit(&bytes[..available.min(length.into())]);
        offset += u32::from(length);
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acpi::sdt::tests::{fix_checksum, sdt_image};
    use crate::test_mem::FakeMem;

    /// An MADT entry for the image builder.
    pub(crate) enum MadtEntry {
        LocalApic {
            uid: u8,
            apic_id: u8,
            flags: u32,
        },
        X2Apic {
            uid: u32,
            apic_id: u32,
            flags: u32,
        },
        AddressOverride(u64),
        /// Any bytes, verbatim (type and length included).
        Raw(Vec<u8>),
    }

    /// Builds an MADT image (checksum included).
    pub(crate) fn madt_image(
        revision: u8,
        lapic_address: u32,
        flags: u32,
        entries: &[MadtEntry],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&lapic_address.to_le_bytes());
        body.extend_from_slice(&flags.to_le_bytes());
        for e in entries {
            match e {
                MadtEntry::LocalApic {
                    uid,
                    apic_id,
                    flags,
                } => {
                    body.extend_from_slice(&[0, 8, *uid, *apic_id]);
                    body.extend_from_slice(&flags.to_le_bytes());
                }
                MadtEntry::X2Apic {
                    uid,
                    apic_id,
                    flags,
                } => {
                    body.extend_from_slice(&[9, 16, 0, 0]);
                    body.extend_from_slice(&apic_id.to_le_bytes());
                    body.extend_from_slice(&flags.to_le_bytes());
                    body.extend_from_slice(&uid.to_le_bytes());
                }
                MadtEntry::AddressOverride(a) => {
                    body.extend_from_slice(&[5, 12, 0, 0]);
                    body.extend_from_slice(&a.to_le_bytes());
                }
                MadtEntry::Raw(bytes) => body.extend_from_slice(bytes),
            }
        }
        sdt_image(b"APIC", revision, &body)
    }

    fn io_apic() -> MadtEntry {
        // Type 1 I/O APIC (ACPI 6.5 §5.2.12.3): id 0, address 0xFEC00000, GSI base 0.
        MadtEntry::Raw(vec![1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0])
    }

    fn parse(img: Vec<u8>) -> Result<(MadtInfo, Vec<MadtCpu>), AcpiError> {
        let length = img.len() as u32;
        let mem = FakeMem::new().with(0x7000, img);
        let loc = TableLocation {
            address: 0x7000,
            length,
            via_xsdt: true,
        };
        let mut cpus = Vec::new();
        let info = parse_madt(&mem, &loc, |c| cpus.push(c))?;
        Ok((info, cpus))
    }

    fn lapic(apic_id: u8, flags: u32) -> MadtEntry {
        MadtEntry::LocalApic {
            uid: apic_id,
            apic_id,
            flags,
        }
    }

    #[test]
    fn sparse_apic_ids_from_two_sockets() {
        // -smp 6,sockets=2,cores=3: each socket's core IDs are rounded up to 4.
        let ids = [0u8, 1, 2, 4, 5, 6];
        let mut entries: Vec<_> = ids.iter().map(|&id| lapic(id, 1)).collect();
        entries.push(io_apic());
        let (info, cpus) = parse(madt_image(3, 0xFEE0_0000, 1, &entries)).unwrap();
        assert_eq!(
            info,
            MadtInfo {
                local_apic_address: 0xFEE0_0000,
                pcat_compat: true,
                revision: 3,
                entries: 7
            }
        );
        assert_eq!(
            cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>(),
            [0, 1, 2, 4, 5, 6]
        );
        assert!(cpus.iter().all(|c| c.enabled && !c.online_capable));
        assert!(cpus.iter().all(|c| c.kind == MadtCpuKind::LocalApic));
    }

    #[test]
    fn x2apic_entries_with_large_ids() {
        let entries = [
            lapic(0, 1),
            MadtEntry::X2Apic {
                uid: 255,
                apic_id: 255,
                flags: 1,
            },
            MadtEntry::X2Apic {
                uid: 1000,
                apic_id: 0x1_0000,
                flags: 1,
            },
        ];
        let (info, cpus) = parse(madt_image(5, 0xFEE0_0000, 0, &entries)).unwrap();
        assert!(!info.pcat_compat);
        assert_eq!(info.entries, 3);
        assert_eq!(
            cpus[2],
            MadtCpu {
                apic_id: 0x1_0000,
                acpi_uid: 1000,
                enabled: true,
                online_capable: false,
                kind: MadtCpuKind::LocalX2Apic
            }
        );
        assert_eq!(cpus[1].apic_id, 255);
    }

    #[test]
    fn disabled_and_online_capable_entries_are_reported() {
        let entries = [
            lapic(0, 1),
            lapic(1, 0),
            lapic(2, 2),
            MadtEntry::X2Apic {
                uid: 3,
                apic_id: 300,
                flags: 2,
            },
            MadtEntry::X2Apic {
                uid: 4,
                apic_id: 301,
                flags: 0,
            },
        ];
        let (_, cpus) = parse(madt_image(5, 0xFEE0_0000, 1, &entries)).unwrap();
        let flags: Vec<_> = cpus
            .iter()
            .map(|c| (c.apic_id, c.enabled, c.online_capable))
            .collect();
        assert_eq!(
            flags,
            [
                (0, true, false),
                (1, false, false),
                (2, false, true),
                (300, false, true),
                (301, false, false)
            ]
        );
    }

    #[test]
    fn local_apic_address_override() {
        let entries = [
            lapic(0, 1),
            MadtEntry::AddressOverride(0x1_FEE0_0000),
            lapic(1, 1),
        ];
        let (info, cpus) = parse(madt_image(4, 0xFEE0_0000, 1, &entries)).unwrap();
        assert_eq!(info.local_apic_address, 0x1_FEE0_0000);
        assert_eq!(cpus.len(), 2);
    }

    #[test]
    fn unknown_entry_types_are_skipped() {
        let entries = [
            MadtEntry::Raw(vec![0x7F, 6, 1, 2, 3, 4]),
            lapic(0, 1),
            MadtEntry::Raw(vec![0x20, 40].into_iter().chain([0xEE; 38]).collect()),
            lapic(1, 1),
            MadtEntry::Raw(vec![0x80, 2]),
        ];
        let (info, cpus) = parse(madt_image(5, 0xFEE0_0000, 1, &entries)).unwrap();
        assert_eq!(info.entries, 5);
        assert_eq!(cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn empty_madt_has_no_cpus() {
        let (info, cpus) = parse(madt_image(5, 0xFEE0_0000, 1, &[])).unwrap();
        assert_eq!(info.entries, 0);
        assert!(cpus.is_empty());
    }

    #[test]
    fn truncated_table_is_an_error_and_reports_no_cpu() {
        // The last entry claims 16 bytes but the table ends after 8 of them.
        let mut img = madt_image(5, 0xFEE0_0000, 1, &[lapic(0, 1), lapic(1, 1)]);
        img.extend_from_slice(&[9, 16, 0, 0, 0, 1, 0, 0]);
        let len = img.len() as u32;
        img[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut img);
        let err = parse(img).unwrap_err();
        assert_eq!(
            err,
            AcpiError::MadtEntryTruncated {
                address: 0x7000,
                offset: 60,
                length: 16,
                table_length: 68
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI MADT at 0x7000 is truncated: entry at offset 0x3c (length 16) runs past the \
             table end (68 bytes)"
        );
    }

    #[test]
    fn single_trailing_byte_is_truncation() {
        let err = parse(madt_image(
            5,
            0xFEE0_0000,
            1,
            &[lapic(0, 1), MadtEntry::Raw(vec![0])],
        ))
        .unwrap_err();
        assert_eq!(
            err,
            AcpiError::MadtEntryTruncated {
                address: 0x7000,
                offset: 52,
                length: 0,
                table_length: 53
            }
        );
    }

    #[test]
    fn zero_length_entry_is_an_error() {
        let entries = [lapic(0, 1), MadtEntry::Raw(vec![0x10, 0, 0, 0])];
        let err = parse(madt_image(5, 0xFEE0_0000, 1, &entries)).unwrap_err();
        assert_eq!(
            err,
            AcpiError::MadtEntryLength {
                address: 0x7000,
                offset: 52,
                entry_type: 0x10,
                length: 0
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI MADT at 0x7000: entry at offset 0x34 (type 16) has invalid length 0"
        );
    }

    #[test]
    fn short_known_entries_are_errors() {
        for (entry, expected) in [
            (vec![0u8, 6, 0, 0, 1, 0], 8u8),
            (vec![9, 12, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], 16),
            (vec![5, 8, 0, 0, 0, 0, 0, 0], 12),
        ] {
            let entry_type = entry[0];
            let length = entry[1];
            let err = parse(madt_image(5, 0xFEE0_0000, 1, &[MadtEntry::Raw(entry)])).unwrap_err();
            assert_eq!(
                err,
                AcpiError::MadtEntryTooShort {
                    address: 0x7000,
                    offset: 44,
                    entry_type,
                    length,
                    expected
                }
            );
        }
    }

    #[test]
    fn longer_known_entries_are_accepted() {
        // A future revision may extend an entry; the known prefix still decodes.
        let mut entry = vec![0u8, 10, 7, 3, 1, 0, 0, 0, 0xAA, 0xBB];
        let (_, cpus) = parse(madt_image(
            5,
            0xFEE0_0000,
            1,
            &[MadtEntry::Raw(entry.clone())],
        ))
        .unwrap();
        assert_eq!((cpus[0].apic_id, cpus[0].acpi_uid), (3, 7));
        entry[1] = 0xFF;
        assert!(parse(madt_image(5, 0xFEE0_0000, 1, &[MadtEntry::Raw(entry)])).is_err());
    }

    #[test]
    fn header_problems() {
        let mut img = madt_image(5, 0xFEE0_0000, 1, &[lapic(0, 1)]);
        img[50] ^= 1;
        assert!(matches!(
            parse(img),
            Err(AcpiError::TableChecksum {
                address: 0x7000,
                ..
            })
        ));
        let facp = sdt_image(b"FACP", 5, &[0; 8]);
        assert!(matches!(parse(facp), Err(AcpiError::TableSignature { .. })));
        let short = sdt_image(b"APIC", 5, &[0; 4]);
        let err = parse(short).unwrap_err();
        assert_eq!(
            err,
            AcpiError::MadtTooShort {
                address: 0x7000,
                length: 40
            }
        );
        assert_eq!(
            err.to_string(),
            "ACPI MADT at 0x7000 is too short (40 bytes, needs at least 44)"
        );
    }
}
