//! Idle workers sleep, and new work wakes one; a worker waiting for a result sleeps until the
//! result is set. The platform does the sleeping (an idle CPU halts with `sti; hlt` and an IPI
//! wakes it; host threads park), this file the protocol that cannot lose a wake-up:
//!
//! - a worker going to sleep first announces it (its state `SLEEPING`, the sleeper count up),
//!   then a full fence, then looks once more at everything that could wake it (the queues, and
//!   the latch it waits for); only if all are still empty does it sleep;
//! - whoever makes work or sets a latch first publishes it, then a full fence, then looks at
//!   the sleepers and wakes one (for work) or the latch's owner (for a latch).
//!
//! Of two such sequences that overlap, at least one side sees the other's write (the two fences
//! are ordered in the single total order of SeqCst fences): either the sleeper sees the work and
//! stays up, or the waker sees the sleeper and wakes it. Waking is a compare-and-swap from
//! `SLEEPING` to `AWAKE` by the waker, so one sleeper is woken once and counted once; the
//! platform's `wait` returns only when the state is no longer `SLEEPING` (a halted CPU takes
//! the IPI even if it arrived before the `hlt`: interrupts are off from the last check until
//! `sti; hlt`). The model is in `loom_models.rs`.
//!
//! One kind of new work takes a cheaper path: the second half of a `join`, pushed on the
//! joiner's own deque ([`Sleep::wake_for_fork`]). Its owner takes it back and runs it itself
//! unless a thief got it first, so no wake-up is needed for it to run, only for it to run in
//! parallel: the check for sleepers comes without the fence (which would be the second full
//! fence of every `join`, beside the deque's own), and without waking anyone while a worker is
//! awake and searching (it will find the job) unless the deque already held work (more than one
//! searcher can take). What that can cost: in the nanoseconds where a sleeper's announcement
//! and the push cross in the two store buffers, that sleeper stays asleep until the next
//! wake-up, and the half runs on its owner. A job is never left unrun while everyone sleeps: a
//! worker looks at its own deque first, and last before it sleeps. Every other kind of work
//! (injected, spawned, scoped) and every latch keeps the fenced protocol above.

use crate::sync::primitives::{fence, AtomicU32, AtomicUsize, Ordering};

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// How workers sleep and are woken: what the scheduler needs from the CPUs it runs on.
pub trait Platform: Sync {
    /// The worker index of the running CPU (or thread), if it is one of the scheduler's.
    fn current_worker(&self) -> Option<usize>;

    /// Blocks worker `worker` (the caller) while `asleep()` is true. May return early; the
    /// caller checks again. Must not miss a [`Platform::wake`] that comes after `asleep()`
    /// turned false (the bare-metal version: `cli`, check, `sti; hlt`).
    fn wait(&self, worker: usize, asleep: &dyn Fn() -> bool);

    /// Makes worker `worker`'s [`Platform::wait`] return (an IPI, an unpark).
    fn wake(&self, worker: usize);

    /// Whether `worker` can be woken by [`Platform::wake`]. A hosted program's BSP cannot (it
    /// never receives the library's IPIs): it polls instead of sleeping.
    fn can_sleep(&self, worker: usize) -> bool {
        let _ = worker;
        true
    }
}

/// Each worker's sleep state, and how many sleep.
pub(crate) struct Sleep {
    states: alloc::boxed::Box<[Padded<AtomicU32>]>,
    sleepers: AtomicUsize,
    /// Workers awake and looking for work (in their idle rounds, not yet announced).
    searching: Padded<AtomicUsize>,
    /// Where the next wake-one scan starts, so that wake-ups spread over the sleepers.
    next: AtomicUsize,
}

#[repr(align(64))]
struct Padded<T>(T);

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        Sleep {
            states: (0..workers)
                .map(|_| Padded(AtomicU32::new(AWAKE)))
                .collect(),
            sleepers: AtomicUsize::new(0),
            searching: Padded(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
        }
    }

    /// A worker found nothing and starts its idle rounds.
    pub(crate) fn start_searching(&self) {
        self.searching.0.fetch_add(1, Ordering::Relaxed);
    }

    /// A searching worker found work, or is about to announce its sleep.
    pub(crate) fn stop_searching(&self) {
        self.searching.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Workers searching now (a snapshot).
    pub(crate) fn searching(&self) -> usize {
        self.searching.0.load(Ordering::Relaxed)
    }

    /// After a worker pushed a join's second half on its own deque (which held `before` jobs):
    /// wakes a sleeper if none is searching, or if there was work already. No fence: see the
    /// module docs for why this one may miss a sleeper, and what that costs.
    #[inline]
    pub(crate) fn wake_for_fork(&self, platform: &dyn Platform, before: usize) -> Option<usize> {
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return None;
        }
        if before == 0 && self.searching.0.load(Ordering::Relaxed) > 0 {
            return None;
        }
        self.wake_one(platform)
    }

    /// Worker `w` announces that it is about to sleep. Then the caller checks for work (and its
    /// latch) and either [`Sleep::cancel`]s or [`Sleep::sleep`]s.
    pub(crate) fn announce(&self, w: usize) {
        self.states[w].0.store(SLEEPING, Ordering::Relaxed);
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Worker `w` found work after announcing: it stays up (unless a waker already counted it
    /// woken, which is just as good).
    pub(crate) fn cancel(&self, w: usize) {
        self.try_wake(w);
    }

    /// Worker `w` sleeps until a waker takes it out of `SLEEPING`. Returns whether it was
    /// woken by another (false: it gave up by itself after a spurious return).
    pub(crate) fn sleep(&self, w: usize, platform: &dyn Platform) {
        let state = &self.states[w].0;
        platform.wait(w, &|| state.load(Ordering::Acquire) == SLEEPING);
        // A platform may return early; a worker that is still SLEEPING takes itself out so that
        // the count stays right (it will look for work and may announce again).
        self.try_wake(w);
    }

    /// Takes `w` out of `SLEEPING`; true if this call did it (and so must make it run).
    fn try_wake(&self, w: usize) -> bool {
        let woke = self.states[w]
            .0
            .compare_exchange(SLEEPING, AWAKE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if woke {
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
        woke
    }

    /// After publishing new work: wakes one sleeping worker, if any sleeps. Returns the worker
    /// woken.
    pub(crate) fn wake_one(&self, platform: &dyn Platform) -> Option<usize> {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let n = self.states.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in (start..n).chain(0..start) {
            if self.states[i].0.load(Ordering::Relaxed) == SLEEPING && self.try_wake(i) {
                platform.wake(i);
                return Some(i);
            }
        }
        None
    }

    /// After setting a latch that worker `w` may sleep on: wakes `w` if it sleeps.
    pub(crate) fn wake_owner(&self, w: usize, platform: &dyn Platform) -> bool {
        fence(Ordering::SeqCst);
        if self.states[w].0.load(Ordering::Relaxed) == SLEEPING && self.try_wake(w) {
            platform.wake(w);
            return true;
        }
        false
    }

    /// Workers asleep now (a snapshot).
    pub(crate) fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::Relaxed)
    }
}
