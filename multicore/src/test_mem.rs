//! Test-only fake physical memory: a list of byte images at physical addresses.

use crate::phys::{PhysRead, PhysReadError};
use std::cell::Cell;

/// Physical memory made of `(base, bytes)` regions; everything else is unreadable. It counts
/// reads so tests can check that scans and checksums work in chunks.
#[derive(Default)]
pub(crate) struct FakeMem {
    regions: Vec<(u64, Vec<u8>)>,
    reads: Cell<usize>,
    largest_read: Cell<usize>,
}

impl FakeMem {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a region; regions may be adjacent (reads span them) but must not overlap.
    pub(crate) fn with(mut self, base: u64, bytes: Vec<u8>) -> Self {
        let end = base + bytes.len() as u64;
        for (b, r) in &self.regions {
            assert!(
                end <= *b || base >= b + r.len() as u64,
                "overlapping fake regions"
            );
        }
        self.regions.push((base, bytes));
        self
    }

    /// Writes `bytes` at `pa` inside an existing region (to patch images after building).
    pub(crate) fn poke(&mut self, pa: u64, bytes: &[u8]) {
        let (base, region) = self
            .regions
            .iter_mut()
            .find(|(b, r)| pa >= *b && pa + bytes.len() as u64 <= b + r.len() as u64)
            .expect("poke outside the fake regions");
        let off = (pa - *base) as usize;
        region[off..off + bytes.len()].copy_from_slice(bytes);
    }

    /// Number of `read` calls so far.
    pub(crate) fn reads(&self) -> usize {
        self.reads.get()
    }

    /// Largest single read so far, in bytes.
    pub(crate) fn largest_read(&self) -> usize {
        self.largest_read.get()
    }
}

impl PhysRead for FakeMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        self.reads.set(self.reads.get() + 1);
        self.largest_read
            .set(self.largest_read.get().max(buf.len()));
        let err = PhysReadError {
            addr: pa,
            len: buf.len(),
        };
        let mut done = 0usize;
        while done < buf.len() {
            let at = pa.checked_add(done as u64).ok_or(err)?;
            let (base, region) = self
                .regions
                .iter()
                .find(|(b, r)| at >= *b && at < b + r.len() as u64)
                .ok_or(err)?;
            let off = (at - base) as usize;
            let n = (buf.len() - done).min(region.len() - off);
            buf[done..done + n].copy_from_slice(&region[off..off + n]);
            done += n;
        }
        Ok(())
    }
}

/// 1 MiB of zeroed low memory (BIOS data area, EBDA, ROM areas) for the legacy scans.
pub(crate) fn low_memory() -> FakeMem {
    FakeMem::new().with(0, vec![0; 0x10_0000])
}
