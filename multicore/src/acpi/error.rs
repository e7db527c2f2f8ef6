//! What can go wrong while walking the ACPI tables, worded for the person reading the console.

use super::madt::MADT_ENTRIES_OFFSET;
use super::rsdp::{RSDP_MAX_LEN, RSDP_V2_LEN};
use super::sdt::{MAX_TABLE_LEN, SDT_HEADER_LEN};
use crate::phys::PhysReadError;
use core::fmt;

/// An ACPI table could not be found or is malformed.
///
/// Every variant names the structure and its physical address so the message alone says which
/// firmware table to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// Physical memory needed for `what` could not be read.
    Read {
        /// The structure being read, e.g. `"RSDP"` or `"MADT entry"`.
        what: &'static str,
        /// The failed read.
        source: PhysReadError,
    },
    /// No `"RSD PTR "` signature at the given address.
    RsdpSignature {
        /// Where the RSDP was expected.
        address: u64,
    },
    /// The checksum over the first 20 bytes (the ACPI 1.0 part) is wrong.
    RsdpChecksum {
        /// Address of the RSDP.
        address: u64,
    },
    /// A revision 2+ RSDP whose Length field is too small to hold the XSDT address, or absurd.
    RsdpLength {
        /// Address of the RSDP.
        address: u64,
        /// The Length field.
        length: u32,
    },
    /// The extended checksum over the whole revision 2+ RSDP is wrong.
    RsdpExtendedChecksum {
        /// Address of the RSDP.
        address: u64,
        /// The Length field the checksum covered.
        length: u32,
    },
    /// A table header does not carry the expected signature.
    TableSignature {
        /// Address of the table.
        address: u64,
        /// The signature the caller asked for.
        expected: [u8; 4],
        /// The signature found in memory.
        found: [u8; 4],
    },
    /// A table's Length field is shorter than its header or implausibly large.
    TableLength {
        /// Address of the table.
        address: u64,
        /// The table's signature.
        signature: [u8; 4],
        /// The Length field.
        length: u32,
    },
    /// A table's bytes do not sum to zero.
    TableChecksum {
        /// Address of the table.
        address: u64,
        /// The table's signature.
        signature: [u8; 4],
        /// The Length field the checksum covered.
        length: u32,
    },
    /// The XSDT is absent or invalid and the RSDP's RSDT address is 0: no root table to walk.
    NoRootTable {
        /// The (invalid) XSDT address, if the RSDP had one.
        xsdt_address: Option<u64>,
    },
    /// No valid table with the wanted signature is listed in the root table.
    TableNotFound {
        /// The signature searched for.
        signature: [u8; 4],
        /// `*b"XSDT"` or `*b"RSDT"`: the root table that was walked.
        root: [u8; 4],
        /// Address of that root table.
        root_address: u64,
        /// Number of entries in the root table.
        entries: usize,
        /// Entries that had the wanted signature but a bad length or checksum (skipped).
        invalid: usize,
        /// Entries whose header could not be read (skipped).
        unreadable: usize,
    },
    /// The MADT is too short to hold its fixed fields.
    MadtTooShort {
        /// Address of the MADT.
        address: u64,
        /// Its Length field.
        length: u32,
    },
    /// An interrupt controller structure whose Length field is below 2, so the walk cannot
    /// advance past it.
    MadtEntryLength {
        /// Address of the MADT.
        address: u64,
        /// Offset of the entry from the start of the MADT.
        offset: u32,
        /// The entry's type byte.
        entry_type: u8,
        /// The entry's Length field.
        length: u8,
    },
    /// An interrupt controller structure (or its 2-byte header) runs past the end of the MADT.
    MadtEntryTruncated {
        /// Address of the MADT.
        address: u64,
        /// Offset of the entry from the start of the MADT.
        offset: u32,
        /// The entry's Length field (0 if even the header did not fit).
        length: u8,
        /// The MADT's Length field.
        table_length: u32,
    },
    /// A Local APIC, Local x2APIC or Local APIC Address Override entry shorter than the size
    /// the specification defines for its type.
    MadtEntryTooShort {
        /// Address of the MADT.
        address: u64,
        /// Offset of the entry from the start of the MADT.
        offset: u32,
        /// The entry's type byte.
        entry_type: u8,
        /// The entry's Length field.
        length: u8,
        /// The size the type requires.
        expected: u8,
    },
}

/// Prints a 4-byte signature as text, escaping bytes that are not printable ASCII (a corrupt
/// table should not put control characters on the console).
pub(crate) struct Sig<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Sig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Read { what, source } => write!(f, "ACPI: cannot read the {what}: {source}"),
            Self::RsdpSignature { address } => {
                write!(
                    f,
                    "no ACPI RSDP at {address:#x}: signature is not `RSD PTR `"
                )
            }
            Self::RsdpChecksum { address } => {
                write!(
                    f,
                    "ACPI RSDP at {address:#x} has a bad checksum (first 20 bytes)"
                )
            }
            Self::RsdpLength { address, length } => write!(
                f,
                "ACPI RSDP at {address:#x} has an invalid length {length} (expected {}..={})",
                RSDP_V2_LEN, RSDP_MAX_LEN
            ),
            Self::RsdpExtendedChecksum { address, length } => write!(
                f,
                "ACPI RSDP at {address:#x} has a bad extended checksum (over {length} bytes)"
            ),
            Self::TableSignature {
                address,
                expected,
                found,
            } => write!(
                f,
                "ACPI table at {address:#x} has signature `{}`, expected `{}`",
                Sig(&found),
                Sig(&expected)
            ),
            Self::TableLength {
                address,
                signature,
                length,
            } => write!(
                f,
                "ACPI `{}` table at {address:#x} has an invalid length {length} \
                 (expected {}..={})",
                Sig(&signature),
                SDT_HEADER_LEN,
                MAX_TABLE_LEN
            ),
            Self::TableChecksum {
                address,
                signature,
                length,
            } => write!(
                f,
                "ACPI `{}` table at {address:#x} has a bad checksum (over {length} bytes)",
                Sig(&signature)
            ),
            Self::NoRootTable {
                xsdt_address: Some(xsdt),
            } => write!(
                f,
                "ACPI: the XSDT at {xsdt:#x} is invalid and the RSDP has no RSDT (address 0)"
            ),
            Self::NoRootTable { xsdt_address: None } => {
                write!(f, "ACPI: the RSDP lists neither an XSDT nor an RSDT")
            }
            Self::TableNotFound {
                signature,
                root,
                root_address,
                entries,
                invalid,
                unreadable,
            } => {
                write!(
                    f,
                    "no valid `{}` table among the {entries} entries of the {} at \
                     {root_address:#x}",
                    Sig(&signature),
                    Sig(&root)
                )?;
                if invalid > 0 {
                    write!(
                        f,
                        "; {invalid} with that signature skipped (bad length or checksum)"
                    )?;
                }
                if unreadable > 0 {
                    write!(f, "; {unreadable} unreadable entries skipped")?;
                }
                Ok(())
            }
            Self::MadtTooShort { address, length } => write!(
                f,
                "ACPI MADT at {address:#x} is too short ({length} bytes, needs at least {})",
                MADT_ENTRIES_OFFSET
            ),
            Self::MadtEntryLength {
                address,
                offset,
                entry_type,
                length,
            } => write!(
                f,
                "ACPI MADT at {address:#x}: entry at offset {offset:#x} (type {entry_type}) has \
                 invalid length {length}"
            ),
            Self::MadtEntryTruncated {
                address,
                offset,
                length,
                table_length,
            } => write!(
                f,
                "ACPI MADT at {address:#x} is truncated: entry at offset {offset:#x} (length \
                 {length}) runs past the table end ({table_length} bytes)"
            ),
            Self::MadtEntryTooShort {
                address,
                offset,
                entry_type,
                length,
                expected,
            } => write!(
                f,
                "ACPI MADT at {address:#x}: entry at offset {offset:#x} (type {entry_type}) is \
                 {length} bytes, its type needs {expected}"
            ),
        }
    }
}

impl core::error::Error for AcpiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_escaped() {
        assert_eq!(Sig(b"AP\x00C").to_string(), "AP\\x00C");
        assert_eq!(Sig(b"RSD PTR ").to_string(), "RSD PTR ");
    }

    #[test]
    fn messages_name_table_and_address() {
        let e = AcpiError::Read {
            what: "RSDP",
            source: PhysReadError {
                addr: 0x1000,
                len: 20,
            },
        };
        assert_eq!(
            e.to_string(),
            "ACPI: cannot read the RSDP: physical range 0x1000+0x14 is not readable"
        );
        let e = AcpiError::TableNotFound {
            signature: *b"APIC",
            root: *b"XSDT",
            root_address: 0x5000,
            entries: 3,
            invalid: 1,
            unreadable: 1,
        };
        assert_eq!(
            e.to_string(),
            "no valid `APIC` table among the 3 entries of the XSDT at 0x5000; 1 with that \
             signature skipped (bad length or checksum); 1 unreadable entries skipped"
        );
    }
}
