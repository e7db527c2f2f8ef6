//! Finding the CPUs through the Intel MultiProcessor Specification 1.4 tables: the fallback for
//! machines (or VM configurations such as QEMU with `-no-acpi`) that have no ACPI MADT.
//!
//! The MP Floating Pointer Structure (MP 1.4 §4.1) sits in a legacy BIOS area and points to
//! the MP Configuration Table (§4.2), whose base entries (§4.3) include one Processor entry per
//! CPU. Instead of a table, the floating pointer may name one of the default configurations
//! (chapter 5), which all describe two processors.

use crate::acpi::{byte_sum, ebda_base, scan_paragraphs, slice_sum, Sig};
use crate::le_fields::{array_at, u16_at, u32_at};
use crate::phys::{PhysRead, PhysReadError};
use core::fmt;

// MP 1.4 §4.1 MP Floating Pointer Structure (Table 4-1).
/// Signature of the MP Floating Pointer Structure.
pub const FLOATING_POINTER_SIGNATURE: [u8; 4] = *b"_MP_";
/// Size of the floating pointer fields decoded here (one 16-byte paragraph; the Length field
/// counts paragraphs and is 1 for MP 1.1/1.4).
const FLOATING_POINTER_LEN: usize = 16;
const FP_OFF_CONFIG_TABLE: usize = 4;
const FP_OFF_LENGTH: usize = 8;
const FP_OFF_SPEC_REV: usize = 9;
const FP_OFF_FEATURE1: usize = 11;
const FP_OFF_FEATURE2: usize = 12;
/// Feature byte 2 bit 7, IMCRP: the IMCR is present and PIC mode is implemented.
const FEATURE2_IMCRP: u8 = 1 << 7;

/// Highest default configuration number; 8 and up are reserved. MP 1.4 §4.1 (feature byte 1)
/// and §5 (Table 5-1).
const MAX_DEFAULT_CONFIG: u8 = 7;

/// Where the local APIC lives in a default configuration: the architectural reset value of the
/// APIC base, since without a configuration table nothing can relocate it (MP 1.4 §5).
const DEFAULT_LOCAL_APIC_ADDRESS: u64 = 0xFEE0_0000;

// MP 1.4 §4.2 MP Configuration Table Header (Table 4-2).
/// Signature of the MP Configuration Table.
pub const CONFIG_TABLE_SIGNATURE: [u8; 4] = *b"PCMP";
/// Size of the configuration table header; entries follow it.
const CONFIG_HEADER_LEN: usize = 44;
const CT_OFF_BASE_LENGTH: usize = 4;
const CT_OFF_ENTRY_COUNT: usize = 34;
const CT_OFF_LOCAL_APIC_ADDRESS: usize = 36;

// MP 1.4 §4.3 Base MP Configuration Table Entries (Table 4-3): the size is implied by the
// type, so an unknown type makes the rest of the table unreadable.
/// Processor entry, 20 bytes. MP 1.4 §4.3.1.
const ENTRY_PROCESSOR: u8 = 0;
const PROCESSOR_ENTRY_LEN: usize = 20;
/// Bus (1), I/O APIC (2), I/O Interrupt Assignment (3), Local Interrupt Assignment (4):
/// 8 bytes each. MP 1.4 §4.3.2–§4.3.5.
const LAST_ENTRY_TYPE: u8 = 4;
const OTHER_ENTRY_LEN: usize = 8;

// MP 1.4 §4.3.1 Processor Entries (Table 4-4): local APIC ID at 1, CPU flags at 3.
const PE_OFF_APIC_ID: usize = 1;
const PE_OFF_CPU_FLAGS: usize = 3;
/// CPU flags bit 0, EN: the processor is usable. MP 1.4 §4.3.1.
const CPU_FLAG_EN: u8 = 1 << 0;
/// CPU flags bit 1, BP: this is the bootstrap processor. MP 1.4 §4.3.1.
const CPU_FLAG_BP: u8 = 1 << 1;

// MP 1.4 §4 (search order): EBDA first KiB, else the last KiB of base memory, else the BIOS
// ROM. The base memory size in KiB is the BIOS Data Area word at 40:13h.
const BASE_MEMORY_KIB_PTR: u64 = 0x413;
/// Base memory assumed when the BDA word is 0 or implausible: 640 KiB, whose last KiB starts
/// at 639 KiB.
const DEFAULT_BASE_MEMORY_KIB: u64 = 640;
const KIB: u64 = 1024;
const ROM_START: u64 = 0xF_0000;
const ROM_END: u64 = 0x10_0000;

/// A validated MP Floating Pointer Structure. MP 1.4 §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatingPointer {
    /// Physical address of the MP Configuration Table (0 when there is none).
    pub config_table: u32,
    /// Specification revision: 1 for MP 1.1, 4 for MP 1.4.
    pub spec_rev: u8,
    /// Feature byte 1: 0 when a configuration table is present, otherwise the number of the
    /// default configuration (1..=7) the system implements.
    pub default_config: u8,
    /// Feature byte 2 bit 7 (IMCRP): the Interrupt Mode Configuration Register is present.
    pub imcr_present: bool,
}

/// One Processor entry (or one processor of a default configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpCpu {
    /// Local APIC ID (8 bits in the MP tables, widened to match the ACPI types).
    pub apic_id: u32,
    /// CPU flags EN: the OS may use this processor.
    pub enabled: bool,
    /// CPU flags BP: this is the bootstrap processor.
    pub is_bsp: bool,
}

/// Facts about the MP configuration, returned after its processors have been reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpInfo {
    /// Physical address of the local APIC (0xFEE00000 for default configurations).
    pub local_apic_address: u64,
    /// The default configuration number when the floating pointer names one (no table).
    pub default_config: Option<u8>,
    /// Number of processors reported, disabled ones included.
    pub cpus: usize,
}

/// The MP tables could not be read or are malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpTableError {
    /// Physical memory needed for `what` could not be read.
    Read {
        /// The structure being read.
        what: &'static str,
        /// The failed read.
        source: PhysReadError,
    },
    /// No `_MP_` signature at the given address.
    FloatingPointerSignature {
        /// Where the floating pointer was expected.
        address: u64,
    },
    /// The floating pointer's Length field (in 16-byte units) is 0.
    FloatingPointerLength {
        /// Address of the floating pointer.
        address: u64,
    },
    /// The floating pointer's bytes do not sum to zero.
    FloatingPointerChecksum {
        /// Address of the floating pointer.
        address: u64,
        /// Bytes covered (16 × the Length field).
        length: u32,
    },
    /// Feature byte 1 names a reserved default configuration (above 7).
    UnknownDefaultConfig {
        /// Address of the floating pointer.
        address: u64,
        /// The feature byte.
        config: u8,
    },
    /// Neither a default configuration nor a configuration table address.
    NoConfigTable {
        /// Address of the floating pointer.
        address: u64,
    },
    /// The configuration table does not start with `PCMP`.
    ConfigTableSignature {
        /// Address of the configuration table.
        address: u64,
        /// The four bytes found there.
        found: [u8; 4],
    },
    /// The base table length is shorter than the header.
    ConfigTableLength {
        /// Address of the configuration table.
        address: u64,
        /// The base table length field.
        length: u16,
    },
    /// The base table's bytes do not sum to zero.
    ConfigTableChecksum {
        /// Address of the configuration table.
        address: u64,
        /// The base table length the checksum covered.
        length: u16,
    },
    /// An entry runs past the base table length (or the entry count promises more entries
    /// than the table holds).
    EntryTruncated {
        /// Address of the configuration table.
        address: u64,
        /// Offset of the entry from the start of the table.
        offset: u32,
        /// Index of the entry (0-based).
        index: u16,
        /// The base table length.
        table_length: u16,
    },
    /// An entry type the base table does not define; entry sizes are implied by the type, so
    /// the walk cannot skip it.
    UnknownEntryType {
        /// Address of the configuration table.
        address: u64,
        /// Offset of the entry from the start of the table.
        offset: u32,
        /// The type byte.
        entry_type: u8,
    },
}

impl fmt::Display for MpTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Read { what, source } => write!(f, "MP tables: cannot read the {what}: {source}"),
            Self::FloatingPointerSignature { address } => {
                write!(
                    f,
                    "no MP floating pointer at {address:#x}: signature is not `_MP_`"
                )
            }
            Self::FloatingPointerLength { address } => {
                write!(f, "MP floating pointer at {address:#x} has length 0")
            }
            Self::FloatingPointerChecksum { address, length } => write!(
                f,
                "MP floating pointer at {address:#x} has a bad checksum (over {length} bytes)"
            ),
            Self::UnknownDefaultConfig { address, config } => write!(
                f,
                "MP floating pointer at {address:#x} names reserved default configuration \
                 {config} (valid: 1..={MAX_DEFAULT_CONFIG})"
            ),
            Self::NoConfigTable { address } => write!(
                f,
                "MP floating pointer at {address:#x} has neither a configuration table nor a \
                 default configuration"
            ),
            Self::ConfigTableSignature { address, found } => write!(
                f,
                "MP configuration table at {address:#x} has signature `{}`, expected `PCMP`",
                Sig(&found)
            ),
            Self::ConfigTableLength { address, length } => write!(
                f,
                "MP configuration table at {address:#x} has base length {length}, shorter than \
                 its {CONFIG_HEADER_LEN}-byte header"
            ),
            Self::ConfigTableChecksum { address, length } => write!(
                f,
                "MP configuration table at {address:#x} has a bad checksum (over {length} bytes)"
            ),
            Self::EntryTruncated {
                address,
                offset,
                index,
                table_length,
            } => write!(
                f,
                "MP configuration table at {address:#x} is truncated: entry {index} at offset \
                 {offset:#x} runs past the base table end ({table_length} bytes)"
            ),
            Self::UnknownEntryType {
                address,
                offset,
                entry_type,
            } => write!(
                f,
                "MP configuration table at {address:#x}: entry at offset {offset:#x} has unknown \
                 type {entry_type} (base entries are types 0..={LAST_ENTRY_TYPE})"
            ),
        }
    }
}

impl core::error::Error for MpTableError {}

/// Reads and validates the MP Floating Pointer Structure at `pa`: signature, a nonzero Length
/// and the checksum over 16 × Length bytes.
pub fn parse_floating_pointer(
    mem: &impl PhysRead,
    pa: u64,
) -> Result<FloatingPointer, MpTableError> {
    let read_err = |source| MpTableError::Read {
        what: "MP floating pointer",
        source,
    };
    let raw: [u8; FLOATING_POINTER_LEN] = mem.read_array(pa).map_err(read_err)?;
    if raw[..4] != FLOATING_POINTER_SIGNATURE {
        return Err(MpTableError::FloatingPointerSignature { address: pa });
    }
    let paragraphs = raw[FP_OFF_LENGTH];
    if paragraphs == 0 {
        return Err(MpTableError::FloatingPointerLength { address: pa });
    }
    let length = u32::from(paragraphs) * FLOATING_POINTER_LEN as u32;
    let sum = if paragraphs == 1 {
        slice_sum(&raw)
    } else {
        byte_sum(mem, pa, length.into()).map_err(read_err)?
    };
    if sum != 0 {
        return Err(MpTableError::FloatingPointerChecksum {
            address: pa,
            length,
        });
    }
    Ok(FloatingPointer {
        config_table: u32_at(&raw, FP_OFF_CONFIG_TABLE),
        spec_rev: raw[FP_OFF_SPEC_REV],
        default_config: raw[FP_OFF_FEATURE1],
        imcr_present: raw[FP_OFF_FEATURE2] & FEATURE2_IMCRP != 0,
    })
}

/// Searches for a valid MP Floating Pointer Structure where MP 1.4 §4 says firmware puts it,
/// in order: the first KiB of the EBDA, the last KiB of base memory, the BIOS ROM
/// 0xF0000..0x100000, on 16-byte boundaries. A signature match only counts if its checksum is
/// valid; bad candidates are passed over.
pub fn find_floating_pointer(mem: &impl PhysRead) -> Option<u64> {
    let valid = |pa| parse_floating_pointer(mem, pa).is_ok();
    let sig = &FLOATING_POINTER_SIGNATURE;
    let base_top = base_memory_kib(mem) * KIB;
    ebda_base(mem)
        .and_then(|ebda| scan_paragraphs(mem, ebda, ebda + KIB, sig, valid))
        .or_else(|| scan_paragraphs(mem, base_top - KIB, base_top, sig, valid))
        .or_else(|| scan_paragraphs(mem, ROM_START, ROM_END, sig, valid))
}

/// Base memory size in KiB from the BIOS Data Area (40:13h), or 640 when the word is
/// unreadable, 0, or above 640 (base memory ends where the VGA window begins).
fn base_memory_kib(mem: &impl PhysRead) -> u64 {
    match mem.read_array::<2>(BASE_MEMORY_KIB_PTR) {
        Ok(raw) => match u64::from(u16::from_le_bytes(raw)) {
            kib @ 1..=DEFAULT_BASE_MEMORY_KIB => kib,
            _ => DEFAULT_BASE_MEMORY_KIB,
        },
        Err(_) => DEFAULT_BASE_MEMORY_KIB,
    }
}

/// Parses the MP configuration from the floating pointer at `floating_pointer_pa` and calls
/// `on_cpu` for every processor, in table order, disabled ones included.
///
/// For a default configuration (feature byte 1 nonzero, no table) it reports the two
/// processors those configurations have (MP 1.4 §5): local APIC IDs 0 and 1, both enabled;
/// the specification does not say which one boots, 0 is reported as the BSP.
///
/// Otherwise the configuration table is validated (signature, length, checksum over the base
/// table) and its entries are walked once for structure before any `on_cpu` call, so a
/// malformed table reports no processors. The extended table is not used.
pub fn parse(
    mem: &impl PhysRead,
    floating_pointer_pa: u64,
    mut on_cpu: impl FnMut(MpCpu),
) -> Result<MpInfo, MpTableError> {
    let fp = parse_floating_pointer(mem, floating_pointer_pa)?;
    match fp.default_config {
        0 => {}
        config @ 1..=MAX_DEFAULT_CONFIG => {
            on_cpu(MpCpu {
                apic_id: 0,
                enabled: true,
                is_bsp: true,
            });
            on_cpu(MpCpu {
                apic_id: 1,
                enabled: true,
                is_bsp: false,
            });
            return Ok(MpInfo {
                local_apic_address: DEFAULT_LOCAL_APIC_ADDRESS,
                default_config: Some(config),
                cpus: 2,
            });
        }
        config => {
            return Err(MpTableError::UnknownDefaultConfig {
                address: floating_pointer_pa,
                config,
            })
        }
    }
    if fp.config_table == 0 {
        return Err(MpTableError::NoConfigTable {
            address: floating_pointer_pa,
        });
    }

    let address = u64::from(fp.config_table);
    let read_err = |source| MpTableError::Read {
        what: "MP configuration table",
        source,
    };
    let header: [u8; CONFIG_HEADER_LEN] = mem.read_array(address).map_err(read_err)?;
    let found = array_at(&header, 0);
    if found != CONFIG_TABLE_SIGNATURE {
        return Err(MpTableError::ConfigTableSignature { address, found });
    }
    let length = u16_at(&header, CT_OFF_BASE_LENGTH);
    if usize::from(length) < CONFIG_HEADER_LEN {
        return Err(MpTableError::ConfigTableLength { address, length });
    }
    if byte_sum(mem, address, length.into()).map_err(read_err)? != 0 {
        return Err(MpTableError::ConfigTableChecksum { address, length });
    }
    let count = u16_at(&header, CT_OFF_ENTRY_COUNT);
    let local_apic_address = u64::from(u32_at(&header, CT_OFF_LOCAL_APIC_ADDRESS));

    let cpus = walk(mem, address, length, count, |_| {})?;
    walk(mem, address, length, count, |entry| {
        let flags = entry[PE_OFF_CPU_FLAGS];
        on_cpu(MpCpu {
            apic_id: entry[PE_OFF_APIC_ID].into(),
            enabled: flags & CPU_FLAG_EN != 0,
            is_bsp: flags & CPU_FLAG_BP != 0,
        });
    })?;
    Ok(MpInfo {
        local_apic_address,
        default_config: None,
        cpus,
    })
}

/// Walks the `count` base entries of the configuration table at `address` (base length
/// `length`), passing each Processor entry to `on_processor`; returns how many there were.
fn walk(
    mem: &impl PhysRead,
    address: u64,
    length: u16,
    count: u16,
    mut on_processor: impl FnMut(&[u8; PROCESSOR_ENTRY_LEN]),
) -> Result<usize, MpTableError> {
    let mut offset = CONFIG_HEADER_LEN;
    let mut processors = 0;
    let mut buf = [0u8; PROCESSOR_ENTRY_LEN];
    for index in 0..count {
        let truncated = MpTableError::EntryTruncated {
            address,
            offset: offset as u32,
            index,
            table_length: length,
        };
        let remaining = usize::from(length).saturating_sub(offset);
        if remaining == 0 {
            return Err(truncated);
        }
        let bytes = &mut buf[..remaining.min(PROCESSOR_ENTRY_LEN)];
        mem.read(address + offset as u64, bytes)
            .map_err(|source| MpTableError::Read {
                what: "MP configuration entry",
                source,
            })?;
        let entry_type = bytes[0];
        let size = match entry_type {
            ENTRY_PROCESSOR => PROCESSOR_ENTRY_LEN,
            1..=LAST_ENTRY_TYPE => OTHER_ENTRY_LEN,
            _ => {
                return Err(MpTableError::UnknownEntryType {
                    address,
                    offset: offset as u32,
                    entry_type,
                })
            }
        };
        if size > remaining {
            return Err(truncated);
        }
        if entry_type == ENTRY_PROCESSOR {
            on_processor(&buf);
            processors += 1;
        }
        offset += size;
    }
    Ok(processors)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_mem::{low_memory, FakeMem};

    /// A base configuration table entry for the image builder.
    pub(crate) enum Entry {
        Cpu {
            apic_id: u8,
            flags: u8,
        },
        /// An 8-byte entry of type 1..=4 (bus, I/O APIC, interrupt assignments).
        Other(u8),
        /// Raw bytes.
        Raw(Vec<u8>),
    }

    pub(crate) fn floating_pointer(config_table: u32, feature1: u8) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..4].copy_from_slice(b"_MP_");
        b[FP_OFF_CONFIG_TABLE..FP_OFF_CONFIG_TABLE + 4]
            .copy_from_slice(&config_table.to_le_bytes());
        b[FP_OFF_LENGTH] = 1;
        b[FP_OFF_SPEC_REV] = 4;
        b[FP_OFF_FEATURE1] = feature1;
        b[FP_OFF_FEATURE2] = FEATURE2_IMCRP;
        b[10] = 0u8.wrapping_sub(slice_sum(&b));
        b
    }

    pub(crate) fn config_table(entries: &[Entry]) -> Vec<u8> {
        let mut b = vec![0u8; CONFIG_HEADER_LEN];
        b[..4].copy_from_slice(b"PCMP");
        b[6] = 4;
        b[8..16].copy_from_slice(b"QEMU    ");
        b[16..28].copy_from_slice(b"TEST        ");
        b[CT_OFF_ENTRY_COUNT..CT_OFF_ENTRY_COUNT + 2]
            .copy_from_slice(&(entries.len() as u16).to_le_bytes());
        b[CT_OFF_LOCAL_APIC_ADDRESS..CT_OFF_LOCAL_APIC_ADDRESS + 4]
            .copy_from_slice(&0xFEE0_0000u32.to_le_bytes());
        for e in entries {
            match e {
                Entry::Cpu { apic_id, flags } => {
                    let mut p = [0u8; 20];
                    p[0] = ENTRY_PROCESSOR;
                    p[1] = *apic_id;
                    p[2] = 0x14;
                    p[3] = *flags;
                    p[4..8].copy_from_slice(&0x0663u32.to_le_bytes());
                    p[8..12].copy_from_slice(&0x0781_abfdu32.to_le_bytes());
                    b.extend_from_slice(&p);
                }
                Entry::Other(t) => b.extend_from_slice(&[*t, 0, 0, 0, 0, 0, 0, 0]),
                Entry::Raw(bytes) => b.extend_from_slice(bytes),
            }
        }
        let length = b.len() as u16;
        set_length(&mut b, length);
        b
    }

    fn set_length(b: &mut [u8], length: u16) {
        b[CT_OFF_BASE_LENGTH..CT_OFF_BASE_LENGTH + 2].copy_from_slice(&length.to_le_bytes());
        fix_checksum(b, length);
    }

    fn fix_checksum(b: &mut [u8], length: u16) {
        b[7] = 0;
        b[7] = 0u8.wrapping_sub(slice_sum(&b[..length as usize]));
    }

    pub(crate) fn cpu(apic_id: u8, flags: u8) -> Entry {
        Entry::Cpu { apic_id, flags }
    }

    fn parse_all(mem: &FakeMem, fp: u64) -> Result<(MpInfo, Vec<MpCpu>), MpTableError> {
        let mut cpus = Vec::new();
        let info = parse(mem, fp, |c| cpus.push(c))?;
        Ok((info, cpus))
    }

    fn mem_with(table: Vec<u8>) -> FakeMem {
        FakeMem::new()
            .with(0xF_5000, floating_pointer(0xF_6000, 0))
            .with(0xF_6000, table)
    }

    #[test]
    fn found_in_ebda() {
        let mut mem = low_memory();
        mem.poke(0x40E, &0x9FC0u16.to_le_bytes());
        mem.poke(0x9_FC10, &floating_pointer(0x9_FD00, 0));
        mem.poke(0xF_5000, &floating_pointer(0xF_6000, 0));
        assert_eq!(find_floating_pointer(&mem), Some(0x9_FC10));
    }

    #[test]
    fn found_in_last_kib_of_base_memory() {
        let mut mem = low_memory();
        mem.poke(0x413, &512u16.to_le_bytes());
        mem.poke(511 * 1024 + 0x3F0, &floating_pointer(0x1000, 0));
        mem.poke(0xF_5000, &floating_pointer(0xF_6000, 0));
        assert_eq!(find_floating_pointer(&mem), Some(511 * 1024 + 0x3F0));

        // A zero base memory size means 640 KiB: the last KiB starts at 639 KiB.
        let mut mem = low_memory();
        mem.poke(639 * 1024, &floating_pointer(0x1000, 0));
        assert_eq!(find_floating_pointer(&mem), Some(639 * 1024));
    }

    #[test]
    fn found_in_bios_rom_skipping_bad_candidates() {
        let mut mem = low_memory();
        mem.poke(0x40E, &0x9FC0u16.to_le_bytes());
        let mut bad = floating_pointer(0x1000, 0);
        bad[10] ^= 1;
        mem.poke(0x9_FC00, &bad); // bad checksum in the EBDA
        mem.poke(0xF_0000, &bad);
        mem.poke(0xF_0018, &floating_pointer(0x1000, 0)); // misaligned
        mem.poke(0xF_FFF0, &floating_pointer(0x1000, 0));
        assert_eq!(find_floating_pointer(&mem), Some(0xF_FFF0));
        assert!(mem.reads() < 100, "{} reads", mem.reads());
        assert_eq!(find_floating_pointer(&low_memory()), None);
        assert_eq!(find_floating_pointer(&FakeMem::new()), None);
    }

    #[test]
    fn floating_pointer_fields() {
        let mem = FakeMem::new().with(0x1000, floating_pointer(0xF_6000, 0));
        assert_eq!(
            parse_floating_pointer(&mem, 0x1000),
            Ok(FloatingPointer {
                config_table: 0xF_6000,
                spec_rev: 4,
                default_config: 0,
                imcr_present: true
            })
        );
    }

    #[test]
    fn floating_pointer_errors() {
        let mut bad_sum = floating_pointer(0x1000, 0);
        bad_sum[5] ^= 1;
        let mut zero_len = floating_pointer(0x1000, 0);
        zero_len[FP_OFF_LENGTH] = 0;
        zero_len[10] = 0;
        zero_len[10] = 0u8.wrapping_sub(slice_sum(&zero_len));
        let mem = FakeMem::new()
            .with(0x1000, bad_sum)
            .with(0x2000, zero_len)
            .with(0x3000, vec![0; 16]);
        let err = parse_floating_pointer(&mem, 0x1000).unwrap_err();
        assert_eq!(
            err,
            MpTableError::FloatingPointerChecksum {
                address: 0x1000,
                length: 16
            }
        );
        assert_eq!(
            err.to_string(),
            "MP floating pointer at 0x1000 has a bad checksum (over 16 bytes)"
        );
        assert_eq!(
            parse_floating_pointer(&mem, 0x2000),
            Err(MpTableError::FloatingPointerLength { address: 0x2000 })
        );
        assert_eq!(
            parse_floating_pointer(&mem, 0x3000),
            Err(MpTableError::FloatingPointerSignature { address: 0x3000 })
        );
        assert!(matches!(
            parse_floating_pointer(&mem, 0x5000),
            Err(MpTableError::Read { .. })
        ));
    }

    #[test]
    fn processor_entries_with_flags() {
        // QEMU's layout: processors, then bus, I/O APIC and interrupt entries.
        let table = config_table(&[
            cpu(0, CPU_FLAG_EN | CPU_FLAG_BP),
            cpu(1, CPU_FLAG_EN),
            cpu(2, 0),
            cpu(4, CPU_FLAG_EN),
            Entry::Other(1),
            Entry::Other(2),
            Entry::Other(3),
            Entry::Other(4),
        ]);
        let (info, cpus) = parse_all(&mem_with(table), 0xF_5000).unwrap();
        assert_eq!(
            info,
            MpInfo {
                local_apic_address: 0xFEE0_0000,
                default_config: None,
                cpus: 4
            }
        );
        assert_eq!(
            cpus,
            [
                MpCpu {
                    apic_id: 0,
                    enabled: true,
                    is_bsp: true
                },
                MpCpu {
                    apic_id: 1,
                    enabled: true,
                    is_bsp: false
                },
                MpCpu {
                    apic_id: 2,
                    enabled: false,
                    is_bsp: false
                },
                MpCpu {
                    apic_id: 4,
                    enabled: true,
                    is_bsp: false
                },
            ]
        );
    }

    #[test]
    fn bad_config_table_checksum() {
        let mut table = config_table(&[cpu(0, 3)]);
        table[50] ^= 1;
        let err = parse_all(&mem_with(table), 0xF_5000).unwrap_err();
        assert_eq!(
            err,
            MpTableError::ConfigTableChecksum {
                address: 0xF_6000,
                length: 64
            }
        );
        assert_eq!(
            err.to_string(),
            "MP configuration table at 0xf6000 has a bad checksum (over 64 bytes)"
        );
    }

    #[test]
    fn bad_config_table_signature_and_length() {
        let mut table = config_table(&[cpu(0, 3)]);
        table[..4].copy_from_slice(b"PCMQ");
        let err = parse_all(&mem_with(table), 0xF_5000).unwrap_err();
        assert_eq!(
            err,
            MpTableError::ConfigTableSignature {
                address: 0xF_6000,
                found: *b"PCMQ"
            }
        );
        assert_eq!(
            err.to_string(),
            "MP configuration table at 0xf6000 has signature `PCMQ`, expected `PCMP`"
        );
        let mut table = config_table(&[]);
        set_length(&mut table, 40);
        assert_eq!(
            parse_all(&mem_with(table), 0xF_5000),
            Err(MpTableError::ConfigTableLength {
                address: 0xF_6000,
                length: 40
            })
        );
        let mem = FakeMem::new().with(0xF_5000, floating_pointer(0, 0));
        assert_eq!(
            parse_all(&mem, 0xF_5000),
            Err(MpTableError::NoConfigTable { address: 0xF_5000 })
        );
    }

    #[test]
    fn default_configuration() {
        // The table pointer is ignored (and unreadable here) when a default config is named.
        let mem = FakeMem::new().with(0xF_5000, floating_pointer(0xDEAD_0000, 5));
        let (info, cpus) = parse_all(&mem, 0xF_5000).unwrap();
        assert_eq!(
            info,
            MpInfo {
                local_apic_address: 0xFEE0_0000,
                default_config: Some(5),
                cpus: 2
            }
        );
        assert_eq!(
            cpus,
            [
                MpCpu {
                    apic_id: 0,
                    enabled: true,
                    is_bsp: true
                },
                MpCpu {
                    apic_id: 1,
                    enabled: true,
                    is_bsp: false
                },
            ]
        );
        let mem = FakeMem::new().with(0xF_5000, floating_pointer(0, 8));
        let err = parse_all(&mem, 0xF_5000).unwrap_err();
        assert_eq!(
            err,
            MpTableError::UnknownDefaultConfig {
                address: 0xF_5000,
                config: 8
            }
        );
        assert_eq!(
            err.to_string(),
            "MP floating pointer at 0xf5000 names reserved default configuration 8 (valid: 1..=7)"
        );
    }

    #[test]
    fn unknown_entry_type_is_an_error() {
        let table = config_table(&[
            cpu(0, 3),
            Entry::Raw(vec![0x80, 0, 0, 0, 0, 0, 0, 0]),
            cpu(1, 1),
        ]);
        let mut seen = 0;
        let err = parse(&mem_with(table), 0xF_5000, |_| seen += 1).unwrap_err();
        assert_eq!(seen, 0, "no CPU reported from a malformed table");
        assert_eq!(
            err,
            MpTableError::UnknownEntryType {
                address: 0xF_6000,
                offset: 64,
                entry_type: 0x80
            }
        );
        assert_eq!(
            err.to_string(),
            "MP configuration table at 0xf6000: entry at offset 0x40 has unknown type 128 \
             (base entries are types 0..=4)"
        );
    }

    #[test]
    fn truncated_entries() {
        // The entry count promises one more entry than the base length holds.
        let mut table = config_table(&[cpu(0, 3), Entry::Other(1)]);
        table[CT_OFF_ENTRY_COUNT] = 3;
        fix_checksum(&mut table, 72);
        let err = parse_all(&mem_with(table), 0xF_5000).unwrap_err();
        assert_eq!(
            err,
            MpTableError::EntryTruncated {
                address: 0xF_6000,
                offset: 72,
                index: 2,
                table_length: 72
            }
        );
        assert_eq!(
            err.to_string(),
            "MP configuration table at 0xf6000 is truncated: entry 2 at offset 0x48 runs past \
             the base table end (72 bytes)"
        );
        // A processor entry cut short by the base length.
        let mut table = config_table(&[cpu(0, 3), cpu(1, 1)]);
        set_length(&mut table, 74);
        assert!(matches!(
            parse_all(&mem_with(table), 0xF_5000),
            Err(MpTableError::EntryTruncated {
                offset: 64,
                index: 1,
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_and_extended_table_are_ignored() {
        let mut table = config_table(&[cpu(0, 3)]);
        table.extend_from_slice(&[0xEE; 10]); // extended table, not covered by the checksum
        let (info, _) = parse_all(&mem_with(table), 0xF_5000).unwrap();
        assert_eq!(info.cpus, 1);
    }
}
