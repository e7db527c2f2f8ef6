//! Multiboot 1 information structure (Multiboot Specification 0.6.96 §3.3 "Boot information
//! format"): what QEMU's `-kernel` multiboot loader (and GRUB) leave in `%ebx`.

use super::{
    offset, BootInfo, BootInfoError, BootProtocol, MemoryKind, MemoryRegion, PhysRange, MAX_MODULES,
};
use crate::memory::{u32_at, u64_at, PhysRead};

/// `flags` bit 2: `cmdline` is valid.
const FLAG_CMDLINE: u32 = 1 << 2;
/// `flags` bit 3: `mods_count`/`mods_addr` are valid.
const FLAG_MODS: u32 = 1 << 3;
/// `flags` bit 6: `mmap_length`/`mmap_addr` are valid.
const FLAG_MMAP: u32 = 1 << 6;
/// Bytes of the info structure up to and including `mmap_addr`.
const INFO_SIZE: usize = 52;
// Field offsets in the info structure.
const OFF_CMDLINE: usize = 16;
const OFF_MODS_COUNT: usize = 20;
const OFF_MODS_ADDR: usize = 24;
const OFF_MMAP_LENGTH: usize = 44;
const OFF_MMAP_ADDR: usize = 48;
/// One module entry: `mod_start`, `mod_end`, `string`, reserved (u32 each).
const MODULE_SIZE: usize = 16;
/// One memory-map entry after its `size` field: `base_addr` u64, `length` u64, `type` u32.
const MMAP_ENTRY_SIZE: usize = 20;

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
        info.read_cmdline(mem, u32_at(&mbi, OFF_CMDLINE).into())?;
        info.drop_first_word();
    }
    if flags & FLAG_MODS != 0 {
        read_modules(
            &mut info,
            mem,
            u32_at(&mbi, OFF_MODS_ADDR).into(),
            u32_at(&mbi, OFF_MODS_COUNT),
        )?;
    }
    if flags & FLAG_MMAP != 0 {
        read_memory_map(
            &mut info,
            mem,
            u32_at(&mbi, OFF_MMAP_ADDR).into(),
            u32_at(&mbi, OFF_MMAP_LENGTH).into(),
        )?;
    }
    Ok(info)
}

/// The module list: `count` entries at `addr`, of which the first [`MAX_MODULES`] are read.
fn read_modules(
    info: &mut BootInfo,
    mem: &impl PhysRead,
    addr: u64,
    count: u32,
) -> Result<(), BootInfoError> {
    // One entry past the kept ones is never read: `modules_truncated` only needs the count.
    let read = (count as usize).min(MAX_MODULES);
    info.push_occupied(PhysRange {
        base: addr,
        len: (read * MODULE_SIZE) as u64,
    });
    for i in 0..read {
        let at = offset(addr, (i * MODULE_SIZE) as u64, MODULE_SIZE)?;
        let m: [u8; MODULE_SIZE] = mem.read_array(at).map_err(BootInfoError::Read)?;
        let (start, end) = (u64::from(u32_at(&m, 0)), u64::from(u32_at(&m, 4)));
        info.push_module(PhysRange {
            base: start,
            len: end.saturating_sub(start),
        });
    }
    info.modules_truncated = count as usize > MAX_MODULES;
    Ok(())
}

/// The memory map: `length` bytes of entries at `addr`, each led by its own size (which does
/// not count the size field itself), walked until one does not fit or one more than
/// [`crate::MAX_MEMORY_REGIONS`] was seen.
fn read_memory_map(
    info: &mut BootInfo,
    mem: &impl PhysRead,
    addr: u64,
    length: u64,
) -> Result<(), BootInfoError> {
    info.push_occupied(PhysRange {
        base: addr,
        len: length,
    });
    // Both are 32-bit fields: the sum cannot overflow.
    let end = addr + length;
    let mut at = addr;
    while at + 4 + MMAP_ENTRY_SIZE as u64 <= end && !info.regions_truncated {
        let size = u64::from(u32::from_le_bytes(
            mem.read_array(at).map_err(BootInfoError::Read)?,
        ));
        if size < MMAP_ENTRY_SIZE as u64 {
            break; // malformed: an entry must hold base, length and type
        }
        let e: [u8; MMAP_ENTRY_SIZE] = mem.read_array(at + 4).map_err(BootInfoError::Read)?;
        info.push_region(MemoryRegion {
            range: PhysRange {
                base: u64_at(&e, 0),
                len: u64_at(&e, 8),
            },
            kind: MemoryKind::from_e820(u32_at(&e, 16)),
        });
        at += size + 4;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CmdlineProblem, ImageMemory, MAX_CMDLINE, MAX_MEMORY_REGIONS};

    fn mbi(flags: u32, cmdline: u32, mmap_len: u32, mmap_addr: u32) -> Vec<u8> {
        let mut b = vec![0u8; INFO_SIZE];
        b[0..4].copy_from_slice(&flags.to_le_bytes());
        b[16..20].copy_from_slice(&cmdline.to_le_bytes());
        b[44..48].copy_from_slice(&mmap_len.to_le_bytes());
        b[48..52].copy_from_slice(&mmap_addr.to_le_bytes());
        b
    }

    fn with_modules(mut b: Vec<u8>, count: u32, addr: u32) -> Vec<u8> {
        b[20..24].copy_from_slice(&count.to_le_bytes());
        b[24..28].copy_from_slice(&addr.to_le_bytes());
        b
    }

    fn module(start: u32, end: u32) -> Vec<u8> {
        [start, end, 0, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    fn entry(base: u64, len: u64, kind: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_le_bytes());
        b.extend_from_slice(&base.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b
    }

    /// What QEMU's multiboot loader leaves for the stand-in host: info at 0x9000, two modules
    /// (`-initrd a,b`), an e820 map of three entries, the command line (at 0xa000, so that a
    /// long one has room).
    fn qemu_like(cmdline: &[u8]) -> ImageMemory {
        let mut mem = ImageMemory::new();
        let flags = FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | 1;
        mem.put(
            0x9000,
            &with_modules(mbi(flags, 0xa000, 72, 0x9600), 2, 0x9500),
        );
        mem.put(0xa000, cmdline);
        let mut mods = module(0x20_0000, 0x68_0000);
        mods.extend(module(0x68_1000, 0x68_2000));
        mem.put(0x9500, &mods);
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0xf0000, 0x10000, 2));
        map.extend(entry(0x10_0000, 0xfee_0000, 1));
        mem.put(0x9600, &map);
        mem
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
        assert!(info.modules().is_empty());
    }

    #[test]
    fn reads_cmdline_modules_and_memory_map() {
        let mem = qemu_like(b"/standin_host load=0x2000000000 -- /hello\0");
        let info = parse_multiboot(&mem, 0x9000).unwrap();
        assert_eq!(info.strict_cmdline(), Ok("load=0x2000000000 -- /hello"));
        assert_eq!(
            info.modules(),
            &[
                PhysRange {
                    base: 0x20_0000,
                    len: 0x48_0000
                },
                PhysRange {
                    base: 0x68_1000,
                    len: 0x1000
                }
            ]
        );
        assert!(!info.modules_truncated);
        let map = info.memory_map();
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            MemoryRegion {
                range: PhysRange {
                    base: 0,
                    len: 0x9fc00
                },
                kind: MemoryKind::Usable
            }
        );
        assert_eq!(map[2].range.end(), 0xffe_0000);
        // The module list is a loader structure like the others.
        assert!(info.occupied().contains(&PhysRange {
            base: 0x9500,
            len: 32
        }));
    }

    #[test]
    fn image_name_alone_leaves_an_empty_line() {
        for line in [&b"/boot/kernel\0"[..], b"\0", b"  standin_host\0"] {
            let mut mem = ImageMemory::new();
            mem.put(0x9000, &mbi(FLAG_CMDLINE, 0x9100, 0, 0));
            mem.put(0x9100, line);
            assert_eq!(parse_multiboot(&mem, 0x9000).unwrap().cmdline(), "");
        }
        let mem = qemu_like(b" img -- /p\0");
        assert_eq!(parse_multiboot(&mem, 0x9000).unwrap().cmdline(), "-- /p");
    }

    #[test]
    fn missing_flags_mean_no_cmdline_no_modules_and_no_map() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &with_modules(mbi(0, 0x1234, 99, 0x5678), 3, 0x9abc));
        let info = parse_multiboot(&mem, 0x9000).unwrap();
        assert_eq!(info.cmdline(), "");
        assert!(info.memory_map().is_empty());
        assert!(info.modules().is_empty());
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

    #[test]
    fn an_entry_cut_by_the_map_length_is_not_read() {
        // 30 bytes: one whole entry and 6 bytes of the next, which lies in readable memory.
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(FLAG_MMAP, 0, 30, 0x9200));
        let mut map = entry(0, 0x9fc00, 1);
        map.extend(entry(0x10_0000, 0x100_0000, 1));
        mem.put(0x9200, &map);
        assert_eq!(parse_multiboot(&mem, 0x9000).unwrap().memory_map().len(), 1);
    }

    #[test]
    fn long_maps_and_module_lists_are_cut_not_walked() {
        // A map length of 4 GiB and 2^32 - 1 modules: only what is kept (plus one map entry to
        // tell that there were more) is read, so neither walks through memory.
        let mut mem = ImageMemory::new();
        let flags = FLAG_MODS | FLAG_MMAP;
        mem.put(
            0x9000,
            &with_modules(mbi(flags, 0, u32::MAX, 0x10000), u32::MAX, 0x9100),
        );
        mem.put(0x9100, &module(0x20_0000, 0x30_0000).repeat(MAX_MODULES));
        let map: Vec<u8> = (0..=MAX_MEMORY_REGIONS as u64)
            .flat_map(|i| entry(i << 20, 1 << 20, 1))
            .collect();
        mem.put(0x10000, &map);
        let info = parse_multiboot(&mem, 0x9000).unwrap();
        assert_eq!(info.modules().len(), MAX_MODULES);
        assert!(info.modules_truncated);
        assert_eq!(info.memory_map().len(), MAX_MEMORY_REGIONS);
        assert!(info.regions_truncated);
    }

    #[test]
    fn unreadable_parts_are_errors() {
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &mbi(FLAG_MMAP, 0, 48, 0x9200));
        assert!(matches!(
            parse_multiboot(&mem, 0x9000),
            Err(BootInfoError::Read(_))
        ));
        assert!(matches!(
            parse_multiboot(&mem, 0x9ff0),
            Err(BootInfoError::Read(_))
        ));
        let mut mem = ImageMemory::new();
        mem.put(
            0x9000,
            &with_modules(mbi(FLAG_MODS, 0, 0, 0), 1, 0xdead_0000),
        );
        assert!(matches!(
            parse_multiboot(&mem, 0x9000),
            Err(BootInfoError::Read(_))
        ));
    }

    #[test]
    fn command_line_without_nul_or_not_utf8() {
        // No NUL within MAX_CMDLINE bytes: cut, and the strict view refuses it.
        let mut line = vec![b'x'; MAX_CMDLINE + 100];
        line.push(0);
        let info = parse_multiboot(&qemu_like(&line), 0x9000).unwrap();
        assert!(info.cmdline_truncated);
        assert_eq!(info.strict_cmdline(), Err(CmdlineProblem::TooLong));
        // Exactly MAX_CMDLINE bytes (image name, space, options) and its NUL: whole.
        let mut line = b"img ".to_vec();
        line.resize(MAX_CMDLINE, b'y');
        line.push(0);
        let info = parse_multiboot(&qemu_like(&line), 0x9000).unwrap();
        assert!(!info.cmdline_truncated);
        assert_eq!(info.strict_cmdline().unwrap().len(), MAX_CMDLINE - 4);
        // Not UTF-8: the strict view says where; cmdline() gives the valid prefix.
        let info = parse_multiboot(&qemu_like(b"img a=1 \xff b=2\0"), 0x9000).unwrap();
        assert_eq!(
            info.strict_cmdline(),
            Err(CmdlineProblem::NotUtf8 { offset: 4 })
        );
        assert_eq!(info.cmdline(), "a=1 ");
    }
}
