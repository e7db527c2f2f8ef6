//! A console APs may use in a hosted program: the host's own printing is a system call, which
//! an AP must never make (the host kernel has no SMP support), so APs write to the serial port
//! directly. Lines from every CPU (the BSP included when it uses it too) go through one
//! [`LineRing`]: whole lines, in order, and no CPU spins for the port while another writes.

use core::fmt::{self, Write};

use crate::line_ring::LineRing;

/// Where the hosted console writes.
#[derive(Clone, Copy)]
pub enum Console {
    /// Nowhere.
    None,
    /// A 16550 UART at this I/O port (COM1 = 0x3F8), as firmware left it configured.
    Uart(u16),
    /// A function of the host's, callable from any CPU at any time (it must not enter the host
    /// kernel).
    Custom(&'static (dyn Fn(&str) + Sync)),
}

/// Line status register offset and its "transmitter holding register empty" bit (16550).
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;

struct Uart(u16);

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

impl Uart {
    fn put(&mut self, byte: u8) {
        // Bounded wait: a UART that never drains must not hang the CPU forever.
        for _ in 0..100_000 {
            // SAFETY: reading the line status register of the port the host named; no side
            // effect on a 16550.
            let lsr: u8 = unsafe { x86_64::instructions::port::Port::new(self.0 + LSR).read() };
            if lsr & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: writing the transmit register of the port the host named.
        unsafe { x86_64::instructions::port::Port::new(self.0).write(byte) };
    }
}

struct Custom(&'static (dyn Fn(&str) + Sync));

impl Write for Custom {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        (self.0)(s);
        Ok(())
    }
}

static CONSOLE: spin::Once<Console> = spin::Once::new();
static RING: LineRing = LineRing::new();

/// Chooses the console (the first call wins; `hosted::start_cpus` makes it).
pub fn set(console: Console) {
    CONSOLE.call_once(|| console);
}

/// Writes `args` as one line; from any CPU, without waiting for another CPU's line.
pub fn print(args: fmt::Arguments<'_>) {
    RING.print(args, &write_bytes);
}

/// Writes a fault report: queued like any line, and written out by whoever holds the output
/// if that finishes within about a millisecond; else without the output's lock: its holder may
/// have been the CPU that faulted, and will never come back.
pub fn print_unlocked(args: fmt::Arguments<'_>) {
    let deadline = crate::arch::x86_64::tsc::now() + 3_000_000; // ~1 ms at a few GHz
    RING.drain(&write_bytes);
    while crate::arch::x86_64::tsc::now() < deadline {
        if RING.try_idle(&write_bytes) {
            RING.print(args, &write_bytes);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder is presumed gone (see above); a line interleaved with one it still
    // writes is the price of a report that gets out at all.
    unsafe { RING.print_bypassing_lock(args, &write_bytes) };
}

fn write_bytes(bytes: &[u8]) {
    // A line cut inside a UTF-8 sequence keeps its valid part.
    let text = match core::str::from_utf8(bytes) {
        Ok(text) => text,
        // SAFETY: `valid_up_to` bytes are valid UTF-8 (from_utf8's contract).
        Err(e) => unsafe { core::str::from_utf8_unchecked(&bytes[..e.valid_up_to()]) },
    };
    let _ = match CONSOLE.get() {
        Some(Console::Uart(port)) => Uart(*port).write_str(text),
        Some(Console::Custom(f)) => Custom(*f).write_str(text),
        Some(Console::None) | None => Ok(()),
    };
}

/// `println!` for APs (and the BSP) of a hosted program: `multicore::ap_println!("...")`.
#[macro_export]
macro_rules! ap_println {
    ($($arg:tt)*) => {
        $crate::hosted::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
