//! The scheduler on OS threads standing in for CPUs: results against sequential ones, every
//! worker used, steals at 2+ workers, sleepers woken.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::JoinHandle as Thread;

use super::{Platform, Registry};

/// Threads as CPUs: each knows its worker index (thread-local), sleeps on a condition variable.
pub(crate) struct Threads {
    slots: Vec<(Mutex<()>, Condvar)>,
}

thread_local! {
    static WORKER: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

impl Platform for Threads {
    fn current_worker(&self) -> Option<usize> {
        WORKER
            .with(|w| w.get())
            .filter(|&(p, _)| p == self as *const Threads as usize)
            .map(|(_, w)| w)
    }

    fn wait(&self, worker: usize, asleep: &dyn Fn() -> bool) {
        let (lock, cv) = &self.slots[worker];
        let mut guard = lock.lock().unwrap();
        while asleep() {
            guard = cv
                .wait_timeout(guard, std::time::Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }

    fn wake(&self, worker: usize) {
        let (lock, cv) = &self.slots[worker];
        let _guard = lock.lock().unwrap();
        cv.notify_one();
    }
}

/// A registry of `n` workers: the calling thread is worker 0, `n - 1` threads run the others.
pub(crate) struct Pool {
    pub(crate) registry: &'static Registry,
    threads: Vec<Thread<()>>,
}

impl Pool {
    /// `n` workers on threads of their own; the calling thread is no worker.
    pub(crate) fn outside(n: usize) -> Pool {
        let platform: &'static Threads = Box::leak(Box::new(Threads {
            slots: (0..n).map(|_| (Mutex::new(()), Condvar::new())).collect(),
        }));
        let registry: &'static Registry = Box::leak(Box::new(Registry::new(n, platform)));
        let tag = platform as *const Threads as usize;
        let threads = (0..n)
            .map(|w| {
                std::thread::spawn(move || {
                    WORKER.with(|c| c.set(Some((tag, w))));
                    REGISTRY.with(|c| c.set(Some(registry)));
                    registry.run_worker(w);
                })
            })
            .collect();
        Pool { registry, threads }
    }

    pub(crate) fn new(n: usize) -> Pool {
        let platform: &'static Threads = Box::leak(Box::new(Threads {
            slots: (0..n).map(|_| (Mutex::new(()), Condvar::new())).collect(),
        }));
        let registry: &'static Registry = Box::leak(Box::new(Registry::new(n, platform)));
        let tag = platform as *const Threads as usize;
        WORKER.with(|w| w.set(Some((tag, 0))));
        let threads = (1..n)
            .map(|w| {
                std::thread::spawn(move || {
                    WORKER.with(|c| c.set(Some((tag, w))));
                    registry.run_worker(w);
                })
            })
            .collect();
        Pool { registry, threads }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.registry.shutdown();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        WORKER.with(|w| w.set(None));
    }
}

fn fib(r: &Registry, n: u64, cutoff: u64) -> u64 {
    if n < 2 {
        return n;
    }
    if n <= cutoff {
        return fib(r, n - 1, cutoff) + fib(r, n - 2, cutoff);
    }
    let (a, b) = r.join(|| fib(r, n - 1, cutoff), || fib(r, n - 2, cutoff));
    a + b
}

#[test]
fn join_computes_fib_on_1_2_and_4_workers() {
    for n in [1, 2, 4] {
        let pool = Pool::new(n);
        assert_eq!(fib(pool.registry, 24, 0), 46368, "{n} workers, no cutoff");
        assert_eq!(fib(pool.registry, 27, 12), 196418, "{n} workers, cutoff");
        let tasks: u64 = (0..n).map(|w| pool.registry.counters(w).tasks).sum();
        assert!(tasks > 0);
        // With 2+ workers something is stolen (given the time: the host may be loaded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while n > 1
            && (0..n)
                .map(|w| pool.registry.counters(w).steals)
                .sum::<u64>()
                == 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{n} workers and no steal"
            );
            assert_eq!(fib(pool.registry, 20, 0), 6765);
        }
    }
}

#[test]
fn every_worker_runs_tasks() {
    // On a loaded host a thread may not run for a while: keep forking work until each worker
    // has taken some (a worker that never does within the deadline is a bug).
    let pool = Pool::new(4);
    let r = pool.registry;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (0..4).any(|w| r.counters(w).tasks == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "a worker ran nothing: {:?}",
            (0..4).map(|w| r.counters(w)).collect::<Vec<_>>()
        );
        assert_eq!(fib(r, 22, 8), 17711);
    }
}

#[test]
fn map_reduce_and_for_each_match_sequential() {
    let pool = Pool::new(3);
    let r = pool.registry;
    for (len, grain) in [
        (0, 1),
        (1, 1),
        (7, 2),
        (1000, 1),
        (100_000, 1000),
        (12_345, 7),
    ] {
        let got = r.map_reduce(0..len, grain, &|| 0u64, &|i| (i as u64) * 3 + 1, &|a, b| {
            a + b
        });
        let want: u64 = (0..len as u64).map(|i| i * 3 + 1).sum();
        assert_eq!(got, want, "len {len} grain {grain}");
        let seen: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
        r.for_each(0..len, grain, &|i| {
            seen[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(
            seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
            "len {len}"
        );
    }
}

#[test]
fn chunks_of_a_slice_are_each_visited_once() {
    let pool = Pool::new(4);
    let mut data: Vec<u64> = (0..50_000).collect();
    pool.registry
        .for_each_chunk_mut(&mut data, 333, &|offset, chunk| {
            for (i, x) in chunk.iter_mut().enumerate() {
                assert_eq!(*x, (offset + i) as u64);
                *x *= 2;
            }
        });
    assert!(data.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));
}

fn merge_sort(r: &Registry, v: &mut [u32], buf: &mut [u32]) {
    if v.len() <= 256 {
        v.sort_unstable();
        return;
    }
    let mid = v.len() / 2;
    let (vl, vr) = v.split_at_mut(mid);
    let (bl, br) = buf.split_at_mut(mid);
    r.join(|| merge_sort(r, vl, bl), || merge_sort(r, vr, br));
    let (mut i, mut j) = (0, 0);
    for slot in buf.iter_mut() {
        if j >= vr.len() || (i < vl.len() && vl[i] <= vr[j]) {
            *slot = vl[i];
            i += 1;
        } else {
            *slot = vr[j];
            j += 1;
        }
    }
    v.copy_from_slice(buf);
}

#[test]
fn merge_sort_sorts() {
    let pool = Pool::new(4);
    let mut x = 12345u32;
    let mut v: Vec<u32> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .collect();
    let mut want = v.clone();
    want.sort_unstable();
    let mut buf = vec![0; v.len()];
    merge_sort(pool.registry, &mut v, &mut buf);
    assert_eq!(v, want);
}

#[test]
fn scope_tasks_borrow_and_all_finish() {
    let pool = Pool::new(4);
    let r = pool.registry;
    let counts: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
    let total = r.scope(|s| {
        for i in 0..64 {
            let counts = &counts;
            s.spawn(move |s| {
                counts[i].fetch_add(1, Ordering::Relaxed);
                if i % 4 == 0 {
                    s.spawn(move |_| {
                        counts[i].fetch_add(10, Ordering::Relaxed);
                    });
                }
            });
        }
        7
    });
    assert_eq!(total, 7);
    for (i, c) in counts.iter().enumerate() {
        let want = if i % 4 == 0 { 11 } else { 1 };
        assert_eq!(c.load(Ordering::Relaxed), want, "task {i}");
    }
}

#[test]
fn spawned_tasks_return_their_results() {
    let pool = Pool::new(3);
    let r = pool.registry;
    let handles: Vec<_> = (0..100u64).map(|i| r.spawn(move || i * i)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join()).sum();
    assert_eq!(sum, (0..100u64).map(|i| i * i).sum());
}

#[test]
fn outsiders_submit_through_the_injector() {
    let pool = Pool::new(3);
    let r = pool.registry;
    static RESULT: OnceLock<u64> = OnceLock::new();
    // A thread that is no worker: its join runs on the workers.
    std::thread::spawn(move || {
        RESULT.set(fib(r, 20, 5)).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(RESULT.get(), Some(&6765));
}

#[test]
fn idle_workers_sleep_and_are_woken_by_new_work() {
    let pool = Pool::new(4);
    let r = pool.registry;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.sleepers() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "idle workers never slept"
        );
        std::thread::yield_now();
    }
    while (0..4).map(|w| r.counters(w).wakeups).sum::<u64>() == 0 {
        assert!(std::time::Instant::now() < deadline, "no sleeper was woken");
        assert_eq!(fib(r, 25, 10), 75025);
    }
}

thread_local! {
    /// The registry a worker thread serves, for the panic hook below.
    static REGISTRY: std::cell::Cell<Option<&'static Registry>> = const { std::cell::Cell::new(None) };
}

/// What a hosted program's panic hook does on an AP: report the running jobs abandoned, then
/// halt for good (here: block the thread for ever).
fn panic_and_halt(r: &Registry) -> ! {
    r.abandon_this_worker();
    loop {
        std::thread::park();
    }
}

/// Worker threads of these tests halt like an AP when a panic reaches them (a joiner
/// re-raising a task's panic); other threads keep the default hook.
fn install_halting_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match REGISTRY.with(|r| r.get()) {
            Some(r) => panic_and_halt(r),
            None => default(info),
        }));
    });
}

/// A pool of `n` worker threads whose panics halt them (the calling thread is no worker).
fn halting_pool(n: usize) -> &'static Registry {
    install_halting_hook();
    let pool = Pool::outside(n);
    let r = pool.registry;
    std::mem::forget(pool); // workers halted inside tasks never return
    r
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::yield_now();
    }
}

#[test]
fn a_panicking_detached_task_is_reported_to_its_handle() {
    let r = halting_pool(2);
    let h = r.spawn(move || -> u32 { panic_and_halt(r) });
    let err = h.try_join().unwrap_err();
    assert!(err.cpu < 2, "{err}");
}

#[test]
fn a_panic_in_a_joined_half_is_re_raised_by_the_joiner() {
    let r = halting_pool(3);
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.join(|| 1, move || -> u32 { panic_and_halt(r) })
    }));
    let message = *joined.unwrap_err().downcast::<String>().unwrap();
    assert!(message.starts_with("a task panicked on CPU"), "{message}");
}

#[test]
fn a_scope_with_a_panicking_task_ends_and_re_raises() {
    let r = halting_pool(4);
    let done: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let scoped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.scope(|s| {
            for i in 0..8 {
                s.spawn(move |_| {
                    if i == 3 {
                        panic_and_halt(r);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
    }));
    assert!(scoped.is_err());
    // The other seven run all the same, stolen by the workers still up if need be.
    wait_for("the other tasks of the scope", || {
        done.load(Ordering::Relaxed) == 7
    });
}
