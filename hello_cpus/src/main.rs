//! The example of issue 6: a plain `std` program that, running on the one CPU a host kernel
//! without SMP gave it (in ring 0, as on Unikraft), starts every other CPU with the multicore
//! library. Each AP prints `Hello World from CPU N (APIC ID A)` and runs a closure given by
//! `main`; `main` then reports `N/N CPUs online` and exits 0 (1 if a CPU failed).
//!
//! What the library must be told (docs/hosted.md): where physical memory is mapped and which
//! low pages are free. On a kernel it knows — Unikraft, by `uname()` — nothing: its preset
//! layout is used (`multicore::hosted::presets`). Elsewhere, or to override the preset:
//! `phys-offset=0x...`, `phys-limit=0x...`, `low-free=0x...-0x...[,...]`. The library checks
//! them; a wrong one is a clear error and main goes on alone.
//!
//! Other arguments (`key=value`): `memory=KiB` handed to the library (default: what the CPUs
//! found need, sized by the library), `heap=KiB` per AP (default 256),
//! `strategy=parallel|sequential`, `delays=fast|spec`, `panic-ap` / `fault-ap` (CPU 1's
//! closure panics / reads an unmapped page: the report names it and main goes on).

use std::alloc::System;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multicore::ap_println;
use multicore::arch::x86_64::apic::ApicMode;
use multicore::boot::{DelayPolicy, Strategy};
use multicore::cpu_local::CpuRole;
use multicore::hosted::{self, presets, ApInfo, HostedConfig, HostedHeap, TlsConfig, TscFrequency};
use multicore::phys::PhysRange;

#[global_allocator]
static HEAP: HostedHeap<System> = HostedHeap::new(System);

thread_local! {
    /// Each CPU's own counter: proves every AP got a TLS block of its own.
    static GREETINGS: Cell<u32> = const { Cell::new(0) };
}

/// APs that ran the closure to its end, and the sum of their results.
static FINISHED: AtomicU32 = AtomicU32::new(0);
/// APs that panicked (reported, then halted).
static PANICKED: AtomicU32 = AtomicU32::new(0);
static SUM: AtomicU64 = AtomicU64::new(0);
/// APs whose CPU-local identity was not their own.
static MISIDENTIFIED: AtomicU32 = AtomicU32::new(0);

fn main() {
    println!("hello_cpus: main runs on the BSP");
    println!("hello_cpus: main at {:#x}", main as fn() as usize);
    let options = Options::parse();
    std::panic::set_hook(Box::new(panic_hook));
    let layout = match host_layout(&options) {
        Ok(layout) => layout,
        Err(why) => {
            println!("hello_cpus: {why}");
            println!("hello_cpus: main goes on alone: 1/1 CPUs online");
            std::process::exit(2);
        }
    };
    let mut config = HostedConfig::new(
        layout.phys_offset,
        layout.phys_limit,
        &layout.low_free,
        TscFrequency::Measure(&|| {
            static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }),
    );
    config.memory = options
        .memory_kib
        .map(|kib| &mut Vec::leak(vec![0u8; kib << 10])[..]);
    let tls = multicore::program_headers::this_program_tls().unwrap_or_else(|e| {
        println!("hello_cpus: no TLS for the APs: {e}");
        None
    });
    config.tls = tls.map(|template| TlsConfig {
        template,
        tcb_size: 256,
    });
    config.heap = Some((&HEAP, options.heap_kib << 10));
    config.strategy = options.strategy;
    config.delays = options.delays;

    // The closure every AP runs: a little work on the AP's own heap and TLS.
    let panic_ap = options.panic_ap;
    let fault_ap = options.fault_ap;
    let work: &'static (dyn Fn(&ApInfo) -> u64 + Sync) =
        Box::leak(Box::new(move |cpu: &ApInfo| {
            if panic_ap && cpu.index == 1 {
                panic!("deliberate panic on CPU 1 (panic-ap)");
            }
            if fault_ap && cpu.index == 1 {
                // SAFETY: none: a deliberate read of an unmapped address (page 0 is never mapped
                // by the host) to show the AP's page-fault report.
                unsafe { core::ptr::read_volatile(0x18 as *const u64) };
            }
            let squares: Vec<u64> = (1..=cpu.index as u64 * 10).map(|x| x * x).collect();
            GREETINGS.with(|g| g.set(g.get() + 1));
            squares.iter().sum::<u64>() + GREETINGS.with(Cell::get) as u64
        }));
    let ticks_before = timer_ticks();
    let started = Instant::now();
    let report = hosted::start_cpus(
        config,
        Box::leak(Box::new(|cpu: &ApInfo| ap_entry(cpu, work))),
    );
    let ticks_after = timer_ticks();
    // From here on the APs print too: main's lines go through the same console (and lock),
    // not through the host's write(), so that lines do not interleave.
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            ap_println!("hello_cpus: cannot start the other CPUs: {e}");
            ap_println!("hello_cpus: main goes on alone: 1/1 CPUs online");
            std::process::exit(2);
        }
    };
    let apic = match report.apic_mode {
        ApicMode::X2Apic => "x2APIC".to_string(),
        ApicMode::XApic { phys, mmio } => format!("xAPIC at {phys:#x} (mapped at {mmio:#x})"),
    };
    ap_println!(
        "hello_cpus: bring-up took {} us ({} ms wall), {apic}, TSC {} kHz, {} KiB of {} KiB of memory used",
        report.time_us,
        started.elapsed().as_millis(),
        report.tsc_hz / 1000,
        report.memory_used / 1024,
        report.memory_size / 1024
    );
    ap_println!(
        "hello_cpus: timer interrupts on the BSP during the bring-up: {}",
        ticks_after.saturating_sub(ticks_before)
    );
    for f in &report.failed {
        ap_println!("hello_cpus: {f}");
    }
    // Wait (bounded) for every AP that came online to finish its closure, or to have reported
    // its panic or fault and halted (so that the report is out before main exits).
    let settled = || {
        FINISHED.load(Ordering::Acquire) + PANICKED.load(Ordering::Acquire) + hosted::stopped_aps()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while settled() < report.online - 1 && Instant::now() < deadline {
        std::hint::spin_loop();
    }
    let broken = options.panic_ap || options.fault_ap;
    let want = report.online - 1 - u32::from(broken && report.online > 1);
    let finished = FINISHED.load(Ordering::Acquire);
    let expected_sum: u64 = (1..report.online as u64)
        .filter(|&i| !(broken && i == 1))
        .map(|i| (1..=i * 10).map(|x| x * x).sum::<u64>() + 1)
        .sum();
    ap_println!(
        "hello_cpus: {finished} APs ran the closure, results sum {} (expected {expected_sum}); BSP's own TLS counter: {}",
        SUM.load(Ordering::Acquire),
        GREETINGS.with(Cell::get)
    );
    ap_println!("hello_cpus: {}/{} CPUs online", report.online, report.cpus);
    // Every CPU asked which CPU it is (multicore::cpu_local): each AP must have seen its own
    // index as a hosted AP, the BSP (whose GS base is the host's) index 0 as the host's CPU.
    let bsp = multicore::cpu_local::current().map(|c| (c.index(), c.role()));
    let identities_ok =
        bsp == Some((0, CpuRole::HostedBsp)) && MISIDENTIFIED.load(Ordering::Acquire) == 0;
    ap_println!(
        "hello_cpus: CPU identities: BSP {bsp:?}, {} AP(s) misidentified",
        MISIDENTIFIED.load(Ordering::Acquire)
    );
    let parallel_ok = report.runtime.then(parallel_sum).unwrap_or(true);
    let task_panic_ok = !options.task_panic || (report.runtime && scope_with_a_panicking_task());
    let ok = report.failed.is_empty()
        && identities_ok
        && parallel_ok
        && task_panic_ok
        && finished == want
        && SUM.load(Ordering::Acquire) == expected_sum
        && GREETINGS.with(Cell::get) == 0
        && HEAP.foreign_frees_on_aps() == 0;
    std::process::exit(if ok { 0 } else { 1 });
}

/// A few microseconds of arithmetic on `i`: one leaf of the parallel sum.
fn leaf(i: usize) -> u64 {
    let mut x = i as u64 + 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// From main, with the APs as the scheduler's workers: a parallel sum checked against the
/// sequential one on this CPU alone, both timed, the speedup printed.
fn parallel_sum() -> bool {
    const LEAVES: usize = 20_000;
    const GRAIN: usize = 50;
    let Some(sched) = hosted::scheduler() else {
        ap_println!("hello_cpus: no scheduler");
        return false;
    };
    let before: Vec<_> = (0..sched.workers()).map(|w| sched.counters(w)).collect();
    let t = Instant::now();
    let sequential = (0..LEAVES).map(leaf).fold(0, u64::wrapping_add);
    let sequential_us = t.elapsed().as_micros().max(1);
    let t = Instant::now();
    let parallel = sched.map_reduce(0..LEAVES, GRAIN, &|| 0, &leaf, &u64::wrapping_add);
    let parallel_us = t.elapsed().as_micros().max(1);
    let tasks: Vec<u64> = (0..sched.workers())
        .map(|w| sched.counters(w).tasks - before[w].tasks)
        .collect();
    let steals: u64 = (0..sched.workers())
        .map(|w| sched.counters(w).steals - before[w].steals)
        .sum();
    ap_println!(
        "hello_cpus: parallel sum of {LEAVES} leaves on {} workers = {parallel:#x} (sequential {sequential:#x}): {parallel_us} us against {sequential_us} us alone, speedup {:.2}x; tasks per CPU {tasks:?}, {steals} steals",
        sched.workers(),
        sequential_us as f64 / parallel_us as f64
    );
    parallel == sequential
}

/// `task-panic`: a scope whose first task to run on an AP panics there. The AP halts (its panic
/// hook), the scope still ends once the other tasks have run, and main gets the panic as an
/// error instead of waiting for ever.
fn scope_with_a_panicking_task() -> bool {
    const TASKS: usize = 64;
    static PANICKED_ONE: AtomicU32 = AtomicU32::new(0);
    static RAN: AtomicU32 = AtomicU32::new(0);
    let Some(sched) = hosted::scheduler() else {
        return false;
    };
    let result = sched.try_scope(|s| {
        for i in 0..TASKS {
            s.spawn(move |_| {
                if hosted::current_ap().is_some() && PANICKED_ONE.swap(1, Ordering::AcqRel) == 0 {
                    panic!("deliberate panic in a task (task-panic)");
                }
                std::hint::black_box((0..100).map(|k| leaf(i * 100 + k)).sum::<u64>());
                RAN.fetch_add(1, Ordering::AcqRel);
            });
        }
    });
    let ran = RAN.load(Ordering::Acquire);
    ap_println!(
        "hello_cpus: scope with a panicking task: {result:?}; {ran} of the other {} tasks ran",
        TASKS - 1
    );
    result.is_err() && ran == TASKS as u32 - 1
}

/// Every AP's entry: greet, run main's closure, count it.
fn ap_entry(cpu: &ApInfo, work: &dyn Fn(&ApInfo) -> u64) {
    let me = multicore::cpu_local::current().map(|c| (c.index(), c.role()));
    if me != Some((cpu.index, CpuRole::HostedAp)) || hosted::current_ap() != Some(cpu.index) {
        MISIDENTIFIED.fetch_add(1, Ordering::AcqRel);
    }
    ap_println!(
        "Hello World from CPU {} (APIC ID {})",
        cpu.index,
        cpu.apic_id
    );
    let result = work(cpu);
    SUM.fetch_add(result, Ordering::AcqRel);
    FINISHED.fetch_add(1, Ordering::AcqRel);
}

/// On an AP, a panic is reported on the AP console and the AP halts: the default hook would
/// write to stderr, a system call an AP must never make. On the BSP: the default behaviour.
fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    if let Some(index) = hosted::current_ap() {
        ap_println!("panic on CPU {index}: {info}");
        PANICKED.fetch_add(1, Ordering::AcqRel);
        // The scheduler jobs this AP was running are reported to their waiters; it halts.
        hosted::halt_after_panic();
    }
    eprintln!("{info}");
}

/// The timer interrupts the host counted (`times()` answers with its tick count).
fn timer_ticks() -> u64 {
    // SAFETY: times() with a valid out-pointer.
    let mut t: libc::tms = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::times(&mut t) as u64 }
}

struct Options {
    memory_kib: Option<usize>,
    phys_offset: Option<u64>,
    phys_limit: Option<u64>,
    low_free: Option<Vec<PhysRange>>,
    heap_kib: usize,
    strategy: Strategy,
    delays: DelayPolicy,
    panic_ap: bool,
    fault_ap: bool,
    task_panic: bool,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            memory_kib: None,
            phys_offset: None,
            phys_limit: None,
            low_free: None,
            heap_kib: 256,
            strategy: Strategy::Parallel,
            delays: DelayPolicy::Fast,
            panic_ap: false,
            fault_ap: false,
            task_panic: false,
        };
        for arg in std::env::args().skip(1) {
            let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
            match (key, value) {
                ("memory", v) => o.memory_kib = Some(v.parse().unwrap_or_else(|_| usage(&arg))),
                ("phys-offset", v) => o.phys_offset = Some(hex(v).unwrap_or_else(|| usage(&arg))),
                ("phys-limit", v) => o.phys_limit = Some(hex(v).unwrap_or_else(|| usage(&arg))),
                ("low-free", v) => {
                    o.low_free = Some(parse_ranges(v).unwrap_or_else(|| usage(&arg)))
                }
                ("heap", v) => o.heap_kib = v.parse().unwrap_or_else(|_| usage(&arg)),
                ("strategy", "parallel") => o.strategy = Strategy::Parallel,
                ("strategy", "sequential") => o.strategy = Strategy::Sequential,
                ("delays", "fast") => o.delays = DelayPolicy::Fast,
                ("delays", "spec") => o.delays = DelayPolicy::Spec,
                ("panic-ap", "") => o.panic_ap = true,
                ("fault-ap", "") => o.fault_ap = true,
                ("task-panic", "") => o.task_panic = true,
                _ => usage(&arg),
            }
        }
        o
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "hello_cpus: bad argument `{arg}` (valid: phys-offset=0x.. phys-limit=0x.. low-free=0x..-0x..[,..] memory=KiB heap=KiB strategy=parallel|sequential delays=fast|spec panic-ap fault-ap)"
    );
    std::process::exit(2)
}

/// Where physical memory is mapped and which low pages are free: the preset of a kernel the
/// library knows (by `uname()`), with any argument given overriding its part.
struct Layout {
    phys_offset: u64,
    phys_limit: u64,
    low_free: Vec<PhysRange>,
}

fn host_layout(options: &Options) -> Result<Layout, String> {
    let (sysname, machine, release, version) = uname();
    let known = presets::for_uname(&sysname, &machine);
    match known {
        Some(layout) => println!(
            "hello_cpus: host {sysname} {version} ({release}): the library's {} layout",
            layout.name
        ),
        None => println!("hello_cpus: host {sysname} {version} ({release}): no known layout"),
    }
    let phys_offset = options
        .phys_offset
        .or(known.map(|l| l.phys_offset))
        .ok_or(format!(
            "unknown host kernel `{sysname}`: give phys-offset= and low-free="
        ))?;
    let low_free = options
        .low_free
        .clone()
        .or(known.map(|l| l.low_free.to_vec()))
        .ok_or(format!("unknown host kernel `{sysname}`: give low-free="))?;
    let phys_limit = options
        .phys_limit
        .or(known.map(|l| l.phys_limit))
        .unwrap_or(512 << 30);
    Ok(Layout {
        phys_offset,
        phys_limit,
        low_free,
    })
}

/// uname(): (sysname, machine, release, version).
fn uname() -> (String, String, String, String) {
    // SAFETY: utsname is plain bytes; uname() fills it (or leaves it zeroed on failure).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        field(&u.sysname),
        field(&u.machine),
        field(&u.release),
        field(&u.version),
    )
}

fn hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

/// `0x1000-0x11000,0x...` → ranges (each end after its start).
fn parse_ranges(v: &str) -> Option<Vec<PhysRange>> {
    v.split(',')
        .map(|r| {
            let (a, b) = r.split_once('-')?;
            let (a, b) = (hex(a)?, hex(b)?);
            (b > a).then_some(PhysRange {
                base: a,
                len: b - a,
            })
        })
        .collect()
}
