//! The serial console on COM1, shared by every CPU without making any of them wait: lines go
//! through the library's [`LineRing`] (whoever holds the output writes out every finished line;
//! nobody spins for the port, see multicore/src/line_ring.rs for why).

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use multicore::line_ring::LineRing;
use uart_16550::SerialPort;

/// COM1's I/O base (the port QEMU's `-serial stdio` connects).
const COM1: u16 = 0x3F8;

static RING: LineRing = LineRing::new();
/// Set once COM1 is programmed; lines printed before that are dropped.
static READY: AtomicBool = AtomicBool::new(false);

/// Sets up COM1 (115200 8N1, FIFOs on). Call once on the BSP before printing.
pub fn init() {
    // SAFETY: 0x3F8 is COM1 on PC-compatible machines (QEMU pc, q35, microvm); nothing else in
    // this kernel drives it.
    unsafe { SerialPort::new(COM1) }.init();
    READY.store(true, Ordering::Release);
}

/// Sends bytes to COM1; called by the ring's output holder (or after stop-all).
fn send(bytes: &[u8]) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: COM1 was programmed by `init`; a SerialPort is only its port number, and only the
    // ring's output holder (one CPU at a time) or the last CPU running after stop-all sends.
    let mut port = unsafe { SerialPort::new(COM1) };
    for &b in bytes {
        port.send(b);
    }
}

/// Queues `args` as one line and writes out whatever is ready if the port is free.
pub fn print(args: fmt::Arguments<'_>) {
    RING.print(args, &send);
}

/// Queues `args` as one line without writing anything out: the next `print` on any CPU does.
/// For APs during the bring-up, whose port writes (VM exits, under TCG each one taking QEMU's
/// global lock) would hold up the BSP that is still starting the others.
pub fn queue(args: fmt::Arguments<'_>) {
    RING.queue(args, &send);
}

/// Writes `args` after every other CPU was stopped: a stopped CPU may have been holding the
/// port mid-line, so the lock is bypassed (not waited for, not forced, which would run its
/// unlock path for another CPU). Lines still queued are written first.
pub fn print_after_stop(args: fmt::Arguments<'_>) {
    // SAFETY: every other CPU is halted for good (stop-all), so this CPU is the only one
    // writing out from now on.
    unsafe { RING.print_bypassing_lock(args, &send) };
}

/// Prints a line on the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
