//! An arena's list of blocks freed by other CPUs, waiting for the owner to take them back.
//!
//! Lock-free, multi-producer, single-consumer: any CPU pushes a block it frees, the owning CPU
//! takes the whole list with one swap. Like [`CallQueue`](crate::rt::call_queue::CallQueue),
//! but intrusive in the freed memory itself: the link and the block's layout are written into
//! the block's first bytes ([`BlockHeader`]), so pushing never allocates. That is why the heap
//! rounds every block up to [`MIN_BLOCK_SIZE`] bytes and [`MIN_BLOCK_ALIGN`] alignment.
//!
//! # Memory ordering
//! A producer writes the header, then publishes the block with a `Release` CAS on `head`; the
//! owner detaches the list with an `Acquire` swap. Each CAS is a read-modify-write, which
//! continues the release sequence of every earlier `Release` CAS on `head`, so the swap
//! synchronizes with every producer whose block it took: all headers, and the producers' last
//! writes to the blocks' contents, happen before the owner reuses them. No ABA: the owner only
//! ever takes the whole list, and a producer stores the head it read into its own block without
//! dereferencing it.

use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use crate::sync::primitives::{AtomicPtr, Ordering, UnsafeCell};

/// What a block on the list holds in its first bytes.
#[repr(C)]
pub struct BlockHeader {
    /// The next (earlier pushed) block, or null.
    next: UnsafeCell<*mut BlockHeader>,
    /// The layout the block was allocated with, to free it with.
    size: usize,
    align: usize,
}

/// Every block that may be pushed must be at least this large...
pub const MIN_BLOCK_SIZE: usize = size_of::<BlockHeader>();
/// ...and at least this aligned, so its header fits and is aligned.
pub const MIN_BLOCK_ALIGN: usize = align_of::<BlockHeader>();

// The heap documents (and rounds every request to) 24 bytes, 8-aligned. Under loom the cell
// carries tracking state and the header is larger.
#[cfg(not(loom))]
const _: () = assert!(MIN_BLOCK_SIZE == 24 && MIN_BLOCK_ALIGN == 8);

/// The list head; null when empty. See the module docs.
#[derive(Debug)]
pub struct RemoteFreeList {
    head: AtomicPtr<BlockHeader>,
}

impl RemoteFreeList {
    /// An empty list.
    #[cfg(not(loom))]
    pub const fn new() -> RemoteFreeList {
        RemoteFreeList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// An empty list (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> RemoteFreeList {
        RemoteFreeList {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Hands `block`, allocated with `layout`, to the list's owner.
    ///
    /// # Safety
    /// - `block` is valid for writes of `layout.size()` bytes, aligned to `layout.align()`,
    ///   and nobody else uses it from now on (it is being freed);
    /// - `layout.size() >= MIN_BLOCK_SIZE` and `layout.align() >= MIN_BLOCK_ALIGN`.
    pub unsafe fn push(&self, block: NonNull<u8>, layout: Layout) {
        debug_assert!(layout.size() >= MIN_BLOCK_SIZE && layout.align() >= MIN_BLOCK_ALIGN);
        let header = block.as_ptr().cast::<BlockHeader>();
        // SAFETY: the caller gives us the block, large and aligned enough for a header.
        unsafe {
            header.write(BlockHeader {
                next: UnsafeCell::new(ptr::null_mut()),
                size: layout.size(),
                align: layout.align(),
            });
        }
        // Relaxed: the head we read is only stored in our header, never dereferenced.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // The link is (re)written through the cell on every attempt, so that under loom
            // the write is a tracked access that the owner's read must be ordered after.
            // SAFETY: not yet published (no CAS succeeded), so the block is still ours alone.
            unsafe { (*header).next.with_mut(|next| *next = head) };
            // Release on success publishes the header (and the block's last contents) to the
            // owner's Acquire swap.
            match self.head.compare_exchange_weak(
                head,
                header,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Whether the list looks empty (a snapshot; a cheap plain load, no locked instruction).
    pub fn is_empty(&self) -> bool {
        // Relaxed: nothing is read through the pointer.
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Detaches every block pushed so far; the iterator yields each with its layout.
    ///
    /// Skips the atomic swap (a locked instruction) when the list looks empty, so calling this
    /// on every allocation costs one plain load in the common case.
    ///
    /// The owner may free or reuse each block as soon as it is yielded: the iterator has already
    /// read everything it needs from it.
    pub fn take_all(&self) -> TakenBlocks {
        if self.is_empty() {
            return TakenBlocks {
                next: ptr::null_mut(),
            };
        }
        // Acquire: synchronizes with the Release CAS of every producer in the batch.
        TakenBlocks {
            next: self.head.swap(ptr::null_mut(), Ordering::Acquire),
        }
    }
}

impl Default for RemoteFreeList {
    fn default() -> Self {
        Self::new()
    }
}

/// The blocks [`RemoteFreeList::take_all`] detached, newest first.
#[derive(Debug)]
#[must_use = "dropping the iterator leaks the blocks it has not yielded"]
pub struct TakenBlocks {
    next: *mut BlockHeader,
}

impl Iterator for TakenBlocks {
    type Item = (NonNull<u8>, Layout);

    fn next(&mut self) -> Option<Self::Item> {
        let header = NonNull::new(self.next)?;
        // SAFETY: `header` heads a block in the batch detached by the Acquire swap in
        // `take_all`: only this iterator can reach it, and the producer's header write happened
        // before the swap. The header is moved out (read) before the block is yielded, so the
        // caller may overwrite it at once.
        let BlockHeader { next, size, align } = unsafe { header.as_ptr().read() };
        // SAFETY: `next` was moved out of the block, so no one else accesses it.
        self.next = next.with(|next| unsafe { *next });
        // SAFETY: `size` and `align` are those of a `Layout` the producer passed to `push`.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        Some((header.cast(), layout))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn block(size: usize) -> (NonNull<u8>, Layout) {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: nonzero size.
        (
            NonNull::new(unsafe { std::alloc::alloc(layout) }).unwrap(),
            layout,
        )
    }

    #[test]
    fn takes_every_pushed_block_with_its_layout() {
        let list = RemoteFreeList::new();
        assert!(list.is_empty());
        assert_eq!(list.take_all().count(), 0);
        let blocks: Vec<_> = [32, 48, 4096].iter().map(|&s| block(s)).collect();
        for &(p, l) in &blocks {
            // SAFETY: fresh blocks, large and aligned enough.
            unsafe { list.push(p, l) };
        }
        assert!(!list.is_empty());
        let mut taken: Vec<_> = list.take_all().collect();
        assert!(list.is_empty());
        taken.reverse();
        assert_eq!(taken, blocks);
        for (p, l) in taken {
            // SAFETY: allocated above with `l`.
            unsafe { std::alloc::dealloc(p.as_ptr(), l) };
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;
    use std::vec::Vec;

    /// Two CPUs push blocks while the owner drains: every block comes back exactly once, with
    /// its layout, and the contents written before the push are visible to the owner.
    #[test]
    fn two_pushers_one_owner() {
        loom::model(|| {
            let list = Arc::new(RemoteFreeList::new());
            // One byte of payload past the header (larger under loom, whose cells are tracked).
            let layout = Layout::from_size_align(MIN_BLOCK_SIZE + 8, MIN_BLOCK_ALIGN).unwrap();
            let pushers: Vec<_> = (0..2u8)
                .map(|i| {
                    let list = list.clone();
                    thread::spawn(move || {
                        // SAFETY: nonzero size.
                        let p = NonNull::new(unsafe { std::alloc::alloc(layout) }).unwrap();
                        // SAFETY: a byte past the header, inside the fresh block.
                        unsafe { p.as_ptr().add(MIN_BLOCK_SIZE).write(i + 1) };
                        // SAFETY: the block is ours and fits a header.
                        unsafe { list.push(p, layout) };
                    })
                })
                .collect();

            let mut seen = Vec::new();
            let take = |seen: &mut Vec<u8>| {
                for (p, l) in list.take_all() {
                    assert_eq!(l, layout);
                    // SAFETY: the Acquire swap ordered the pusher's write before this read.
                    seen.push(unsafe { p.as_ptr().add(MIN_BLOCK_SIZE).read() });
                    // SAFETY: allocated by a pusher with `layout`; taken exactly once.
                    unsafe { std::alloc::dealloc(p.as_ptr(), l) };
                }
            };
            // The owner keeps draining until both blocks came back; yielding lets loom run the
            // pushers in between, so drains race with pushes (a single drain before joining
            // would only ever see an empty list: loom does not reorder a push before the
            // owner's first plain load).
            while seen.len() < 2 {
                take(&mut seen);
                thread::yield_now();
            }
            for t in pushers {
                t.join().unwrap();
            }
            seen.sort_unstable();
            assert_eq!(seen, [1, 2]);
            assert!(list.is_empty());
        });
    }
}
