//! The serial console on COM1, shared by every CPU without making any of them wait.
//!
//! A CPU that prints formats its line into a slot of a lock-free ring and leaves; whichever CPU
//! holds the port writes out every finished line in order (the holder is whoever got
//! `try_lock` first). Why not a plain spin lock: during bring-up 60+ APs print their "online"
//! line at once, and with many vCPUs on two host cores the ones spinning for the port took the
//! host time the APs still starting needed (measured: 64-CPU bring-up under TCG 195 ms with a
//! spin lock, 3.5 ms with none). Lines never interleave and stay in reservation order.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use multicore::sync::IrqSafeMutex;
use uart_16550::SerialPort;

/// COM1's I/O base (the port QEMU's `-serial stdio` connects).
const COM1: u16 = 0x3F8;
/// Lines that may wait for the port at once.
const SLOTS: usize = 512;
/// Longest line kept (longer lines are cut and end with "...").
const LINE: usize = 200;

/// The port; whoever holds it writes out the ring. Interrupt-safe, so a handler that prints on
/// a CPU whose interrupted code holds it cannot deadlock (it only queues: `try_lock` fails).
static SERIAL: IrqSafeMutex<Option<SerialPort>> = IrqSafeMutex::new(None);

struct Slot {
    /// `n + 1` once the line with ticket `n` is complete in `text`; 0 while free.
    ready: AtomicU64,
    len: AtomicUsize,
    text: UnsafeCell<[u8; LINE]>,
}

// SAFETY: a slot's text is written only by the producer holding its ticket, before `ready` is
// published (Release), and read only by the port holder after seeing `ready` (Acquire), who
// frees it again; tickets are unique (fetch_add) and a producer waits for its slot to be free.
unsafe impl Sync for Slot {}

struct Ring {
    slots: [Slot; SLOTS],
    /// Next ticket to hand out.
    head: AtomicU64,
    /// Next ticket to write out (moved only by the port holder).
    tail: AtomicU64,
}

static RING: Ring = Ring {
    slots: [const {
        Slot {
            ready: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            text: UnsafeCell::new([0; LINE]),
        }
    }; SLOTS],
    head: AtomicU64::new(0),
    tail: AtomicU64::new(0),
};

/// Sets up COM1 (115200 8N1, FIFOs on). Call once on the BSP before printing.
pub fn init() {
    // SAFETY: 0x3F8 is COM1 on PC-compatible machines (QEMU pc, q35, microvm); nothing else in
    // this kernel drives it.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    *SERIAL.lock() = Some(port);
}

/// A fixed buffer that `write!` fills, cutting what does not fit.
struct LineBuf<'a> {
    buf: &'a mut [u8; LINE],
    len: usize,
    cut: bool,
}

impl Write for LineBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.cut |= take < s.len();
        Ok(())
    }
}

/// Queues `args` as one unit and writes out whatever is ready if the port is free.
pub fn print(args: fmt::Arguments<'_>) {
    let ticket = RING.head.fetch_add(1, Ordering::Relaxed);
    let slot = &RING.slots[(ticket % SLOTS as u64) as usize];
    // The slot is free once the port holder wrote out the line that used it a lap ago.
    while slot.ready.load(Ordering::Acquire) != 0 {
        drain();
        core::hint::spin_loop();
    }
    // SAFETY: this ticket owns the slot until `ready` is published (see `Slot`).
    let text = unsafe { &mut *slot.text.get() };
    let mut line = LineBuf {
        buf: text,
        len: 0,
        cut: false,
    };
    let _ = line.write_fmt(args);
    if line.cut {
        line.buf[LINE - 4..].copy_from_slice(b"...\n");
    }
    slot.len.store(line.len, Ordering::Relaxed);
    slot.ready.store(ticket + 1, Ordering::Release);
    drain();
}

/// If the port is free: writes out every finished line in ticket order, then looks again after
/// letting go (a line finished while we held the port was left to us by its producer).
fn drain() {
    loop {
        let Some(mut guard) = SERIAL.try_lock() else {
            return;
        };
        match guard.as_mut() {
            Some(port) => write_ready(port),
            None => return, // before init: the lines wait
        }
        drop(guard);
        let tail = RING.tail.load(Ordering::Relaxed);
        let next = &RING.slots[(tail % SLOTS as u64) as usize];
        if next.ready.load(Ordering::Acquire) != tail + 1 {
            return;
        }
    }
}

/// Writes out the finished lines at the tail, in order. Only the port holder calls it.
fn write_ready(port: &mut SerialPort) {
    loop {
        let tail = RING.tail.load(Ordering::Relaxed);
        let slot = &RING.slots[(tail % SLOTS as u64) as usize];
        if slot.ready.load(Ordering::Acquire) != tail + 1 {
            return;
        }
        let len = slot.len.load(Ordering::Relaxed);
        // SAFETY: `ready == tail + 1`: the producer finished this line, and only the port
        // holder reads it until `ready` is cleared below.
        let text = unsafe { &(&*slot.text.get())[..len] };
        for &b in text {
            port.send(b);
        }
        slot.ready.store(0, Ordering::Release);
        RING.tail.store(tail + 1, Ordering::Relaxed);
    }
}

/// Writes `args` after every other CPU was stopped: a stopped CPU may have been holding the
/// port mid-line, so the lock is bypassed (not waited for, not forced, which would run its
/// unlock path for another CPU): COM1 is driven directly, it was set up by `init`. Lines still
/// queued are written first.
pub fn print_after_stop(args: fmt::Arguments<'_>) {
    // SAFETY: every other CPU is halted for good (stop-all), so this CPU is the only one
    // touching COM1 and the ring from now on; the port was initialised by `init`.
    let mut port = unsafe { SerialPort::new(COM1) };
    write_ready(&mut port);
    let _ = port.write_fmt(args);
}

/// Prints a line on the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
