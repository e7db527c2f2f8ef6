//! The C interface to `multicore::hosted`: a C program that runs on one CPU of a kernel
//! without SMP support starts the others with [`mc_start_cpus`]. `include/multicore.h` is
//! generated from this file by cbindgen (build.rs); docs/hosted.md is the guide, and
//! `example/hello_cpus.c` the example.
//!
//! The library is `no_std`: it allocates (on the BSP only, during `mc_start_cpus`) through the
//! C program's `malloc`/`free`, and a panic (a bug) prints on the console and calls `abort`.

#![no_std]
#![allow(non_camel_case_types)]

extern crate alloc;

use alloc::boxed::Box;

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_void, CStr};
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use multicore::boot::{DelayPolicy, Strategy};
use multicore::hosted::{self, ApInfo, Console, HostedConfig, TlsConfig, TscFrequency};
use multicore::phys::PhysRange;
use multicore::tls::TlsTemplate;

/// A physical address range.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mc_range {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The AP an entry runs on.
#[repr(C)]
pub struct mc_ap_info {
    /// Dense CPU index (0 is the BSP).
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
}

/// What each AP runs, with interrupts off; it must not call into the host kernel.
pub type mc_ap_entry = Option<extern "C" fn(info: *const mc_ap_info, arg: usize)>;

/// A monotonic clock in nanoseconds (for measuring the TSC frequency on the BSP).
pub type mc_clock_ns = Option<extern "C" fn() -> u64>;

/// What `mc_start_cpus` needs (docs/hosted.md explains each field).
#[repr(C)]
pub struct mc_config {
    /// Memory for stacks, per-CPU data and tables: must stay valid for ever. NULL (the usual
    /// choice): the library takes what the CPUs it finds need from `malloc`, never freed.
    pub memory: *mut u8,
    /// Its size in bytes (ignored when `memory` is NULL).
    pub memory_len: usize,
    /// Physical memory is mapped at `virt = phys + phys_offset` ...
    pub phys_offset: u64,
    /// ... for `phys < phys_limit`.
    pub phys_limit: u64,
    /// Free RAM below 1 MiB the library may borrow (and gives back).
    pub low_free: *const mc_range,
    /// Entries in `low_free`.
    pub low_free_count: usize,
    /// The ACPI RSDP's physical address, 0 to scan the BIOS area.
    pub rsdp: u64,
    /// The TSC frequency in Hz, or 0 to measure it against `clock_ns`.
    pub tsc_hz: u64,
    /// The clock used when `tsc_hz` is 0.
    pub clock_ns: mc_clock_ns,
    /// The UART the APs print on (0x3F8 for COM1), 0 for none.
    pub uart_port: u16,
    /// Most CPUs to use, the BSP included (0: 256).
    pub max_cpus: u32,
    /// Bytes of stack per AP (0: 64 KiB).
    pub stack_size: usize,
    /// Start the APs one at a time instead of all together.
    pub sequential: bool,
    /// Keep the specification's 10 ms / 200 µs waits instead of the fast ones.
    pub spec_delays: bool,
    /// Bytes of the BSP's thread control block (at FS:0) each AP gets a copy of, next to its
    /// own copy of the program's TLS (0: 256, enough for musl's thread structure). C code
    /// reads it: the stack protector's canary is at FS:0x28, `errno` is in it.
    pub tcb_size: usize,
    /// Halt each AP for good after the entry instead of letting it join the runtime (where it
    /// serves `mc_parallel_for` and sleeps between jobs).
    pub without_runtime: bool,
}

/// What `mc_start_cpus` did.
#[repr(C)]
pub struct mc_report {
    /// CPUs found, the BSP included.
    pub cpus: u32,
    /// CPUs online, the BSP included.
    pub online: u32,
    /// APs that failed (each was named on the console).
    pub failed: u32,
    /// Microseconds from the first INIT to the last AP's arrival.
    pub time_us: u64,
    /// The TSC frequency used.
    pub tsc_hz: u64,
    /// Bytes of memory the library used, of `memory_size`.
    pub memory_used: usize,
    /// Bytes of memory it had (taken from malloc, or `memory_len`).
    pub memory_size: usize,
}

/// Most free low ranges a known layout names.
pub const MC_LAYOUT_RANGES: usize = 4;

/// A known host kernel's layout (`mc_host_layout`): copy its fields into `mc_config`.
#[repr(C)]
pub struct mc_layout {
    /// Physical memory is mapped at `virt = phys + phys_offset` ...
    pub phys_offset: u64,
    /// ... for `phys < phys_limit`.
    pub phys_limit: u64,
    /// RAM below 1 MiB that is free once `main` runs.
    pub low_free: [mc_range; MC_LAYOUT_RANGES],
    /// Entries of `low_free` used.
    pub low_free_count: usize,
}

/// Fills `layout` with the layout of the kernel `uname()` names by `sysname` and `machine`
/// (Unikraft on x86_64) and returns 1, or returns 0 if that kernel is not known: the program
/// must then be told the layout. The library checks every number before it uses it.
///
/// # Safety
/// `sysname` and `machine` are NUL-terminated strings (or NULL); `layout` points to a writable
/// `mc_layout`.
#[no_mangle]
pub unsafe extern "C" fn mc_host_layout(
    sysname: *const c_char,
    machine: *const c_char,
    layout: *mut mc_layout,
) -> i32 {
    if sysname.is_null() || machine.is_null() || layout.is_null() {
        return 0;
    }
    // SAFETY: the caller's contract.
    let (sysname, machine) = unsafe { (CStr::from_ptr(sysname), CStr::from_ptr(machine)) };
    let (Ok(sysname), Ok(machine)) = (sysname.to_str(), machine.to_str()) else {
        return 0;
    };
    let Some(known) = hosted::presets::for_uname(sysname, machine) else {
        return 0;
    };
    let mut out = mc_layout {
        phys_offset: known.phys_offset,
        phys_limit: known.phys_limit,
        low_free: [mc_range { base: 0, len: 0 }; MC_LAYOUT_RANGES],
        low_free_count: known.low_free.len().min(MC_LAYOUT_RANGES),
    };
    for (to, from) in out.low_free.iter_mut().zip(known.low_free) {
        *to = mc_range {
            base: from.base,
            len: from.len,
        };
    }
    // SAFETY: the caller's contract.
    unsafe { layout.write(out) };
    1
}

/// The C clock, for the Rust function that calls it.
static CLOCK: AtomicUsize = AtomicUsize::new(0);

fn rust_clock() -> u64 {
    let clock = CLOCK.load(Ordering::Acquire);
    if clock == 0 {
        return 0;
    }
    // SAFETY: CLOCK holds the non-null `extern "C" fn() -> u64` the configuration gave.
    let clock: extern "C" fn() -> u64 = unsafe { core::mem::transmute(clock) };
    clock()
}

/// Writes `text` into `buf` (`len` bytes, NUL-terminated, cut if needed).
struct CBuf {
    buf: *mut u8,
    len: usize,
    at: usize,
}

impl Write for CBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.at + 1 < self.len {
                // SAFETY: `at + 1 < len`: inside the caller's buffer, with room for the NUL.
                unsafe { self.buf.add(self.at).write(b) };
                self.at += 1;
            }
        }
        if self.len > 0 {
            // SAFETY: `at < len` (kept above).
            unsafe { self.buf.add(self.at).write(0) };
        }
        Ok(())
    }
}

/// Starts every other CPU; each runs `entry(info, arg)`. Returns 0 when the bring-up ran
/// (`report` says how many CPUs came online), -1 when nothing was started (the reason is
/// written to `error`, `error_len` bytes, NUL-terminated). Call it once.
///
/// # Safety
/// `config` and `report` point to valid structures; `config.memory` is NULL or `memory_len`
/// bytes that stay valid and unused by anything else for ever; `low_free` has `low_free_count` entries;
/// `error` has `error_len` writable bytes (or is null with 0); the physical mapping described
/// is real. The caller runs in ring 0 on the BSP.
#[no_mangle]
pub unsafe extern "C" fn mc_start_cpus(
    config: *const mc_config,
    entry: mc_ap_entry,
    arg: usize,
    report: *mut mc_report,
    error: *mut c_char,
    error_len: usize,
) -> i32 {
    let mut err = CBuf {
        buf: error as *mut u8,
        len: if error.is_null() { 0 } else { error_len },
        at: 0,
    };
    // SAFETY: the caller's contract.
    let (c, out) = unsafe { (&*config, &mut *report) };
    let Some(entry) = entry else {
        let _ = err.write_str("no AP entry function given");
        return -1;
    };
    if c.low_free.is_null() && c.low_free_count > 0 {
        let _ = err.write_str("null low_free pointer");
        return -1;
    }
    // SAFETY: the caller's contract: valid for ever and ours alone; `low_free` entries.
    let (memory, low) = unsafe {
        (
            (!c.memory.is_null()).then(|| core::slice::from_raw_parts_mut(c.memory, c.memory_len)),
            if c.low_free_count == 0 {
                &[][..]
            } else {
                core::slice::from_raw_parts(c.low_free, c.low_free_count)
            },
        )
    };
    let low: alloc::vec::Vec<PhysRange> = low
        .iter()
        .map(|r| PhysRange {
            base: r.base,
            len: r.len,
        })
        .collect();
    let tsc = if c.tsc_hz != 0 {
        TscFrequency::Hz(c.tsc_hz)
    } else {
        let Some(clock) = c.clock_ns else {
            let _ = err.write_str("neither tsc_hz nor clock_ns given");
            return -1;
        };
        CLOCK.store(clock as usize, Ordering::Release);
        TscFrequency::Measure(&rust_clock)
    };
    let mut h = HostedConfig::new(c.phys_offset, c.phys_limit, &low, tsc);
    h.memory = memory;
    h.tls = Some(TlsConfig {
        template: program_tls(),
        tcb_size: if c.tcb_size != 0 { c.tcb_size } else { 256 },
    });
    h.rsdp = (c.rsdp != 0).then_some(c.rsdp);
    h.console = if c.uart_port != 0 {
        Console::Uart(c.uart_port)
    } else {
        Console::None
    };
    if c.max_cpus != 0 {
        h.max_cpus = c.max_cpus as usize;
    }
    if c.stack_size != 0 {
        h.stack_size = c.stack_size;
    }
    h.strategy = if c.sequential {
        Strategy::Sequential
    } else {
        Strategy::Parallel
    };
    h.delays = if c.spec_delays {
        DelayPolicy::Spec
    } else {
        DelayPolicy::Fast
    };
    h.runtime = !c.without_runtime;
    // The C entry and its argument, in a closure the APs share (leaked: they run it for ever).
    let run_c_entry = move |info: &ApInfo| {
        let c = mc_ap_info {
            index: info.index,
            apic_id: info.apic_id,
        };
        entry(&c, arg);
    };
    match hosted::start_cpus(h, Box::leak(Box::new(run_c_entry))) {
        Ok(r) => {
            for f in &r.failed {
                hosted::console::print(format_args!("{f}\n"));
            }
            *out = mc_report {
                cpus: r.cpus,
                online: r.online,
                failed: r.failed.len() as u32,
                time_us: r.time_us,
                tsc_hz: r.tsc_hz,
                memory_used: r.memory_used,
                memory_size: r.memory_size,
            };
            0
        }
        Err(e) => {
            let _ = write!(err, "{e}");
            -1
        }
    }
}

/// Prints a NUL-terminated string on the APs' console, from any CPU (lines from different
/// CPUs do not interleave).
///
/// # Safety
/// `text` is a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mc_print(text: *const c_char) {
    if text.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    let text = unsafe { CStr::from_ptr(text) };
    let text = text.to_str().unwrap_or("(not UTF-8)");
    hosted::console::print(format_args!("{text}"));
}

/// The body of [`mc_parallel_for`]: runs `begin..end` of the range with `ctx`.
pub type mc_range_body = Option<extern "C" fn(begin: usize, end: usize, ctx: *mut c_void)>;

/// Runs `body` over `begin..end` in pieces of at most `grain` indices, in parallel on every CPU
/// that joined the runtime (main's CPU included), and returns when all pieces are done: 0, or
/// -1 if `body` is NULL. Without a runtime (one CPU, `mc_start_cpus` not called or failed,
/// `without_runtime`) the whole range runs here, in one piece. `body` runs on any CPU, several
/// at once: on an AP it may only compute (no C library calls that make system calls or
/// allocate).
#[no_mangle]
pub extern "C" fn mc_parallel_for(
    begin: usize,
    end: usize,
    grain: usize,
    body: mc_range_body,
    ctx: *mut c_void,
) -> i32 {
    let Some(body) = body else {
        return -1;
    };
    let Some(sched) = hosted::scheduler() else {
        body(begin, end.max(begin), ctx);
        return 0;
    };
    fn split(
        sched: &multicore::sched::Registry,
        range: core::ops::Range<usize>,
        grain: usize,
        body: extern "C" fn(usize, usize, *mut c_void),
        ctx: usize,
    ) {
        if range.len() <= grain {
            body(range.start, range.end, ctx as *mut c_void);
            return;
        }
        let mid = range.start + range.len() / 2;
        sched.join(
            || split(sched, range.start..mid, grain, body, ctx),
            || split(sched, mid..range.end, grain, body, ctx),
        );
    }
    // `ctx` crosses CPUs as a number: the C caller vouches that `body` may use it anywhere.
    split(
        sched,
        begin..end.max(begin),
        grain.max(1),
        body,
        ctx as usize,
    );
    0
}

/// The index of the AP running the caller, or -1 on the BSP.
#[no_mangle]
pub extern "C" fn mc_current_ap() -> i32 {
    hosted::current_ap().map_or(-1, |i| i as i32)
}

/// How many APs reported a fault (CPU exception) after the bring-up and halted.
#[no_mangle]
pub extern "C" fn mc_stopped_aps() -> u32 {
    hosted::stopped_aps()
}

/// Halts the calling AP for good (interrupts off).
#[no_mangle]
pub extern "C" fn mc_park_ap() -> ! {
    multicore::boot::park_this_cpu()
}

/// The program's PT_TLS segment, from its own program headers (an empty one if the program
/// has no TLS, or its headers cannot be read: the APs still get their TCB copy).
fn program_tls() -> TlsTemplate {
    let empty = TlsTemplate {
        vaddr: 0,
        image: &[],
        mem_size: 0,
        align: 1,
    };
    match multicore::program_headers::this_program_tls() {
        Ok(Some(tls)) => tls,
        Ok(None) => empty,
        Err(e) => {
            hosted::console::print(format_args!("multicore: no TLS for the APs: {e}\n"));
            empty
        }
    }
}

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
    fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn abort() -> !;
}

/// The library's own allocations (on the BSP, inside `mc_start_cpus`) go to the C library.
struct CAllocator;

// SAFETY: forwards to the C library's allocator, which returns suitably aligned blocks (malloc:
// 16 bytes; aligned_alloc for larger alignments) and takes back what it returned.
unsafe impl GlobalAlloc for CAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C calls; aligned_alloc wants the size rounded to the alignment.
        unsafe {
            if layout.align() <= 16 {
                malloc(layout.size().max(1)) as *mut u8
            } else {
                aligned_alloc(
                    layout.align(),
                    layout.size().next_multiple_of(layout.align()),
                ) as *mut u8
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from malloc or aligned_alloc above.
        unsafe { free(ptr as *mut c_void) }
    }
}

#[global_allocator]
static ALLOCATOR: CAllocator = CAllocator;

/// The prebuilt `core`/`alloc` for this target carry unwind tables that name Rust's
/// personality routine; with panic=abort nothing unwinds, so it is never called, but the
/// symbol must exist for a C linker.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hosted::console::print_unlocked(format_args!("multicore: panic: {info}\n"));
    if hosted::current_ap().is_some() {
        multicore::boot::park_this_cpu()
    }
    // SAFETY: the C library's abort, on the BSP.
    unsafe { abort() }
}
