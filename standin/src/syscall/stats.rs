//! Which system calls the program made: counted, printed at exit as one line (the list a
//! program needs from its kernel), and a console line the first time an unanswered one comes.

use core::fmt::{self, Write};

use spin::Mutex;
use standin_core::linux::syscall_name;

/// Numbers counted (Linux x86_64 uses fewer than 500).
const NUMBERS: usize = 512;

struct Counts {
    calls: [u32; NUMBERS],
    reported_missing: [bool; NUMBERS],
}

static COUNTS: Mutex<Counts> = Mutex::new(Counts {
    calls: [0; NUMBERS],
    reported_missing: [false; NUMBERS],
});

/// Counts one call.
pub fn count(number: u64) {
    if let Some(c) = COUNTS.lock().calls.get_mut(number as usize) {
        *c = c.saturating_add(1);
    }
}

/// Says once per number that it is not answered.
pub fn not_implemented(number: u64) {
    let mut counts = COUNTS.lock();
    let first = counts
        .reported_missing
        .get_mut(number as usize)
        .map(|r| !core::mem::replace(r, true))
        .unwrap_or(true);
    drop(counts);
    if first {
        crate::println!(
            "standin: syscall {number} ({}) not implemented (returning -ENOSYS)",
            syscall_name(number)
        );
    }
}

struct Summary;

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = COUNTS.lock();
        let mut first = true;
        for (number, &n) in counts.calls.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{} {n}", syscall_name(number as u64))?;
            if counts.reported_missing[number] {
                f.write_char('!')?;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Prints "standin: system calls: name count, ..." (`!` marks the unanswered ones).
pub fn print_summary() {
    crate::println!("standin: system calls: {Summary}");
}
