//! Finding the CPUs through ACPI (ACPI 6.5 chapter 5): RSDP → RSDT/XSDT → MADT.
//!
//! The walk is split one structure per file:
//! - [`rsdp`]: the Root System Description Pointer and the legacy BIOS-area scan for it,
//! - [`sdt`]: the common table header, its checksum, and the RSDT/XSDT walk,
//! - [`madt`]: the Multiple APIC Description Table, which lists the processors.
//!
//! Everything reads physical memory through [`PhysRead`] and copies what it needs onto the
//! stack in small chunks: nothing allocates and nothing needs the tables to be mapped as one
//! contiguous slice.

mod bios;
mod checksum;
mod error;
pub mod madt;
pub mod rsdp;
pub mod sdt;

// The MP table parser scans the same legacy BIOS areas with the same byte-sum checksum.
pub(crate) use bios::{ebda_base, scan_paragraphs};
pub(crate) use checksum::{byte_sum, slice_sum};
pub(crate) use error::Sig;

pub use error::AcpiError;
pub use madt::{parse_madt, MadtCpu, MadtCpuKind, MadtInfo};
pub use rsdp::{find_rsdp_in_bios_area, parse_rsdp, Rsdp};
pub use sdt::{find_table, validate_table, SdtHeader, TableLocation};

use crate::phys::PhysRead;

/// Parses the RSDP at `rsdp_pa`, finds the MADT through the XSDT (or the RSDT) and walks it,
/// calling `on_cpu` for every processor entry in table order.
///
/// This is the usual one-call entry point: `rsdp_pa` comes from the boot protocol (multiboot2,
/// the Linux boot parameters, UEFI) or from [`find_rsdp_in_bios_area`].
pub fn madt_from_rsdp(
    mem: &impl PhysRead,
    rsdp_pa: u64,
    on_cpu: impl FnMut(MadtCpu),
) -> Result<(Rsdp, TableLocation, MadtInfo), AcpiError> {
    let rsdp = parse_rsdp(mem, rsdp_pa)?;
    let loc = find_table(mem, &rsdp, &madt::MADT_SIGNATURE)?;
    let info = parse_madt(mem, &loc, on_cpu)?;
    Ok((rsdp, loc, info))
}

#[cfg(test)]
mod tests {
    use super::madt::tests::{madt_image, MadtEntry};
    use super::rsdp::tests::rsdp_v2;
    use super::sdt::tests::{root_table, sdt_image};
    use super::*;
    use crate::test_mem::FakeMem;

    #[test]
    fn madt_from_rsdp_walks_the_whole_chain() {
        let madt = madt_image(
            5,
            0xFEE0_0000,
            1,
            &[
                MadtEntry::LocalApic {
                    uid: 0,
                    apic_id: 0,
                    flags: 1,
                },
                MadtEntry::LocalApic {
                    uid: 1,
                    apic_id: 1,
                    flags: 1,
                },
            ],
        );
        let facp = sdt_image(b"FACP", 6, &[0; 16]);
        let xsdt = root_table(b"XSDT", &[0x2000, 0x3000]);
        let mem = FakeMem::new()
            .with(0x1000, rsdp_v2(0, 0x5000))
            .with(0x2000, facp)
            .with(0x3000, madt)
            .with(0x5000, xsdt);
        let mut ids = Vec::new();
        let (rsdp, loc, info) = madt_from_rsdp(&mem, 0x1000, |c| ids.push(c.apic_id)).unwrap();
        assert_eq!(rsdp.revision, 2);
        assert_eq!(loc.address, 0x3000);
        assert!(loc.via_xsdt);
        assert!(info.pcat_compat);
        assert_eq!(ids, [0, 1]);
    }

    #[test]
    fn madt_from_rsdp_reports_missing_madt() {
        let facp = sdt_image(b"FACP", 6, &[0; 16]);
        let rsdt = root_table(b"RSDT", &[0x2000]);
        let mem = FakeMem::new()
            .with(0x1000, super::rsdp::tests::rsdp_v0(0x5000))
            .with(0x2000, facp)
            .with(0x5000, rsdt);
        let err = madt_from_rsdp(&mem, 0x1000, |_| panic!("no CPU expected")).unwrap_err();
        assert!(matches!(err, AcpiError::TableNotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no valid `APIC` table among the 1 entries of the RSDT at 0x5000"
        );
    }
}
