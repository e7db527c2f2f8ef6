//! The wake-up floor: how long the machine takes to wake the APs at all.
//!
//! A benchmark instrument of the demo kernel, not part of the library. The probe
//! (`floor_probe.S`) is started exactly like the bring-up's parallel start (INIT to
//! every AP, the policy's waits, SIPI to every AP, a second SIPI if not all counted in), but
//! each AP only increments a counter and halts. The time from the first INIT until the counter
//! reaches the number of APs is the floor a bring-up of the same CPUs cannot beat. Afterwards
//! every AP gets INIT again (back to wait-for-SIPI), so the real bring-up can follow.
//!
//! The probe stays in the page until the caller restores it, after the bring-up: a second SIPI
//! sent to an AP whose vCPU had not yet run (counter still short) can still be pending when the
//! INIT that sends the AP back arrives. The CPU then takes the INIT and the stale SIPI together
//! and starts again at the page. With the probe still there it only counts itself in once more
//! and halts, and the bring-up's own INIT resets it; with the page's old bytes back it would run
//! whatever they are (seen: a triple fault that reset the VM, about once in 100 TCG boots at
//! `-smp 4..16`, before this order). The bring-up that follows puts its trampoline in the same
//! page (the census of the same pages picks the same one), where a late start is just an early
//! check-in.

use core::sync::atomic::{AtomicU32, Ordering};
use multicore::arch::x86_64::apic::icr::Icr;
use multicore::arch::x86_64::apic::LocalApic;
use multicore::arch::x86_64::spin_wait::SpinWait;
use multicore::arch::x86_64::tsc::{self, Tsc};
use multicore::boot::delays::Delays;
use multicore::boot::{live_pages, BringupError, DelayPolicy, Host};

core::arch::global_asm!(include_str!("floor_probe.S"));

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
    /// Microseconds from the first INIT until the first SIPI had been sent to every AP: the
    /// BSP's send loop, to hold against the bring-up's (its `phases:` lines).
    pub sipis_sent_us: u64,
}

/// The probe installed in the trampoline page, and the bytes it replaced.
pub struct FloorProbe {
    page: u64,
    page_ptr: *mut u8,
    len: usize,
    counter_offset: usize,
    saved: [u8; 64],
}

impl FloorProbe {
    /// Copies the probe into the page the bring-up would use (the page's bytes are kept for
    /// [`FloorProbe::restore`]).
    pub fn install<H: Host>(host: &H) -> Result<FloorProbe, BringupError> {
        let page = live_pages::census(host)?
            .trampoline_page()
            .map_err(BringupError::NoLowPage)?;
        let start = &raw const floor_probe_start;
        let len = (&raw const floor_probe_end) as usize - start as usize;
        let counter_offset = (&raw const floor_probe_counter) as usize - start as usize;
        let mut saved = [0u8; 64];
        assert!(len <= saved.len(), "the probe is a few bytes");
        let page_ptr = host.phys().virt(page) as *mut u8;
        // SAFETY: `page` is free RAM below 1 MiB mapped writable through the host's mapping (the
        // bring-up's contract); the probe is `len` bytes of this image; `saved` has room.
        unsafe {
            core::ptr::copy_nonoverlapping(page_ptr, saved.as_mut_ptr(), len);
            core::ptr::copy_nonoverlapping(start, page_ptr, len);
        }
        Ok(FloorProbe {
            page,
            page_ptr,
            len,
            counter_offset,
            saved,
        })
    }

    /// Starts the probe on the APs `apic_ids[1..]` with the waits of `delays` and sends them
    /// back to wait-for-SIPI.
    pub fn measure(
        &mut self,
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
                sipis_sent_us: 0,
            });
        }
        // SAFETY: the counter is a 4-byte aligned u32 inside the installed probe; APs increment
        // it with `lock inc`, so it is only accessed atomically.
        let counter =
            unsafe { AtomicU32::from_ptr(self.page_ptr.add(self.counter_offset) as *mut u32) };
        counter.store(0, Ordering::SeqCst);

        let d = Delays::of(delays);
        let vector = (self.page >> 12) as u8;
        let send_all = |icr: Icr| {
            for &id in aps {
                apic.send(icr, id, tsc).map_err(BringupError::Apic)?;
            }
            Ok::<(), BringupError>(())
        };
        // The bring-up's own poll (boot/kick.rs), so that both wait alike.
        let spin = SpinWait::detect();
        let wait = |us: u64| {
            let deadline = tsc.deadline_us(us);
            while counter.load(Ordering::Acquire) < n && !tsc.passed(deadline) {
                spin.relax();
            }
        };
        let first_init = tsc::now();
        send_all(Icr::init())?;
        tsc.delay_us(d.after_init_us);
        send_all(Icr::startup(vector))?;
        let sipis_sent = tsc::now();
        tsc.delay_us(d.after_sipi_us);
        wait(d.second_sipi_after_us);
        if counter.load(Ordering::Acquire) < n {
            send_all(Icr::startup(vector))?;
            tsc.delay_us(d.after_sipi_us);
        }
        wait(d.attempt_timeout_us);
        let done = tsc::now();
        let arrived = counter.load(Ordering::Acquire).min(n);
        // Back to wait-for-SIPI (the probe stays: see the module docs).
        send_all(Icr::init())?;
        tsc.delay_us(d.after_init_us);
        Ok(FloorReport {
            aps: n,
            arrived,
            time_us: tsc.ticks_to_us(done - first_init),
            sipis_sent_us: tsc.ticks_to_us(sipis_sent - first_init),
        })
    }

    /// Gives the page its bytes back. Call it once no AP can start from the page any more:
    /// after the bring-up that followed (its APs run their own code), not right after
    /// [`FloorProbe::measure`].
    pub fn restore(self) {
        // SAFETY: the same page and length as in `install`; by the caller's contract nothing
        // executes from the page any more.
        unsafe { core::ptr::copy_nonoverlapping(self.saved.as_ptr(), self.page_ptr, self.len) };
    }
}

/// `bench=floor`: the floor, measured twice, then the bring-up of the same CPUs, then the exit.
/// The first wake of a vCPU pays one-time costs (under TCG, translating the real-mode code)
/// which the bring-up that follows no longer pays: the second run is the floor, the first is
/// printed as `cold_us`. The probe stays in the trampoline page until the bring-up is over (see
/// the module docs); the bring-up reuses that page.
pub fn measure_then_bring_up(
    host: &'static crate::host::DemoHost,
    apic: &LocalApic,
    tsc: &Tsc,
    apic_ids: &[u32],
    options: &demo_options::Options,
) -> ! {
    let measured = FloorProbe::install(host).and_then(|mut probe| {
        let cold = probe.measure(apic, tsc, apic_ids, options.delays)?;
        let warm = probe.measure(apic, tsc, apic_ids, options.delays)?;
        Ok((probe, cold, warm))
    });
    let (probe, cold, warm) = match measured {
        Ok(m) => m,
        Err(e) => fail!("floor probe: {e}"),
    };
    crate::println!(
        "floor: cpus={} arrived={} time_us={} cold_us={} sipis_sent_us={} delays={}",
        warm.aps + 1,
        warm.arrived + 1,
        warm.time_us,
        cold.time_us,
        warm.sipis_sent_us,
        options.delays.as_str()
    );
    let report = crate::bringup::bring_up(host, apic, tsc, apic_ids, options);
    probe.restore();
    crate::bringup::print_phases(tsc, &report);
    crate::exit::exit(crate::exit::ExitCode::Success) // the runner wanted these figures only
}
