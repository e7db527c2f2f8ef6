//! Jobs: what a deque holds. A job is a header at the start of a larger object (a closure and
//! its result slot on a joiner's stack, or a closure in a box), and the deque holds a pointer to
//! that header: one word, so that a deque slot is one atomic.

use alloc::boxed::Box;
use core::ptr::NonNull;

/// The first field of every job: how to run it.
#[repr(C)]
pub struct JobHeader {
    execute: unsafe fn(*const JobHeader),
}

/// A pointer to a job's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRef(NonNull<JobHeader>);

// SAFETY: a job is made to be run on another CPU: whatever it captures is `Send` (the
// constructors' bounds), and its owner keeps it alive until it has run.
unsafe impl Send for JobRef {}

impl JobRef {
    /// The raw pointer, for a deque slot.
    pub(crate) fn as_ptr(self) -> *mut JobHeader {
        self.0.as_ptr()
    }

    /// Back from a deque slot.
    ///
    /// # Safety
    /// `ptr` came from [`JobRef::as_ptr`] of a job that has not run yet.
    pub(crate) unsafe fn from_ptr(ptr: *mut JobHeader) -> JobRef {
        // SAFETY: the caller's contract: a pushed job's header, never null.
        JobRef(unsafe { NonNull::new_unchecked(ptr) })
    }

    /// Runs the job. After this the job may be gone (its owner may have returned).
    ///
    /// # Safety
    /// The job is alive and runs once: it was taken from a deque (or made) by this caller.
    pub unsafe fn execute(self) {
        let header = self.0.as_ptr();
        // SAFETY: the caller's contract; `execute` was set by the job's constructor for exactly
        // the object this header starts.
        unsafe { ((*header).execute)(header) }
    }
}

impl JobHeader {
    /// A header that runs `execute` on the object it starts.
    pub(crate) const fn new(execute: unsafe fn(*const JobHeader)) -> JobHeader {
        JobHeader { execute }
    }
}

/// A `'static` closure in a box, run once and freed: detached and scoped spawns.
#[repr(C)]
pub(crate) struct HeapJob<F: FnOnce() + Send> {
    header: JobHeader,
    func: F,
}

impl<F: FnOnce() + Send> HeapJob<F> {
    /// Boxes `func` and leaks it as a job; running the job frees it. `func` may borrow: whoever
    /// makes the job runs it (or has it run) while the borrows last, as for every [`JobRef`].
    pub(crate) fn into_job_ref(func: F) -> JobRef {
        let job = Box::new(HeapJob {
            header: JobHeader::new(Self::execute),
            func,
        });
        // SAFETY: Box::into_raw is never null; the header is the first field (repr(C)).
        JobRef(unsafe { NonNull::new_unchecked(Box::into_raw(job) as *mut JobHeader) })
    }

    unsafe fn execute(this: *const JobHeader) {
        // SAFETY: `this` is the header of a HeapJob<F> leaked by into_job_ref, run once.
        let job = unsafe { Box::from_raw(this as *mut HeapJob<F>) };
        (job.func)();
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A job that counts its runs, for the deque tests.
    #[repr(C)]
    pub(crate) struct Counted {
        header: JobHeader,
        runs: AtomicUsize,
        pub(crate) id: usize,
    }

    impl Counted {
        pub(crate) fn new(id: usize) -> Counted {
            Counted {
                header: JobHeader::new(Self::execute),
                runs: AtomicUsize::new(0),
                id,
            }
        }

        pub(crate) fn job_ref(&self) -> JobRef {
            JobRef(NonNull::from(&self.header))
        }

        pub(crate) fn runs(&self) -> usize {
            self.runs.load(Ordering::Acquire)
        }

        unsafe fn execute(this: *const JobHeader) {
            // SAFETY: the header of a Counted that outlives the test's deques.
            let job = unsafe { &*(this as *const Counted) };
            job.runs.fetch_add(1, Ordering::AcqRel);
        }
    }

    #[test]
    fn a_heap_job_runs_once_and_is_freed() {
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let job = HeapJob::into_job_ref(move || {
            h.fetch_add(1, Ordering::Relaxed);
        });
        // SAFETY: made here, run once.
        unsafe { job.execute() };
        assert_eq!(hits.load(Ordering::Relaxed), 1);
        assert_eq!(
            std::sync::Arc::strong_count(&hits),
            1,
            "the closure was dropped"
        );
    }
}
