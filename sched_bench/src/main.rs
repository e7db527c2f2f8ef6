//! The host half of issue 12's scheduler benchmarks: `multicore::sched` on OS threads standing
//! in for CPUs (a condition variable where a CPU would halt, a notify where it would send an
//! IPI), against rayon at the same thread counts, in one run: every workload of the crate at 1
//! and 2 threads, the runs of the four pools interleaved so that a busy spell of the host falls
//! on all of them, then the cost of one empty `join` on each.
//!
//! `sched_bench [--quick] [--joins-only]`, one line per figure for `cargo xtask bench` (xtask/src/bench/sched.rs):
//! `host: impl=multicore|rayon|sequential threads=K workload=NAME param=P reps=R median_ns=..
//! min_ns=.. result=..` and `host: impl=.. threads=K join_empty joins=N ns_per_join=..`.
//! A result that differs from the sequential one ends the run with an error.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use multicore::sched::{Counters, Platform, Registry};
use sched_bench::{empty_joins, median, Data, Fork, Sequential, Sizes, Workload};

/// Threads as CPUs: each knows its worker index (a thread-local tagged with the platform, as
/// the process has several pools), and sleeps on a condition variable.
struct Threads {
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
        // The waker changes the state before taking this lock to notify: checked under the
        // lock, the change cannot fall between the check and the wait.
        while asleep() {
            guard = cv.wait(guard).unwrap();
        }
    }

    fn wake(&self, worker: usize) {
        let (lock, cv) = &self.slots[worker];
        let _guard = lock.lock().unwrap();
        cv.notify_one();
    }
}

/// `multicore::sched` on `n` workers: the main thread is worker 0 while it runs a workload
/// ([`Pool::enter`]), `n - 1` threads serve the others.
struct Pool {
    registry: &'static Registry,
    tag: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(n: usize) -> Pool {
        let platform: &'static Threads = Box::leak(Box::new(Threads {
            slots: (0..n).map(|_| (Mutex::new(()), Condvar::new())).collect(),
        }));
        let registry: &'static Registry = Box::leak(Box::new(Registry::new(n, platform)));
        let tag = platform as *const Threads as usize;
        let threads = (1..n)
            .map(|w| {
                std::thread::spawn(move || {
                    WORKER.with(|c| c.set(Some((tag, w))));
                    registry.run_worker(w);
                })
            })
            .collect();
        Pool {
            registry,
            tag,
            threads,
        }
    }

    /// Runs `f` on the main thread as this pool's worker 0.
    fn enter<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        WORKER.with(|w| w.set(Some((self.tag, 0))));
        let r = f(self.registry);
        WORKER.with(|w| w.set(None));
        r
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.registry.shutdown();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

/// rayon's `join`, inside whichever rayon pool the caller runs in.
struct Rayon;

impl Fork for Rayon {
    #[inline]
    fn fork<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

/// One of the four contenders.
enum Contender {
    Ours(Pool),
    Rayon(rayon::ThreadPool),
}

impl Contender {
    fn name(&self) -> &'static str {
        match self {
            Contender::Ours(_) => "multicore",
            Contender::Rayon(_) => "rayon",
        }
    }

    /// Every worker's counters added up (ours only: rayon keeps none).
    fn counters(&self) -> Option<Counters> {
        let Contender::Ours(pool) = self else {
            return None;
        };
        let r = pool.registry;
        Some(
            (0..r.workers())
                .map(|w| r.counters(w))
                .fold(Counters::default(), |a, c| Counters {
                    tasks: a.tasks + c.tasks,
                    steals: a.steals + c.steals,
                    failed_steals: a.failed_steals + c.failed_steals,
                    sleeps: a.sleeps + c.sleeps,
                    wakeups: a.wakeups + c.wakeups,
                }),
        )
    }

    /// Runs `job` with this contender's `join`, on one of its workers.
    fn run<R: Send>(&self, job: impl Fn(&dyn ForkRunner) -> R + Send + Sync) -> R {
        match self {
            Contender::Ours(pool) => pool.enter(|r| job(&Ours(r))),
            Contender::Rayon(pool) => pool.install(|| job(&RayonRunner)),
        }
    }
}

/// The workload calls are generic over a [`Fork`]; this object-safe shim picks the type.
trait ForkRunner {
    fn workload(&self, data: &mut Data, w: Workload) -> sched_bench::Run;
    fn joins(&self, count: usize) -> u64;
}

struct Ours<'a>(&'a Registry);
struct RayonRunner;

fn now() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl ForkRunner for Ours<'_> {
    fn workload(&self, data: &mut Data, w: Workload) -> sched_bench::Run {
        data.run(self.0, w, &now)
    }
    fn joins(&self, count: usize) -> u64 {
        empty_joins(self.0, count, &now)
    }
}

impl ForkRunner for RayonRunner {
    fn workload(&self, data: &mut Data, w: Workload) -> sched_bench::Run {
        data.run(&Rayon, w, &now)
    }
    fn joins(&self, count: usize) -> u64 {
        empty_joins(&Rayon, count, &now)
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let joins_only = std::env::args().any(|a| a == "--joins-only");
    let sizes = if quick {
        Sizes::HOST_QUICK
    } else {
        Sizes::HOST
    };
    if let Err(e) = run(sizes, joins_only) {
        eprintln!("sched_bench: {e}");
        std::process::exit(1);
    }
}

fn run(sizes: Sizes, joins_only: bool) -> Result<(), String> {
    now();
    println!(
        "host: cores={} quick={}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        (sizes == Sizes::HOST_QUICK) as u8
    );
    let rayon_pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| format!("rayon pool of {n}: {e}"))
    };
    let contenders = [
        (1, Contender::Ours(Pool::new(1))),
        (1, Contender::Rayon(rayon_pool(1)?)),
        (2, Contender::Ours(Pool::new(2))),
        (2, Contender::Rayon(rayon_pool(2)?)),
    ];
    let mut data = Data::new(sizes);
    let workloads: &[Workload] = if joins_only { &[] } else { &Workload::ALL };
    for &w in workloads {
        let reference = data.run(&Sequential, w, &now);
        println!(
            "host: impl=sequential threads=1 workload={} param={} reps=1 median_ns={} min_ns={} result={}",
            w.name(),
            sizes.param(w),
            reference.ticks,
            reference.ticks,
            reference.result
        );
        let mut ticks: Vec<Vec<u64>> = vec![Vec::new(); contenders.len()];
        for _ in 0..sizes.reps {
            for (c, (threads, contender)) in contenders.iter().enumerate() {
                let data = std::sync::Mutex::new(&mut data);
                let got = contender.run(|f| f.workload(&mut data.lock().unwrap(), w));
                if got.result != reference.result {
                    return Err(format!(
                        "{} at {threads} threads: {} gave {}, sequentially {}",
                        contender.name(),
                        w.name(),
                        got.result,
                        reference.result
                    ));
                }
                ticks[c].push(got.ticks);
            }
        }
        for ((threads, contender), t) in contenders.iter().zip(&mut ticks) {
            let min = t.iter().copied().min().unwrap_or(0);
            println!(
                "host: impl={} threads={threads} workload={} param={} reps={} median_ns={} min_ns={min} result={}",
                contender.name(),
                w.name(),
                sizes.param(w),
                t.len(),
                median(t),
                reference.result
            );
        }
    }
    // The join overhead: the median of several batches, interleaved like the workloads.
    let batches = sizes.reps.max(3);
    let mut ticks: Vec<Vec<u64>> = vec![Vec::new(); contenders.len()];
    let before: Vec<Option<Counters>> = contenders.iter().map(|(_, c)| c.counters()).collect();
    for _ in 0..batches {
        for (c, (_, contender)) in contenders.iter().enumerate() {
            ticks[c].push(contender.run(|f| f.joins(sizes.joins)));
        }
    }
    let joins = (batches * sizes.joins) as f64 / 1000.0;
    for (((threads, contender), t), before) in contenders.iter().zip(&mut ticks).zip(before) {
        // Ours also says what its workers did meanwhile, per 1000 joins.
        let counts = match (before, contender.counters()) {
            (Some(b), Some(a)) => format!(
                " steals_per_1k={:.1} failed_per_1k={:.1} sleeps_per_1k={:.1} wakeups_per_1k={:.1}",
                (a.steals - b.steals) as f64 / joins,
                (a.failed_steals - b.failed_steals) as f64 / joins,
                (a.sleeps - b.sleeps) as f64 / joins,
                (a.wakeups - b.wakeups) as f64 / joins
            ),
            _ => String::new(),
        };
        println!(
            "host: impl={} threads={threads} join_empty joins={} ns_per_join={:.2}{counts}",
            contender.name(),
            sizes.joins,
            median(t) as f64 / sizes.joins as f64
        );
    }
    println!("host: done");
    Ok(())
}
