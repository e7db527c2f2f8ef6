//! Ending the run: QEMU's isa-debug-exit device, else halting.

use x86_64::instructions::port::Port;

/// The isa-debug-exit device the runner adds (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xF4;

/// How the run ended. QEMU exits with `(value << 1) | 1`: 33 for success, 35 for failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The program exited with status 0 and the host found nothing wrong.
    Success = 0x10,
    /// A nonzero status, a fault, or a host-detected error (the reason was printed).
    Failure = 0x11,
}

/// Writes `code` to isa-debug-exit; without that device, halts for good.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xF4 is free on QEMU's machines unless isa-debug-exit sits there; with the
    // device the write ends QEMU, without it the write is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    crate::println!("standin: no isa-debug-exit device; halting");
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
