//! Carving the memory a hosted program hands over into the pieces the bring-up needs.
//!
//! Everything is taken before the first AP starts (stacks, CPU data, descriptor tables, TLS
//! areas, heaps), so running out is an error the BSP gets back with nothing started.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A bump allocator over one region; never frees.
pub struct Bump {
    base: usize,
    len: usize,
    used: AtomicUsize,
}

impl Bump {
    /// Allocates from `[base, base + len)`.
    ///
    /// # Safety
    /// The region is valid for reads and writes, used by nothing else and lives as long as the
    /// memory handed out is used (for APs: forever).
    pub unsafe fn new(base: *mut u8, len: usize) -> Bump {
        Bump {
            base: base as usize,
            len,
            used: AtomicUsize::new(0),
        }
    }

    /// `size` zeroed bytes aligned to `align` (a power of two), or `None` when the region is
    /// exhausted.
    pub fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        debug_assert!(align.is_power_of_two());
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let start = (self.base + used).checked_next_multiple_of(align)?;
            let end = start.checked_add(size)?;
            if end > self.base + self.len {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                end - self.base,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: [start, end) lies in the region (checked), is handed out once
                    // (the compare-exchange claimed it) and is writable by `new`'s contract.
                    unsafe { core::ptr::write_bytes(start as *mut u8, 0, size) };
                    return NonNull::new(start as *mut u8);
                }
                Err(now) => used = now,
            }
        }
    }

    /// The region: (virtual base, bytes).
    pub fn region(&self) -> (u64, usize) {
        (self.base as u64, self.len)
    }

    /// Bytes handed out so far (alignment padding included).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_aligned_zeroed_disjoint_pieces_until_full() {
        let mut region = vec![0xAAu8; 4096 + 64];
        let base = region
            .as_mut_ptr()
            .wrapping_add(region.as_ptr().align_offset(64));
        // SAFETY: 4096 bytes of `region` from `base`, alive for the test.
        let bump = unsafe { Bump::new(base, 4096) };
        let a = bump.alloc_zeroed(100, 8).unwrap();
        let b = bump.alloc_zeroed(1000, 64).unwrap();
        assert_eq!(a.as_ptr() as usize, base as usize);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(b.as_ptr() as usize >= a.as_ptr() as usize + 100);
        // SAFETY: `b` is 1000 bytes inside `region`.
        assert!(unsafe { core::slice::from_raw_parts(b.as_ptr(), 1000) }
            .iter()
            .all(|&x| x == 0));
        assert!(bump.alloc_zeroed(4096, 8).is_none());
        assert!(bump.alloc_zeroed(usize::MAX, 8).is_none());
        assert!(bump.used() <= 4096);
    }
}
