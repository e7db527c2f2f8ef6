//! Physical range arithmetic with fixed capacity (no allocator in the kernel): the frames the
//! host has not handed out, the low pages the program may borrow, "available RAM, page-aligned
//! inward, minus what is taken".

use core::fmt;

/// 4 KiB: the page size everything here is aligned to.
pub const PAGE: u64 = 4096;

/// The half-open range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// `[start, end)`; empty when `end <= start`.
    pub const fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    /// `[start, start + len)`, saturating at the top of the address space.
    pub const fn from_len(start: u64, len: u64) -> Range {
        Range {
            start,
            end: start.saturating_add(len),
        }
    }

    /// No byte in it.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Bytes in it.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether `addr` lies in it.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the two share a byte.
    pub const fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end && !self.is_empty() && !other.is_empty()
    }

    /// The whole pages inside it (start rounded up, end rounded down).
    pub const fn pages_inside(&self) -> Range {
        let start = match self.start.checked_next_multiple_of(PAGE) {
            Some(s) => s,
            None => u64::MAX,
        };
        Range {
            start,
            end: self.end & !(PAGE - 1),
        }
    }

    /// The pages it touches (start rounded down, end rounded up).
    pub const fn pages_covering(&self) -> Range {
        let end = match self.end.checked_next_multiple_of(PAGE) {
            Some(e) => e,
            None => !(PAGE - 1),
        };
        Range {
            start: self.start & !(PAGE - 1),
            end,
        }
    }

    /// The part of it inside `limit`.
    pub fn clip(&self, limit: &Range) -> Range {
        Range {
            start: self.start.max(limit.start),
            end: self.end.min(limit.end),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// The set has no room for another range (a removal may split one in two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFull;

/// A set of bytes kept as sorted, disjoint, non-adjacent ranges, at most `N` of them.
#[derive(Debug, Clone)]
pub struct RangeSet<const N: usize> {
    items: [Range; N],
    len: usize,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeSet<N> {
    /// The empty set.
    pub const fn new() -> Self {
        RangeSet {
            items: [Range::new(0, 0); N],
            len: 0,
        }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[Range] {
        &self.items[..self.len]
    }

    /// Bytes in the set.
    pub fn total(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    /// Whether every byte of `range` is in the set.
    pub fn contains_range(&self, range: &Range) -> bool {
        range.is_empty()
            || self
                .ranges()
                .iter()
                .any(|r| r.start <= range.start && range.end <= r.end)
    }

    /// Adds the bytes of `range`, merging with touching neighbours.
    pub fn insert(&mut self, range: Range) -> Result<(), SetFull> {
        if range.is_empty() {
            return Ok(());
        }
        let mut merged = range;
        let mut out = [Range::new(0, 0); N];
        let mut n = 0;
        let mut placed = false;
        for r in self.ranges() {
            if r.end < merged.start {
                out[n] = *r;
                n += 1;
            } else if merged.end < r.start {
                if !placed {
                    if n == N {
                        return Err(SetFull);
                    }
                    out[n] = merged;
                    n += 1;
                    placed = true;
                }
                if n == N {
                    return Err(SetFull);
                }
                out[n] = *r;
                n += 1;
            } else {
                merged = Range::new(merged.start.min(r.start), merged.end.max(r.end));
            }
        }
        if !placed {
            if n == N {
                return Err(SetFull);
            }
            out[n] = merged;
            n += 1;
        }
        self.items = out;
        self.len = n;
        Ok(())
    }

    /// Removes the bytes of `range` (splitting a range that contains it).
    pub fn remove(&mut self, range: Range) -> Result<(), SetFull> {
        if range.is_empty() {
            return Ok(());
        }
        let mut out = [Range::new(0, 0); N];
        let mut n = 0;
        for r in self.ranges() {
            let below = Range::new(r.start, r.end.min(range.start));
            let above = Range::new(r.start.max(range.end), r.end);
            for piece in [below, above] {
                if !piece.is_empty() {
                    if n == N {
                        return Err(SetFull);
                    }
                    out[n] = piece;
                    n += 1;
                }
            }
        }
        self.items = out;
        self.len = n;
        Ok(())
    }

    /// Takes the lowest page out of the set (its first range's first page; the set must hold
    /// whole pages). Never needs room: removing a range's first page cannot split it.
    pub fn take_lowest_page(&mut self) -> Option<u64> {
        let first = *self.ranges().first()?;
        let page = Range::from_len(first.start, PAGE);
        if page.end >= first.end {
            self.items.copy_within(1..self.len, 0);
            self.len -= 1;
        } else {
            self.items[0].start = page.end;
        }
        Some(page.start)
    }

    /// Keeps only whole pages of each range.
    pub fn keep_whole_pages(&mut self) {
        let mut n = 0;
        for i in 0..self.len {
            let inside = self.items[i].pages_inside();
            if !inside.is_empty() {
                self.items[n] = inside;
                n += 1;
            }
        }
        self.len = n;
    }

    /// Keeps only the part inside `limit`.
    pub fn clip(&mut self, limit: &Range) {
        let mut n = 0;
        for i in 0..self.len {
            let part = self.items[i].clip(limit);
            if !part.is_empty() {
                self.items[n] = part;
                n += 1;
            }
        }
        self.len = n;
    }
}

impl<const N: usize> fmt::Display for RangeSet<N> {
    /// Comma-separated `0xSTART-0xEND` ranges (the form of `STANDIN_LOWMEM_FREE`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<const N: usize>(ranges: &[(u64, u64)]) -> RangeSet<N> {
        let mut s = RangeSet::<N>::new();
        for &(a, b) in ranges {
            s.insert(Range::new(a, b)).unwrap();
        }
        s
    }

    #[test]
    fn insert_merges_and_sorts() {
        let s = set::<8>(&[
            (0x5000, 0x6000),
            (0x1000, 0x2000),
            (0x2000, 0x3000),
            (0x5800, 0x7000),
        ]);
        assert_eq!(
            s.ranges(),
            &[Range::new(0x1000, 0x3000), Range::new(0x5000, 0x7000)]
        );
        assert_eq!(s.total(), 0x4000);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = set::<8>(&[(0, 0x9fc00)]);
        s.remove(Range::new(0, 0x1000)).unwrap();
        s.remove(Range::new(0x1000, 0x11000)).unwrap();
        s.remove(Range::new(0x20000, 0x21000)).unwrap();
        s.keep_whole_pages();
        assert_eq!(s.to_string(), "0x11000-0x20000,0x21000-0x9f000");
        assert!(s.contains_range(&Range::new(0x30000, 0x31000)));
        assert!(!s.contains_range(&Range::new(0x20000, 0x21000)));
    }

    #[test]
    fn the_dead_boot_stack_minus_an_occupied_page() {
        // QEMU's e820 for -m 256M on pc: 0..0x9fc00 usable, 0x9fc00.. reserved (EBDA).
        let mut s = set::<8>(&[(0, 0x9fc00), (0x100000, 0x10000000)]);
        s.clip(&Range::new(0x1000, 0x11000));
        s.remove(Range::new(0x8000, 0x9000)).unwrap();
        assert_eq!(s.to_string(), "0x1000-0x8000,0x9000-0x11000");
    }

    #[test]
    fn lowest_pages_first() {
        let mut s = set::<4>(&[(0x3000, 0x5000), (0x1000, 0x2000)]);
        assert_eq!(s.take_lowest_page(), Some(0x1000));
        assert_eq!(s.ranges(), &[Range::new(0x3000, 0x5000)]);
        assert_eq!(s.take_lowest_page(), Some(0x3000));
        assert_eq!(s.take_lowest_page(), Some(0x4000));
        assert_eq!(s.take_lowest_page(), None);
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn full_set_reports_instead_of_dropping() {
        let mut s = set::<2>(&[(0, 0x1000), (0x3000, 0x4000)]);
        assert_eq!(s.insert(Range::new(0x6000, 0x7000)), Err(SetFull));
        assert_eq!(s.remove(Range::new(0x3400, 0x3800)), Err(SetFull));
        assert_eq!(s.ranges().len(), 2);
        // Removing a whole range needs no room.
        s.remove(Range::new(0x3000, 0x4000)).unwrap();
        assert_eq!(s.ranges(), &[Range::new(0, 0x1000)]);
    }

    #[test]
    fn page_rounding() {
        let r = Range::new(0x1234, 0x5678);
        assert_eq!(r.pages_inside(), Range::new(0x2000, 0x5000));
        assert_eq!(r.pages_covering(), Range::new(0x1000, 0x6000));
        assert!(Range::new(0x1001, 0x1fff).pages_inside().is_empty());
        assert!(Range::new(0, 0x1000).overlaps(&Range::new(0xfff, 0x2000)));
        assert!(!Range::new(0, 0x1000).overlaps(&Range::new(0x1000, 0x2000)));
    }
}
