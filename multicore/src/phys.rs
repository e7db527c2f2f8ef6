//! Reading physical memory through whatever mapping the host kernel has.
//!
//! The library never assumes physical memory is identity-mapped: the demo kernel maps it that
//! way, but a host such as a Unikraft kernel reaches it through a fixed high offset. Everything
//! that reads firmware tables goes through [`PhysRead`], so parsers run unchanged on the host
//! (tests hand them byte images) and on the machine.

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

/// A read that fell outside the memory the mapping can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysReadError {
    /// First physical address of the failed read.
    pub addr: u64,
    /// Length of the failed read in bytes.
    pub len: usize,
}

impl core::fmt::Display for PhysReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "physical range {:#x}+{:#x} is not readable",
            self.addr, self.len
        )
    }
}

/// Copies bytes out of physical memory.
pub trait PhysRead {
    /// Copies `buf.len()` bytes starting at physical address `pa` into `buf`.
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysReadError>;

    /// Reads one little-endian `u8`/`u16`/`u32`/`u64` sized value at `pa`.
    fn read_array<const N: usize>(&self, pa: u64) -> Result<[u8; N], PhysReadError> {
        let mut buf = [0u8; N];
        self.read(pa, &mut buf)?;
        Ok(buf)
    }
}

/// Physical memory mapped linearly at `virt = phys + offset` for physical addresses below
/// `limit` (offset 0 is an identity mapping).
#[derive(Debug, Clone, Copy)]
pub struct LinearMapping {
    offset: u64,
    limit: u64,
}

impl LinearMapping {
    /// Describes a linear mapping of physical `[0, limit)` at `offset`.
    ///
    /// # Safety
    /// Every physical address below `limit` must be mapped readable at `phys + offset` for as
    /// long as the value is used, and reading it must have no side effects (no MMIO that reacts
    /// to reads).
    pub const unsafe fn new(offset: u64, limit: u64) -> Self {
        Self { offset, limit }
    }

    /// The virtual address of physical address `pa` (not checked against the limit).
    pub fn virt(&self, pa: u64) -> u64 {
        pa.wrapping_add(self.offset)
    }

    /// The mapping's offset: `virt - phys`.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The end of the mapped physical range.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl PhysRead for LinearMapping {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        let err = PhysReadError {
            addr: pa,
            len: buf.len(),
        };
        let end = pa.checked_add(buf.len() as u64).ok_or(err)?;
        if end > self.limit {
            return Err(err);
        }
        let src = self.virt(pa) as *const u8;
        // SAFETY: `new`'s contract says [0, limit) is mapped readable at `phys + offset` with no
        // read side effects; `pa..end` lies inside it (checked above) and `buf` is a distinct
        // Rust buffer, so the copy cannot overlap it.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}
