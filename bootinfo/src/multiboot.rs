//! Multiboot 1 information structure (Multiboot Specification 0.6.96 §3.3).

use super::{BootInfo, BootInfoError, BootProtocol, MemoryKind, MemoryRegion, PhysRange};
use crate::memory::{u32_at, u64_at, PhysRead};

/// `flags` bit 2: `cmdline` is valid.
const FLAG_CMDLINE: u32 = 1 << 2;
/// `flags` bit 6: `mmap_length`/`mmap_addr` are valid.
const FLAG_MMAP: u32 = 1 << 6;
/// Bytes of the info structure up to and including `mmap_addr`.
const INFO_SIZE: usize = 52;

/// Reads the multiboot 1 information structure at physical address `pa`.
///
/// Multiboot loaders (QEMU, GRUB) put the image's file name first on the command line; it is
/// dropped so the kernel sees only its options.
pub fn parse_multiboot(mem: &impl PhysRead, pa: u64) -> Result<BootInfo, BootInfoError> {
    let mut info = BootInfo::new(BootProtocol::Multiboot1);
    let mbi: [u8; INFO_SIZE] = mem.read_array(pa).map_err(BootInfoError::Read)?;
    info.push_occupied(PhysRange {
        base: pa,
        len: INFO_SIZE as u64,
    });
    let flags = u32_at(&mbi, 0);
    if flags & FLAG_CMDLINE != 0 {
        info.read_cmdline(mem, u32_at(&mbi, 16) as u64)?;
        info.drop_first_word();
    }
    if flags & FLAG_MMAP != 0 {
        let length = u32_at(&mbi, 44) as u64;
        let addr = u32_at(&mbi, 48) as u64;
        info.push_occupied(PhysRange {
            base: addr,
            len: length,
        });
        // Each entry starts with its own size, which does not count the size field itself.
        let mut at = addr;
        while at + 4 <= addr + length {
            let size = u32::from_le_bytes(mem.read_array(at).map_err(BootInfoError::Read)?) as u64;
            if size < 20 {
                break; // malformed: an entry must hold base, length and type
            }
            let e: [u8; 20] = mem.read_array(at + 4).map_err(BootInfoError::Read)?;
            info.push_region(MemoryRegion {
                range: PhysRange {
                    base: u64_at(&e, 0),
                    len: u64_at(&e, 8),
                },
                kind: MemoryKind::from_e820(u32_at(&e, 16)),
            });
            at += size + 4;
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageMemory;

    fn mbi(flags: u32, cmdline: u32, mmap_len: u32, mmap_addr: u32) -> Vec<u8> {
        let mut b = vec![0u8; INFO_SIZE];
        b[0..4].copy_from_slice(&flags.to_le_bytes());
        b[16..20].copy_from_slice(&cmdline.to_le_bytes());
        b[44..48].copy_from_slice(&mmap_len.to_le_bytes());
        b[48..52].copy_from_slice(&mmap_addr.to_le_bytes());
        b
    }

    fn entry(base: u64, len: u64, kind: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_le_bytes());
        b.extend_from_slice(&base.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b
    }

    #[test]
    fn drops_the_image_name_and_reads_the_map() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(FLAG_CMDLINE | FLAG_MMAP, 0x9100, 48, 0x9200));
        mem.put(
            0x9100,
            b"target/x86_64-unknown-none/release/rust_multicore  maxcpus=4 delays=spec\0",
        );
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0xf0000, 0x10000, 2));
        mem.put(0x9200, &map);
        let info = parse_multiboot(&mem, 0x9000).unwrap();
        assert_eq!(info.cmdline(), "maxcpus=4 delays=spec");
        assert_eq!(info.rsdp, None);
        assert_eq!(info.memory_map().len(), 2);
        assert_eq!(info.memory_map()[1].kind, MemoryKind::Reserved);
    }

    #[test]
    fn image_name_alone_leaves_an_empty_line() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(FLAG_CMDLINE, 0x9100, 0, 0));
        mem.put(0x9100, b"/boot/kernel\0");
        assert_eq!(parse_multiboot(&mem, 0x9000).unwrap().cmdline(), "");
    }

    #[test]
    fn missing_flags_mean_no_cmdline_and_no_map() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(0, 0x1234, 99, 0x5678));
        let info = parse_multiboot(&mem, 0x9000).unwrap();
        assert_eq!(info.cmdline(), "");
        assert!(info.memory_map().is_empty());
    }

    #[test]
    fn malformed_entry_size_stops_the_walk() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(FLAG_MMAP, 0, 48, 0x9200));
        let mut map = entry(0, 0x9fc00, 1);
        map.extend_from_slice(&[0u8; 24]);
        mem.put(0x9200, &map);
        assert_eq!(parse_multiboot(&mem, 0x9000).unwrap().memory_map().len(), 1);
    }
}
