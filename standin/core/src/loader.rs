//! What the host takes from its multiboot loader (QEMU's `-kernel`): the multiboot 1
//! information block read by the `bootinfo` crate (the one the demo kernel uses too), and the
//! host's own demands on it, stricter than the demo's: the command line must be whole and
//! UTF-8 (its tail is the program's argv: a cut or mangled one would run something else),
//! and there must be a memory map (the frame allocator has nothing else to go on).

use core::fmt;

pub use bootinfo::{BootInfo, MemoryKind, MemoryRegion, PhysRead, MAX_CMDLINE};

use crate::ranges::Range;

/// Why the loader's information is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderError {
    /// The info block, or a structure it points to, could not be read.
    Unreadable(bootinfo::BootInfoError),
    /// The loader gave no memory map (flag bit 6), or an empty one.
    NoMemoryMap,
    /// The command line has no NUL within [`MAX_CMDLINE`] bytes or is not UTF-8.
    BadCmdline(bootinfo::CmdlineProblem),
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaderError::Unreadable(e) => write!(f, "multiboot info: {e}"),
            LoaderError::NoMemoryMap => {
                f.write_str("multiboot info: the loader gave no memory map")
            }
            LoaderError::BadCmdline(why) => write!(f, "multiboot info: {why}"),
        }
    }
}

/// Reads the info block at `addr` and checks what the host relies on. The command line of the
/// result is the `-append` text (the image name the loader puts first is dropped).
pub fn read(mem: &impl PhysRead, addr: u64) -> Result<BootInfo, LoaderError> {
    let info = bootinfo::parse_multiboot(mem, addr).map_err(LoaderError::Unreadable)?;
    info.strict_cmdline().map_err(LoaderError::BadCmdline)?;
    if info.memory_map().is_empty() {
        return Err(LoaderError::NoMemoryMap);
    }
    Ok(info)
}

/// The initrd: the first module, where the loader put it.
pub fn initrd(info: &BootInfo) -> Option<Range> {
    info.modules()
        .first()
        .map(|m| Range::from_len(m.base, m.len))
}

/// A memory-map entry's bytes, in the host's range type.
pub fn range(region: &MemoryRegion) -> Range {
    Range::from_len(region.range.base, region.range.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootinfo::{CmdlineProblem, ImageMemory};

    const FLAG_CMDLINE: u32 = 1 << 2;
    const FLAG_MODS: u32 = 1 << 3;
    const FLAG_MMAP: u32 = 1 << 6;

    fn put32(mem: &mut [u8], at: usize, v: u32) {
        mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// What QEMU's multiboot loader leaves: info at 0x9000, two modules at 0x9500, e820 at
    /// 0x9600, the command line at 0x9800 (one byte image of [0x9000, 0xa000)).
    fn qemu_like(flags: u32, cmdline: &[u8]) -> ImageMemory {
        let mut m = vec![0u8; 0x1000];
        put32(&mut m, 0, flags);
        put32(&mut m, 16, 0x9800);
        m[0x800..0x800 + cmdline.len()].copy_from_slice(cmdline);
        put32(&mut m, 20, 2);
        put32(&mut m, 24, 0x9500);
        for (i, (s, e)) in [(0x20_0000u32, 0x68_0000u32), (0x68_1000, 0x68_2000)]
            .into_iter()
            .enumerate()
        {
            put32(&mut m, 0x500 + 16 * i, s);
            put32(&mut m, 0x500 + 16 * i + 4, e);
        }
        let e820: [(u64, u64, u32); 3] = [
            (0, 0x9fc00, 1),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0xfee_0000, 1),
        ];
        for (i, (base, len, kind)) in e820.iter().enumerate() {
            let at = 0x600 + 24 * i;
            put32(&mut m, at, 20);
            m[at + 4..at + 12].copy_from_slice(&base.to_le_bytes());
            m[at + 12..at + 20].copy_from_slice(&len.to_le_bytes());
            put32(&mut m, at + 20, *kind);
        }
        put32(&mut m, 44, 72);
        put32(&mut m, 48, 0x9600);
        let mut mem = ImageMemory::new();
        mem.put(0x9000, &m);
        mem
    }

    const ALL: u32 = FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | 1;

    #[test]
    fn reads_cmdline_initrd_and_memory_map() {
        let mem = qemu_like(ALL, b"/path/standin_host load=0x2000000000 -- /hello\0");
        let info = read(&mem, 0x9000).unwrap();
        assert_eq!(info.cmdline(), "load=0x2000000000 -- /hello");
        assert_eq!(initrd(&info), Some(Range::new(0x20_0000, 0x68_0000)));
        let map = info.memory_map();
        assert_eq!(map.len(), 3);
        assert_eq!(range(&map[0]), Range::new(0, 0x9fc00));
        assert_eq!(map[0].kind, MemoryKind::Usable);
        assert_eq!(range(&map[2]).end, 0xffe_0000);
    }

    #[test]
    fn drops_the_image_name() {
        for (line, args) in [
            (
                &b"/path/standin_host load=0x1000000000 -- /hello\0"[..],
                "load=0x1000000000 -- /hello",
            ),
            (b"standin_host\0", ""),
            (b"\0", ""),
            (b" img -- /p\0", "-- /p"),
        ] {
            assert_eq!(read(&qemu_like(ALL, line), 0x9000).unwrap().cmdline(), args);
        }
    }

    #[test]
    fn missing_parts() {
        let info = read(&qemu_like(FLAG_MMAP, b"x\0"), 0x9000).unwrap();
        assert_eq!(info.cmdline(), "");
        assert_eq!(initrd(&info), None);
        assert_eq!(
            read(&qemu_like(0, b"\0"), 0x9000).unwrap_err(),
            LoaderError::NoMemoryMap
        );
        assert!(matches!(
            read(&qemu_like(ALL, b"\0"), 0x9ff0).unwrap_err(),
            LoaderError::Unreadable(_)
        ));
        // No NUL before the end of readable memory: unreadable; none within MAX_CMDLINE
        // bytes: too long; not UTF-8: refused.
        let mut open_ended = qemu_like(ALL, &[b'x'; 0x800]);
        assert!(matches!(
            read(&open_ended, 0x9000).unwrap_err(),
            LoaderError::Unreadable(_)
        ));
        open_ended.put(0xa000, &[b'x'; MAX_CMDLINE]);
        assert_eq!(
            read(&open_ended, 0x9000).unwrap_err(),
            LoaderError::BadCmdline(CmdlineProblem::TooLong)
        );
        let err = read(&qemu_like(ALL, b"img \xc3( -- /p\0"), 0x9000).unwrap_err();
        assert_eq!(
            err,
            LoaderError::BadCmdline(CmdlineProblem::NotUtf8 { offset: 0 })
        );
        assert_eq!(
            err.to_string(),
            "multiboot info: the command line is not UTF-8 (from byte 0)"
        );
    }
}
