//! Which CPUs the machine has: the ACPI MADT, else the MP tables, else the BSP alone.
//!
//! CPU indexes are dense: the BSP is 0 and the APs follow in table order. APIC IDs may be
//! sparse and above 255, so nothing is ever indexed by APIC ID; the result is a list of IDs.

use crate::acpi::{self, AcpiError, MadtCpuKind};
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
    /// Enabled CPUs found, the BSP included, duplicates counted once (also past the storage
    /// limit for IDs below 256, which covers a CPU listed both as Local APIC and x2APIC).
    pub enabled: u32,
    /// Entries that are not enabled but online capable (hot-plug slots): reported, not started.
    pub online_capable: u32,
    /// Entries that are disabled and not online capable.
    pub disabled: u32,
    /// Entries naming the broadcast APIC ID, which no CPU has (0xFF in an 8-bit Local APIC or
    /// MP entry, 0xFFFF_FFFF in an x2APIC entry): skipped, since an INIT sent there would
    /// reach every CPU, the BSP included.
    pub broadcast_ids: u32,
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
    broadcast_ids: u32,
    bsp_listed: bool,
    /// Enabled APIC IDs below 256 already seen, one bit each. A CPU listed twice (as a Local
    /// APIC and a Local x2APIC entry) has an 8-bit ID, so this catches the duplicate even when
    /// the first listing did not fit in `ids`.
    seen_8bit: [u64; 4],
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
            broadcast_ids: 0,
            bsp_listed: false,
            seen_8bit: [0; 4],
        }
    }

    /// Whether the enabled AP `apic_id` was already counted; records it.
    fn already_seen(&mut self, apic_id: u32) -> bool {
        match usize::try_from(apic_id) {
            Ok(id) if id < 256 => {
                let (word, bit) = (id / 64, 1u64 << (id % 64));
                let seen = self.seen_8bit[word] & bit != 0;
                self.seen_8bit[word] |= bit;
                seen
            }
            // Wider IDs only come in x2APIC entries; firmware does not list those twice, and
            // only the kept ones can be checked without more storage.
            _ => self.ids[1..self.len].contains(&apic_id),
        }
    }

    /// Records one table entry; `eight_bit` for the 8-bit ID fields (MADT type 0, MP tables).
    fn add(&mut self, apic_id: u32, eight_bit: bool, enabled: bool, online_capable: bool) {
        if is_broadcast(apic_id, eight_bit) {
            self.broadcast_ids += 1;
            return;
        }
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
        if self.already_seen(apic_id) {
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
            broadcast_ids,
            bsp_listed,
            seen_8bit: _,
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
            broadcast_ids,
            bsp_listed,
            acpi_error: None,
            mp_error: None,
            local_apic_address,
        }
    }
}

/// Whether `apic_id` is the destination that addresses every local APIC rather than one: 0xFF
/// for an 8-bit xAPIC ID (SDM Vol. 3A §11.6.2.1, physical destination mode), 0xFFFF_FFFF for
/// an x2APIC ID (§11.12.9). A table entry with it describes no CPU; x2APIC ID 0xFF is a real
/// one (QEMU lists it in an x2APIC entry).
fn is_broadcast(apic_id: u32, eight_bit: bool) -> bool {
    apic_id == u32::MAX || (eight_bit && apic_id == 0xFF)
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
                let eight_bit = cpu.kind == MadtCpuKind::LocalApic;
                c.add(cpu.apic_id, eight_bit, cpu.enabled, cpu.online_capable);
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
                c.add(cpu.apic_id, true, cpu.enabled, false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::madt::tests::{madt_image, MadtEntry};
    use crate::acpi::rsdp::tests::{rsdp_v0, rsdp_v2};
    use crate::acpi::sdt::tests::{fix_checksum, root_table, sdt_image};
    use crate::acpi::MadtCpuKind;
    use crate::mptable::tests::{config_table, cpu, floating_pointer, Entry};
    use crate::test_mem::{low_memory, FakeMem};

    // MADT Local APIC flags (ACPI 6.5 §5.2.12.2).
    const ENABLED: u32 = 1;
    const ONLINE_CAPABLE: u32 = 2;
    const DISABLED: u32 = 0;
    const XAPIC: MadtCpuKind = MadtCpuKind::LocalApic;
    const X2APIC: MadtCpuKind = MadtCpuKind::LocalX2Apic;

    // MP processor entry CPU flags (MP 1.4 §4.3.1).
    const MP_EN: u8 = 1;
    const MP_BP: u8 = 2;

    /// Where firmware left the RSDP: in the BIOS ROM area, where the scan finds it.
    const BIOS_RSDP: u64 = 0xF_5A30;
    /// Where a boot protocol (PVH) may point: outside every scanned area.
    const BOOT_RSDP: u64 = 0x7FD_0000;
    /// The root table, a FACP and the MADT go at `tables`, `tables + 0x1000`, `+ 0x2000`.
    const TABLES: u64 = 0x7FE_0000;
    const MADT_PA: u64 = TABLES + 0x2000;
    /// Local APIC address in the test MADTs and MP tables.
    const LAPIC: u64 = 0xFEE0_0000;
    /// MP floating pointer and configuration table, in the BIOS ROM area.
    const MP_FP: u64 = 0xF_5B00;
    const MP_TABLE: u64 = 0xF_6000;

    /// A MADT (revision 5) listing `cpus` as `(apic_id, flags, kind)`, in that order.
    fn madt(cpus: &[(u32, u32, MadtCpuKind)]) -> Vec<u8> {
        let entries: Vec<_> = cpus
            .iter()
            .enumerate()
            .map(|(uid, &(apic_id, flags, kind))| match kind {
                MadtCpuKind::LocalApic => MadtEntry::LocalApic {
                    uid: uid as u8,
                    apic_id: u8::try_from(apic_id).expect("xAPIC IDs are 8-bit"),
                    flags,
                },
                MadtCpuKind::LocalX2Apic => MadtEntry::X2Apic {
                    uid: uid as u32,
                    apic_id,
                    flags,
                },
            })
            .collect();
        madt_image(5, LAPIC as u32, 1, &entries)
    }

    /// Enabled Local APIC entries for `ids`, in order.
    fn xapics(ids: &[u32]) -> Vec<(u32, u32, MadtCpuKind)> {
        ids.iter().map(|&id| (id, ENABLED, XAPIC)).collect()
    }

    /// A machine image: 1 MiB of low memory plus whatever tables the test adds.
    struct Machine(FakeMem);

    impl Machine {
        /// Low memory only: no ACPI, no MP tables.
        fn bare() -> Self {
            Machine(low_memory())
        }

        /// Places `bytes` at `pa` (inside low memory or as a region of its own above it).
        fn put(mut self, pa: u64, bytes: Vec<u8>) -> Self {
            if pa < 0x10_0000 {
                self.0.poke(pa, &bytes);
                self
            } else {
                Machine(self.0.with(pa, bytes))
            }
        }

        /// RSDP at `rsdp_pa` → `root` (`XSDT` or `RSDT`) at `tables` → [FACP, `madt`].
        fn acpi_at(self, rsdp_pa: u64, root: &[u8; 4], tables: u64, madt: Vec<u8>) -> Self {
            let rsdp = if root == b"XSDT" {
                rsdp_v2(0, tables)
            } else {
                rsdp_v0(u32::try_from(tables).unwrap())
            };
            self.put(rsdp_pa, rsdp)
                .put(
                    tables,
                    root_table(root, &[tables + 0x1000, tables + 0x2000]),
                )
                .put(tables + 0x1000, sdt_image(b"FACP", 6, &[0; 16]))
                .put(tables + 0x2000, madt)
        }

        /// The usual layout: RSDP in the BIOS area, XSDT at [`TABLES`], MADT at [`MADT_PA`].
        fn acpi(self, madt: Vec<u8>) -> Self {
            self.acpi_at(BIOS_RSDP, b"XSDT", TABLES, madt)
        }

        /// An MP floating pointer at [`MP_FP`] and the configuration table `table`.
        fn mp_table(self, table: Vec<u8>) -> Self {
            self.put(MP_FP, floating_pointer(MP_TABLE as u32, 0))
                .put(MP_TABLE, table)
        }

        /// MP tables listing `entries`.
        fn mp(self, entries: &[Entry]) -> Self {
            self.mp_table(config_table(entries))
        }
    }

    /// Everything [`Topology`] reports, owned, to compare whole results.
    #[derive(Debug, PartialEq)]
    struct Found {
        source: CpuSource,
        apic_ids: Vec<u32>,
        enabled: u32,
        online_capable: u32,
        disabled: u32,
        broadcast_ids: u32,
        bsp_listed: bool,
        truncated: bool,
        acpi_error: Option<AcpiError>,
        mp_error: Option<MpTableError>,
        local_apic_address: Option<u64>,
    }

    /// Runs [`discover`] with room for `max_cpus` CPUs.
    fn run(machine: &Machine, hint: Option<u64>, bsp: u32, max_cpus: usize) -> Found {
        // Garbage in the storage must not leak into the result.
        let mut storage = vec![0xDEAD_BEEF; max_cpus];
        let t = discover(&machine.0, hint, bsp, &mut storage);
        Found {
            source: t.source,
            apic_ids: t.apic_ids.to_vec(),
            enabled: t.enabled,
            online_capable: t.online_capable,
            disabled: t.disabled,
            broadcast_ids: t.broadcast_ids,
            bsp_listed: t.bsp_listed,
            truncated: t.truncated(),
            acpi_error: t.acpi_error,
            mp_error: t.mp_error,
            local_apic_address: t.local_apic_address,
        }
    }

    /// The result for `apic_ids` found through the usual ACPI layout ([`Machine::acpi`]), all
    /// enabled, the BSP listed; tests override what differs.
    fn from_acpi(apic_ids: &[u32]) -> Found {
        Found {
            source: CpuSource::Acpi {
                via_xsdt: true,
                rsdp: BIOS_RSDP,
                rsdp_from_boot: false,
            },
            apic_ids: apic_ids.to_vec(),
            enabled: apic_ids.len() as u32,
            online_capable: 0,
            disabled: 0,
            broadcast_ids: 0,
            bsp_listed: true,
            truncated: false,
            acpi_error: None,
            mp_error: None,
            local_apic_address: Some(LAPIC),
        }
    }

    /// The result for `apic_ids` found in the MP tables.
    fn from_mp(apic_ids: &[u32]) -> Found {
        Found {
            source: CpuSource::MpTable,
            ..from_acpi(apic_ids)
        }
    }

    /// The result when only the BSP runs.
    fn bsp_only(bsp: u32) -> Found {
        Found {
            source: CpuSource::BspOnly,
            bsp_listed: false,
            local_apic_address: None,
            ..from_acpi(&[bsp])
        }
    }

    #[test]
    fn bsp_first_then_aps_in_madt_order() {
        let m = Machine::bare().acpi(madt(&xapics(&[3, 0, 2, 1])));
        assert_eq!(run(&m, None, 0, 64), from_acpi(&[0, 3, 2, 1]));
        // The BSP is index 0 wherever the MADT lists it.
        assert_eq!(run(&m, None, 2, 64), from_acpi(&[2, 3, 0, 1]));
        assert_eq!(run(&m, None, 1, 64), from_acpi(&[1, 3, 0, 2]));
    }

    #[test]
    fn qemu_two_sockets_have_sparse_apic_ids() {
        // -smp 6,sockets=2,cores=3: each socket's core IDs are rounded up to 4.
        let m = Machine::bare().acpi(madt(&xapics(&[0, 1, 2, 4, 5, 6])));
        assert_eq!(run(&m, None, 0, 64), from_acpi(&[0, 1, 2, 4, 5, 6]));
        // Booted on the second socket's first core.
        assert_eq!(run(&m, None, 4, 64), from_acpi(&[4, 0, 1, 2, 5, 6]));
    }

    #[test]
    fn x2apic_entries_with_ids_above_255() {
        let cpus = [
            (0, ENABLED, XAPIC),
            (1, ENABLED, XAPIC),
            (255, ENABLED, X2APIC),
            (256, ENABLED, X2APIC),
            (0x1_0000, ENABLED, X2APIC),
            (0xFFFF_FFFE, ENABLED, X2APIC),
        ];
        let m = Machine::bare().acpi(madt(&cpus));
        assert_eq!(
            run(&m, None, 0, 64),
            from_acpi(&[0, 1, 255, 256, 0x1_0000, 0xFFFF_FFFE])
        );
        // An x2APIC-only BSP.
        assert_eq!(
            run(&m, None, 0x1_0000, 64),
            from_acpi(&[0x1_0000, 0, 1, 255, 256, 0xFFFF_FFFE])
        );
    }

    #[test]
    fn cpu_listed_as_local_apic_and_x2apic_is_counted_once() {
        let cpus = [
            (0, ENABLED, XAPIC),
            (1, ENABLED, XAPIC),
            (2, ENABLED, XAPIC),
            (0, ENABLED, X2APIC),
            (1, ENABLED, X2APIC),
            (2, ENABLED, X2APIC),
            (300, ENABLED, X2APIC),
        ];
        let m = Machine::bare().acpi(madt(&cpus));
        assert_eq!(run(&m, None, 0, 64), from_acpi(&[0, 1, 2, 300]));
        assert_eq!(run(&m, None, 2, 64), from_acpi(&[2, 0, 1, 300]));
    }

    #[test]
    fn disabled_and_online_capable_cpus_are_counted_not_started() {
        let cpus = [
            (0, ENABLED, XAPIC),
            (1, DISABLED, XAPIC),
            (2, ONLINE_CAPABLE, XAPIC),
            (3, ENABLED, XAPIC),
            (300, ONLINE_CAPABLE, X2APIC),
            (301, DISABLED, X2APIC),
            (302, ONLINE_CAPABLE, X2APIC),
            (303, ENABLED, X2APIC),
        ];
        let m = Machine::bare().acpi(madt(&cpus));
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                online_capable: 3,
                disabled: 2,
                ..from_acpi(&[0, 3, 303])
            }
        );
    }

    #[test]
    fn broadcast_apic_ids_are_never_started() {
        // Found by the topology fuzz target (fuzz/corpus/topology/broadcast-xapic-id): a Local
        // APIC entry with ID 0xFF was kept as an AP, and its INIT would have gone to every CPU.
        // x2APIC ID 0xFF is a CPU; 0xFFFF_FFFF never is.
        let cpus = [
            (0, ENABLED, XAPIC),
            (0xFF, ENABLED, XAPIC),
            (0xFF, ENABLED, X2APIC),
            (0xFFFF_FFFF, ENABLED, X2APIC),
            (0xFFFF_FFFF, DISABLED, X2APIC),
            (1, ENABLED, XAPIC),
        ];
        let m = Machine::bare().acpi(madt(&cpus));
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                broadcast_ids: 3,
                ..from_acpi(&[0, 0xFF, 1])
            }
        );
        let m = Machine::bare().mp(&[cpu(0, MP_EN | MP_BP), cpu(0xFF, MP_EN), cpu(1, MP_EN)]);
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                broadcast_ids: 1,
                ..from_mp(&[0, 1])
            }
        );
    }

    #[test]
    fn storage_smaller_than_the_cpu_count_truncates() {
        let m = Machine::bare().acpi(madt(&xapics(&[0, 1, 2, 4, 5, 6])));
        assert_eq!(
            run(&m, None, 0, 4),
            Found {
                enabled: 6,
                truncated: true,
                ..from_acpi(&[0, 1, 2, 4])
            }
        );
        // maxcpus=1: the BSP alone, even when the MADT lists it last.
        assert_eq!(
            run(&m, None, 6, 1),
            Found {
                enabled: 6,
                truncated: true,
                ..from_acpi(&[6])
            }
        );
        // Exactly enough room is not truncation.
        assert_eq!(run(&m, None, 0, 6), from_acpi(&[0, 1, 2, 4, 5, 6]));
    }

    #[test]
    fn duplicates_past_the_storage_limit_are_counted_once() {
        // Firmware listing every CPU both as Local APIC and Local x2APIC, with maxcpus=2: the
        // duplicates of CPUs that did not fit must not inflate the count.
        let mut cpus = xapics(&[0, 1, 2, 3]);
        cpus.extend([0, 1, 2, 3].map(|id| (id, ENABLED, X2APIC)));
        let m = Machine::bare().acpi(madt(&cpus));
        let expected = |ids: &[u32]| Found {
            enabled: 4,
            truncated: true,
            ..from_acpi(ids)
        };
        assert_eq!(run(&m, None, 0, 2), expected(&[0, 1]));
        assert_eq!(run(&m, None, 3, 1), expected(&[3]));
    }

    #[test]
    fn bsp_missing_from_the_madt_still_counts() {
        let m = Machine::bare().acpi(madt(&xapics(&[1, 2, 3])));
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                bsp_listed: false,
                ..from_acpi(&[0, 1, 2, 3])
            }
        );
        assert_eq!(
            run(&m, None, 0, 2),
            Found {
                bsp_listed: false,
                enabled: 4,
                truncated: true,
                ..from_acpi(&[0, 1])
            }
        );
    }

    #[test]
    fn valid_boot_rsdp_is_used_over_the_bios_area() {
        // Two ACPI trees: the one the boot protocol points at wins.
        let m = Machine::bare().acpi(madt(&xapics(&[0, 1]))).acpi_at(
            BOOT_RSDP,
            b"XSDT",
            0x7F0_0000,
            madt(&xapics(&[0, 1, 2])),
        );
        let from_boot = Found {
            source: CpuSource::Acpi {
                via_xsdt: true,
                rsdp: BOOT_RSDP,
                rsdp_from_boot: true,
            },
            ..from_acpi(&[0, 1, 2])
        };
        assert_eq!(run(&m, Some(BOOT_RSDP), 0, 64), from_boot);
        // Without a hint, the BIOS area is scanned.
        assert_eq!(run(&m, None, 0, 64), from_acpi(&[0, 1]));
    }

    #[test]
    fn invalid_boot_rsdp_falls_back_to_the_bios_area_scan() {
        let mut bad_checksum = rsdp_v2(0, 0x7F0_0000);
        bad_checksum[8] ^= 0xFF;
        let m = Machine::bare()
            .acpi(madt(&xapics(&[0, 1])))
            .put(BOOT_RSDP, bad_checksum)
            .put(0x7FC_0000, vec![0; 64]);
        // Bad checksum, no signature, unreadable memory.
        for hint in [BOOT_RSDP, 0x7FC_0000, 0xDEAD_0000] {
            assert_eq!(run(&m, Some(hint), 0, 64), from_acpi(&[0, 1]), "{hint:#x}");
        }
    }

    #[test]
    fn invalid_boot_rsdp_and_nothing_in_the_bios_area() {
        let m = Machine::bare().put(0x7FC_0000, vec![0; 64]);
        assert_eq!(run(&m, Some(0x7FC_0000), 0, 64), bsp_only(0));
    }

    #[test]
    fn root_table_kind_is_reported() {
        let m = Machine::bare().acpi_at(BIOS_RSDP, b"RSDT", TABLES, madt(&xapics(&[0, 1])));
        let via_rsdt = Found {
            source: CpuSource::Acpi {
                via_xsdt: false,
                rsdp: BIOS_RSDP,
                rsdp_from_boot: false,
            },
            ..from_acpi(&[0, 1])
        };
        assert_eq!(run(&m, None, 0, 64), via_rsdt);
        let m = Machine::bare().acpi_at(BIOS_RSDP, b"XSDT", TABLES, madt(&xapics(&[0, 1])));
        assert_eq!(run(&m, None, 0, 64), from_acpi(&[0, 1]));

        // A revision 2 RSDP with both: the XSDT wins, the RSDT serves when the XSDT is bad.
        let both = |xsdt: Vec<u8>| {
            Machine::bare()
                .put(BIOS_RSDP, rsdp_v2(0x7F0_0000, TABLES))
                .put(TABLES, xsdt)
                .put(0x7F0_0000, root_table(b"RSDT", &[0x7F1_0000]))
                .put(0x7F1_0000, madt(&xapics(&[0, 1])))
                .put(MADT_PA, madt(&xapics(&[0, 1, 2])))
        };
        let xsdt = root_table(b"XSDT", &[MADT_PA]);
        assert_eq!(run(&both(xsdt.clone()), None, 0, 64), from_acpi(&[0, 1, 2]));
        let mut bad_xsdt = xsdt;
        bad_xsdt[36] ^= 1;
        assert_eq!(run(&both(bad_xsdt), None, 0, 64), via_rsdt);
    }

    #[test]
    fn local_apic_address_override_is_reported() {
        let entries = [
            MadtEntry::LocalApic {
                uid: 0,
                apic_id: 0,
                flags: ENABLED,
            },
            MadtEntry::AddressOverride(0x1_FEE0_0000),
        ];
        let m = Machine::bare().acpi(madt_image(5, LAPIC as u32, 1, &entries));
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                local_apic_address: Some(0x1_FEE0_0000),
                ..from_acpi(&[0])
            }
        );
    }

    #[test]
    fn madt_with_bad_checksum_falls_back_to_mp_tables() {
        let mut img = madt(&xapics(&[0, 1, 2, 3]));
        img[50] ^= 1;
        let m = Machine::bare()
            .acpi(img)
            .mp(&[cpu(0, MP_EN | MP_BP), cpu(1, MP_EN)]);
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                // The root table skips a MADT whose checksum fails and reports it as invalid.
                acpi_error: Some(AcpiError::TableNotFound {
                    signature: *b"APIC",
                    root: *b"XSDT",
                    root_address: TABLES,
                    entries: 2,
                    invalid: 1,
                    unreadable: 0,
                }),
                ..from_mp(&[0, 1])
            }
        );
    }

    /// A MADT (valid checksum) listing CPUs 0..=3 whose last entry, an x2APIC one, claims 16
    /// bytes but the table ends 8 bytes into it.
    fn truncated_madt() -> Vec<u8> {
        let mut img = madt(&xapics(&[0, 1, 2, 3]));
        img.extend_from_slice(&[9, 16, 0, 0, 4, 0, 0, 0]);
        let length = img.len() as u32;
        img[4..8].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut img);
        img
    }

    #[test]
    fn truncated_madt_falls_back_to_mp_tables() {
        let m = Machine::bare()
            .acpi(truncated_madt())
            .mp(&[cpu(0, MP_EN | MP_BP), cpu(1, MP_EN)]);
        let expected = Found {
            acpi_error: Some(AcpiError::MadtEntryTruncated {
                address: MADT_PA,
                offset: 76,
                length: 16,
                table_length: 84,
            }),
            ..from_mp(&[0, 1])
        };
        assert_eq!(run(&m, None, 0, 64), expected);
        // Through the boot-protocol RSDP as well.
        let m = Machine::bare()
            .acpi_at(BOOT_RSDP, b"XSDT", TABLES, truncated_madt())
            .mp(&[cpu(0, MP_EN | MP_BP), cpu(1, MP_EN)]);
        assert_eq!(run(&m, Some(BOOT_RSDP), 0, 64), expected);
    }

    #[test]
    fn broken_madt_and_no_mp_tables_leave_the_bsp_alone() {
        let mut img = madt(&xapics(&[0, 1]));
        img[40] ^= 1;
        let m = Machine::bare().acpi(img);
        assert_eq!(
            run(&m, None, 5, 64),
            Found {
                acpi_error: Some(AcpiError::TableNotFound {
                    signature: *b"APIC",
                    root: *b"XSDT",
                    root_address: TABLES,
                    entries: 2,
                    invalid: 1,
                    unreadable: 0,
                }),
                ..bsp_only(5)
            }
        );
    }

    #[test]
    fn mp_tables_without_acpi() {
        // QEMU -no-acpi -smp 6,sockets=2,cores=3, one CPU disabled.
        let m = Machine::bare().mp(&[
            cpu(0, MP_EN | MP_BP),
            cpu(1, MP_EN),
            cpu(2, 0),
            cpu(4, MP_EN),
            cpu(5, MP_EN),
            cpu(6, MP_EN),
            Entry::Other(1),
            Entry::Other(2),
        ]);
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                disabled: 1,
                ..from_mp(&[0, 1, 4, 5, 6])
            }
        );
        assert_eq!(
            run(&m, None, 5, 3),
            Found {
                disabled: 1,
                enabled: 5,
                truncated: true,
                ..from_mp(&[5, 0, 1])
            }
        );
        // BSP not listed.
        assert_eq!(
            run(&m, None, 7, 64),
            Found {
                disabled: 1,
                bsp_listed: false,
                ..from_mp(&[7, 0, 1, 4, 5, 6])
            }
        );
    }

    #[test]
    fn mp_default_configuration_has_two_cpus() {
        let m = Machine::bare().put(MP_FP, floating_pointer(0, 5));
        assert_eq!(run(&m, None, 0, 64), from_mp(&[0, 1]));
    }

    #[test]
    fn nothing_at_all_leaves_the_bsp_alone() {
        assert_eq!(run(&Machine::bare(), None, 0, 64), bsp_only(0));
        assert_eq!(run(&Machine::bare(), None, 9, 1), bsp_only(9));
        // No readable memory at all, not even the BIOS areas.
        let nothing = Machine(FakeMem::new());
        assert_eq!(run(&nothing, Some(0xE_0000), 3, 64), bsp_only(3));
    }

    #[test]
    fn broken_mp_table_leaves_the_bsp_alone() {
        let mut table = config_table(&[cpu(0, MP_EN | MP_BP), cpu(1, MP_EN)]);
        table[50] ^= 1;
        let m = Machine::bare().mp_table(table);
        assert_eq!(
            run(&m, None, 0, 64),
            Found {
                mp_error: Some(MpTableError::ConfigTableChecksum {
                    address: MP_TABLE,
                    length: 84,
                }),
                ..bsp_only(0)
            }
        );
    }

    #[test]
    fn broken_madt_and_broken_mp_table_report_both_errors() {
        let m = Machine::bare()
            .acpi(madt_image(
                5,
                LAPIC as u32,
                1,
                &[MadtEntry::Raw(vec![0, 0])],
            ))
            .put(MP_FP, floating_pointer(0, 0));
        assert_eq!(
            run(&m, None, 1, 64),
            Found {
                acpi_error: Some(AcpiError::MadtEntryLength {
                    address: MADT_PA,
                    offset: 44,
                    entry_type: 0,
                    length: 0,
                }),
                mp_error: Some(MpTableError::NoConfigTable { address: MP_FP }),
                ..bsp_only(1)
            }
        );
    }

    #[test]
    #[should_panic(expected = "discover needs room for the BSP")]
    fn empty_storage_is_refused() {
        discover(&FakeMem::new(), None, 0, &mut []);
    }
}
