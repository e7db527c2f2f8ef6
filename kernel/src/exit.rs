//! Ending the run: QEMU's isa-debug-exit device, else halting.

use x86_64::instructions::port::Port;

/// The isa-debug-exit device the tests add (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xF4;

/// How the run ended. QEMU exits with `(value << 1) | 1`: 33 for success, 35 for failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Every check passed.
    Success = 0x10,
    /// Something failed (the reason was printed).
    Failure = 0x11,
}

/// Writes `code` to isa-debug-exit; if QEMU has no such device, halts this CPU for good (the
/// APs are already parked).
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xF4 is free on QEMU's machines unless isa-debug-exit sits there; with the
    // device the write ends QEMU, without it the write is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    multicore::boot::park_this_cpu()
}
