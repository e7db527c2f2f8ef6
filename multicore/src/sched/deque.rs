//! Each worker's deque: the owner pushes and pops at the bottom (newest first, so the work it
//! just forked stays hot in its cache), thieves take from the top (oldest first: the biggest
//! pieces of a divide-and-conquer). The algorithm is Chase and Lev's ("Dynamic Circular
//! Work-Stealing Deque", SPAA 2005) with the fences of Lê, Pop, Cohen and Zappa Nardelli
//! ("Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013), over a ring of
//! fixed capacity: a full deque refuses the push and the caller runs the job itself, which is
//! always correct for fork-join and keeps the code free of a resizing protocol.
//!
//! Written here rather than taken from `st3`, which is bounded and `no_std` too: its steal
//! moves batches and its owner end is FIFO or LIFO by type, while fork-join wants one job per
//! steal from the top and LIFO at the bottom; and its atomics are not loom's, so the sleep
//! protocol could not be model-checked together with the deque (`sched/loom_models.rs`).
//!
//! Indices grow without bound and wrap; differences are taken with wrapping arithmetic and
//! read as signed, so `bottom - 1` below `top` (an empty deque being popped) compares right.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::job::{JobHeader, JobRef};
use crate::sync::primitives::{fence, AtomicPtr, AtomicUsize, Ordering};

/// What a steal found.
#[derive(Debug, PartialEq, Eq)]
pub enum Steal {
    /// Nothing to take.
    Empty,
    /// Another thief (or the owner) won the race for the top job: try again or elsewhere.
    Retry,
    /// The top job, now the thief's.
    Taken(JobRef),
}

/// A bounded work-stealing deque of jobs.
pub struct Deque {
    top: AtomicUsize,
    /// The owner's end, on its own cache line: the owner writes it on every push and pop,
    /// thieves only read it.
    owner: OwnerEnd,
    slots: Box<[AtomicPtr<JobHeader>]>,
    mask: usize,
}

#[repr(align(64))]
struct OwnerEnd {
    bottom: AtomicUsize,
    /// Jobs pushed so far (wrapping), beside `bottom`, which every push writes anyway: an idle
    /// worker reads it to tell whether work is being forked (`Registry::idle`).
    pushes: AtomicUsize,
}

/// `b - t` read as a signed count.
fn distance(b: usize, t: usize) -> isize {
    b.wrapping_sub(t) as isize
}

impl Deque {
    /// An empty deque holding up to `capacity` jobs (rounded up to a power of two, at least 2).
    pub fn new(capacity: usize) -> Deque {
        let capacity = capacity.max(2).next_power_of_two();
        Deque {
            top: AtomicUsize::new(0),
            owner: OwnerEnd {
                bottom: AtomicUsize::new(0),
                pushes: AtomicUsize::new(0),
            },
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            mask: capacity - 1,
        }
    }

    /// How many jobs fit.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Pushes `job` at the bottom and returns how many jobs were there before it (as the owner
    /// saw them: thieves may have taken some since); a full deque gives the job back.
    ///
    /// # Safety
    /// Only the owner calls `push` and `pop` (one context at a time).
    #[inline]
    pub unsafe fn push(&self, job: JobRef) -> Result<usize, JobRef> {
        let b = self.owner.bottom.load(Ordering::Relaxed);
        let t = self.top.load(Ordering::Acquire);
        let before = distance(b, t);
        if before >= self.capacity() as isize {
            return Err(job);
        }
        self.slots[b & self.mask].store(job.as_ptr(), Ordering::Relaxed);
        // The job (and what it points to) before the new bottom: a thief that sees the new
        // bottom with an acquire load sees the job's contents.
        fence(Ordering::Release);
        self.owner
            .bottom
            .store(b.wrapping_add(1), Ordering::Relaxed);
        // Only the owner writes it: a load and a store, no locked instruction.
        let pushes = self.owner.pushes.load(Ordering::Relaxed);
        self.owner
            .pushes
            .store(pushes.wrapping_add(1), Ordering::Relaxed);
        Ok(before.max(0) as usize)
    }

    /// Pops the newest job, if a thief did not take it.
    ///
    /// # Safety
    /// As for [`Deque::push`].
    #[inline]
    pub unsafe fn pop(&self) -> Option<JobRef> {
        let b = self.owner.bottom.load(Ordering::Relaxed).wrapping_sub(1);
        self.owner.bottom.store(b, Ordering::Relaxed);
        // The claim on slot b before reading top: with the thieves' fence between their top and
        // bottom reads, owner and thief cannot both miss each other's claim (Dekker).
        fence(Ordering::SeqCst);
        let t = self.top.load(Ordering::Relaxed);
        let n = distance(b, t);
        if n < 0 {
            self.owner
                .bottom
                .store(b.wrapping_add(1), Ordering::Relaxed);
            return None;
        }
        let job = self.slots[b & self.mask].load(Ordering::Relaxed);
        if n > 0 {
            // SAFETY: slots between top and bottom hold jobs pushed by `push` (non-null).
            return Some(unsafe { JobRef::from_ptr(job) });
        }
        // The last job: race the thieves for it through top.
        let won = self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        self.owner
            .bottom
            .store(b.wrapping_add(1), Ordering::Relaxed);
        // SAFETY: as above; the CAS made it ours.
        won.then(|| unsafe { JobRef::from_ptr(job) })
    }

    /// Takes the oldest job. Any context may steal.
    pub fn steal(&self) -> Steal {
        let t = self.top.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let b = self.owner.bottom.load(Ordering::Acquire);
        if distance(b, t) <= 0 {
            return Steal::Empty;
        }
        // Read before the CAS: once top moves, the owner may reuse the slot. The push fence and
        // the acquire load of bottom make the job's contents visible.
        let job = self.slots[t & self.mask].load(Ordering::Relaxed);
        match self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
        {
            // SAFETY: the slot at top held a pushed job and the CAS made it ours.
            Ok(_) => Steal::Taken(unsafe { JobRef::from_ptr(job) }),
            Err(_) => Steal::Retry,
        }
    }

    /// Jobs pushed so far, wrapping (a hint for idle workers: whether the owner is forking).
    pub fn pushes(&self) -> usize {
        self.owner.pushes.load(Ordering::Relaxed)
    }

    /// Whether the deque looked empty (a hint: it may change at once).
    pub fn looks_empty(&self) -> bool {
        let t = self.top.load(Ordering::Relaxed);
        let b = self.owner.bottom.load(Ordering::Relaxed);
        distance(b, t) <= 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sched::job::tests::Counted;
    use std::sync::atomic::AtomicUsize as StdUsize;
    use std::sync::Arc;

    #[test]
    fn owner_is_lifo_thieves_fifo() {
        let jobs: Vec<_> = (0..4).map(Counted::new).collect();
        let d = Deque::new(8);
        for j in &jobs {
            // SAFETY: this thread is the only owner.
            unsafe { d.push(j.job_ref()).unwrap() };
        }
        assert_eq!(d.steal(), Steal::Taken(jobs[0].job_ref()));
        // SAFETY: as above.
        assert_eq!(unsafe { d.pop() }, Some(jobs[3].job_ref()));
        assert_eq!(d.steal(), Steal::Taken(jobs[1].job_ref()));
        // SAFETY: as above.
        assert_eq!(unsafe { d.pop() }, Some(jobs[2].job_ref()));
        // SAFETY: as above.
        assert_eq!(unsafe { d.pop() }, None);
        assert_eq!(d.steal(), Steal::Empty);
        assert!(d.looks_empty());
    }

    #[test]
    fn a_full_deque_refuses_and_indices_wrap() {
        let jobs: Vec<_> = (0..3).map(Counted::new).collect();
        let d = Deque::new(2);
        d.top.store(usize::MAX - 1, Ordering::Relaxed);
        d.owner.bottom.store(usize::MAX - 1, Ordering::Relaxed);
        for round in 0..4 {
            // SAFETY: the only owner.
            unsafe {
                d.push(jobs[0].job_ref()).unwrap();
                d.push(jobs[1].job_ref()).unwrap();
                assert_eq!(
                    d.push(jobs[2].job_ref()),
                    Err(jobs[2].job_ref()),
                    "round {round}"
                );
                assert_eq!(d.pop(), Some(jobs[1].job_ref()));
            }
            assert_eq!(d.steal(), Steal::Taken(jobs[0].job_ref()));
        }
    }

    #[test]
    fn every_job_is_taken_exactly_once_under_contention() {
        const JOBS: usize = 20_000;
        let jobs: Arc<Vec<Counted>> = Arc::new((0..JOBS).map(Counted::new).collect());
        let d = Arc::new(Deque::new(64));
        let done = Arc::new(StdUsize::new(0));
        let thieves: Vec<_> = (0..3)
            .map(|_| {
                let (d, done) = (d.clone(), done.clone());
                std::thread::spawn(move || {
                    while done.load(Ordering::Acquire) == 0 {
                        if let Steal::Taken(job) = d.steal() {
                            // SAFETY: a Counted job, alive as long as `jobs`.
                            unsafe { job.execute() };
                        }
                    }
                })
            })
            .collect();
        for (i, job) in jobs.iter().enumerate() {
            // SAFETY: this thread is the only owner.
            if let Err(job) = unsafe { d.push(job.job_ref()) } {
                // SAFETY: refused: ours to run.
                unsafe { job.execute() };
            }
            if i % 3 == 0 {
                // SAFETY: the only owner.
                if let Some(job) = unsafe { d.pop() } {
                    // SAFETY: as above.
                    unsafe { job.execute() };
                }
            }
        }
        // SAFETY: the only owner.
        while let Some(job) = unsafe { d.pop() } {
            // SAFETY: as above.
            unsafe { job.execute() };
        }
        while !d.looks_empty() {
            std::thread::yield_now();
        }
        done.store(1, Ordering::Release);
        for t in thieves {
            t.join().unwrap();
        }
        for (i, job) in jobs.iter().enumerate() {
            assert_eq!(job.runs(), 1, "job {i}");
        }
    }
}
