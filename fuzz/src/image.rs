//! Fuzz input → a fake machine: a few parameters, then regions of physical memory.
//!
//! Every target that reads through a `PhysRead` takes its input in one layout, so that one
//! seed builder and one mutator serve them all:
//!
//! ```text
//! flags: u8            bit 0: fix the checksums of the structures found (see `fix_checksums`)
//! params: N bytes      the target's own (addresses, IDs), little-endian, zero when cut short
//! regions: repeated    base: u64, len: u16, then len bytes (fewer if the input ends)
//! ```
//!
//! Memory outside the regions is unreadable; a region overlapping an earlier one is dropped.
//! Without the checksum repair nearly every mutation of a table would fail its checksum and
//! the fuzzer would never get past it; with it the walk behind the checksum is fuzzed too
//! (and the flag off keeps the checksum checks themselves fuzzed).

use core::cell::Cell;

/// Input flag bit 0: repair checksums before parsing.
pub const FIX_CHECKSUMS: u8 = 1;

/// Bytes of a region header: `base` (u64) and `len` (u16).
pub const REGION_HEADER: usize = 10;

/// Reads the fixed-size fields at the front of an input.
pub struct Params<'a> {
    bytes: &'a [u8],
}

impl<'a> Params<'a> {
    /// The parameters are `data`'s first bytes; the rest is handed back by [`Params::rest`].
    pub fn new(data: &'a [u8]) -> Self {
        Params { bytes: data }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    /// The next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    /// The next four bytes as a table signature.
    pub fn signature(&mut self) -> [u8; 4] {
        self.take()
    }

    /// What follows the parameters.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Physical memory made of byte regions, counting what the parser reads.
#[derive(Default)]
pub struct FakeMemory {
    regions: Vec<(u64, Vec<u8>)>,
    /// Bytes copied out by successful reads.
    read_bytes: Cell<u64>,
    /// Reads of memory that is not there.
    failed_reads: Cell<u64>,
}

impl FakeMemory {
    /// Decodes the region list of the input layout above.
    pub fn from_regions(mut data: &[u8]) -> Self {
        let mut mem = FakeMemory::default();
        while data.len() >= REGION_HEADER {
            let base = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            let len = u16::from_le_bytes([data[8], data[9]]) as usize;
            let len = len.min(data.len() - REGION_HEADER);
            mem.put(base, &data[REGION_HEADER..REGION_HEADER + len]);
            data = &data[REGION_HEADER + len..];
        }
        mem
    }

    /// The memory of an input's region list, checksums repaired when `flags` says so.
    pub fn load(flags: u8, regions: &[u8]) -> Self {
        let mut mem = Self::from_regions(regions);
        if flags & FIX_CHECKSUMS != 0 {
            mem.fix_checksums();
        }
        mem
    }

    /// Adds a region unless it is empty, wraps around the address space or overlaps one.
    pub fn put(&mut self, base: u64, bytes: &[u8]) {
        let Some(end) = base.checked_add(bytes.len() as u64) else {
            return;
        };
        let overlaps = self
            .regions
            .iter()
            .any(|(b, r)| base < b + r.len() as u64 && *b < end);
        if !bytes.is_empty() && !overlaps {
            self.regions.push((base, bytes.to_vec()));
        }
    }

    /// Whether every byte of `[pa, pa + len)` is in a region.
    pub fn readable(&self, pa: u64, len: u64) -> bool {
        let mut at = pa;
        let Some(end) = pa.checked_add(len) else {
            return false;
        };
        while at < end {
            match self.region_at(at) {
                Some((base, r)) => at = base + r.len() as u64,
                None => return false,
            }
        }
        true
    }

    fn region_at(&self, pa: u64) -> Option<(u64, &[u8])> {
        self.regions
            .iter()
            .find(|(b, r)| pa >= *b && pa - b < r.len() as u64)
            .map(|(b, r)| (*b, r.as_slice()))
    }

    /// Total bytes in the regions.
    pub fn size(&self) -> u64 {
        self.regions.iter().map(|(_, r)| r.len() as u64).sum()
    }

    /// Bytes copied out so far.
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes.get()
    }

    /// Failed reads so far.
    pub fn failed_reads(&self) -> u64 {
        self.failed_reads.get()
    }

    /// Panics if the parsers read more than a linear walk of this image can need: every
    /// structure is read a few times and every scan area once, and each BIOS-area candidate
    /// costs at most one 4 KiB checksum. More than this is a walk that grows faster than
    /// the tables (a hang on a machine with gigabytes mapped).
    pub fn assert_bounded_work(&self, what: &str) {
        let budget = (64 << 20) + 256 * self.size();
        assert!(
            self.read_bytes() <= budget,
            "{what}: read {} bytes of a {}-byte image (budget {budget})",
            self.read_bytes(),
            self.size()
        );
    }

    /// Copies `buf.len()` bytes at `pa`; `false` if any is missing.
    fn copy(&self, pa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let Some(at) = pa.checked_add(done as u64) else {
                return false;
            };
            let Some((base, region)) = self.region_at(at) else {
                return false;
            };
            let off = (at - base) as usize;
            let n = (buf.len() - done).min(region.len() - off);
            buf[done..done + n].copy_from_slice(&region[off..off + n]);
            done += n;
        }
        self.read_bytes
            .set(self.read_bytes.get() + buf.len() as u64);
        true
    }

    /// Applies `f` to every region's bytes with its base address.
    fn for_each_region(&mut self, mut f: impl FnMut(u64, &mut [u8])) {
        for (base, bytes) in &mut self.regions {
            f(*base, bytes);
        }
    }

    /// Repairs the checksums of what looks like a firmware structure: RSDPs (both checksums)
    /// and MP floating pointers on 16-byte boundaries, ACPI tables (`RSDT`, `XSDT`, `APIC`,
    /// any signature a table header may have, at any offset) and MP configuration tables, each
    /// when its claimed length lies inside its region. From the end of each region backwards,
    /// so that a structure containing another is summed after the inner one was repaired.
    pub fn fix_checksums(&mut self) {
        self.for_each_region(|base, bytes| {
            for off in (0..bytes.len()).rev() {
                let aligned = (base + off as u64).is_multiple_of(16);
                let at = &mut bytes[off..];
                if aligned && at.starts_with(b"RSD PTR ") && at.len() >= 20 {
                    fix_sum(&mut at[..20], 8);
                    let len = if at.len() >= 24 {
                        u32_at(at, 20) as usize
                    } else {
                        0
                    };
                    if at[15] >= 2 && (36..=at.len()).contains(&len) {
                        fix_sum(&mut at[..len], 32);
                    }
                } else if aligned && at.starts_with(b"_MP_") && at.len() >= 16 {
                    let len = at[8] as usize * 16;
                    if (16..=at.len()).contains(&len) {
                        fix_sum(&mut at[..len], 10);
                    }
                } else if at.starts_with(b"PCMP") && at.len() >= 44 {
                    let len = u16::from_le_bytes([at[4], at[5]]) as usize;
                    if (44..=at.len()).contains(&len) {
                        fix_sum(&mut at[..len], 7);
                    }
                } else if at.len() >= 36 && is_table_signature(&at[..4]) {
                    let len = u32_at(at, 4) as usize;
                    if (36..=at.len()).contains(&len) {
                        fix_sum(&mut at[..len], 9);
                    }
                }
            }
        });
    }
}

/// ACPI table signatures are four upper-case letters or digits (RSDT, XSDT, APIC, FACP, ...).
fn is_table_signature(sig: &[u8]) -> bool {
    sig.iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && sig != b"PCMP"
        && sig != b"RSD "
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// Sets `bytes[at]` so that `bytes` sums to 0 mod 256.
pub fn fix_sum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = sum.wrapping_neg();
}

impl multicore::phys::PhysRead for FakeMemory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), multicore::phys::PhysReadError> {
        if self.copy(pa, buf) {
            Ok(())
        } else {
            self.failed_reads.set(self.failed_reads.get() + 1);
            Err(multicore::phys::PhysReadError {
                addr: pa,
                len: buf.len(),
            })
        }
    }
}

impl bootinfo::PhysRead for FakeMemory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), bootinfo::ReadError> {
        if self.copy(pa, buf) {
            Ok(())
        } else {
            self.failed_reads.set(self.failed_reads.get() + 1);
            Err(bootinfo::ReadError {
                addr: pa,
                len: buf.len(),
            })
        }
    }
}

/// Builds an input in the layout above (for seeds and tests).
pub struct InputBuilder {
    bytes: Vec<u8>,
}

impl InputBuilder {
    /// Starts an input with `flags` and the target's parameter bytes.
    pub fn new(flags: u8, params: &[u8]) -> Self {
        let mut bytes = vec![flags];
        bytes.extend_from_slice(params);
        InputBuilder { bytes }
    }

    /// Adds a region (split into several if longer than a region can be).
    pub fn region(mut self, base: u64, bytes: &[u8]) -> Self {
        for (i, chunk) in bytes.chunks(u16::MAX as usize).enumerate() {
            let at = base + (i * u16::MAX as usize) as u64;
            self.bytes.extend_from_slice(&at.to_le_bytes());
            self.bytes
                .extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            self.bytes.extend_from_slice(chunk);
        }
        self
    }

    /// The input.
    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multicore::phys::PhysRead;

    #[test]
    fn regions_decode_and_overlaps_are_dropped() {
        let input = InputBuilder::new(0, &[])
            .region(0x1000, &[1, 2, 3, 4])
            .region(0x1002, &[9, 9])
            .region(0x1004, &[5])
            .build();
        let mem = FakeMemory::from_regions(&input[1..]);
        let mut buf = [0u8; 5];
        mem.read(0x1000, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5]);
        assert!(mem.read(0x1001, &mut buf).is_err());
        assert!(mem.readable(0x1000, 5) && !mem.readable(0x1000, 6));
        assert_eq!(mem.read_bytes(), 5);
        assert_eq!(mem.failed_reads(), 1);
    }

    #[test]
    fn params_are_zero_when_cut_short() {
        let mut p = Params::new(&[1, 2, 3]);
        assert_eq!(p.u16(), 0x0201);
        assert_eq!(p.u32(), 3);
        assert_eq!(p.u64(), 0);
        assert!(p.rest().is_empty());
    }

    #[test]
    fn checksums_are_repaired() {
        let mut table = b"APIC".to_vec();
        table.extend_from_slice(&40u32.to_le_bytes());
        table.resize(40, 7);
        let mut mem = FakeMemory::default();
        mem.put(0x5000, &table);
        mem.fix_checksums();
        let mut buf = [0u8; 40];
        mem.read(0x5000, &mut buf).unwrap();
        assert_eq!(buf.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
    }
}
