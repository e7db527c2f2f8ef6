//! The serial console on COM1, shared by every CPU.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

/// COM1's I/O base (the port QEMU's `-serial stdio` connects).
const COM1: u16 = 0x3F8;

static SERIAL: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Sets up COM1 (115200 8N1, FIFOs on). Call once on the BSP before printing.
pub fn init() {
    // SAFETY: 0x3F8 is COM1 on PC-compatible machines (QEMU pc, q35, microvm); nothing else in
    // this kernel drives it.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *SERIAL.lock() = Some(port);
}

/// Writes `args` as one unit: lines from different CPUs never interleave.
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(port) = SERIAL.lock().as_mut() {
        let _ = port.write_fmt(args);
    }
}

/// Writes `args` after every other CPU was stopped: a stopped CPU may have been holding the
/// lock mid-line, so the lock is taken over rather than waited for.
pub fn print_after_stop(args: fmt::Arguments<'_>) {
    if SERIAL.is_locked() {
        // SAFETY: the other CPUs are halted for good (stop-all), so whoever held the lock will
        // never touch the port again; this CPU is the only one printing from now on.
        unsafe { SERIAL.force_unlock() };
    }
    print(args);
}

/// Prints a line on the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
