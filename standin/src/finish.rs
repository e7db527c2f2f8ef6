//! Every way the run ends: the program exits or is killed, a CPU exception, a host error. Each
//! prints why, the system calls made, checks the dead boot stack and the occupied pages (a
//! damaged word fails the run whatever the program's status) and leaves through isa-debug-exit.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{exit, ExitCode};
use crate::{lowmem, program, syscall, timer};

/// Set once the program runs: the summary of its system calls is worth printing.
static PROGRAM_STARTED: AtomicBool = AtomicBool::new(false);
/// Set once the dead boot stack is filled: worth checking.
static LOW_MEMORY_LIVE: AtomicBool = AtomicBool::new(false);

/// Notes that the dead boot stack is filled (lowmem::init ran).
pub fn low_memory_is_live() {
    LOW_MEMORY_LIVE.store(true, Ordering::Relaxed);
}

/// Notes that the program starts now.
pub fn program_starts() {
    PROGRAM_STARTED.store(true, Ordering::Relaxed);
}

/// The program called exit/exit_group.
pub fn program_exited(status: u64) -> ! {
    crate::println!(
        "standin: {} exited with status {status} after {} timer ticks",
        program::name(),
        timer::ticks()
    );
    end(status == 0)
}

/// The program sent itself a signal (abort() raises SIGABRT).
pub fn program_killed(signal: u64) -> ! {
    crate::println!(
        "standin: {} killed by signal {signal} ({}) after {} timer ticks",
        program::name(),
        standin_core::linux::signal_name(signal),
        timer::ticks()
    );
    end(false)
}

/// A CPU exception was reported.
pub fn after_fault() -> ! {
    end(false)
}

/// The host found something it cannot go on with.
pub fn host_error(args: fmt::Arguments<'_>) -> ! {
    crate::println!("standin: error: {args}");
    end(false)
}

fn end(success: bool) -> ! {
    if PROGRAM_STARTED.load(Ordering::Relaxed) {
        syscall::print_summary();
        crate::println!(
            "standin: memory in use at exit: {} KiB",
            crate::frames::in_use_bytes() / 1024
        );
    }
    let mut intact = true;
    if LOW_MEMORY_LIVE.load(Ordering::Relaxed) {
        intact = lowmem::check(|damage| {
            crate::println!("standin: LOW MEMORY CORRUPTED: {damage}");
        });
        if intact {
            crate::println!("standin: low memory intact: {}", lowmem::Summary);
        } else {
            crate::println!(
                "standin: failing the run: the dead boot stack or an occupied page is not as the host left it"
            );
        }
    }
    exit(if success && intact {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// Prints the reason and ends the run as a failure.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::finish::host_error(format_args!($($arg)*)) };
}
