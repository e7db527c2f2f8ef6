//! A plain `std` program for the stand-in host (standin_host): built as a musl static-pie, it
//! is loaded from the initrd and run in ring 0. It exercises what a real program on a Unikraft
//! kernel uses (println!, Vec, HashMap with its random keys, the environment, thread_local!,
//! clocks, times()) and shows where it runs: ring 0, the kernel uname() names, and where its
//! code, stack and heap sit in physical memory (a walk of the page tables from CR3, through
//! `STANDIN_PHYS_OFFSET`).
//!
//! Arguments (all optional, `key=value`):
//! - `exit=N`: exit with status N (default 0);
//! - `spin=MS`: busy-loop MS milliseconds, counting timer ticks meanwhile (default 20);
//! - `fault`: read an unmapped address (the host must report a page fault);
//! - `panic`: panic (panic=abort: the host sees SIGABRT);
//! - `corrupt=0xPHYS`: overwrite 64 bytes of physical memory (through STANDIN_PHYS_OFFSET), to
//!   check that the host notices damage to its low memory;
//! - `alloc=SIZE`: allocate SIZE bytes (`K`/`M` suffix) and touch them;
//! - `churn=N`: allocate and free 1 MiB N times (mmap and munmap each time);
//! - `movegs`: point GS base at the program's own data (WRMSR, ring 0), which the host forbids:
//!   its next system call must be refused loudly.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

thread_local! {
    static VISITS: Cell<u32> = const { Cell::new(0) };
}

/// The timer ticks the host counted (times(2) returns them).
fn ticks() -> u64 {
    // SAFETY: times() only writes the struct it is given.
    let mut t: libc::tms = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `t` is a valid, writable tms.
    unsafe { libc::times(&mut t) as u64 }
}

/// The code segment selector: its low two bits are the privilege level.
fn code_segment() -> u16 {
    let cs: u16;
    // SAFETY: reading CS has no side effect.
    unsafe { std::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack)) };
    cs
}

/// CR0, which only ring 0 may read (a #GP anywhere else).
fn cr0() -> u64 {
    let value: u64;
    // SAFETY: in ring 0 (checked by the caller) reading CR0 has no side effect.
    unsafe { std::arch::asm!("mov {}, cr0", out(reg) value, options(nomem, nostack)) };
    value
}

/// CR3, which only ring 0 may read.
fn cr3() -> u64 {
    let value: u64;
    // SAFETY: in ring 0 (checked by the caller) reading CR3 has no side effect.
    unsafe { std::arch::asm!("mov {}, cr3", out(reg) value, options(nomem, nostack)) };
    value
}

/// Where `virt` is mapped, by a walk of the 4-level page tables from `root` (SDM Vol. 3A §5.5,
/// Tables 5-15 to 5-20: bit 0 present, bit 7 a large page, bits 51:12 the address), every
/// table read at `phys_offset` + its physical address.
fn physical(root: u64, phys_offset: u64, virt: u64) -> Option<u64> {
    const PRESENT: u64 = 1;
    const LARGE: u64 = 1 << 7;
    const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
    let mut table = root & ADDRESS;
    for shift in [39u32, 30, 21, 12] {
        let index = (virt >> shift) & 511;
        let entry_at = (phys_offset + table + index * 8) as *const u64;
        // SAFETY: the host maps all RAM at phys_offset and `table` is a page table it made
        // (the root, or read from a present entry); only read.
        let entry = unsafe { entry_at.read_volatile() };
        if entry & PRESENT == 0 {
            return None;
        }
        if shift == 12 || (shift < 39 && entry & LARGE != 0) {
            let size = 1u64 << shift;
            return Some((entry & ADDRESS & !(size - 1)) + (virt & (size - 1)));
        }
        table = entry & ADDRESS;
    }
    None
}

/// "sysname nodename release version machine", from uname().
fn uname() -> String {
    // SAFETY: utsname is plain bytes; uname() only writes the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "(uname failed)".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    [
        &u.sysname[..],
        &u.nodename,
        &u.release,
        &u.version,
        &u.machine,
    ]
    .map(field)
    .join(" ")
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.chars().last()? {
        'K' | 'k' => (&text[..text.len() - 1], 1 << 10),
        'M' | 'm' => (&text[..text.len() - 1], 1 << 20),
        _ => (text, 1),
    };
    Some(parse_number(digits)? * unit)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello: args {args:?}");
    let cs = code_segment();
    let ring0 = cs & 3 == 0;
    if ring0 {
        println!("hello: CS={cs:#x} (ring 0), CR0={:#x}", cr0());
    } else {
        println!("hello: CS={cs:#x} (ring {}): not ring 0", cs & 3);
    }
    println!("hello: uname {}", uname());
    let on_stack = 0u8;
    let main_at = main as fn() as usize as u64;
    let stack_at = &on_stack as *const u8 as u64;
    println!("hello: main at {main_at:#x}, stack at {stack_at:#x}");
    let phys_offset = std::env::var("STANDIN_PHYS_OFFSET")
        .ok()
        .and_then(|o| parse_number(&o));
    if let (true, Some(offset)) = (ring0, phys_offset) {
        let boxed = Box::new(0u64);
        let root = cr3();
        let at = |virt: u64| match physical(root, offset, virt) {
            Some(p) => format!("{p:#x}"),
            None => "unmapped".into(),
        };
        println!(
            "hello: CR3 {root:#x}; physical: main {}, stack {}, a Box {}",
            at(main_at),
            at(stack_at),
            at(&*boxed as *const u64 as u64)
        );
    }

    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("STANDIN_"))
        .collect();
    vars.sort();
    for (key, value) in &vars {
        println!("hello: {key}={value}");
    }

    let numbers: Vec<u64> = (1..=100).collect();
    let mut squares = HashMap::new();
    for n in &numbers {
        squares.insert(*n, n * n);
    }
    for _ in 0..3 {
        VISITS.with(|v| v.set(v.get() + 1));
    }
    println!(
        "hello: Vec sum {}, HashMap {} entries (7² = {}), thread_local {}",
        numbers.iter().sum::<u64>(),
        squares.len(),
        squares[&7],
        VISITS.with(Cell::get)
    );

    let mut status = 0;
    let mut spin_ms = 20;
    for arg in &args[1..] {
        let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
        match key {
            "exit" => status = value.parse().expect("exit=N"),
            "spin" => spin_ms = value.parse().expect("spin=MS"),
            "fault" => {
                // SAFETY: not safe at all, on purpose: the host must report the page fault.
                let v = unsafe { std::ptr::read_volatile(0x10 as *const u64) };
                println!("hello: read {v:#x} from address 0x10?!");
            }
            "panic" => panic!("deliberate panic (hello panic)"),
            "corrupt" => {
                let offset = std::env::var("STANDIN_PHYS_OFFSET")
                    .ok()
                    .and_then(|o| parse_number(&o))
                    .expect("STANDIN_PHYS_OFFSET");
                let phys = parse_number(value).expect("corrupt=0xPHYS");
                println!("hello: overwriting 64 bytes at physical {phys:#x}");
                let at = (offset + phys) as *mut u64;
                for i in 0..8 {
                    // SAFETY: deliberately writes memory the program does not own, through the
                    // host's direct map, for the host to detect.
                    unsafe { std::ptr::write_volatile(at.add(i), 0) };
                }
            }
            "churn" => {
                let rounds: usize = value.parse().expect("churn=N");
                let mut last = 0;
                for round in 0..rounds {
                    let block = std::hint::black_box(vec![round as u8; 1 << 20]);
                    last = block.as_ptr() as usize;
                }
                println!("hello: allocated and freed 1 MiB {rounds} times, last at {last:#x}");
            }
            "movegs" => {
                static MINE: [u64; 4] = [0; 4];
                let addr = MINE.as_ptr() as u64;
                // SAFETY: not safe for the host at all, on purpose: IA32_GS_BASE (0xC0000101)
                // is the host's; its next system call must notice.
                unsafe {
                    std::arch::asm!(
                        "wrmsr",
                        in("ecx") 0xC000_0101u32,
                        in("eax") addr as u32,
                        in("edx") (addr >> 32) as u32,
                        options(nomem, nostack)
                    )
                };
                println!("hello: GS base moved to {addr:#x}");
            }
            "alloc" => {
                let size = parse_size(value).expect("alloc=SIZE") as usize;
                let mut block = vec![0u8; size];
                for i in (0..size).step_by(4096) {
                    block[i] = 1;
                }
                println!(
                    "hello: allocated and touched {size} bytes at {:p}",
                    block.as_ptr()
                );
            }
            _ => {
                eprintln!("hello: unknown argument `{arg}`");
                status = 2;
            }
        }
    }

    if spin_ms > 0 {
        let before = ticks();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(spin_ms) {
            std::hint::spin_loop();
        }
        println!(
            "hello: timer ticked {} times during a {spin_ms} ms busy loop",
            ticks() - before
        );
    }
    println!("hello: exiting with status {status}");
    std::process::exit(status);
}
