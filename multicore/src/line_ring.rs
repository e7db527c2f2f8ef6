//! A console shared by every CPU without making any of them wait: lines queue in a lock-free
//! ring, and whichever CPU holds the output writes out every finished line in order.
//!
//! A CPU that prints formats its line into a slot of the ring and leaves; the holder of the
//! output (whoever got `try_lock` first) writes out the lines. Why not a plain spin lock: when
//! tens of APs print at once, with many vCPUs on a few host cores, the ones spinning for the
//! port take the host time that the APs still starting need (measured on the demo kernel:
//! 64-CPU bring-up under TCG 195 ms with a spin lock, 3.5 ms with the ring; in a hosted program
//! at 32 CPUs, 26-32 ms with a lock, about 5 ms with the ring). Lines never interleave and come
//! out in the order their slots were taken.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use crate::sync::IrqSafeMutex;

/// Lines that may wait for the output at once.
pub const SLOTS: usize = 256;
/// Longest line kept (longer lines are cut and end with "...").
pub const LINE: usize = 512;

struct Slot {
    /// Which lap of the ring the slot is in, and whether it holds a line: `2 * lap` while it is
    /// free for ticket `lap * SLOTS + index`, `2 * lap + 1` once that ticket's line is complete
    /// in `text`, `2 * (lap + 1)` after it was written out. A plain "free" flag would let the
    /// ticket of the next lap take the slot before a slow producer of this lap, which then
    /// waits for ever while the writer waits for it (seen under test with four threads).
    state: AtomicU64,
    len: AtomicUsize,
    text: UnsafeCell<[u8; LINE]>,
}

/// The state of a slot free for `ticket`.
fn free_for(ticket: u64) -> u64 {
    2 * (ticket / SLOTS as u64)
}

/// The state of a slot holding `ticket`'s complete line.
fn ready_with(ticket: u64) -> u64 {
    free_for(ticket) + 1
}

/// The ring; `print` and `drain` take the function that writes bytes out.
pub struct LineRing {
    slots: [Slot; SLOTS],
    /// Next ticket to hand out.
    head: AtomicU64,
    /// Next ticket to write out (moved only by the output's holder).
    tail: AtomicU64,
    /// Held by whoever writes out. Interrupt-safe: an interrupt handler that prints on a CPU
    /// whose interrupted code holds it only queues its line (`try_lock` fails), and a holder
    /// is never interrupted to wait for a slot it would have to free itself.
    output: IrqSafeMutex<()>,
}

// SAFETY: a slot's text is written only by the producer holding its ticket, after seeing the
// slot free for exactly that ticket (Acquire) and before publishing it ready (Release), and read
// only by the output's holder after seeing it ready for the ticket at the tail (Acquire), who
// then frees it for the next lap (Release); tickets are unique (fetch_add).
unsafe impl Sync for LineRing {}

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

impl Default for LineRing {
    fn default() -> Self {
        Self::new()
    }
}

impl LineRing {
    /// An empty ring.
    pub const fn new() -> LineRing {
        LineRing {
            slots: [const {
                Slot {
                    state: AtomicU64::new(0),
                    len: AtomicUsize::new(0),
                    text: UnsafeCell::new([0; LINE]),
                }
            }; SLOTS],
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            output: IrqSafeMutex::new(()),
        }
    }

    /// Queues `args` as one line (text, usually ending in a newline) and writes out whatever
    /// is ready with `write` if the output is free.
    pub fn print(&self, args: fmt::Arguments<'_>, write: &dyn Fn(&[u8])) {
        self.queue(args, write);
        // Against the holder's fence in `drain`: either it sees this line after letting go of
        // the output, or this `drain` sees the output free.
        fence(Ordering::SeqCst);
        self.drain(write);
    }

    /// Queues `args` as one line and leaves writing it out to the next [`LineRing::print`] or
    /// [`LineRing::drain`] on any CPU: for a CPU whose time matters more than its line's
    /// promptness (an AP printing while the BSP still starts others, each port write being a
    /// VM exit). Only a full ring makes it write lines out (`write`), to free a slot.
    pub fn queue(&self, args: fmt::Arguments<'_>, write: &dyn Fn(&[u8])) {
        let ticket = self.head.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(ticket % SLOTS as u64) as usize];
        // The slot is free once the holder wrote out the line that used it a lap ago.
        while slot.state.load(Ordering::Acquire) != free_for(ticket) {
            self.drain(write);
            core::hint::spin_loop();
        }
        // SAFETY: this ticket owns the slot until it is published ready (see `Sync` above).
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
        slot.state.store(ready_with(ticket), Ordering::Release);
    }

    /// If the output is free: writes out every finished line in ticket order, then looks again
    /// after letting go (a line finished while we held the output was left to us).
    pub fn drain(&self, write: &dyn Fn(&[u8])) {
        loop {
            let Some(guard) = self.output.try_lock() else {
                return;
            };
            self.write_ready(write);
            drop(guard);
            fence(Ordering::SeqCst);
            let tail = self.tail.load(Ordering::Relaxed);
            let next = &self.slots[(tail % SLOTS as u64) as usize];
            if next.state.load(Ordering::Acquire) != ready_with(tail) {
                return;
            }
        }
    }

    /// Whether the output is free and nothing waits (after writing out what is ready, if the
    /// output could be taken).
    pub fn try_idle(&self, write: &dyn Fn(&[u8])) -> bool {
        let Some(guard) = self.output.try_lock() else {
            return false;
        };
        self.write_ready(write);
        drop(guard);
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
    }

    /// Writes out the finished lines at the tail, in order. Only the output's holder calls it.
    fn write_ready(&self, write: &dyn Fn(&[u8])) {
        loop {
            let tail = self.tail.load(Ordering::Relaxed);
            let slot = &self.slots[(tail % SLOTS as u64) as usize];
            if slot.state.load(Ordering::Acquire) != ready_with(tail) {
                return;
            }
            let len = slot.len.load(Ordering::Relaxed);
            // SAFETY: the slot is ready with the tail's ticket: its producer finished this line,
            // and only the holder reads it until it is freed below.
            write(unsafe { &(&*slot.text.get())[..len] });
            slot.state
                .store(free_for(tail + SLOTS as u64), Ordering::Release);
            self.tail.store(tail + 1, Ordering::Relaxed);
        }
    }

    /// Writes out the queued lines and then `args`, without the output lock: for reports after
    /// every other CPU was stopped (a stopped CPU may have held the lock mid-line) or when the
    /// lock holder may never come back (it faulted).
    ///
    /// # Safety
    /// No other CPU writes out at the same time: every other CPU is stopped, or the caller
    /// accepts that lines may interleave and that a line being written by another holder may
    /// be written twice.
    pub unsafe fn print_bypassing_lock(&self, args: fmt::Arguments<'_>, write: &dyn Fn(&[u8])) {
        self.write_ready(write);
        struct Direct<'a>(&'a dyn Fn(&[u8]));
        impl Write for Direct<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                (self.0)(s.as_bytes());
                Ok(())
            }
        }
        let _ = Direct(write).write_fmt(args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_from_many_threads_come_out_whole_and_in_order_per_thread() {
        static RING: LineRing = LineRing::new();
        static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        fn write(b: &[u8]) {
            OUT.lock().unwrap().extend_from_slice(b);
        }
        // A ring that deadlocks must fail the test, not hang the suite: the producers report
        // on a channel, waited for with a deadline (threads left spinning die with the test
        // process).
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..8 {
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..2000 {
                    RING.print(format_args!("thread {t} line {i}\n"), &write);
                }
                let _ = done.send(t);
            });
        }
        for _ in 0..8 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("every producer finishes (a stuck ring never lets them)");
        }
        RING.drain(&write);
        let out = String::from_utf8(OUT.lock().unwrap().clone()).unwrap();
        let mut next = [0u32; 8];
        for line in out.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 4, "a whole line: {line:?}");
            let (t, i): (usize, u32) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 8]);
    }

    #[test]
    fn queued_lines_wait_for_the_next_print_and_keep_their_order() {
        let ring = Box::new(LineRing::new());
        let out = Mutex::new(Vec::new());
        let write = |b: &[u8]| out.lock().unwrap().extend_from_slice(b);
        ring.queue(format_args!("a\n"), &write);
        ring.queue(format_args!("b\n"), &write);
        assert!(out.lock().unwrap().is_empty());
        ring.print(format_args!("c\n"), &write);
        assert_eq!(out.lock().unwrap().as_slice(), b"a\nb\nc\n");
        // More queued lines than slots: the ring writes out to make room, nothing is lost.
        out.lock().unwrap().clear();
        for i in 0..SLOTS + 3 {
            ring.queue(format_args!("{i}\n"), &write);
        }
        ring.drain(&write);
        let want: String = (0..SLOTS + 3).map(|i| format!("{i}\n")).collect();
        assert_eq!(out.lock().unwrap().as_slice(), want.as_bytes());
    }

    #[test]
    fn long_lines_are_cut() {
        let ring = Box::new(LineRing::new());
        let out = Mutex::new(Vec::new());
        let write = |b: &[u8]| out.lock().unwrap().extend_from_slice(b);
        ring.print(format_args!("{}\n", "x".repeat(2 * LINE)), &write);
        let text = out.lock().unwrap().clone();
        assert_eq!(text.len(), LINE);
        assert!(text.ends_with(b"...\n"));
    }
}
