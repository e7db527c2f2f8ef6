//! The serial console on COM1: the host's messages and the program's stdout/stderr.
//!
//! One CPU, and host code runs with interrupts off (boot, system calls, traps), so a plain spin
//! lock never waits; a trap that interrupted a print (a host bug) writes through a fresh port.

use core::fmt::{self, Write};

use spin::Mutex;
use uart_16550::SerialPort;

/// COM1's I/O base (the port QEMU's `-serial stdio` connects).
const COM1: u16 = 0x3F8;

static SERIAL: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Sets up COM1 (115200 8N1, FIFOs on).
pub fn init() {
    // SAFETY: 0x3F8 is COM1 on PC-compatible machines (QEMU pc, q35, microvm); only this
    // module drives it.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *SERIAL.lock() = Some(port);
}

/// Runs `f` with the port: the shared one, or a fresh handle when the shared one is held by
/// the code a trap interrupted (its line is cut, the report still comes out).
fn with_port(f: impl FnOnce(&mut SerialPort)) {
    if let Some(mut guard) = SERIAL.try_lock() {
        if let Some(port) = guard.as_mut() {
            f(port);
            return;
        }
    }
    // SAFETY: COM1 as above; this CPU is the only one running host code, and the holder of the
    // lock is suspended under us, so the two handles are never used at the same time.
    let mut port = unsafe { SerialPort::new(COM1) };
    f(&mut port);
}

/// Writes `bytes` unchanged (the program's output).
pub fn write_bytes(bytes: &[u8]) {
    with_port(|port| bytes.iter().for_each(|&b| port.send_raw(b)));
}

/// Writes formatted text.
pub fn print(args: fmt::Arguments<'_>) {
    with_port(|port| {
        let _ = port.write_fmt(args);
    });
}

/// Prints a line on the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
