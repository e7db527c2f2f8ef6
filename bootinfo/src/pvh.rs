//! PVH direct boot: `struct hvm_start_info` (Xen public header `arch-x86/hvm/start_info.h`,
//! the layout QEMU's PVH option ROM fills in).

use super::{BootInfo, BootInfoError, BootProtocol, MemoryKind, MemoryRegion, PhysRange};
use crate::memory::{u32_at, u64_at, PhysRead};

/// `XEN_HVM_START_MAGIC_VALUE`.
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of version 1 of the structure (with the memory map fields).
const START_INFO_SIZE: usize = 56;
/// Size of one `hvm_memmap_table_entry` (addr u64, size u64, type u32, reserved u32).
const MEMMAP_ENTRY_SIZE: u64 = 24;

/// Reads the PVH start info at physical address `pa`.
pub fn parse_pvh(mem: &impl PhysRead, pa: u64) -> Result<BootInfo, BootInfoError> {
    let mut info = BootInfo::new(BootProtocol::Pvh);
    // Version 0 is 48 bytes; read those first, the rest only for version >= 1.
    let head: [u8; 48] = mem.read_array(pa).map_err(BootInfoError::Read)?;
    let magic = u32_at(&head, 0);
    if magic != START_INFO_MAGIC {
        return Err(BootInfoError::BadMagic {
            what: "PVH start info",
            found: magic,
        });
    }
    let version = u32_at(&head, 4);
    let cmdline = u64_at(&head, 24);
    let rsdp = u64_at(&head, 32);
    info.push_occupied(PhysRange {
        base: pa,
        len: START_INFO_SIZE as u64,
    });
    if cmdline != 0 {
        info.read_cmdline(mem, cmdline)?;
    }
    info.rsdp = (rsdp != 0).then_some(rsdp);
    if version >= 1 {
        let tail: [u8; START_INFO_SIZE - 48] =
            mem.read_array(pa + 48).map_err(BootInfoError::Read)?;
        let memmap = u64_at(&head, 40);
        let entries = u32_at(&tail, 0) as u64;
        if memmap != 0 {
            info.push_occupied(PhysRange {
                base: memmap,
                len: entries * MEMMAP_ENTRY_SIZE,
            });
            for i in 0..entries {
                let e: [u8; MEMMAP_ENTRY_SIZE as usize] = mem
                    .read_array(memmap + i * MEMMAP_ENTRY_SIZE)
                    .map_err(BootInfoError::Read)?;
                info.push_region(MemoryRegion {
                    range: PhysRange {
                        base: u64_at(&e, 0),
                        len: u64_at(&e, 8),
                    },
                    kind: MemoryKind::from_e820(u32_at(&e, 16)),
                });
            }
        }
    }
    Ok(info)
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
    fn unreadable_memory_map_is_an_error() {
        let mut mem = ImageMemory::new();
        mem.put(0x6000, &start_info(1, 0, 0, 0x9000, 3));
        assert!(matches!(
            parse_pvh(&mem, 0x6000),
            Err(BootInfoError::Read(_))
        ));
    }
}
