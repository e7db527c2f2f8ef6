//! `join(a, b)`: run two closures, possibly in parallel. The caller pushes `b` on its own deque
//! (a thief may take it), runs `a`, then takes `b` back if nobody did and runs it itself; if
//! `b` was stolen, it runs or steals other work until the thief is done, and sleeps when there
//! is none (the thief's latch wakes it). Both closures may borrow from the caller's stack: the
//! call does not return before both have run.

use super::abandon::TaskPanicked;
use super::job::{JobHeader, JobRef};
use super::latch::Latch;
use super::registry::Registry;
use crate::sync::primitives::{AtomicU32, Ordering, UnsafeCell};

/// `b` with its result slot and latch, on the joiner's stack.
#[repr(C)]
struct StackJob<'r, F, R> {
    header: JobHeader,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<R>>,
    latch: Latch,
    registry: &'r Registry,
    /// 0, or 1 + the CPU the job panicked on (abandon.rs).
    panicked: AtomicU32,
}

impl<'r, F: FnOnce() -> R + Send, R: Send> StackJob<'r, F, R> {
    fn new(func: F, owner: Option<usize>, registry: &'r Registry) -> Self {
        StackJob {
            header: JobHeader::new(Self::execute),
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(None),
            latch: Latch::new(owner),
            registry,
            panicked: AtomicU32::new(0),
        }
    }

    fn job_ref(&self) -> JobRef {
        // SAFETY: the header is the first field of this repr(C) struct, so its address is the
        // job's; the job lives on the joiner's stack until the joiner has its result.
        unsafe { JobRef::from_ptr(&self.header as *const JobHeader as *mut JobHeader) }
    }

    /// Runs the closure here (the job was popped back, or never pushed).
    fn run_inline(&self) -> R {
        // SAFETY: the job was not and will not be run by anyone else (it was popped back by its
        // owner or never pushed), so this is the only access to `func`.
        let func = self.func.with_mut(|f| unsafe { (*f).take() });
        func.expect("a joined closure runs once")()
    }

    unsafe fn execute(this: *const JobHeader) {
        // SAFETY: `this` is the header of a live StackJob<F, R> (job_ref), run once by the
        // thief that took it; the owner does not touch func/result until the latch is set.
        let job = unsafe { &*(this as *const Self) };
        // SAFETY: as above: the thief alone accesses `func` and `result` now.
        let func = job.func.with_mut(|f| unsafe { (*f).take() });
        let func = func.expect("a stolen job runs once");
        let registry = job.registry;
        let result = match registry.current_worker() {
            Some(w) => registry.run_as_job(w, this as *const (), Self::abandon, func),
            None => func(),
        };
        // SAFETY: as above.
        job.result.with_mut(|r| unsafe { *r = Some(result) });
        // SAFETY: the latch is alive until set; nothing of the job is touched afterwards.
        unsafe { Latch::set_and_wake(&job.latch, registry) };
    }

    /// The job's thief halted after a panic in it: its joiner is told (and re-raises it).
    unsafe fn abandon(ctx: *const (), registry: &Registry, cpu: u32) {
        // SAFETY: ctx is the running job (run_as_job in execute), alive until its latch is set.
        let job = unsafe { &*(ctx as *const Self) };
        job.panicked.store(cpu + 1, Ordering::Relaxed);
        // SAFETY: the latch is alive until set; nothing of the job is touched afterwards.
        unsafe { Latch::set_and_wake(&job.latch, registry) };
    }

    /// The stolen closure's result, once the latch is set; a panic in it is re-raised here.
    fn into_result(self) -> R {
        debug_assert!(self.latch.probe());
        if let Some(cpu) = self.panicked.load(Ordering::Relaxed).checked_sub(1) {
            panic!("{}", TaskPanicked { cpu });
        }
        self.result
            .into_inner()
            .expect("the thief stored the result before setting the latch")
    }
}

impl Registry {
    /// Runs `a` and `b`, possibly in parallel, and returns both results. Called on a worker,
    /// `a` runs on the caller and `b` may be stolen; called from outside the workers, both run
    /// on the workers and the caller polls until they are done.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let Some(w) = self.current_worker() else {
            return self.run_in_workers(move || self.join(a, b));
        };
        let job_b = StackJob::new(b, Some(w), self);
        let b_ref = job_b.job_ref();
        // SAFETY: this CPU is worker w; job_b lives until its result is taken below.
        if unsafe { self.push_fork(w, b_ref) }.is_err() {
            // A full deque: no parallelism to be had here, both halves run in place.
            let ra = a();
            self.count_inline(w);
            return (ra, job_b.run_inline());
        }
        let ra = a();
        loop {
            if job_b.latch.probe() {
                return (ra, job_b.into_result());
            }
            // SAFETY: this CPU is worker w.
            match unsafe { self.pop_local(w) } {
                Some(job) if job == b_ref => {
                    self.count_inline(w);
                    return (ra, job_b.run_inline());
                }
                // A job pushed after b (by `a`'s spawns) and not yet run: run it now.
                // SAFETY: popped by its owner, alive until run.
                Some(job) => unsafe { self.execute(w, job) },
                None => {
                    // b was stolen (or was run in place by a full deque's push).
                    self.wait_until(Some(w), &job_b.latch);
                    return (ra, job_b.into_result());
                }
            }
        }
    }

    /// Runs `f` on a worker for a caller that is none, and waits for its result.
    pub(crate) fn run_in_workers<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let job = StackJob::new(f, None, self);
        self.inject(job.job_ref());
        self.wait_until(None, &job.latch);
        job.into_result()
    }
}
