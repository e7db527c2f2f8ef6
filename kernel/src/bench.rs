//! `bench=runtime`: latency distributions the benchmark runner collects, one line each:
//! `bench: name=NAME target=K samples=N p50_cycles=.. p99_cycles=.. p50_ns=.. p99_ns=..`.

use alloc::vec::Vec;

use multicore::arch::x86_64::tsc;
use multicore::rt::{self, ipi, this_cpu, xcall};

use crate::println;

/// Sorts `samples` (TSC ticks) and prints their median and 99th percentile.
fn report(name: &str, target: usize, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let n = samples.len();
    let p50 = samples[n / 2];
    let p99 = samples[(n * 99 / 100).min(n - 1)];
    let ns = |t: u64| (t as u128 * 1_000_000_000 / rt::tsc().hz() as u128) as u64;
    println!(
        "bench: name={name} target={target} samples={n} p50_cycles={p50} p99_cycles={p99} p50_ns={} p99_ns={}",
        ns(p50),
        ns(p99)
    );
}

fn measure(n: usize, mut f: impl FnMut() -> u64) -> Vec<u64> {
    (0..n).map(|_| f()).collect()
}

/// Runs every measurement from the BSP against the last CPU (the farthest index).
pub fn run() {
    let target = rt::online_cpus()
        .map(|c| c.index as usize)
        .max()
        .unwrap_or(0);
    // Two VM exits: CPUID always exits to the hypervisor (or is emulated under TCG); the
    // issue compares an IPI round trip with the cost of two.
    report(
        "two_cpuid_exits",
        0,
        measure(2000, || {
            let start = tsc::now();
            core::arch::x86_64::__cpuid(0);
            core::arch::x86_64::__cpuid(0);
            tsc::now() - start
        }),
    );
    if target == this_cpu().index as usize {
        println!("bench: only one CPU: no IPI or cross-CPU figures");
        return;
    }
    report(
        "ipi_round_trip",
        target,
        measure(2000, || ipi::ping(target).expect("target runs")),
    );
    report(
        "run_on_empty",
        target,
        measure(2000, || {
            let start = tsc::now();
            xcall::run_on(target, || ()).expect("target runs");
            tsc::now() - start
        }),
    );
    report(
        "run_on_all_empty",
        0,
        measure(200, || {
            let start = tsc::now();
            xcall::run_on_all(|_| ());
            tsc::now() - start
        }),
    );
}
