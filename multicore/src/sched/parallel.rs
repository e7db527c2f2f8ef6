//! Parallel loops: a range or a slice split in halves by `join` until a piece is no longer
//! than the grain, each piece run sequentially. The grain is the caller's sequential cutoff:
//! big enough that a piece's work dwarfs a join (hundreds of nanoseconds at the least), small
//! enough that there are several pieces per worker.

use core::ops::Range;

use super::registry::Registry;

impl Registry {
    /// Calls `f(i)` for every `i` in `range`, in parallel pieces of at most `grain` indices.
    pub fn for_each<F>(&self, range: Range<usize>, grain: usize, f: &F)
    where
        F: Fn(usize) + Sync,
    {
        let grain = grain.max(1);
        if range.len() <= grain {
            range.for_each(f);
            return;
        }
        let mid = range.start + range.len() / 2;
        self.join(
            || self.for_each(range.start..mid, grain, f),
            || self.for_each(mid..range.end, grain, f),
        );
    }

    /// `reduce` over `map(i)` for every `i` in `range` (`identity` for an empty piece), in
    /// parallel pieces of at most `grain` indices. `reduce` must be associative.
    pub fn map_reduce<T, M, R>(
        &self,
        range: Range<usize>,
        grain: usize,
        identity: &(dyn Fn() -> T + Sync),
        map: &M,
        reduce: &R,
    ) -> T
    where
        T: Send,
        M: Fn(usize) -> T + Sync,
        R: Fn(T, T) -> T + Sync,
    {
        let grain = grain.max(1);
        if range.len() <= grain {
            return range.map(map).fold(identity(), reduce);
        }
        let mid = range.start + range.len() / 2;
        let (a, b) = self.join(
            || self.map_reduce(range.start..mid, grain, identity, map, reduce),
            || self.map_reduce(mid..range.end, grain, identity, map, reduce),
        );
        reduce(a, b)
    }

    /// Calls `f(offset, chunk)` on pieces of at most `grain` elements of `data`, in parallel;
    /// `offset` is the piece's index in `data`.
    pub fn for_each_chunk_mut<T, F>(&self, data: &mut [T], grain: usize, f: &F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        self.chunks_from(0, data, grain.max(1), f);
    }

    fn chunks_from<T, F>(&self, offset: usize, data: &mut [T], grain: usize, f: &F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        if data.len() <= grain {
            f(offset, data);
            return;
        }
        let mid = data.len() / 2;
        let (left, right) = data.split_at_mut(mid);
        self.join(
            || self.chunks_from(offset, left, grain, f),
            || self.chunks_from(offset + mid, right, grain, f),
        );
    }
}
