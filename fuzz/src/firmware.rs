//! Targets for the firmware tables the `multicore` library reads: the RSDP, the RSDT/XSDT,
//! the MADT, the MP tables, and `topology::discover` over all of them.

use crate::image::{FakeMemory, Params};
use multicore::acpi::{self, AcpiError, MadtCpuKind, Rsdp, TableLocation};
use multicore::mptable;
use multicore::phys::PhysRead;
use multicore::topology::{self, CpuSource};
use std::collections::HashSet;

/// ACPI 6.5 §5.2.5.1: the BIOS read-only area the RSDP scan covers.
const ACPI_ROM: core::ops::Range<u64> = 0xE_0000..0x10_0000;
/// MP 1.4 §4: the BIOS ROM area of the floating pointer scan.
const MP_ROM: core::ops::Range<u64> = 0xF_0000..0x10_0000;

/// The EBDA the scans look at, as the BIOS data area names it (0x40E), if it is plausible.
fn ebda(mem: &FakeMemory) -> Option<u64> {
    let segment = u16::from_le_bytes(mem.read_array::<2>(0x40E).ok()?);
    let base = u64::from(segment) << 4;
    (0x500..=0xA_0000 - 1024).contains(&base).then_some(base)
}

/// The input's flags and parameters, and its memory.
fn machine(data: &[u8]) -> (Params<'_>, u8) {
    let mut p = Params::new(data);
    let flags = p.u8();
    (p, flags)
}

/// Every error's message can be formatted (the console prints them).
fn show(e: &impl core::fmt::Display) {
    assert!(!e.to_string().is_empty());
}

/// `parse_rsdp` at an address, and the BIOS-area scan. Params: the address (u64).
pub fn acpi_rsdp(data: &[u8]) {
    let (mut p, flags) = machine(data);
    let pa = p.u64();
    let mem = FakeMemory::load(flags, p.rest());
    match acpi::parse_rsdp(&mem, pa) {
        Ok(rsdp) => {
            let len = if rsdp.revision >= 2 { 36 } else { 20 };
            assert!(mem.readable(pa, len), "accepted an RSDP that is not there");
            assert!(rsdp.revision >= 2 || rsdp.xsdt_address.is_none());
        }
        Err(e) => show(&e),
    }
    if let Some(found) = acpi::find_rsdp_in_bios_area(&mem) {
        assert!(
            found.is_multiple_of(16),
            "RSDP at {found:#x} off a paragraph"
        );
        let in_ebda = ebda(&mem).is_some_and(|e| (e..e + 1024).contains(&found));
        assert!(in_ebda || ACPI_ROM.contains(&found), "RSDP at {found:#x}");
        assert!(acpi::parse_rsdp(&mem, found).is_ok());
    }
    mem.assert_bounded_work("RSDP");
}

/// `validate_table` at an address and `find_table` through a given RSDP. Params: the table
/// address (u64), the RSDP's RSDT (u32) and XSDT (u64, 0: none) addresses, the signature
/// searched for (4 bytes).
pub fn acpi_sdt(data: &[u8]) {
    let (mut p, flags) = machine(data);
    let pa = p.u64();
    let rsdt = p.u32();
    let xsdt = p.u64();
    let signature = p.signature();
    let mem = FakeMemory::load(flags, p.rest());
    match acpi::validate_table(&mem, pa, None) {
        Ok(header) => {
            assert!((36..=acpi::sdt::MAX_TABLE_LEN).contains(&header.length));
            assert!(mem.readable(pa, header.length.into()));
        }
        Err(e) => show(&e),
    }
    let rsdp = Rsdp {
        revision: 2,
        oem_id: *b"FUZZ  ",
        rsdt_address: rsdt,
        xsdt_address: (xsdt != 0).then_some(xsdt),
    };
    match acpi::find_table(&mem, &rsdp, &signature) {
        Ok(loc) => {
            let header = acpi::validate_table(&mem, loc.address, Some(&signature))
                .expect("find_table returned a table that does not validate");
            assert_eq!(header.length, loc.length);
            assert!(!loc.via_xsdt || rsdp.xsdt_address.is_some());
        }
        Err(AcpiError::TableNotFound {
            entries,
            invalid,
            unreadable,
            ..
        }) => assert!(invalid + unreadable <= entries),
        Err(e) => show(&e),
    }
    mem.assert_bounded_work("RSDT/XSDT");
}

/// `parse_madt` of the table at an address. Params: the address (u64).
pub fn acpi_madt(data: &[u8]) {
    let (mut p, flags) = machine(data);
    let address = p.u64();
    let mem = FakeMemory::load(flags, p.rest());
    let loc = TableLocation {
        address,
        length: 0,
        via_xsdt: true,
    };
    let mut cpus = Vec::new();
    match acpi::parse_madt(&mem, &loc, |cpu| cpus.push(cpu)) {
        Ok(info) => {
            let header = acpi::validate_table(&mem, address, Some(b"APIC")).expect("valid");
            let length = header.length;
            assert!(
                length >= acpi::madt::MADT_ENTRIES_OFFSET && mem.readable(address, length.into())
            );
            // Every structure is at least 2 bytes, every processor entry at least 8.
            assert!(info.entries <= (length - acpi::madt::MADT_ENTRIES_OFFSET) as usize / 2);
            assert!(cpus.len() <= info.entries);
            for cpu in &cpus {
                assert!(cpu.kind == MadtCpuKind::LocalX2Apic || cpu.apic_id <= 0xFF);
            }
        }
        Err(e) => {
            assert!(
                cpus.is_empty(),
                "a malformed MADT reported {} CPUs",
                cpus.len()
            );
            show(&e);
        }
    }
    mem.assert_bounded_work("MADT");
}

/// `mptable::parse` from a floating pointer at an address, and the floating pointer scan.
/// Params: the address (u64).
pub fn mp_tables(data: &[u8]) {
    let (mut p, flags) = machine(data);
    let fp = p.u64();
    let mem = FakeMemory::load(flags, p.rest());
    let mut cpus = Vec::new();
    match mptable::parse(&mem, fp, |cpu| cpus.push(cpu)) {
        Ok(info) => {
            assert_eq!(cpus.len(), info.cpus);
            assert!(mem.readable(fp, 16));
            if info.default_config.is_some() {
                assert_eq!(cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>(), [0, 1]);
            } else {
                let table = u64::from(
                    mptable::parse_floating_pointer(&mem, fp)
                        .expect("valid")
                        .config_table,
                );
                let mut len = [0u8; 2];
                mem.read(table + 4, &mut len).expect("the table was read");
                let length = u16::from_le_bytes(len) as usize;
                assert!(mem.readable(table, length as u64));
                assert!(cpus.len() <= length.saturating_sub(44) / 20);
            }
            assert!(cpus.iter().all(|c| c.apic_id <= 0xFF));
        }
        Err(e) => {
            assert!(
                cpus.is_empty(),
                "a malformed MP table reported {} CPUs",
                cpus.len()
            );
            show(&e);
        }
    }
    if let Some(found) = mptable::find_floating_pointer(&mem) {
        assert!(found.is_multiple_of(16), "floating pointer at {found:#x}");
        let in_ebda = ebda(&mem).is_some_and(|e| (e..e + 1024).contains(&found));
        let in_base_top = found < 0xA_0000; // the last KiB of base memory
        assert!(
            in_ebda || in_base_top || MP_ROM.contains(&found),
            "{found:#x}"
        );
        assert!(mptable::parse_floating_pointer(&mem, found).is_ok());
    }
    mem.assert_bounded_work("MP tables");
}

/// The APIC IDs a table lists, as `discover` should keep them: the BSP first, then every
/// enabled entry's ID in table order, each once, at most `max` in all (`usize::MAX`: all).
fn expected_ids(bsp: u32, listed: impl IntoIterator<Item = u32>, max: usize) -> Vec<u32> {
    let mut seen = HashSet::from([bsp]);
    let mut ids = vec![bsp];
    for id in listed {
        if seen.insert(id) {
            ids.push(id);
        }
    }
    ids.truncate(max);
    ids
}

/// The APIC IDs no CPU can have: the xAPIC broadcast (0xFF) from an 8-bit field, the x2APIC
/// broadcast (0xFFFF_FFFF) from a 32-bit one. Starting such an "AP" would broadcast INIT.
fn is_broadcast(id: u32, eight_bit: bool) -> bool {
    id == u32::MAX || (eight_bit && id == 0xFF)
}

/// `topology::discover` over a whole machine image. Params: the boot protocol's RSDP hint
/// (u64, 0: none), the BSP's APIC ID (u32), the CPU storage (u8: 1 + this many slots).
pub fn topology(data: &[u8]) {
    let (mut p, flags) = machine(data);
    let hint = p.u64();
    let bsp = p.u32();
    let max = 1 + p.u8() as usize;
    let mem = FakeMemory::load(flags, p.rest());
    let mut storage = vec![0xDEAD_BEEF; max];
    let topo = topology::discover(&mem, (hint != 0).then_some(hint), bsp, &mut storage);
    let ids = topo.apic_ids;
    assert!(!ids.is_empty() && ids.len() <= max && ids[0] == bsp);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "{ids:x?}"
    );
    assert!(topo.enabled as usize >= ids.len());
    assert_eq!(topo.truncated(), (ids.len() as u32) < topo.enabled);
    // What the table itself lists, read again on its own, and whether those IDs are 8-bit.
    let listed: Vec<(u32, bool)> = match topo.source {
        CpuSource::BspOnly => {
            assert_eq!(ids, [bsp]);
            Vec::new()
        }
        CpuSource::Acpi { rsdp, .. } => {
            let mut listed = Vec::new();
            acpi::madt_from_rsdp(&mem, rsdp, |cpu| {
                if cpu.enabled {
                    listed.push((cpu.apic_id, cpu.kind == MadtCpuKind::LocalApic));
                }
            })
            .expect("the MADT discover used parses again");
            listed
        }
        CpuSource::MpTable => {
            let fp = mptable::find_floating_pointer(&mem).expect("discover found one");
            let mut listed = Vec::new();
            mptable::parse(&mem, fp, |cpu| {
                if cpu.enabled {
                    listed.push((cpu.apic_id, true));
                }
            })
            .expect("the MP table discover used parses again");
            listed
        }
    };
    for &id in &ids[1..] {
        let eight_bit = listed.iter().any(|&(l, e)| l == id && e);
        assert!(
            !is_broadcast(id, eight_bit),
            "AP with broadcast APIC ID {id:#x}"
        );
    }
    if topo.source != CpuSource::BspOnly {
        let usable = listed
            .iter()
            .filter(|&&(id, eight_bit)| !is_broadcast(id, eight_bit))
            .map(|&(id, _)| id);
        let all = expected_ids(bsp, usable, usize::MAX);
        assert_eq!(
            ids,
            &all[..all.len().min(max)],
            "table order, BSP first, once each"
        );
        assert_eq!(topo.truncated(), all.len() > max);
        if !topo.truncated() {
            assert_eq!(topo.enabled as usize, all.len());
        }
    }
    if let Some(e) = &topo.acpi_error {
        show(e);
    }
    if let Some(e) = &topo.mp_error {
        show(e);
    }
    mem.assert_bounded_work("topology");
}
