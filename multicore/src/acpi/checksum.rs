//! The byte-sum checksum shared by ACPI (ACPI 6.5 §5.2.5.3, §5.2.6) and the MP tables (MP 1.4
//! §4.1, §4.2): every byte of the structure, checksum field included, adds up to 0 mod 256.

use crate::phys::{PhysRead, PhysReadError};

/// Bytes summed per read: small enough for a boot stack, large enough that a table costs a
/// handful of reads rather than one per byte.
pub(crate) const CHUNK: usize = 512;

/// Sums `len` bytes of physical memory starting at `pa` (mod 256), reading `CHUNK` bytes at a
/// time so a table never has to fit in one buffer. A valid structure sums to 0.
pub(crate) fn byte_sum(mem: &impl PhysRead, pa: u64, len: u64) -> Result<u8, PhysReadError> {
    let mut buf = [0u8; CHUNK];
    let mut sum = 0u8;
    let mut done = 0u64;
    while done < len {
        // `min` with CHUNK keeps the cast lossless.
        let n = (len - done).min(CHUNK as u64) as usize;
        let at = pa
            .checked_add(done)
            .ok_or(PhysReadError { addr: pa, len: n })?;
        mem.read(at, &mut buf[..n])?;
        sum = buf[..n].iter().fold(sum, |s, &b| s.wrapping_add(b));
        done += n as u64;
    }
    Ok(sum)
}

/// Sums a byte slice (mod 256): for fields already copied out of memory.
pub(crate) fn slice_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_mem::FakeMem;

    #[test]
    fn sums_across_chunks_without_big_reads() {
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let expected = slice_sum(&bytes);
        let mem = FakeMem::new().with(0x10_0000, bytes);
        assert_eq!(byte_sum(&mem, 0x10_0000, 3000), Ok(expected));
        assert!(mem.largest_read() <= CHUNK);
        assert_eq!(mem.reads(), 3000usize.div_ceil(CHUNK));
    }

    #[test]
    fn unreadable_memory_is_an_error() {
        let mem = FakeMem::new().with(0x1000, vec![0; 16]);
        assert!(byte_sum(&mem, 0x1000, 32).is_err());
        assert_eq!(byte_sum(&mem, 0x1000, 0), Ok(0));
    }
}
