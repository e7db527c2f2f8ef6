//! `bench=sched` (and `-small`, `-tiny`): the scheduler benchmarks of issue 12, run from the
//! BSP on every runtime CPU (`rt::scheduler()`), one line each for the benchmark runner
//! (xtask/src/bench/sched.rs):
//!
//! - `sched: workload=NAME param=P cpus=N reps=R seq_ticks=.. median_ticks=.. min_ticks=..
//!   result=.. tasks=.. steals=.. failed=.. sleeps=.. wakeups=..`: each workload of the
//!   `sched_bench` crate, first once sequentially (the reference: every parallel result must
//!   equal it, or the kernel fails), then R times in parallel; the counters are summed over
//!   every CPU and divided by R (per run);
//! - `sched: join_empty cpus=N joins=J ticks=T`: J joins of two empty closures in a row;
//! - `sched: wake_latency cpus=N samples=S p50_cycles=.. p99_cycles=.. p50_ns=.. p99_ns=..`:
//!   from spawning a task while every other CPU is halted until a CPU starts it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use demo_options::BenchMode;
use multicore::arch::x86_64::tsc;
use multicore::rt;
use multicore::sched::{Counters, Registry};
use sched_bench::{empty_joins, median, Data, Sequential, Sizes, Workload};

use crate::println;

fn now() -> u64 {
    tsc::now()
}

fn ns(ticks: u64) -> u64 {
    (ticks as u128 * 1_000_000_000 / rt::tsc().hz() as u128) as u64
}

/// Every CPU's counters added up.
fn total(sched: &Registry) -> Counters {
    (0..sched.workers())
        .map(|w| sched.counters(w))
        .fold(Counters::default(), |a, c| Counters {
            tasks: a.tasks + c.tasks,
            steals: a.steals + c.steals,
            failed_steals: a.failed_steals + c.failed_steals,
            sleeps: a.sleeps + c.sleeps,
            wakeups: a.wakeups + c.wakeups,
        })
}

/// Runs every measurement and prints its line; a wrong result ends the run as a failure.
pub fn run(mode: BenchMode) {
    let sizes = match mode {
        BenchMode::SchedSmall => Sizes::GUEST_SMALL,
        BenchMode::SchedTiny => Sizes::GUEST_TINY,
        _ => Sizes::GUEST,
    };
    let sched = rt::scheduler();
    let cpus = sched.workers();
    println!(
        "sched: tsc_hz={} cpus={cpus} size={}",
        rt::tsc().hz(),
        mode.as_str()
    );
    let mut data = Data::new(sizes);
    for w in Workload::ALL {
        workload(sched, &mut data, &sizes, w);
    }
    let ticks = empty_joins(sched, sizes.joins, &now);
    println!(
        "sched: join_empty cpus={cpus} joins={} ticks={ticks} ns_per_join={}",
        sizes.joins,
        ns(ticks) / sizes.joins.max(1) as u64
    );
    wake_latency(sched, sizes.wakes);
    println!("sched: done");
}

fn workload(sched: &Registry, data: &mut Data, sizes: &Sizes, w: Workload) {
    let reference = data.run(&Sequential, w, &now);
    let before = total(sched);

    let mut ticks = Vec::with_capacity(sizes.reps);
    for rep in 0..sizes.reps {
        let got = data.run(sched, w, &now);
        if got.result != reference.result {
            fail!(
                "sched: {} run {rep} on {} CPUs gave {}, sequentially {}",
                w.name(),
                sched.workers(),
                got.result,
                reference.result
            );
        }
        ticks.push(got.ticks);
    }
    let after = total(sched);
    let per_run = |a: u64, b: u64| (a - b) / sizes.reps.max(1) as u64;
    let min = ticks.iter().copied().min().unwrap_or(0);
    println!(
        "sched: workload={} param={} cpus={} reps={} seq_ticks={} median_ticks={} min_ticks={min} result={} tasks={} steals={} failed={} sleeps={} wakeups={}",
        w.name(),
        sizes.param(w),
        sched.workers(),
        sizes.reps,
        reference.ticks,
        median(&mut ticks),
        reference.result,
        per_run(after.tasks, before.tasks),
        per_run(after.steals, before.steals),
        per_run(after.failed_steals, before.failed_steals),
        per_run(after.sleeps, before.sleeps),
        per_run(after.wakeups, before.wakeups),
    );
}

/// When the task of the current sample started (TSC), 0 until it has.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// From spawning a task on the BSP's deque, every other CPU halted, until another CPU starts
/// it. The BSP spins on a flag meanwhile instead of helping (a worker waiting in `join` would
/// take its own task back), so the task can only run where a wake-up sent it.
fn wake_latency(sched: &'static Registry, samples: usize) {
    let cpus = sched.workers();
    if cpus < 2 || samples == 0 {
        println!("sched: wake_latency cpus={cpus} samples=0");
        return;
    }
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Every other CPU asleep (halted) first; seconds where ring-0 code is emulated.
        let deadline = rt::tsc().deadline_us(10_000_000);
        while sched.sleepers() < cpus - 1 {
            if rt::tsc().passed(deadline) {
                fail!(
                    "sched: only {} of {} other CPUs went to sleep within 10 s",
                    sched.sleepers(),
                    cpus - 1
                );
            }
            core::hint::spin_loop();
        }
        STARTED.store(0, Ordering::Relaxed);
        let pushed = tsc::now();
        let handle = sched.spawn(|| STARTED.store(tsc::now(), Ordering::Release));
        while STARTED.load(Ordering::Acquire) == 0 {
            core::hint::spin_loop();
        }
        handle.join();
        latencies.push(STARTED.load(Ordering::Relaxed).saturating_sub(pushed));
    }
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!(
        "sched: wake_latency cpus={cpus} samples={} p50_cycles={p50} p99_cycles={p99} p50_ns={} p99_ns={}",
        latencies.len(),
        ns(p50),
        ns(p99)
    );
}
