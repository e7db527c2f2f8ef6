//! The multiboot 1 information block a multiboot loader (QEMU's `-kernel`) leaves in `%ebx`:
//! the command line, the BIOS memory map and the modules (`-initrd`). Layouts from the
//! Multiboot Specification 0.6.96 §3.3 "Boot information format".

use core::fmt;

use crate::le::{u32_at, u64_at};
use crate::ranges::Range;

/// Longest command line read.
pub const MAX_CMDLINE: usize = 4096;
/// The info block's fixed part read here (through mmap_addr).
const INFO_LEN: usize = 52;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const MODULE_LEN: usize = 16;
/// The most modules or memory map bytes believed (QEMU passes a handful).
const MAX_MODULES: u32 = 64;
const MAX_MMAP_BYTES: u32 = 64 * 24;

/// Memory map type 1: RAM available to the OS.
pub const MEMORY_AVAILABLE: u32 = 1;

/// Reads physical memory (the kernel: through a mapping; the tests: a byte image).
pub trait PhysMemory {
    /// `len` bytes at physical `addr`, `None` if not readable.
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// What is wrong with the info block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultibootError {
    /// A structure at this address cannot be read.
    Unreadable(u64),
    /// The loader gave no memory map (flag bit 6).
    NoMemoryMap,
    /// The command line has no NUL within [`MAX_CMDLINE`] bytes or is not UTF-8.
    BadCmdline,
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultibootError::Unreadable(a) => {
                write!(f, "multiboot info: cannot read the structure at {a:#x}")
            }
            MultibootError::NoMemoryMap => {
                f.write_str("multiboot info: the loader gave no memory map")
            }
            MultibootError::BadCmdline => write!(
                f,
                "multiboot info: command line is not UTF-8 or longer than {MAX_CMDLINE} bytes"
            ),
        }
    }
}

/// The parts of the info block the host uses, borrowed from physical memory.
#[derive(Debug, Clone, Copy)]
pub struct MultibootInfo<'m> {
    /// The command line (`-append`), empty when the loader gave none.
    pub cmdline: &'m str,
    mmap: &'m [u8],
    mods: &'m [u8],
}

/// One memory map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// The bytes it describes.
    pub range: Range,
    /// Its type ([`MEMORY_AVAILABLE`] = RAM).
    pub kind: u32,
}

/// One module (`-initrd` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    /// Where the loader put its bytes.
    pub range: Range,
}

impl<'m> MultibootInfo<'m> {
    /// The memory map entries, in the loader's order.
    pub fn memory_map(&self) -> impl Iterator<Item = MemoryRegion> + 'm {
        let mmap = self.mmap;
        let mut offset = 0usize;
        core::iter::from_fn(move || {
            // Each entry: u32 size (not counting itself), u64 base, u64 length, u32 type.
            let size = u32_at(mmap, offset)? as usize;
            let base = u64_at(mmap, offset + 4)?;
            let len = u64_at(mmap, offset + 12)?;
            let kind = u32_at(mmap, offset + 20)?;
            offset = offset.checked_add(size.checked_add(4)?)?;
            Some(MemoryRegion {
                range: Range::from_len(base, len),
                kind,
            })
        })
    }

    /// The modules, in order (the first is the initrd).
    pub fn modules(&self) -> impl Iterator<Item = Module> + 'm {
        self.mods.chunks_exact(MODULE_LEN).map(|m| {
            let start = u32_at(m, 0).unwrap_or(0) as u64;
            let end = u32_at(m, 4).unwrap_or(0) as u64;
            Module {
                range: Range::new(start, end),
            }
        })
    }
}

/// The command line without its first word: multiboot loaders (QEMU's `-kernel`, GRUB) put
/// the image's file name there, before the `-append` text.
pub fn arguments(cmdline: &str) -> &str {
    let trimmed = cmdline.trim_start();
    match trimmed.find(' ') {
        Some(space) => &trimmed[space + 1..],
        None => "",
    }
}

/// Reads the info block at `addr`.
pub fn parse<M: PhysMemory>(mem: &M, addr: u64) -> Result<MultibootInfo<'_>, MultibootError> {
    let info = mem
        .read(addr, INFO_LEN)
        .ok_or(MultibootError::Unreadable(addr))?;
    let field = |offset| u32_at(info, offset).unwrap_or(0);
    let flags = field(0);
    let cmdline = if flags & FLAG_CMDLINE != 0 {
        let at = field(16) as u64;
        let bytes = (1..=MAX_CMDLINE)
            .rev()
            .find_map(|len| mem.read(at, len))
            .ok_or(MultibootError::Unreadable(at))?;
        let len = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(MultibootError::BadCmdline)?;
        core::str::from_utf8(&bytes[..len]).map_err(|_| MultibootError::BadCmdline)?
    } else {
        ""
    };
    if flags & FLAG_MMAP == 0 {
        return Err(MultibootError::NoMemoryMap);
    }
    let mmap_len = field(44).min(MAX_MMAP_BYTES) as usize;
    let mmap_at = field(48) as u64;
    let mmap = mem
        .read(mmap_at, mmap_len)
        .ok_or(MultibootError::Unreadable(mmap_at))?;
    let mods = if flags & FLAG_MODS != 0 {
        let count = field(20).min(MAX_MODULES) as usize;
        let at = field(24) as u64;
        mem.read(at, count * MODULE_LEN)
            .ok_or(MultibootError::Unreadable(at))?
    } else {
        &[]
    };
    Ok(MultibootInfo {
        cmdline,
        mmap,
        mods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Physical memory [0, len) as a byte vector.
    struct Image(Vec<u8>);

    impl PhysMemory for Image {
        fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
            self.0.get(addr as usize..(addr as usize).checked_add(len)?)
        }
    }

    impl Image {
        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn put32(&mut self, at: usize, v: u32) {
            self.put(at, &v.to_le_bytes());
        }
    }

    /// What QEMU's multiboot loader leaves: info at 0x9000, cmdline, two modules, e820.
    fn qemu_like() -> Image {
        let mut m = Image(vec![0; 0xa000]);
        m.put32(0x9000, FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | 1);
        m.put32(0x9000 + 16, 0x9400);
        m.put(0x9400, b"load=0x2000000000 -- /hello\0");
        m.put32(0x9000 + 20, 2);
        m.put32(0x9000 + 24, 0x9500);
        for (i, (s, e)) in [(0x20_0000u32, 0x68_0000u32), (0x68_1000, 0x68_2000)]
            .into_iter()
            .enumerate()
        {
            m.put32(0x9500 + 16 * i, s);
            m.put32(0x9500 + 16 * i + 4, e);
        }
        let e820: [(u64, u64, u32); 3] = [
            (0, 0x9fc00, 1),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0xfee_0000, 1),
        ];
        for (i, (base, len, kind)) in e820.iter().enumerate() {
            let at = 0x9600 + 24 * i;
            m.put32(at, 20);
            m.put(at + 4, &base.to_le_bytes());
            m.put(at + 12, &len.to_le_bytes());
            m.put32(at + 20, *kind);
        }
        m.put32(0x9000 + 44, 72);
        m.put32(0x9000 + 48, 0x9600);
        m
    }

    #[test]
    fn reads_cmdline_modules_and_memory_map() {
        let m = qemu_like();
        let info = parse(&m, 0x9000).unwrap();
        assert_eq!(info.cmdline, "load=0x2000000000 -- /hello");
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0].range, Range::new(0x20_0000, 0x68_0000));
        let map: Vec<_> = info.memory_map().collect();
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            MemoryRegion {
                range: Range::new(0, 0x9fc00),
                kind: MEMORY_AVAILABLE
            }
        );
        assert_eq!(map[2].range.end, 0xffe_0000);
    }

    #[test]
    fn drops_the_image_name() {
        assert_eq!(
            arguments("/path/standin_host load=0x1000000000 -- /hello"),
            "load=0x1000000000 -- /hello"
        );
        assert_eq!(arguments("standin_host"), "");
        assert_eq!(arguments(""), "");
        assert_eq!(arguments(" img -- /p"), "-- /p");
    }

    #[test]
    fn missing_parts() {
        let mut m = qemu_like();
        m.put32(0x9000, FLAG_MMAP);
        let info = parse(&m, 0x9000).unwrap();
        assert_eq!(info.cmdline, "");
        assert_eq!(info.modules().count(), 0);
        m.put32(0x9000, 0);
        assert_eq!(parse(&m, 0x9000).unwrap_err(), MultibootError::NoMemoryMap);
        assert_eq!(
            parse(&m, 0xfff0).unwrap_err(),
            MultibootError::Unreadable(0xfff0)
        );
        let mut m = qemu_like();
        m.0[0x9400..0xa000].fill(b'x');
        assert_eq!(parse(&m, 0x9000).unwrap_err(), MultibootError::BadCmdline);
    }
}
