//! What the boot loader tells the kernel: command line, RSDP, memory map, modules.
//!
//! The demo kernel boots through PVH or multiboot 1; the stand-in host (`standin/`) through
//! multiboot 1. Both hand over a structure in physical memory. Parsing them here (through
//! [`PhysRead`]) keeps the kernels thin and lets host tests and the fuzz targets feed byte
//! images. The result is one [`BootInfo`] whatever the protocol, copied out of the loader's
//! memory, so a kernel may reuse that memory once it is parsed.
//!
//! Every count and length in the loader's structures is bounded here: at most
//! [`MAX_CMDLINE`] bytes of command line, [`MAX_MEMORY_REGIONS`] memory-map entries and
//! [`MAX_MODULES`] modules are read (a `*_truncated` flag says when there were more), so a
//! corrupt length never turns into a long walk through memory.
#![cfg_attr(not(test), no_std)]

// Only the byte-image memory (tests, fuzz targets) allocates: the stand-in host has no
// allocator and must not need one to link this crate.
#[cfg(any(test, feature = "image"))]
extern crate alloc;

mod memory;
mod multiboot;
mod pvh;

#[cfg(any(test, feature = "image"))]
pub use memory::ImageMemory;
pub use memory::{PhysRead, ReadError};

pub use multiboot::parse_multiboot;
pub use pvh::parse_pvh;

/// Most memory-map entries kept; QEMU's maps have fewer than ten.
pub const MAX_MEMORY_REGIONS: usize = 64;
/// Longest command line kept, in bytes: the stand-in host's carries the program's argv and
/// environment as well as its own options (the demo's options need a few dozen bytes).
pub const MAX_CMDLINE: usize = 4096;
/// Most modules kept (QEMU passes one per `-initrd` file; the stand-in uses the first).
pub const MAX_MODULES: usize = 8;
/// Most boot-structure ranges remembered as occupied (each parser records at most four:
/// the info structure, the command line, the memory map and the module list).
pub const MAX_OCCUPIED: usize = 8;

/// How the kernel was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// Xen/QEMU PVH direct boot (ELF note type 18).
    Pvh,
    /// Multiboot 1 (header with address fields).
    Multiboot1,
}

impl BootProtocol {
    /// Short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BootProtocol::Pvh => "PVH",
            BootProtocol::Multiboot1 => "multiboot1",
        }
    }
}

/// Type of a memory-map entry, as in the E820 map both protocols pass on (ACPI 6.5 §15.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// Free RAM (type 1).
    Usable,
    /// Reserved (type 2).
    Reserved,
    /// ACPI tables, reclaimable after reading (type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage (type 4).
    AcpiNvs,
    /// Bad memory (type 5).
    Unusable,
    /// Any other type number.
    Other(u32),
}

impl MemoryKind {
    /// Maps an E820 type number.
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => MemoryKind::Usable,
            2 => MemoryKind::Reserved,
            3 => MemoryKind::AcpiReclaimable,
            4 => MemoryKind::AcpiNvs,
            5 => MemoryKind::Unusable,
            other => MemoryKind::Other(other),
        }
    }
}

/// A range of physical memory `[base, base + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

impl PhysRange {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }

    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// One memory-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Where it is.
    pub range: PhysRange,
    /// What it is.
    pub kind: MemoryKind,
}

/// Everything the kernel needs from its loader, copied out of the loader's structures.
#[derive(Clone)]
pub struct BootInfo {
    /// How we were booted.
    pub protocol: BootProtocol,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Whether the command line was longer than [`MAX_CMDLINE`] and cut.
    pub cmdline_truncated: bool,
    /// Physical address of the ACPI RSDP when the loader gave it (PVH does; multiboot 1 not).
    pub rsdp: Option<u64>,
    regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    region_count: usize,
    /// Whether the loader's map had more entries than [`MAX_MEMORY_REGIONS`].
    pub regions_truncated: bool,
    modules: [PhysRange; MAX_MODULES],
    module_count: usize,
    /// Whether the loader listed more modules than [`MAX_MODULES`].
    pub modules_truncated: bool,
    occupied: [PhysRange; MAX_OCCUPIED],
    occupied_count: usize,
}

/// The parts that were read, not the fixed-size storage behind them.
impl core::fmt::Debug for BootInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BootInfo")
            .field("protocol", &self.protocol)
            .field("cmdline", &self.cmdline())
            .field("cmdline_truncated", &self.cmdline_truncated)
            .field("rsdp", &self.rsdp)
            .field("memory_map", &self.memory_map())
            .field("regions_truncated", &self.regions_truncated)
            .field("modules", &self.modules())
            .field("modules_truncated", &self.modules_truncated)
            .field("occupied", &self.occupied())
            .finish()
    }
}

impl BootInfo {
    fn new(protocol: BootProtocol) -> Self {
        const EMPTY: MemoryRegion = MemoryRegion {
            range: PhysRange { base: 0, len: 0 },
            kind: MemoryKind::Reserved,
        };
        BootInfo {
            protocol,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            rsdp: None,
            regions: [EMPTY; MAX_MEMORY_REGIONS],
            region_count: 0,
            regions_truncated: false,
            modules: [PhysRange { base: 0, len: 0 }; MAX_MODULES],
            module_count: 0,
            modules_truncated: false,
            occupied: [PhysRange { base: 0, len: 0 }; MAX_OCCUPIED],
            occupied_count: 0,
        }
    }

    /// The kernel command line (for multiboot, without the image name QEMU puts first).
    /// Bytes that are not UTF-8 end it early.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The whole command line as UTF-8, or why it cannot be had: for a consumer that must not
    /// act on part of it (the stand-in host passes it on as a program's argv).
    pub fn strict_cmdline(&self) -> Result<&str, CmdlineProblem> {
        if self.cmdline_truncated {
            return Err(CmdlineProblem::TooLong);
        }
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).map_err(|e| {
            CmdlineProblem::NotUtf8 {
                offset: e.valid_up_to(),
            }
        })
    }

    /// The memory map, in the loader's order.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// Where the loader put each module (multiboot `-initrd` files, PVH modules), in its order.
    pub fn modules(&self) -> &[PhysRange] {
        &self.modules[..self.module_count]
    }

    /// Physical ranges holding the loader's structures (start info, memory map, command line),
    /// which must not be handed out as free memory while they are still read.
    pub fn occupied(&self) -> &[PhysRange] {
        &self.occupied[..self.occupied_count]
    }

    fn push_region(&mut self, region: MemoryRegion) {
        if self.region_count == MAX_MEMORY_REGIONS {
            self.regions_truncated = true;
            return;
        }
        self.regions[self.region_count] = region;
        self.region_count += 1;
    }

    fn push_module(&mut self, module: PhysRange) {
        if self.module_count == MAX_MODULES {
            self.modules_truncated = true;
            return;
        }
        self.modules[self.module_count] = module;
        self.module_count += 1;
    }

    fn push_occupied(&mut self, range: PhysRange) {
        if range.len == 0 || self.occupied_count == MAX_OCCUPIED {
            return;
        }
        self.occupied[self.occupied_count] = range;
        self.occupied_count += 1;
    }

    /// Copies the NUL-terminated string at `pa`: at most [`MAX_CMDLINE`] bytes are kept, and
    /// at most one more is read (to tell a line of exactly that length from a longer one).
    fn read_cmdline(&mut self, mem: &impl PhysRead, pa: u64) -> Result<(), BootInfoError> {
        let mut len = 0;
        loop {
            // One byte at a time: the string may end right before unreadable memory.
            let at = offset(pa, len as u64, 1)?;
            let [byte] = mem.read_array::<1>(at).map_err(BootInfoError::Read)?;
            if byte == 0 {
                break;
            }
            if len == MAX_CMDLINE {
                self.cmdline_truncated = true;
                break;
            }
            self.cmdline[len] = byte;
            len += 1;
        }
        self.cmdline_len = len;
        self.push_occupied(PhysRange {
            base: pa,
            len: len as u64 + 1,
        });
        Ok(())
    }

    /// Drops the first word of the command line (multiboot loaders put the image name there).
    fn drop_first_word(&mut self) {
        let line = &self.cmdline[..self.cmdline_len];
        let start = line
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let word_end = line[start..]
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .map_or(line.len(), |p| start + p);
        let rest = line[word_end..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(line.len(), |p| word_end + p);
        self.cmdline.copy_within(rest..self.cmdline_len, 0);
        self.cmdline_len -= rest;
    }
}

/// Why the boot information could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The structure's magic number is wrong: not what this protocol passes.
    BadMagic {
        /// Which structure.
        what: &'static str,
        /// What was found.
        found: u32,
    },
    /// A pointer in the structure led to memory that cannot be read.
    Read(ReadError),
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::BadMagic { what, found } => {
                write!(f, "{what}: bad magic {found:#x}")
            }
            BootInfoError::Read(e) => write!(f, "boot information: {e}"),
        }
    }
}

/// Why [`BootInfo::strict_cmdline`] has no command line to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineProblem {
    /// Longer than [`MAX_CMDLINE`] bytes (no NUL within them): only a prefix was kept.
    TooLong,
    /// Not UTF-8 from this byte on.
    NotUtf8 {
        /// Offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },
}

impl core::fmt::Display for CmdlineProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineProblem::TooLong => {
                write!(f, "the command line is longer than {MAX_CMDLINE} bytes")
            }
            CmdlineProblem::NotUtf8 { offset } => {
                write!(f, "the command line is not UTF-8 (from byte {offset})")
            }
        }
    }
}

/// `base + off`, the address of a field `len` bytes long: a structure that would wrap around
/// the top of the address space cannot be read, so the sum overflowing is a read error.
fn offset(base: u64, off: u64, len: usize) -> Result<u64, BootInfoError> {
    base.checked_add(off)
        .ok_or(BootInfoError::Read(ReadError { addr: base, len }))
}
