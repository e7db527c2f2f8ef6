//! The scheduler's workers: one deque and counters per CPU, a global injection queue for work
//! from outside the workers, the sleep state, and the loop by which a worker finds work:
//! its own deque (newest first), the injector, then other workers' deques from a random victim
//! on (oldest first).

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use super::abandon::Frames;
use super::deque::{Deque, Steal};
use super::job::JobRef;
use super::latch::Latch;
use super::sleep::{Platform, Sleep};
use crate::sync::primitives::{spin_hint, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::RawSpinMutex;

/// Jobs a worker's deque holds before a push runs the job in place instead.
pub const DEQUE_CAPACITY: usize = 1024;

/// Rounds of looking for work before an idle worker sleeps: few, because on more vCPUs than
/// host cores a spinning vCPU takes the host time a vCPU with work needs.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 32;
/// Under loom every round is a path to explore: go to sleep at once.
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 1;

/// Spin hints between two rounds, doubling from 1 up to this. A searcher that looks at the
/// other deques without pause takes their owners' cache lines (bottom, top) on every look,
/// and each of the owner's next push and pop then misses: measured on the host, a searcher
/// looking ~1.6 times per empty `join` of its neighbour made that `join` cost 212 ns instead
/// of 17. With the pauses it looks every few microseconds once it has found nothing for a
/// while, soon enough for work that lasts longer than a wake-up would take anyway.
const MAX_PAUSES: u32 = 32;

/// A worker's counters, readable by the program at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Jobs run (stolen, popped, injected, or a joined closure run in place).
    pub tasks: u64,
    /// Jobs taken from another worker's deque.
    pub steals: u64,
    /// Steal attempts that found nothing or lost a race.
    pub failed_steals: u64,
    /// Times the worker went to sleep.
    pub sleeps: u64,
    /// Times another worker (or a setter) woke it.
    pub wakeups: u64,
}

#[derive(Default)]
struct AtomicCounters {
    tasks: AtomicU64,
    steals: AtomicU64,
    failed_steals: AtomicU64,
    sleeps: AtomicU64,
    wakeups: AtomicU64,
}

/// Counts one event on a counter that only its own worker writes: a load and a store, not a
/// locked read-modify-write (`lock xadd` costs as much as the rest of an empty `join`; readers
/// only ever see a count some moment had).
#[inline]
fn bump_own(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Counts one event on another worker's counter (a wake-up): several wakers may race.
fn bump_shared(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[repr(align(64))]
struct Worker {
    deque: Deque,
    counters: AtomicCounters,
    /// xorshift state for victim choice; only the worker itself uses it.
    rng: AtomicU64,
    /// The jobs it runs for others, for a panic (abandon.rs).
    frames: Frames,
}

/// The pause after idle round `round`: `2^round` spin hints, at most [`MAX_PAUSES`].
fn pause(round: u32) {
    for _ in 0..(1u32 << round.min(31)).min(MAX_PAUSES) {
        spin_hint();
    }
}

/// A worker's idle episode, kept by its loop ([`Registry::run_worker`], the wait of a joiner).
#[derive(Default)]
struct Idle {
    /// Rounds since it last found work or slept.
    rounds: u32,
    /// Counted in `Sleep`'s searching workers.
    searching: bool,
    /// The other workers' push counts added up, when last looked at.
    pushes_seen: usize,
}

/// Work pushed from outside the workers (a hosted program's main before it joins, an interrupt
/// handler). Behind a lock: pushes are rare, and idle workers read `len` without it.
struct Injector {
    queue: lock_api::Mutex<RawSpinMutex, VecDeque<JobRef>>,
    len: AtomicUsize,
}

/// A set of workers sharing work.
pub struct Registry {
    workers: Box<[Worker]>,
    injector: Injector,
    sleep: Sleep,
    platform: &'static dyn Platform,
    shutdown: AtomicBool,
}

impl Registry {
    /// A registry of `workers` workers (index 0..workers) on `platform`.
    pub fn new(workers: usize, platform: &'static dyn Platform) -> Registry {
        Registry::with_capacity(workers, platform, DEQUE_CAPACITY)
    }

    /// As [`Registry::new`], with deques of `capacity` jobs.
    pub fn with_capacity(
        workers: usize,
        platform: &'static dyn Platform,
        capacity: usize,
    ) -> Registry {
        let workers = workers.max(1);
        Registry {
            workers: (0..workers)
                .map(|i| Worker {
                    deque: Deque::new(capacity),
                    counters: AtomicCounters::default(),
                    rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1)),
                    frames: Frames::new(),
                })
                .collect(),
            injector: Injector {
                queue: lock_api::Mutex::from_raw(RawSpinMutex::new(), VecDeque::new()),
                len: AtomicUsize::new(0),
            },
            sleep: Sleep::new(workers),
            platform,
            shutdown: AtomicBool::new(false),
        }
    }

    pub(crate) fn frames(&self, w: usize) -> &Frames {
        &self.workers[w].frames
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Worker `w`'s counters so far.
    pub fn counters(&self, w: usize) -> Counters {
        let c = &self.workers[w].counters;
        Counters {
            tasks: c.tasks.load(Ordering::Relaxed),
            steals: c.steals.load(Ordering::Relaxed),
            failed_steals: c.failed_steals.load(Ordering::Relaxed),
            sleeps: c.sleeps.load(Ordering::Relaxed),
            wakeups: c.wakeups.load(Ordering::Relaxed),
        }
    }

    /// Workers asleep now.
    pub fn sleepers(&self) -> usize {
        self.sleep.sleepers()
    }

    /// The running worker's index, if the caller is one of this registry's workers.
    #[inline]
    pub fn current_worker(&self) -> Option<usize> {
        self.platform
            .current_worker()
            .filter(|&w| w < self.workers.len())
    }

    /// Pushes `job` on worker `w`'s own deque (the caller is `w`), or runs it in place when the
    /// deque is full; then wakes a sleeper to steal it.
    ///
    /// # Safety
    /// The caller is worker `w`; `job` is alive until it has run.
    #[inline]
    pub(crate) unsafe fn push_local(&self, w: usize, job: JobRef) {
        // SAFETY: the caller is the owner.
        match unsafe { self.workers[w].deque.push(job) } {
            Ok(_) => self.notify_work(),
            // SAFETY: a refused job is the caller's to run.
            Err(job) => unsafe { self.execute(w, job) },
        }
    }

    /// Pushes a join's second half on worker `w`'s own deque and wakes a sleeper to steal it
    /// if that can help (`Sleep::wake_for_fork`: the cheap check, as the owner takes the job
    /// back itself when nobody does). A full deque gives the job back: the caller runs it.
    ///
    /// # Safety
    /// The caller is worker `w`; `job` is alive until it has run.
    #[inline]
    pub(crate) unsafe fn push_fork(&self, w: usize, job: JobRef) -> Result<(), JobRef> {
        // SAFETY: the caller is the owner.
        let before = unsafe { self.workers[w].deque.push(job) }?;
        if let Some(woken) = self.sleep.wake_for_fork(self.platform, before) {
            bump_shared(&self.workers[woken].counters.wakeups);
        }
        Ok(())
    }

    /// Pops worker `w`'s newest job.
    ///
    /// # Safety
    /// The caller is worker `w`.
    #[inline]
    pub(crate) unsafe fn pop_local(&self, w: usize) -> Option<JobRef> {
        // SAFETY: the caller is the owner.
        unsafe { self.workers[w].deque.pop() }
    }

    /// Queues `job` for any worker and wakes one.
    pub fn inject(&self, job: JobRef) {
        {
            let mut queue = self.injector.queue.lock();
            queue.push_back(job);
            self.injector.len.store(queue.len(), Ordering::Relaxed);
        }
        self.notify_work();
    }

    /// New work is visible: wake one sleeper (if any) to take it.
    fn notify_work(&self) {
        if let Some(w) = self.sleep.wake_one(self.platform) {
            bump_shared(&self.workers[w].counters.wakeups);
        }
    }

    fn take_injected(&self) -> Option<JobRef> {
        if self.injector.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut queue = self.injector.queue.lock();
        let job = queue.pop_front();
        self.injector.len.store(queue.len(), Ordering::Relaxed);
        job
    }

    /// Runs `job` on worker `w`, counted.
    ///
    /// # Safety
    /// `job` is alive and this caller took it (from a deque, the injector, or made it).
    #[inline]
    pub(crate) unsafe fn execute(&self, w: usize, job: JobRef) {
        bump_own(&self.workers[w].counters.tasks);
        // SAFETY: the caller's contract.
        unsafe { job.execute() };
    }

    /// Counts a closure worker `w` ran in place of a job it had pushed and popped back.
    #[inline]
    pub(crate) fn count_inline(&self, w: usize) {
        bump_own(&self.workers[w].counters.tasks);
    }

    fn next_random(&self, w: usize) -> usize {
        let rng = &self.workers[w].rng;
        let mut x = rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.store(x, Ordering::Relaxed);
        x as usize
    }

    /// Worker `w`'s next job: its own newest, else an injected one, else the oldest of another
    /// worker's, the victims tried in turn from a random one.
    pub(crate) fn find_work(&self, w: usize) -> Option<JobRef> {
        // SAFETY: `find_work` is only called by worker `w` itself.
        if let Some(job) = unsafe { self.pop_local(w) } {
            return Some(job);
        }
        if let Some(job) = self.take_injected() {
            return Some(job);
        }
        let n = self.workers.len();
        if n == 1 {
            return None;
        }
        let start = self.next_random(w) % n;
        let counters = &self.workers[w].counters;
        for victim in (start..n).chain(0..start).filter(|&v| v != w) {
            loop {
                match self.workers[victim].deque.steal() {
                    Steal::Taken(job) => {
                        bump_own(&counters.steals);
                        return Some(job);
                    }
                    Steal::Retry => {
                        bump_own(&counters.failed_steals);
                        spin_hint();
                    }
                    Steal::Empty => break,
                }
            }
        }
        bump_own(&counters.failed_steals);
        None
    }

    /// Jobs pushed by the workers other than `w`, added up (wrapping).
    fn pushes_elsewhere(&self, w: usize) -> usize {
        (0..self.workers.len())
            .filter(|&v| v != w)
            .fold(0, |sum, v| sum.wrapping_add(self.workers[v].deque.pushes()))
    }

    /// Worker `w` found nothing: a few more looks, then sleep (or, where it cannot sleep, one
    /// pause). Returns a job found on the way, or `None` after a sleep (look again). With
    /// `latch`, returns as soon as the latch is set.
    ///
    /// One searcher stays up while the others fork: after its rounds, a worker that is the
    /// only one searching and sees that jobs were pushed meanwhile spins another round of
    /// rounds instead of sleeping. Without it, a loop of short `join`s (halves taken back
    /// before anyone steals them) puts the searcher to sleep and the owner's next push wakes it
    /// again, a futex wake or an IPI every few microseconds: measured on the host, 406 ns an
    /// empty `join` at 2 threads against 24 at 1. Only one, because on more vCPUs than host
    /// cores every spinning vCPU takes host time from one with work.
    fn idle(&self, w: usize, latch: Option<&Latch>, idle: &mut Idle) -> Option<JobRef> {
        let done = || latch.is_some_and(Latch::probe) || self.shutdown.load(Ordering::Relaxed);
        if !idle.searching {
            idle.searching = true;
            idle.pushes_seen = self.pushes_elsewhere(w);
            self.sleep.start_searching();
        }
        idle.rounds += 1;
        if idle.rounds < SPIN_ROUNDS || !self.platform.can_sleep(w) {
            pause(idle.rounds);
            return None;
        }
        let pushes = self.pushes_elsewhere(w);
        if pushes != idle.pushes_seen && self.sleep.searching() == 1 {
            // Keep looking, at the longest pause.
            idle.rounds = SPIN_ROUNDS - 1;
            idle.pushes_seen = pushes;
            pause(idle.rounds);
            return None;
        }
        idle.rounds = 0;
        idle.searching = false;
        self.sleep.stop_searching();
        self.sleep.announce(w);
        if done() {
            self.sleep.cancel(w);
            return None;
        }
        if let Some(job) = self.find_work(w) {
            self.sleep.cancel(w);
            return Some(job);
        }
        bump_own(&self.workers[w].counters.sleeps);
        self.sleep.sleep(w, self.platform);
        None
    }

    /// Worker `w` has a job again: its idle episode ends.
    fn found_work(&self, idle: &mut Idle) {
        idle.rounds = 0;
        if idle.searching {
            idle.searching = false;
            self.sleep.stop_searching();
        }
    }

    /// Worker `w`'s next job, or `None` after an idle round or a sleep (look again).
    fn next_job(&self, w: usize, latch: Option<&Latch>, idle: &mut Idle) -> Option<JobRef> {
        let job = self.find_work(w).or_else(|| self.idle(w, latch, idle))?;
        self.found_work(idle);
        Some(job)
    }

    /// Worker `w` waits for `latch`, running other jobs meanwhile and sleeping when there are
    /// none (the latch's setter wakes it). A caller that is no worker (`w` is `None`) polls.
    pub(crate) fn wait_until(&self, w: Option<usize>, latch: &Latch) {
        let Some(w) = w else {
            while !latch.probe() {
                spin_hint();
            }
            return;
        };
        let mut idle = Idle::default();
        while !latch.probe() {
            if let Some(job) = self.next_job(w, Some(latch), &mut idle) {
                // SAFETY: found by this worker, alive until it runs.
                unsafe { self.execute(w, job) };
            }
        }
        self.found_work(&mut idle);
    }

    /// Wakes worker `w` if it sleeps (a latch it waits for was set).
    pub(crate) fn wake_owner(&self, w: usize) {
        if self.sleep.wake_owner(w, self.platform) {
            bump_shared(&self.workers[w].counters.wakeups);
        }
    }

    /// Worker `w`'s life: run jobs as they come, sleep between them; returns after
    /// [`Registry::shutdown`]. Called on each CPU that serves the registry (the demo kernel's
    /// APs; threads in host tests).
    pub fn run_worker(&self, w: usize) {
        let mut idle = Idle::default();
        while !self.shutdown.load(Ordering::Relaxed) {
            if let Some(job) = self.next_job(w, None, &mut idle) {
                // SAFETY: found by this worker, alive until it runs.
                unsafe { self.execute(w, job) };
            }
        }
        self.found_work(&mut idle);
    }

    /// Makes every [`Registry::run_worker`] return once its current job is done.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        for w in 0..self.workers.len() {
            self.wake_owner(w);
        }
    }
}
