//! The serial console on COM1, shared by every CPU.

use core::fmt::{self, Write};
use multicore::sync::IrqSafeMutex;
use uart_16550::SerialPort;

/// COM1's I/O base (the port QEMU's `-serial stdio` connects).
const COM1: u16 = 0x3F8;

/// Interrupt-safe: a cross-CPU call or handler that prints on a CPU whose interrupted code holds
/// the console must not deadlock on it.
static SERIAL: IrqSafeMutex<Option<SerialPort>> = IrqSafeMutex::new(None);

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
/// console lock mid-line, so the lock is bypassed (not waited for, not forced, which would run
/// its unlock path for another CPU): COM1 is driven directly, it was set up by `init`.
pub fn print_after_stop(args: fmt::Arguments<'_>) {
    // SAFETY: every other CPU is halted for good (stop-all), so this CPU is the only one
    // touching COM1 from now on; the port was initialised by `init`.
    let mut port = unsafe { SerialPort::new(COM1) };
    let _ = port.write_fmt(args);
}

/// Prints a line on the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
