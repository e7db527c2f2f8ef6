//! `bench=runtime`: latency distributions the benchmark runner collects, one line each:
//! `bench: name=NAME target=K samples=N p50_cycles=.. p99_cycles=.. p50_ns=.. p99_ns=..`,
//! then throughputs (lock kinds, allocation with per-CPU arenas and with the shared pool) at
//! 1, 2 and all CPUs: `bench: throughput=NAME cpus=K ops=N ticks=T`.

use alloc::vec::Vec;
use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use multicore::arch::x86_64::tsc;
use multicore::rt::{self, ipi, this_cpu, xcall};
use multicore::sync::{IrqSafeMutex, SpinMutex, SpinRwLock, TicketMutex};

use crate::heap::HEAP;

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
    println!("bench: tsc_hz={}", rt::tsc().hz());
    // A contended ticket lock on more vCPUs than host cores hands over only when the one
    // next in line is scheduled: a figure can take many seconds there (that is the finding).
    xcall::set_call_timeout_us(600_000_000);
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
    } else {
        cross_cpu_latencies(target);
    }
    locks();
    allocation();
}

/// IPI round trips (target halted, then polling) and cross-CPU call latencies.
fn cross_cpu_latencies(target: usize) {
    report(
        "ipi_round_trip",
        target,
        measure(2000, || ipi::ping(target).expect("target runs")),
    );
    ipi_round_trip_polling(target);
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

/// The IPI round trip with the target polling (interrupts on, not halted), next to the halted
/// case above: under a hypervisor, waking a halted vCPU costs a host-side thread wake-up that
/// a polling vCPU does not pay, so the two figures separate the IPI itself from the wake-up.
fn ipi_round_trip_polling(target: usize) {
    static POLL: AtomicBool = AtomicBool::new(false);
    static POLLING: AtomicBool = AtomicBool::new(false);
    POLL.store(true, Ordering::Relaxed);
    POLLING.store(false, Ordering::Relaxed);
    let handle = xcall::run_on_async(target, || {
        // Jobs run with interrupts off (idle.rs); this one takes the PING interrupts while it
        // polls. No cross-call is sent to this CPU meanwhile, so its call queue is not
        // re-entered from the CALL handler.
        x86_64::instructions::interrupts::enable();
        POLLING.store(true, Ordering::Release);
        while POLL.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        x86_64::instructions::interrupts::disable();
    })
    .expect("target runs");
    while !POLLING.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let samples = measure(2000, || ipi::ping(target).expect("target runs"));
    POLL.store(false, Ordering::Release);
    handle.wait();
    report("ipi_round_trip_polling", target, samples);
}

/// How long each throughput measurement runs, in microseconds: long enough for hundreds of
/// operations even where ring-0 code is emulated (this machine's KVM: an allocation and its
/// free take ~0.4 ms there).
const THROUGHPUT_US: u64 = 100_000;

/// Runs `work(deadline)` on CPUs 0..`k` at once, after a barrier, each until the TSC passes
/// its own deadline (`THROUGHPUT_US` after the barrier); prints
/// `bench: throughput=NAME cpus=K ops=N ticks=T` with the summed operation count and the
/// measured time (the longest participant's, as a CPU may overrun its deadline inside an
/// operation or while waiting for a lock).
fn throughput(name: &str, k: usize, work: impl Fn(u64) -> u64 + Sync) {
    let arrived = AtomicUsize::new(0);
    let span = rt::tsc().hz() * THROUGHPUT_US / 1_000_000;
    let results = xcall::run_on_all(|cpu| {
        if cpu >= k {
            return (0, 0);
        }
        arrived.fetch_add(1, Ordering::AcqRel);
        while arrived.load(Ordering::Acquire) < k {
            core::hint::spin_loop();
        }
        let start = tsc::now();
        let ops = work(start + span);
        (ops, tsc::now() - start)
    });
    let ops: u64 = results.iter().map(|(_, (ops, _))| ops).sum();
    let ticks = results.iter().map(|(_, (_, t))| *t).max().unwrap_or(0);
    println!("bench: throughput={name} cpus={k} ops={ops} ticks={ticks}");
}

/// The CPU counts the throughput figures are taken at: 1, 2 and every CPU.
fn participant_counts() -> Vec<usize> {
    let n = rt::online_cpus().count();
    let mut counts = alloc::vec![1];
    if n >= 2 {
        counts.push(2);
    }
    if n > 2 {
        counts.push(n);
    }
    counts
}

/// Runs `op` until `deadline`, checking the clock every `batch` operations.
fn repeat_until(deadline: u64, batch: u64, mut op: impl FnMut()) -> u64 {
    let mut ops = 0;
    loop {
        for _ in 0..batch {
            op();
        }
        ops += batch;
        if tsc::now() >= deadline {
            return ops;
        }
    }
}

/// Operations between two clock reads: 16 alone (reading the TSC costs about as much as an
/// uncontended lock), 1 under contention, where one acquisition can take a whole round of
/// the waiters and a CPU must not go on long past its deadline.
fn batch(k: usize) -> u64 {
    if k == 1 {
        16
    } else {
        1
    }
}

/// Lock cost per kind: one lock shared by the participants, each acquisition increments the
/// protected counter (with one participant: the uncontended cost).
fn locks() {
    let spin = SpinMutex::new(0u64);
    let ticket = TicketMutex::new(0u64);
    let irq_safe = IrqSafeMutex::new(0u64);
    let rw = SpinRwLock::new(0u64);
    for k in participant_counts() {
        throughput("lock_spin", k, |d| {
            repeat_until(d, batch(k), || *spin.lock() += 1)
        });
        throughput("lock_ticket", k, |d| {
            repeat_until(d, batch(k), || *ticket.lock() += 1)
        });
        throughput("lock_irq_safe", k, |d| {
            repeat_until(d, batch(k), || *irq_safe.lock() += 1)
        });
        throughput("lock_rw_write", k, |d| {
            repeat_until(d, batch(k), || *rw.write() += 1)
        });
        throughput("lock_rw_read", k, |d| {
            repeat_until(d, batch(k), || {
                core::hint::black_box(*rw.read());
            })
        });
    }
}

/// Allocation throughput: each participant allocates 4 blocks of 64 bytes and frees them,
/// again and again (one operation = one allocation and its free), first with the per-CPU
/// arenas, then with every allocation sent to the one shared pool.
fn allocation() {
    let layout = Layout::from_size_align(64, 16).expect("valid layout");
    let work = |deadline: u64| {
        let mut blocks = [core::ptr::null_mut::<u8>(); 4];
        repeat_until(deadline, 1, || {
            for b in blocks.iter_mut() {
                // SAFETY: a non-zero-size layout; the block is freed below with it.
                *b = unsafe { alloc::alloc::alloc(layout) };
                assert!(!b.is_null(), "benchmark allocation failed");
            }
            for b in blocks.iter().rev() {
                // SAFETY: allocated just above with the same layout, freed once.
                unsafe { alloc::alloc::dealloc(*b, layout) };
            }
        }) * 4
    };
    for k in participant_counts() {
        throughput("alloc_per_cpu", k, work);
        HEAP.set_shared_only(true);
        throughput("alloc_shared", k, work);
        HEAP.set_shared_only(false);
    }
}
