//! How the parsers read the loader's structures: through a trait, so that a kernel reads them
//! through its own mapping of physical memory and host tests hand them byte images.
//!
//! This crate does not use `multicore::phys::PhysRead`, though it has the same shape: the
//! stand-in host shares these parsers and must not link the library it tests.

#[cfg(any(test, feature = "image"))]
use alloc::vec::Vec;

/// A read that fell outside the memory the reader can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadError {
    /// First physical address of the failed read.
    pub addr: u64,
    /// Length of the failed read in bytes.
    pub len: usize,
}

impl core::fmt::Display for ReadError {
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
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// The `N` bytes at `pa`.
    fn read_array<const N: usize>(&self, pa: u64) -> Result<[u8; N], ReadError> {
        let mut buf = [0u8; N];
        self.read(pa, &mut buf)?;
        Ok(buf)
    }
}

/// Little-endian fields of structures already copied out (PVH start info and multiboot info
/// store them little-endian, without alignment guarantees). Panics if the slice is short:
/// callers index fixed layouts whose size they have checked.
pub(crate) fn u32_at(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes"))
}

/// See [`u32_at`].
pub(crate) fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
}

/// Physical memory made of `(base, bytes)` regions, everything else unreadable: the byte
/// images the tests (and other crates' tests, with the `image` feature) hand the parsers.
#[cfg(any(test, feature = "image"))]
#[derive(Default, Debug, Clone)]
pub struct ImageMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

#[cfg(any(test, feature = "image"))]
impl ImageMemory {
    /// No readable memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a region at `base`; it must not overlap an earlier one.
    pub fn put(&mut self, base: u64, bytes: &[u8]) {
        let end = base.saturating_add(bytes.len() as u64);
        assert!(
            self.regions
                .iter()
                .all(|(b, r)| end <= *b || base >= b + r.len() as u64),
            "overlapping image regions"
        );
        self.regions.push((base, bytes.to_vec()));
    }
}

#[cfg(any(test, feature = "image"))]
impl PhysRead for ImageMemory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let err = ReadError {
            addr: pa,
            len: buf.len(),
        };
        let mut done = 0usize;
        while done < buf.len() {
            let at = pa.checked_add(done as u64).ok_or(err)?;
            let (base, region) = self
                .regions
                .iter()
                .find(|(b, r)| at >= *b && at - b < r.len() as u64)
                .ok_or(err)?;
            let off = (at - base) as usize;
            let n = (buf.len() - done).min(region.len() - off);
            buf[done..done + n].copy_from_slice(&region[off..off + n]);
            done += n;
        }
        Ok(())
    }
}
