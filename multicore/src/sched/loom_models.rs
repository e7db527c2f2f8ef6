//! Loom models: the deque alone (every job taken exactly once between owner and thief); the
//! whole scheduler on two workers (a join whose second half is stolen by a worker that was
//! asleep: nobody sleeps for ever, both halves run once, the joiner gets both results); and
//! work from outside the workers through the injector, which must wake the one worker asleep.
//!
//! Sleeping is `loom::thread::park`, waking `unpark`: like an IPI to a CPU that has interrupts
//! off until `sti; hlt`, an unpark that comes before the park is not lost. A lost wake-up shows
//! as a deadlock, which loom reports.

use alloc::boxed::Box;
use alloc::vec::Vec;
use loom::sync::atomic::AtomicUsize;
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::deque::{Deque, Steal};
use super::job::{JobHeader, JobRef};
use super::{Platform, Registry};
use crate::sync::primitives::Ordering;

#[repr(C)]
struct Counted {
    header: JobHeader,
    runs: AtomicUsize,
}

impl Counted {
    fn new() -> Counted {
        Counted {
            header: JobHeader::new(Self::execute),
            runs: AtomicUsize::new(0),
        }
    }

    fn job_ref(&self) -> JobRef {
        // SAFETY: the header starts this repr(C) struct, which outlives the model's deques.
        unsafe { JobRef::from_ptr(&self.header as *const JobHeader as *mut JobHeader) }
    }

    unsafe fn execute(this: *const JobHeader) {
        // SAFETY: the header of a live Counted.
        let job = unsafe { &*(this as *const Counted) };
        job.runs.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn loom_deque_owner_and_thief_take_each_job_once() {
    loom::model(|| {
        let jobs: Arc<[Counted; 2]> = Arc::new([Counted::new(), Counted::new()]);
        let deque = Arc::new(Deque::new(2));
        // SAFETY: this thread is the deque's only owner.
        unsafe {
            deque.push(jobs[0].job_ref()).unwrap();
            deque.push(jobs[1].job_ref()).unwrap();
        }
        let thief = {
            let deque = deque.clone();
            thread::spawn(move || {
                if let Steal::Taken(job) = deque.steal() {
                    // SAFETY: taken by this thief, alive (jobs outlive the threads).
                    unsafe { job.execute() };
                }
            })
        };
        // SAFETY: the only owner.
        while let Some(job) = unsafe { deque.pop() } {
            // SAFETY: taken by the owner.
            unsafe { job.execute() };
        }
        thief.join().unwrap();
        // Whatever the thief lost in a race is still there for a last look.
        while let Steal::Taken(job) = deque.steal() {
            // SAFETY: as above.
            unsafe { job.execute() };
        }
        for job in jobs.iter() {
            assert_eq!(job.runs.load(Ordering::Relaxed), 1);
        }
    });
}

/// Loom threads as CPUs.
struct LoomThreads {
    threads: Mutex<Vec<Option<thread::Thread>>>,
}

loom::thread_local! {
    static WORKER: core::cell::Cell<Option<usize>> = core::cell::Cell::new(None);
}

impl Platform for LoomThreads {
    fn current_worker(&self) -> Option<usize> {
        WORKER.with(|w| w.get())
    }

    fn wait(&self, _worker: usize, asleep: &dyn Fn() -> bool) {
        while asleep() {
            thread::park();
        }
    }

    fn wake(&self, worker: usize) {
        if let Some(t) = &self.threads.lock().unwrap()[worker] {
            t.unpark();
        }
    }
}

#[test]
fn loom_a_stolen_join_half_wakes_its_joiner_and_no_sleeper_is_lost() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let platform: &'static LoomThreads = Box::leak(Box::new(LoomThreads {
            threads: Mutex::new(alloc::vec![Some(thread::current()), None]),
        }));
        let registry: &'static Registry =
            Box::leak(Box::new(Registry::with_capacity(2, platform, 2)));
        WORKER.with(|w| w.set(Some(0)));
        let worker = thread::spawn(move || {
            WORKER.with(|w| w.set(Some(1)));
            platform.threads.lock().unwrap()[1] = Some(thread::current());
            registry.run_worker(1);
        });
        let (a, b) = registry.join(|| 1, || 2);
        assert_eq!((a, b), (1, 2));
        registry.shutdown();
        worker.join().unwrap();
    });
}

#[test]
fn loom_injected_work_wakes_a_sleeping_worker() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let platform: &'static LoomThreads = Box::leak(Box::new(LoomThreads {
            threads: Mutex::new(alloc::vec![None]),
        }));
        let registry: &'static Registry =
            Box::leak(Box::new(Registry::with_capacity(1, platform, 2)));
        let worker = thread::spawn(move || {
            WORKER.with(|w| w.set(Some(0)));
            platform.threads.lock().unwrap()[0] = Some(thread::current());
            registry.run_worker(0);
        });
        // This thread is no worker: its join goes through the injector, and it polls.
        assert_eq!(registry.join(|| 3, || 4), (3, 4));
        registry.shutdown();
        worker.join().unwrap();
    });
}
