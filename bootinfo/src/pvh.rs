//! PVH direct boot: `struct hvm_start_info` (Xen public header `arch-x86/hvm/start_info.h`,
//! the layout QEMU's PVH option ROM fills in).

use super::{
    offset, BootInfo, BootInfoError, BootProtocol, MemoryKind, MemoryRegion, PhysRange,
    MAX_MEMORY_REGIONS, MAX_MODULES,
};
use crate::memory::{u32_at, u64_at, PhysRead};

/// `XEN_HVM_START_MAGIC_VALUE`.
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of version 0 of the structure (up to `rsdp_paddr`).
const START_INFO_V0_SIZE: usize = 48;
/// Size of version 1 of the structure (with the memory map fields).
const START_INFO_SIZE: usize = 56;
// Field offsets in `hvm_start_info`.
const OFF_VERSION: usize = 4;
const OFF_NR_MODULES: usize = 12;
const OFF_MODLIST: usize = 16;
const OFF_CMDLINE: usize = 24;
const OFF_RSDP: usize = 32;
const OFF_MEMMAP: usize = 40;
/// Offset of `memmap_entries`, counted from the end of version 0.
const OFF_MEMMAP_ENTRIES: usize = 48 - START_INFO_V0_SIZE;
/// Size of one `hvm_modlist_entry` (paddr u64, size u64, cmdline_paddr u64, reserved u64).
const MODLIST_ENTRY_SIZE: usize = 32;
/// Size of one `hvm_memmap_table_entry` (addr u64, size u64, type u32, reserved u32).
const MEMMAP_ENTRY_SIZE: usize = 24;

/// Reads the PVH start info at physical address `pa`.
pub fn parse_pvh(mem: &impl PhysRead, pa: u64) -> Result<BootInfo, BootInfoError> {
    let mut info = BootInfo::new(BootProtocol::Pvh);
    // Version 0 is 48 bytes; read those first, the rest only for version >= 1.
    let head: [u8; START_INFO_V0_SIZE] = mem.read_array(pa).map_err(BootInfoError::Read)?;
    let magic = u32_at(&head, 0);
    if magic != START_INFO_MAGIC {
        return Err(BootInfoError::BadMagic {
            what: "PVH start info",
            found: magic,
        });
    }
    let version = u32_at(&head, OFF_VERSION);
    let cmdline = u64_at(&head, OFF_CMDLINE);
    let rsdp = u64_at(&head, OFF_RSDP);
    info.push_occupied(PhysRange {
        base: pa,
        len: if version >= 1 {
            START_INFO_SIZE
        } else {
            START_INFO_V0_SIZE
        } as u64,
    });
    if cmdline != 0 {
        info.read_cmdline(mem, cmdline)?;
    }
    info.rsdp = (rsdp != 0).then_some(rsdp);
    let modlist = u64_at(&head, OFF_MODLIST);
    if modlist != 0 {
        read_modules(&mut info, mem, modlist, u32_at(&head, OFF_NR_MODULES))?;
    }
    if version >= 1 {
        let at = offset(
            pa,
            START_INFO_V0_SIZE as u64,
            START_INFO_SIZE - START_INFO_V0_SIZE,
        )?;
        let tail: [u8; START_INFO_SIZE - START_INFO_V0_SIZE] =
            mem.read_array(at).map_err(BootInfoError::Read)?;
        let memmap = u64_at(&head, OFF_MEMMAP);
        if memmap != 0 {
            read_memory_map(&mut info, mem, memmap, u32_at(&tail, OFF_MEMMAP_ENTRIES))?;
        }
    }
    Ok(info)
}

/// `count` `hvm_modlist_entry`s at `addr`, of which the first [`MAX_MODULES`] are read.
fn read_modules(
    info: &mut BootInfo,
    mem: &impl PhysRead,
    addr: u64,
    count: u32,
) -> Result<(), BootInfoError> {
    let read = (count as usize).min(MAX_MODULES);
    info.push_occupied(PhysRange {
        base: addr,
        len: (read * MODLIST_ENTRY_SIZE) as u64,
    });
    for i in 0..read {
        let at = offset(addr, (i * MODLIST_ENTRY_SIZE) as u64, MODLIST_ENTRY_SIZE)?;
        let e: [u8; MODLIST_ENTRY_SIZE] = mem.read_array(at).map_err(BootInfoError::Read)?;
        info.push_module(PhysRange {
            base: u64_at(&e, 0),
            len: u64_at(&e, 8),
        });
    }
    info.modules_truncated = count as usize > MAX_MODULES;
    Ok(())
}

/// `entries` `hvm_memmap_table_entry`s at `addr`: the first [`MAX_MEMORY_REGIONS`] are kept
/// and at most one more is read, to tell that the map was longer.
fn read_memory_map(
    info: &mut BootInfo,
    mem: &impl PhysRead,
    addr: u64,
    entries: u32,
) -> Result<(), BootInfoError> {
    let read = (entries as usize).min(MAX_MEMORY_REGIONS + 1);
    info.push_occupied(PhysRange {
        base: addr,
        len: (read * MEMMAP_ENTRY_SIZE) as u64,
    });
    for i in 0..read {
        let at = offset(addr, (i * MEMMAP_ENTRY_SIZE) as u64, MEMMAP_ENTRY_SIZE)?;
        let e: [u8; MEMMAP_ENTRY_SIZE] = mem.read_array(at).map_err(BootInfoError::Read)?;
        info.push_region(MemoryRegion {
            range: PhysRange {
                base: u64_at(&e, 0),
                len: u64_at(&e, 8),
            },
            kind: MemoryKind::from_e820(u32_at(&e, 16)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageMemory;

    fn start_info(version: u32, cmdline: u64, rsdp: u64, memmap: u64, entries: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&START_INFO_MAGIC.to_le_bytes());
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // flags
        b.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
        b.extend_from_slice(&0u64.to_le_bytes()); // modlist
        b.extend_from_slice(&cmdline.to_le_bytes());
        b.extend_from_slice(&rsdp.to_le_bytes());
        b.extend_from_slice(&memmap.to_le_bytes());
        b.extend_from_slice(&entries.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    fn entry(addr: u64, size: u64, kind: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&addr.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_cmdline_rsdp_and_memory_map() {
        let mut mem = ImageMemory::new();
        mem.put(0x6000, &start_info(1, 0x7000, 0xf5a0, 0x7100, 2));
        mem.put(0x7000, b"bringup=sequential delays=spec\0");
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0x100000, 0x7f00000, 1));
        mem.put(0x7100, &map);
        let info = parse_pvh(&mem, 0x6000).unwrap();
        assert_eq!(info.protocol, BootProtocol::Pvh);
        assert_eq!(info.cmdline(), "bringup=sequential delays=spec");
        assert_eq!(info.rsdp, Some(0xf5a0));
        assert_eq!(info.memory_map().len(), 2);
        assert_eq!(
            info.memory_map()[1].range,
            PhysRange {
                base: 0x100000,
                len: 0x7f00000
            }
        );
        assert_eq!(info.memory_map()[0].kind, MemoryKind::Usable);
        assert!(info.occupied().contains(&PhysRange {
            base: 0x6000,
            len: 56
        }));
        assert!(info.occupied().contains(&PhysRange {
            base: 0x7100,
            len: 48
        }));
    }

    #[test]
    fn version_zero_has_no_memory_map_and_no_rsdp_is_none() {
        let mut mem = ImageMemory::new();
        mem.put(0x6000, &start_info(0, 0, 0, 0, 0)[..48]);
        let info = parse_pvh(&mem, 0x6000).unwrap();
        assert!(info.memory_map().is_empty());
        assert_eq!(info.rsdp, None);
        assert_eq!(info.cmdline(), "");
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut mem = ImageMemory::new();
        let mut b = start_info(1, 0, 0, 0, 0);
        b[0] = 0;
        mem.put(0x6000, &b);
        assert!(matches!(
            parse_pvh(&mem, 0x6000),
            Err(BootInfoError::BadMagic { .. })
        ));
    }

    #[test]
    fn modules_are_read() {
        let mut mem = ImageMemory::new();
        let mut b = start_info(1, 0, 0, 0, 0);
        b[12..16].copy_from_slice(&2u32.to_le_bytes());
        b[16..24].copy_from_slice(&0x7000u64.to_le_bytes());
        mem.put(0x6000, &b);
        let list: Vec<u8> = [(0x20_0000u64, 0x1000u64), (0x30_0000, 0x2000)]
            .iter()
            .flat_map(|&(paddr, size)| [paddr, size, 0, 0])
            .flat_map(u64::to_le_bytes)
            .collect();
        mem.put(0x7000, &list);
        let info = parse_pvh(&mem, 0x6000).unwrap();
        assert_eq!(
            info.modules(),
            &[
                PhysRange {
                    base: 0x20_0000,
                    len: 0x1000
                },
                PhysRange {
                    base: 0x30_0000,
                    len: 0x2000
                }
            ]
        );
        assert!(info.occupied().contains(&PhysRange {
            base: 0x7000,
            len: 64
        }));
    }

    #[test]
    fn huge_counts_are_cut_not_walked() {
        // 2^32 - 1 map entries and modules, in a readable page: only what is kept (plus one
        // map entry) is read.
        let mut mem = ImageMemory::new();
        let mut b = start_info(1, 0, 0, 0x7000, u32::MAX);
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        b[16..24].copy_from_slice(&0x9000u64.to_le_bytes());
        mem.put(0x6000, &b);
        mem.put(0x7000, &entry(0, 0x1000, 1).repeat(MAX_MEMORY_REGIONS + 1));
        mem.put(0x9000, &[0u8; MAX_MODULES * 32]);
        let info = parse_pvh(&mem, 0x6000).unwrap();
        assert_eq!(info.memory_map().len(), MAX_MEMORY_REGIONS);
        assert!(info.regions_truncated);
        assert_eq!(info.modules().len(), MAX_MODULES);
        assert!(info.modules_truncated);
    }

    #[test]
    fn structures_wrapping_the_address_space_are_read_errors() {
        let mut mem = ImageMemory::new();
        mem.put(0x6000, &start_info(1, 0, 0, u64::MAX - 8, 3));
        assert!(matches!(
            parse_pvh(&mem, 0x6000),
            Err(BootInfoError::Read(_))
        ));
    }

    #[test]
    fn unreadable_memory_map_is_an_error() {
        let mut mem = ImageMemory::new();
        mem.put(0x6000, &start_info(1, 0, 0, 0x9000, 3));
        assert!(matches!(
            parse_pvh(&mem, 0x6000),
            Err(BootInfoError::Read(_))
        ));
    }
}
