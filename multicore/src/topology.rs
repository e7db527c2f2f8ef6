//! Which CPUs the machine has: the ACPI MADT, else the MP tables, else the BSP alone.
//!
//! CPU indexes are dense: the BSP is 0 and the APs follow in table order. APIC IDs may be
//! sparse and above 255, so nothing is ever indexed by APIC ID; the result is a list of IDs.

use crate::acpi::{self, AcpiError};
use crate::mptable::{self, MpTableError};
use crate::phys::PhysRead;

/// Where the CPU list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuSource {
    /// The ACPI MADT.
    Acpi {
        /// Found through the XSDT (else the RSDT).
        via_xsdt: bool,
        /// Physical address of the RSDP used.
        rsdp: u64,
        /// Whether the boot protocol gave the RSDP (else the BIOS area was scanned).
        rsdp_from_boot: bool,
    },
    /// The MP specification tables.
    MpTable,
    /// Nothing usable: only the BSP runs.
    BspOnly,
}

/// The CPUs found.
#[derive(Debug)]
pub struct Topology<'a> {
    /// Where the list came from.
    pub source: CpuSource,
    /// APIC IDs to start, by CPU index: `[0]` is the BSP. At most the storage given to
    /// [`discover`] (the configured maximum).
    pub apic_ids: &'a [u32],
    /// Enabled CPUs found, the BSP included, duplicates counted once.
    pub enabled: u32,
    /// Entries that are not enabled but online capable (hot-plug slots): reported, not started.
    pub online_capable: u32,
    /// Entries that are disabled and not online capable.
    pub disabled: u32,
    /// Whether the table listed the BSP's own APIC ID.
    pub bsp_listed: bool,
    /// The ACPI error that made discovery fall back, if ACPI was there but unusable.
    pub acpi_error: Option<AcpiError>,
    /// The MP-table error that made discovery fall back to the BSP alone.
    pub mp_error: Option<MpTableError>,
    /// Local APIC physical address the table gives.
    pub local_apic_address: Option<u64>,
}

impl Topology<'_> {
    /// Whether some enabled CPUs did not fit the configured maximum.
    pub fn truncated(&self) -> bool {
        (self.apic_ids.len() as u32) < self.enabled
    }
}

struct Collector<'a> {
    ids: &'a mut [u32],
    len: usize,
    enabled: u32,
    online_capable: u32,
    disabled: u32,
    bsp_listed: bool,
}

impl<'a> Collector<'a> {
    fn new(ids: &'a mut [u32], bsp: u32) -> Self {
        ids[0] = bsp;
        Collector {
            ids,
            len: 1,
            enabled: 0,
            online_capable: 0,
            disabled: 0,
            bsp_listed: false,
        }
    }

    fn add(&mut self, apic_id: u32, enabled: bool, online_capable: bool) {
        if !enabled {
            if online_capable {
                self.online_capable += 1;
            } else {
                self.disabled += 1;
            }
            return;
        }
        if apic_id == self.ids[0] {
            if !self.bsp_listed {
                self.bsp_listed = true;
                self.enabled += 1;
            }
            return;
        }
        // The same CPU may appear twice (as a Local APIC and a Local x2APIC entry).
        if self.ids[1..self.len].contains(&apic_id) {
            return;
        }
        self.enabled += 1;
        if self.len < self.ids.len() {
            self.ids[self.len] = apic_id;
            self.len += 1;
        }
    }

    fn finish(self, source: CpuSource, local_apic_address: Option<u64>) -> Topology<'a> {
        let Collector {
            ids,
            len,
            mut enabled,
            online_capable,
            disabled,
            bsp_listed,
        } = self;
        if !bsp_listed {
            enabled += 1; // the BSP runs this code whether or not the table lists it
        }
        Topology {
            source,
            apic_ids: &ids[..len],
            enabled,
            online_capable,
            disabled,
            bsp_listed,
            acpi_error: None,
            mp_error: None,
            local_apic_address,
        }
    }
}

/// Finds the CPUs. `rsdp_hint` is the RSDP the boot protocol gave (PVH does); without it, or
/// if it is invalid, the BIOS area is scanned. `storage.len()` (at least 1) is the most CPUs
/// kept, the BSP included. Never fails: without usable tables the BSP runs alone, and the
/// errors met on the way are in the result.
pub fn discover<'a>(
    mem: &impl PhysRead,
    rsdp_hint: Option<u64>,
    bsp_apic_id: u32,
    storage: &'a mut [u32],
) -> Topology<'a> {
    assert!(!storage.is_empty(), "discover needs room for the BSP");
    let hint = rsdp_hint.filter(|&pa| acpi::parse_rsdp(mem, pa).is_ok());
    let rsdp = hint.or_else(|| acpi::find_rsdp_in_bios_area(mem));
    let mut acpi_error = None;
    if let Some(rsdp_pa) = rsdp {
        // parse_madt validates the whole table before reporting any CPU, so a failure leaves
        // the collector untouched. It is moved in and out to keep one borrow of `storage`.
        let mut collector = Some(Collector::new(storage, bsp_apic_id));
        let result = acpi::madt_from_rsdp(mem, rsdp_pa, |cpu| {
            if let Some(c) = collector.as_mut() {
                c.add(cpu.apic_id, cpu.enabled, cpu.online_capable);
            }
        });
        let collector = collector.take().expect("collector is only taken here");
        match result {
            Ok((_, loc, info)) => {
                let source = CpuSource::Acpi {
                    via_xsdt: loc.via_xsdt,
                    rsdp: rsdp_pa,
                    rsdp_from_boot: hint.is_some(),
                };
                return collector.finish(source, Some(info.local_apic_address));
            }
            Err(e) => {
                acpi_error = Some(e);
                return fallback(mem, collector.ids, bsp_apic_id, acpi_error);
            }
        }
    }
    fallback(mem, storage, bsp_apic_id, acpi_error)
}

fn fallback<'a>(
    mem: &impl PhysRead,
    storage: &'a mut [u32],
    bsp: u32,
    acpi_error: Option<AcpiError>,
) -> Topology<'a> {
    let mut mp_error = None;
    if let Some(fp) = mptable::find_floating_pointer(mem) {
        let mut collector = Some(Collector::new(storage, bsp));
        let result = mptable::parse(mem, fp, |cpu| {
            if let Some(c) = collector.as_mut() {
                c.add(cpu.apic_id, cpu.enabled, false);
            }
        });
        let collector = collector.take().expect("collector is only taken here");
        match result {
            Ok(info) => {
                let mut topo = collector.finish(CpuSource::MpTable, Some(info.local_apic_address));
                topo.acpi_error = acpi_error;
                return topo;
            }
            Err(e) => {
                mp_error = Some(e);
                let mut topo = Collector::new(collector.ids, bsp).finish(CpuSource::BspOnly, None);
                topo.acpi_error = acpi_error;
                topo.mp_error = mp_error;
                return topo;
            }
        }
    }
    let mut topo = Collector::new(storage, bsp).finish(CpuSource::BspOnly, None);
    topo.acpi_error = acpi_error;
    topo.mp_error = mp_error;
    topo
}
