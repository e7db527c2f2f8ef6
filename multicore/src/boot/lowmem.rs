//! Choosing the page the AP trampoline runs from.
//!
//! A SIPI names a 4 KiB page by its number (the vector): the page must lie below 1 MiB, and
//! vectors 0xA0..=0xBF are reserved (SDM Vol. 3A §11.6.1: "vectors A0H to BFH are reserved;
//! do not use"). Page 0 holds the real-mode IVT and BIOS data area. The page must be free RAM
//! by the boot memory map and clear of anything the host still uses.

use super::host::LowMemory;
use crate::bootinfo::PhysRange;

/// The page used when it is free: the seed's and the traditional choice.
pub const PREFERRED_PAGE: u64 = 0x8000;
const PAGE: u64 = 4096;
const ONE_MIB: u64 = 0x10_0000;

/// No page below 1 MiB qualifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoLowPage;

impl core::fmt::Display for NoLowPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "not enough free 4 KiB pages below 1 MiB for the AP trampoline and its transition page tables (the memory map has no usable RAM there outside page 0, vectors 0xA0-0xBF and the pages in use)"
        )
    }
}

fn usable(page: u64, low: &LowMemory<'_>) -> bool {
    let range = PhysRange {
        base: page,
        len: PAGE,
    };
    let vector = page >> 12;
    page >= PAGE
        && page + PAGE <= ONE_MIB
        && !(0xA0..=0xBF).contains(&vector)
        && low
            .free
            .iter()
            .any(|f| f.base <= page && page + PAGE <= f.end())
        && !low.in_use.iter().any(|u| u.overlaps(&range))
}

/// Picks [`PREFERRED_PAGE`] if it qualifies, else the lowest page that does.
pub fn choose_trampoline_page(low: &LowMemory<'_>) -> Result<u64, NoLowPage> {
    if usable(PREFERRED_PAGE, low) {
        return Ok(PREFERRED_PAGE);
    }
    (1..ONE_MIB / PAGE)
        .map(|n| n * PAGE)
        .find(|&p| usable(p, low))
        .ok_or(NoLowPage)
}

/// Picks `N` pages for the transition page tables: the lowest qualifying pages other than
/// `trampoline` (the tables must lie below 4 GiB; pages below 1 MiB do, and the host already
/// vouches for them).
pub fn choose_table_pages<const N: usize>(
    low: &LowMemory<'_>,
    trampoline: u64,
) -> Result<[u64; N], NoLowPage> {
    let mut pages = [0u64; N];
    let mut found = 0;
    for p in (1..ONE_MIB / PAGE).map(|n| n * PAGE) {
        if found == N {
            break;
        }
        if p != trampoline && usable(p, low) {
            pages[found] = p;
            found += 1;
        }
    }
    if found == N {
        Ok(pages)
    } else {
        Err(NoLowPage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, len: u64) -> PhysRange {
        PhysRange { base, len }
    }

    #[test]
    fn table_pages_are_the_lowest_free_ones_but_the_trampoline() {
        let free = [r(0x1000, 0x3000), r(0x8000, 0x4000)];
        let used = [r(0x2000, 0x1000)];
        let low = LowMemory {
            free: &free,
            in_use: &used,
        };
        assert_eq!(
            choose_table_pages::<3>(&low, 0x8000),
            Ok([0x1000, 0x3000, 0x9000])
        );
        assert_eq!(
            choose_table_pages::<5>(&low, 0x8000),
            Ok([0x1000, 0x3000, 0x9000, 0xa000, 0xb000])
        );
        assert_eq!(choose_table_pages::<6>(&low, 0x8000), Err(NoLowPage));
        assert_eq!(choose_table_pages::<0>(&low, 0x8000), Ok([]));
    }

    #[test]
    fn prefers_0x8000() {
        let free = [r(0, 0x9fc00)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Ok(0x8000)
        );
    }

    #[test]
    fn avoids_used_and_unaligned_and_page_zero() {
        let free = [r(0, 0x9fc00)];
        let used = [r(0x7ff0, 0x20)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &used
            }),
            Ok(0x1000)
        );
        let free = [r(0x0, 0x1800), r(0x2100, 0x2000)];
        // 0x1000 is only half covered, 0x2000 starts before 0x2100: 0x3000 is the first.
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Ok(0x3000)
        );
    }

    #[test]
    fn never_reserved_vectors_or_above_1mib() {
        let free = [r(0xA0000, 0x21000), r(0x100000, 0x100000)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Ok(0xC0000)
        );
        let free = [r(0xA0000, 0x20000)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Err(NoLowPage)
        );
        let free = [r(0x100000, 0x1000000)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Err(NoLowPage)
        );
    }

    #[test]
    fn range_crossing_1mib_counts_below_it() {
        let free = [r(0xFF000, 0x2000)];
        assert_eq!(
            choose_trampoline_page(&LowMemory {
                free: &free,
                in_use: &[]
            }),
            Ok(0xFF000)
        );
    }
}
