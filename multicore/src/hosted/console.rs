//! A console APs may use in a hosted program: the host's own printing is a system call, which
//! an AP must never make (the host kernel has no SMP support), so APs write to the serial port
//! directly. One lock orders whole lines from every CPU, the BSP included when it uses it too.

use core::fmt::{self, Write};

use crate::sync::SpinMutex;

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
static LOCK: SpinMutex<()> = SpinMutex::new(());

/// Chooses the console (the first call wins; `hosted::start_cpus` makes it).
pub fn set(console: Console) {
    CONSOLE.call_once(|| console);
}

/// Writes `args` as one unit; from any CPU.
pub fn print(args: fmt::Arguments<'_>) {
    let _line = LOCK.lock();
    write_unlocked(args);
}

/// Writes a fault report: with the lock if it can be had within about a millisecond (so that
/// reports from several CPUs do not interleave), else without: whoever held it may have been
/// the CPU that faulted, and will never release it.
pub fn print_unlocked(args: fmt::Arguments<'_>) {
    for _ in 0..100_000 {
        if let Some(_line) = LOCK.try_lock() {
            write_unlocked(args);
            return;
        }
        core::hint::spin_loop();
    }
    write_unlocked(args);
}

fn write_unlocked(args: fmt::Arguments<'_>) {
    let _ = match CONSOLE.get() {
        Some(Console::Uart(port)) => Uart(*port).write_fmt(args),
        Some(Console::Custom(f)) => Custom(*f).write_fmt(args),
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
