//! The per-CPU queue of cross-CPU call requests: any CPU pushes, only the owning CPU runs them.
//!
//! # Why a list and not a mailbox
//! A one-slot mailbox per CPU loses a request when two CPUs post to the same target before it
//! looks, or forces the second sender to spin until the slot drains (with interrupts off, a
//! deadlock if the target is itself spinning on a mailbox of ours). This queue has no capacity
//! limit: every push succeeds, and nothing a producer does waits on the consumer.
//!
//! # Design
//! An intrusive Treiber-style stack of heap-allocated [`Call`]s: a producer links its call in
//! front of the current head with one compare-and-swap; the consumer detaches the whole list
//! with one swap and reverses it, so the batch runs in push order (FIFO, in the order of the
//! successful CASes, hence FIFO per producer too). Because the consumer never pops a single
//! node, there is no ABA problem: a producer only ever *stores* the head it read into its own
//! node's `next`, never dereferences it, so even if that address was freed and reused in the
//! meantime, a CAS that succeeds links the node to what really is the head at that moment.
//!
//! # Memory ordering
//! - A producer writes its node (the job, `next`) and then publishes it with a `Release` CAS on
//!   `head`. The consumer's `swap` is `Acquire`. Every successful CAS on `head` is a
//!   read-modify-write, and RMWs continue the release sequence of each earlier `Release` write
//!   to `head`, so the consumer's `Acquire` swap synchronizes with *every* producer whose node
//!   it detached, not only the last one: all nodes of the batch, and everything their producers
//!   wrote before pushing (the data a job will read), are visible to the consumer.
//! - Loads of `head` in the producer loop and the CAS failure ordering are `Relaxed`: the value
//!   is only copied into the producer's own node, never dereferenced.
//! - After a job returns, the consumer sets the call's completion flag with `Release`;
//!   [`CallHandle::is_done`] loads it with `Acquire`, so a caller that sees `true` also sees
//!   every write the job made.
//!
//! # When to send an IPI
//! [`CallQueue::push`] reports whether the queue was empty before the push. Only the producer
//! that makes the queue non-empty needs to interrupt the owner: the owner's next
//! [`CallQueue::run_pending`] detaches everything pushed before its swap, and a push after that
//! swap finds the queue empty again and sends its own IPI. So no request is left waiting for an
//! interrupt that nobody sends.

#[cfg(not(loom))]
use alloc::sync::Arc;
#[cfg(loom)]
use loom::sync::Arc;

use alloc::boxed::Box;
use core::fmt;
use core::ptr;

use crate::sync::primitives::{spin_hint, AtomicBool, AtomicPtr, Ordering, UnsafeCell};

/// The work a cross-CPU call runs on the target CPU.
pub type Job = Box<dyn FnOnce() + Send>;

/// One queued request: a job, an optional completion flag shared with a [`CallHandle`], and
/// the intrusive link used while it sits in a [`CallQueue`].
///
/// Build one with [`Call::new`] or [`Call::detached`] to allocate it ahead of time (for example
/// before disabling interrupts) and queue it with [`CallQueue::push_call`]; or let
/// [`CallQueue::push`] do both.
pub struct Call {
    /// Next (older) call in the queue's stack. Written only by the pushing producer before the
    /// node is published, read only by the consumer after it detached the list.
    next: UnsafeCell<*mut Call>,
    job: Job,
    /// `None` for fire-and-forget calls.
    done: Option<Arc<AtomicBool>>,
}

// SAFETY: `Call` is `!Send` only because of the raw `next` pointer, which is a link owned by the
// queue protocol: it is written by the one producer that owns the node before publication and
// read by the consumer after detaching the list (see the module's ordering argument). The job
// is `Send` and the completion flag is an atomic in an `Arc`.
unsafe impl Send for Call {}

impl Call {
    /// Wraps `job` into a call whose completion the returned handle reports.
    pub fn new(job: Job) -> (Box<Call>, CallHandle) {
        let done = Arc::new(AtomicBool::new(false));
        let handle = CallHandle { done: done.clone() };
        (
            Box::new(Call {
                next: UnsafeCell::new(ptr::null_mut()),
                job,
                done: Some(done),
            }),
            handle,
        )
    }

    /// Wraps `job` into a fire-and-forget call (no completion flag, one allocation fewer).
    pub fn detached(job: Job) -> Box<Call> {
        Box::new(Call {
            next: UnsafeCell::new(ptr::null_mut()),
            job,
            done: None,
        })
    }

    /// Runs the job, then publishes its completion.
    fn run(self) {
        (self.job)();
        if let Some(done) = self.done {
            // Release: the job's writes happen-before a caller's `Acquire` load that sees `true`.
            done.store(true, Ordering::Release);
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("tracked", &self.done.is_some())
            .finish_non_exhaustive()
    }
}

/// The caller's side of a queued [`Call`]: tells when the target CPU has run it.
#[derive(Debug, Clone)]
pub struct CallHandle {
    done: Arc<AtomicBool>,
}

impl CallHandle {
    /// Whether the job has returned. When this is `true`, everything the job wrote is visible
    /// to the caller (the flag is read with `Acquire`, set with `Release` after the job).
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Spins until the job has returned.
    ///
    /// Only useful when the target CPU is certain to run its queue (it was sent an IPI and can
    /// take it, or it polls). Waiting with interrupts off for a CPU that is itself waiting with
    /// interrupts off on us deadlocks: callers that may be targets run their own queue while
    /// they wait (see [`CallQueue::run_pending`]) rather than call this.
    pub fn wait(&self) {
        while !self.is_done() {
            spin_hint();
        }
    }
}

/// What [`CallQueue::push`] returns.
#[derive(Debug)]
#[must_use = "the handle tells when the call ran; `was_empty` tells whether to send an IPI"]
pub struct Pushed {
    /// Reports the call's completion.
    pub handle: CallHandle,
    /// The queue was empty before this push: this producer must notify the owner (IPI).
    pub was_empty: bool,
}

/// A lock-free, unbounded, multi-producer single-consumer queue of [`Call`]s, one per CPU.
///
/// `Sync`: any CPU may push. [`CallQueue::run_pending`] is meant for the owning CPU; it is safe
/// (not undefined behaviour) from anywhere, since each swap detaches a disjoint batch, but two
/// concurrent consumers would lose the FIFO order between their batches.
pub struct CallQueue {
    /// Most recently pushed call, or null when empty. The list runs from newest to oldest.
    head: AtomicPtr<Call>,
}

impl CallQueue {
    /// An empty queue.
    #[cfg(not(loom))]
    pub const fn new() -> CallQueue {
        CallQueue {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// An empty queue (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> CallQueue {
        CallQueue {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Queues `job` and returns its completion handle and whether the queue was empty before.
    ///
    /// Never blocks and never fails (but for the allocation of the call).
    pub fn push(&self, job: Job) -> Pushed {
        let (call, handle) = Call::new(job);
        let was_empty = self.push_call(call);
        Pushed { handle, was_empty }
    }

    /// Queues a call built ahead of time; returns whether the queue was empty before (the
    /// caller must then notify the owning CPU).
    ///
    /// Allocation-free, so usable where allocating is not.
    pub fn push_call(&self, call: Box<Call>) -> bool {
        let node = Box::into_raw(call);
        // Relaxed: the head we read is only stored into our node, never dereferenced.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from `Box::into_raw` above and is not published yet (the CAS
            // below has not succeeded), so this thread has the only access to it.
            unsafe { (*node).next.with_mut(|next| *next = head) };
            // Release on success publishes the node's contents (job, `next`) and everything the
            // producer wrote before, to the consumer's `Acquire` swap. See the module docs.
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return head.is_null(),
                Err(current) => head = current,
            }
        }
    }

    /// Runs every call queued so far, oldest first, marking each done; returns how many ran.
    ///
    /// Calls pushed while this runs (including by the jobs themselves) wait for the next call:
    /// their producers saw an empty queue and sent a new notification. This bounds the time
    /// spent here, for example in an interrupt handler.
    ///
    /// If a job panics (host tests only: the kernel aborts on panic) the rest of the batch is
    /// dropped without running.
    pub fn run_pending(&self) -> usize {
        // Acquire: synchronizes with the Release CAS of every producer in the detached batch
        // (release sequence through the RMW chain on `head`).
        let mut newest = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        if newest.is_null() {
            return 0;
        }

        // Reverse the detached newest-first list in place, so it runs in push order.
        let mut oldest = ptr::null_mut::<Call>();
        while !newest.is_null() {
            let node = newest;
            // SAFETY: `node` is in the batch this thread detached with the swap above: no
            // producer touches a node after its successful CAS and no other consumer can see
            // it, so this thread has exclusive access; the Acquire swap made the producer's
            // writes to `next` visible.
            unsafe {
                newest = (*node).next.with(|next| *next);
                (*node).next.with_mut(|next| *next = oldest);
            }
            oldest = node;
        }

        let mut ran = 0;
        while !oldest.is_null() {
            // SAFETY: every node came from `Box::into_raw` in `push_call` and is exclusively
            // ours (see above); each is turned back into a `Box` exactly once, after its link
            // was read.
            let call = unsafe {
                let call = Box::from_raw(oldest);
                oldest = call.next.with(|next| *next);
                call
            };
            call.run();
            ran += 1;
        }
        ran
    }

    /// Whether no call is queued right now (a snapshot: producers may push at any moment).
    pub fn is_empty(&self) -> bool {
        // Relaxed: nothing is read through the pointer.
        self.head.load(Ordering::Relaxed).is_null()
    }
}

impl Default for CallQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CallQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallQueue")
            .field("empty", &self.is_empty())
            .finish()
    }
}

impl Drop for CallQueue {
    /// Frees calls that never ran, without running them: their handles never complete.
    fn drop(&mut self) {
        let mut node = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: `&mut self` means no producer or consumer is left; every node came from
            // `Box::into_raw` in `push_call` and is freed exactly once here, after its link was
            // read.
            let call = unsafe { Box::from_raw(node) };
            // SAFETY: `call` is ours alone (see above); the pointer is valid for the read.
            node = call.next.with(|next| unsafe { *next });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use std::vec::Vec;

    fn job(f: impl FnOnce() + Send + 'static) -> Job {
        Box::new(f)
    }

    #[test]
    fn queue_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CallQueue>();
        check::<CallHandle>();
    }

    #[test]
    fn empty_queue_runs_nothing() {
        let q = CallQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.run_pending(), 0);
    }

    #[test]
    fn first_push_reports_empty_and_later_ones_do_not() {
        let q = CallQueue::new();
        let a = q.push(job(|| {}));
        let b = q.push(job(|| {}));
        assert!(a.was_empty);
        assert!(!b.was_empty);
        assert!(!q.is_empty());
        assert_eq!(q.run_pending(), 2);
        assert!(q.is_empty());
        assert!(
            q.push(job(|| {})).was_empty,
            "a push after the drain must notify again"
        );
    }

    #[test]
    fn single_producer_runs_in_fifo_order_and_completes_handles() {
        let q = CallQueue::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let log = log.clone();
                q.push(job(move || log.lock().unwrap().push(i))).handle
            })
            .collect();
        assert!(handles.iter().all(|h| !h.is_done()));
        assert_eq!(q.run_pending(), 100);
        assert!(handles.iter().all(CallHandle::is_done));
        assert_eq!(*log.lock().unwrap(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn detached_calls_run() {
        let q = CallQueue::new();
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let hits = hits.clone();
            q.push_call(Call::detached(job(move || {
                hits.fetch_add(1, Ordering::Relaxed);
            })));
        }
        assert_eq!(q.run_pending(), 3);
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn calls_pushed_by_a_job_wait_for_the_next_run() {
        let q = Arc::new(CallQueue::new());
        let inner_ran = Arc::new(AtomicBool::new(false));
        let (q2, flag) = (q.clone(), inner_ran.clone());
        let outer = q.push(job(move || {
            let pushed = q2.push(job(move || flag.store(true, Ordering::Relaxed)));
            assert!(pushed.was_empty, "the batch was detached before it ran");
        }));
        assert_eq!(q.run_pending(), 1);
        assert!(outer.handle.is_done());
        assert!(!inner_ran.load(Ordering::Relaxed));
        assert_eq!(q.run_pending(), 1);
        assert!(inner_ran.load(Ordering::Relaxed));
    }

    #[test]
    fn dropping_the_queue_frees_unrun_calls_without_running_them() {
        let ran = Arc::new(AtomicBool::new(false));
        let witness = Arc::new(());
        let handle = {
            let q = CallQueue::new();
            let (ran, witness) = (ran.clone(), witness.clone());
            q.push(job(move || {
                let _keep = witness;
                ran.store(true, Ordering::Relaxed);
            }))
            .handle
        };
        assert!(!ran.load(Ordering::Relaxed));
        assert!(!handle.is_done());
        assert_eq!(
            Arc::strong_count(&witness),
            1,
            "the job's captures were dropped"
        );
    }

    /// Many producers push concurrently while the consumer drains: every job runs exactly once,
    /// each producer's jobs run in its order, and every handle completes.
    #[test]
    fn many_producers_none_lost_run_once_fifo_per_producer() {
        const PRODUCERS: usize = 6;
        const PER_PRODUCER: usize = 2_000;
        let q = Arc::new(CallQueue::new());
        let runs: Arc<Vec<AtomicUsize>> = Arc::new(
            (0..PRODUCERS * PER_PRODUCER)
                .map(|_| AtomicUsize::new(0))
                .collect(),
        );
        // Only the consumer thread runs jobs, so a plain per-producer "last seen" list suffices;
        // the Mutex only satisfies the borrow checker.
        let last_seen = Arc::new(Mutex::new(std::vec![None::<usize>; PRODUCERS]));
        let producers_done = Arc::new(AtomicUsize::new(0));

        let consumer = {
            let (q, producers_done) = (q.clone(), producers_done.clone());
            std::thread::spawn(move || {
                let mut total = 0;
                loop {
                    let finished = producers_done.load(Ordering::Acquire) == PRODUCERS;
                    total += q.run_pending();
                    if finished && q.is_empty() {
                        return total;
                    }
                    std::thread::yield_now();
                }
            })
        };

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (q, runs, last_seen, producers_done) = (
                    q.clone(),
                    runs.clone(),
                    last_seen.clone(),
                    producers_done.clone(),
                );
                std::thread::spawn(move || {
                    let mut handles = Vec::with_capacity(PER_PRODUCER);
                    for i in 0..PER_PRODUCER {
                        let (runs, last_seen) = (runs.clone(), last_seen.clone());
                        handles.push(
                            q.push(job(move || {
                                runs[p * PER_PRODUCER + i].fetch_add(1, Ordering::Relaxed);
                                let mut seen = last_seen.lock().unwrap();
                                assert_eq!(seen[p].map_or(0, |s| s + 1), i, "producer {p} order");
                                seen[p] = Some(i);
                            }))
                            .handle,
                        );
                    }
                    producers_done.fetch_add(1, Ordering::Release);
                    for h in &handles {
                        h.wait();
                    }
                })
            })
            .collect();

        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(consumer.join().unwrap(), PRODUCERS * PER_PRODUCER);
        assert!(
            runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
            "each job ran exactly once"
        );
    }

    /// A caller that sees its handle complete sees the job's plain (non-atomic) writes.
    #[test]
    fn completion_publishes_the_jobs_writes() {
        struct Slot(std::cell::UnsafeCell<u64>);
        // SAFETY: written by the job on the consumer thread, read by the producer only after
        // `is_done()` (Acquire) returned true, which orders it after the write.
        unsafe impl Sync for Slot {}

        let q = Arc::new(CallQueue::new());
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = {
            let (q, stop) = (q.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    q.run_pending();
                    std::thread::yield_now();
                }
                q.run_pending();
            })
        };
        for i in 0..500u64 {
            let slot = Arc::new(Slot(std::cell::UnsafeCell::new(0)));
            let s = slot.clone();
            // SAFETY: see `Slot`.
            let pushed = q.push(job(move || unsafe { *s.0.get() = i + 1 }));
            pushed.handle.wait();
            // SAFETY: see `Slot`.
            assert_eq!(unsafe { *slot.0.get() }, i + 1);
        }
        stop.store(true, Ordering::Relaxed);
        consumer.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    /// A plain (loom-tracked) value written by a job and read by its caller.
    struct Slot(UnsafeCell<u32>);
    // SAFETY: each slot is written by one job and read by its producer only after the call's
    // completion was observed with Acquire; loom reports any access that is not so ordered.
    unsafe impl Sync for Slot {}

    /// Two producers push while the owner drains concurrently and then once more after they
    /// finish: every job runs exactly once, each handle completes, and a caller that sees its
    /// handle done sees the job's effect.
    #[test]
    fn two_producers_one_consumer() {
        loom::model(|| {
            let q = Arc::new(CallQueue::new());
            let runs = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
            let effects = Arc::new([Slot(UnsafeCell::new(0)), Slot(UnsafeCell::new(0))]);

            let producers: std::vec::Vec<_> = (0..2)
                .map(|p| {
                    let (q, runs, effects) = (q.clone(), runs.clone(), effects.clone());
                    thread::spawn(move || {
                        let job_effects = effects.clone();
                        let pushed = q.push(Box::new(move || {
                            runs[p].fetch_add(1, Ordering::Relaxed);
                            // SAFETY: only this job writes slot `p`; the producer reads it after
                            // observing completion (Acquire), which loom checks.
                            job_effects[p].0.with_mut(|e| unsafe { *e = 7 });
                        }));
                        if pushed.handle.is_done() {
                            // SAFETY: the Acquire load above ordered the job's write before us.
                            assert_eq!(effects[p].0.with(|e| unsafe { *e }), 7);
                        }
                        pushed.handle
                    })
                })
                .collect();

            // The owner drains concurrently with the pushes...
            let mut ran = q.run_pending();
            let handles: std::vec::Vec<CallHandle> =
                producers.into_iter().map(|t| t.join().unwrap()).collect();
            // ...and once more after both pushed (in the kernel: on the IPI).
            ran += q.run_pending();

            assert_eq!(ran, 2);
            assert!(q.is_empty());
            for (p, h) in handles.iter().enumerate() {
                assert!(h.is_done());
                assert_eq!(runs[p].load(Ordering::Relaxed), 1);
                // SAFETY: the job ran and `is_done()` (Acquire) saw its Release.
                assert_eq!(effects[p].0.with(|e| unsafe { *e }), 7);
            }
        });
    }

    /// A push racing with `run_pending` is either in the detached batch or left for the next
    /// run, and in the second case the producer is told the queue was empty (so it notifies).
    #[test]
    fn push_concurrent_with_run_pending_is_never_lost() {
        loom::model(|| {
            let q = Arc::new(CallQueue::new());
            let first = q.push(Box::new(|| {}));
            assert!(first.was_empty);

            let producer = {
                let q = q.clone();
                thread::spawn(move || q.push(Box::new(|| {})))
            };
            let ran_first = q.run_pending();
            let second = producer.join().unwrap();
            let ran_second = q.run_pending();

            assert!(first.handle.is_done());
            assert!(second.handle.is_done());
            assert_eq!(ran_first + ran_second, 2);
            if ran_first == 1 {
                // The second push came after the swap: it found the queue empty.
                assert!(second.was_empty, "the late producer must be told to notify");
            } else {
                assert!(!second.was_empty);
            }
        });
    }
}
