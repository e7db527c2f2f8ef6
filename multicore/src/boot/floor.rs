//! The wake-up floor: how long the machine takes to wake the APs at all.
//!
//! The probe (`floor_probe.S`) is started exactly like the bring-up's parallel start (INIT to
//! every AP, the policy's waits, SIPI to every AP, a second SIPI if not all counted in), but
//! each AP only increments a counter and halts. The time from the first INIT until the counter
//! reaches the number of APs is the floor a bring-up of the same CPUs cannot beat. Afterwards
//! every AP gets INIT again (back to wait-for-SIPI) and the page is restored, so the real
//! bring-up can follow.

use super::delays::Delays;
use super::host::Host;
use super::lowmem::choose_trampoline_page;
use super::start::BringupError;
use crate::arch::x86_64::apic::icr::Icr;
use crate::arch::x86_64::apic::LocalApic;
use crate::arch::x86_64::tsc::{self, Tsc};
use crate::cmdline::DelayPolicy;
use core::sync::atomic::{AtomicU32, Ordering};

extern "C" {
    static floor_probe_start: u8;
    static floor_probe_end: u8;
    static floor_probe_counter: u32;
}

/// What the probe measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorReport {
    /// APs asked.
    pub aps: u32,
    /// APs that counted themselves in.
    pub arrived: u32,
    /// Microseconds from the first INIT until the last AP counted in (or the timeout).
    pub time_us: u64,
}

/// Runs the floor probe on the APs `apic_ids[1..]` with the waits of `delays`.
pub fn measure<H: Host>(
    host: &H,
    apic: &LocalApic,
    tsc: &Tsc,
    apic_ids: &[u32],
    delays: DelayPolicy,
) -> Result<FloorReport, BringupError> {
    let aps = &apic_ids[1.min(apic_ids.len())..];
    let n = aps.len() as u32;
    if n == 0 {
        return Ok(FloorReport {
            aps: 0,
            arrived: 0,
            time_us: 0,
        });
    }
    let page = choose_trampoline_page(&host.low_memory()).map_err(BringupError::NoLowPage)?;
    let start = &raw const floor_probe_start;
    let len = (&raw const floor_probe_end) as usize - start as usize;
    let counter_offset = (&raw const floor_probe_counter) as usize - start as usize;
    let mut saved = [0u8; 64];
    assert!(len <= saved.len(), "the probe is a few bytes");
    let page_ptr = host.phys().virt(page) as *mut u8;
    // SAFETY: `page` is free RAM below 1 MiB mapped writable through the host's mapping (the
    // bring-up's contract); the probe is `len` bytes of this image; `saved` has room for them.
    unsafe {
        core::ptr::copy_nonoverlapping(page_ptr, saved.as_mut_ptr(), len);
        core::ptr::copy_nonoverlapping(start, page_ptr, len);
    }
    // SAFETY: the counter is a 4-byte aligned u32 inside the copied probe; APs increment it with
    // `lock inc`, so it is only accessed atomically from here on.
    let counter = unsafe { AtomicU32::from_ptr(page_ptr.add(counter_offset) as *mut u32) };
    counter.store(0, Ordering::SeqCst);

    let d = Delays::of(delays);
    let vector = (page >> 12) as u8;
    let send_all = |icr: Icr| {
        for &id in aps {
            apic.send(icr, id, tsc).map_err(BringupError::Apic)?;
        }
        Ok::<(), BringupError>(())
    };
    let wait = |us: u64| {
        let deadline = tsc.deadline_us(us);
        while counter.load(Ordering::Acquire) < n && !tsc.passed(deadline) {
            core::hint::spin_loop();
        }
    };
    let first_init = tsc::now();
    send_all(Icr::init())?;
    tsc.delay_us(d.after_init_us);
    send_all(Icr::startup(vector))?;
    tsc.delay_us(d.after_sipi_us);
    wait(d.second_sipi_after_us);
    if counter.load(Ordering::Acquire) < n {
        send_all(Icr::startup(vector))?;
        tsc.delay_us(d.after_sipi_us);
    }
    wait(d.attempt_timeout_us);
    let done = tsc::now();
    let arrived = counter.load(Ordering::Acquire);
    // Back to wait-for-SIPI, then give the page back.
    send_all(Icr::init())?;
    tsc.delay_us(d.after_init_us);
    // SAFETY: the APs were sent INIT and no longer run the probe; same page and buffer as above.
    unsafe { core::ptr::copy_nonoverlapping(saved.as_ptr(), page_ptr, len) };
    Ok(FloorReport {
        aps: n,
        arrived,
        time_us: tsc.ticks_to_us(done - first_init),
    })
}
