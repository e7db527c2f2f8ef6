//! Step 6 of the bring-up: INIT, SIPI and a second SIPI to a group of APs (the first one's
//! ahead of the others; under TCG it is a pilot the others wait for), the waits between them,
//! one retry for APs that show no sign of life, and failure (INIT, printed) for the rest.

use core::sync::atomic::{AtomicBool, Ordering};

use super::cpu_data::{CpuData, CpuState};
use super::delays::Delays;
use super::host::Host;
use super::phases::SentIpi;
use super::policy::Strategy;
use crate::arch::x86_64::apic::icr::Icr;
use crate::arch::x86_64::apic::LocalApic;
use crate::arch::x86_64::hypervisor::Hypervisor;
use crate::arch::x86_64::spin_wait::SpinWait;
use crate::arch::x86_64::tsc::{self, Tsc};

/// How long the others wait for a pilot that has shown life (reached the long-mode entry) to
/// come online ([`Kicker::kick_pilot_first`]). Its cold path under TCG took up to a few
/// milliseconds at 64-128 vCPUs on 2 host cores; cut short (at the second-SIPI wait, 1 ms)
/// the others ran into code still being translated and the bring-up took several times as
/// long under QEMU 10 (`bench --compare`, 32 and 64 CPUs). A pilot that never shows life
/// holds the others up for the second-SIPI wait only.
const PILOT_ONLINE_US: u64 = 10_000;

/// Sends the IPIs of one bring-up and judges its APs.
pub(super) struct Kicker<'a, H: Host> {
    pub(super) host: &'a H,
    /// Per CPU index: the BSP gave up on it (kept apart from the state word, which the AP
    /// itself writes).
    pub(super) failed: &'a [AtomicBool],
    pub(super) apic: &'a LocalApic,
    pub(super) tsc: &'a Tsc,
    pub(super) delays: Delays,
    pub(super) vector: u8,
    /// Whether a group starts with a pilot ([`Kicker::kick_pilot_first`]): where the CPUs
    /// translate code (QEMU's TCG, [`Kicker::pilot_pays`]).
    pub(super) pilot: bool,
    /// How the BSP polls for the APs (without PAUSE under TCG, where it costs the lock the
    /// waking APs need).
    pub(super) spin: SpinWait,
}

impl<H: Host> Kicker<'_, H> {
    fn is_failed(&self, cpu: &CpuData) -> bool {
        self.failed[cpu.index as usize].load(Ordering::Relaxed)
    }

    /// Sends `icr` (the IPI `sent`) to each CPU of `group` still in `state` (a send error
    /// fails that CPU), and stamps the send time in the CPU's phases.
    fn send_to(&self, group: &[&'static CpuData], icr: Icr, sent: SentIpi, only_if: CpuState) {
        for cpu in group {
            if cpu.state() == only_if && !self.is_failed(cpu) {
                cpu.stamps.stamp_sent(sent, tsc::now());
                if let Err(e) = self.apic.send(icr, cpu.apic_id, self.tsc) {
                    self.fail(cpu, format_args!("{e}"));
                }
            }
        }
    }

    /// Polls until every CPU of `group` is at least `state` (or failed), or until `us` pass
    /// without any of them getting there. The timeout counts from the last progress, not from
    /// the start: with hundreds of vCPUs on a few host cores, CPUs arrive one after another for
    /// longer than any fixed budget, yet each one that arrives proves the machine is moving.
    fn wait_all(&self, group: &[&'static CpuData], state: CpuState, us: u64) -> bool {
        let reached = |c: &&&'static CpuData| self.is_failed(c) || c.state() as u32 >= state as u32;
        let mut done = 0;
        let mut deadline = self.tsc.deadline_us(us);
        loop {
            let now_done = group.iter().filter(reached).count();
            if now_done == group.len() {
                return true;
            }
            if now_done > done {
                done = now_done;
                deadline = self.tsc.deadline_us(us);
            } else if self.tsc.passed(deadline) {
                return false;
            }
            self.spin.relax();
        }
    }

    /// INIT, SIPI and, for CPUs that have not checked in, a second SIPI; one retry of the whole
    /// sequence for CPUs that show no sign of life; then failure for the rest. A group of more
    /// than one CPU starts with a pilot where that pays ([`Kicker::kick_pilot_first`]);
    /// `first_started` says that the caller has sent the first CPU its INIT and SIPI already
    /// ([`Kicker::first_ipis_ahead`]).
    fn start_group(&self, group: &[&'static CpuData], verbose: bool, first_started: bool) {
        for attempt in 0..2 {
            if attempt == 0 && group.len() > 1 && self.pilot {
                self.kick_pilot_first(group, first_started);
            } else {
                // On the first attempt the first CPU's IPIs may be out already.
                let skip = usize::from(attempt == 0 && first_started);
                let group_left = &group[skip..];
                self.send_to(group_left, Icr::init(), SentIpi::Init, CpuState::NotStarted);
                self.tsc.delay_us(self.delays.after_init_us);
                self.send_to(
                    group_left,
                    Icr::startup(self.vector),
                    SentIpi::Sipi,
                    CpuState::NotStarted,
                );
            }
            if verbose {
                for cpu in group {
                    self.host
                        .print(format_args!("SIPI sent to CPU {}\n", cpu.index));
                }
            }
            self.tsc.delay_us(self.delays.after_sipi_us);
            if !self.wait_all(
                group,
                CpuState::InLongMode,
                self.delays.second_sipi_after_us,
            ) {
                self.send_to(
                    group,
                    Icr::startup(self.vector),
                    SentIpi::SecondSipi,
                    CpuState::NotStarted,
                );
                self.tsc.delay_us(self.delays.after_sipi_us);
            }
            if self.wait_all(group, CpuState::Arrived, self.delays.attempt_timeout_us) {
                return;
            }
            if attempt == 0 {
                // A CPU in the trampoline is making progress and is left alone; one with no
                // sign of life gets the whole sequence again (INIT resets it harmlessly: it
                // has touched nothing but its own registers). Known window: a CPU that leaves
                // NOT_STARTED between this check and its INIT (after 3 s without progress, a
                // few microseconds) is reset after it began Rust code; should it hold a lock
                // then, the lock stays held. Closing it needs the AP to wait for a "go" from
                // the BSP before taking any lock.
                for cpu in group
                    .iter()
                    .filter(|c| c.state() == CpuState::NotStarted && !self.is_failed(c))
                {
                    self.host.print(format_args!(
                        "warning: CPU {} (APIC ID {}) did not answer INIT/SIPI/SIPI ({} ms without any AP arriving); retrying\n",
                        cpu.index,
                        cpu.apic_id,
                        self.delays.attempt_timeout_us / 1000
                    ));
                }
            }
        }
        for cpu in group {
            let state = cpu.state();
            if (state as u32) < CpuState::Arrived as u32 && !self.is_failed(cpu) {
                self.fail(cpu, format_args!("{} (2 attempts)", state.describe()));
            }
        }
    }

    /// INIT and SIPI to every CPU of `group`, the first one (the pilot) ahead of the others:
    /// its SIPI goes out as early as the delays allow (before the other INITs when there is no
    /// wait after INIT), and the others' SIPIs only once it is online: after
    /// `second_sipi_after_us` if it shows no sign of life by then, else after at most
    /// [`PILOT_ONLINE_US`].
    ///
    /// Why: every AP runs the same code, and the first AP to run a stretch of it pays what is
    /// paid once for all (TCG translates it; on any CPU the caches fill). Started together, the
    /// APs all pay it at once: under TCG with many vCPUs on a few host cores they translate the
    /// same code side by side, and those that wait for a translation lock held by a vCPU thread
    /// the host has descheduled spin for milliseconds (a host profile of a 64-vCPU bring-up on
    /// 2 host cores, QEMU 7.2: three quarters of the APs' host time in `page_lock`, under
    /// `tb_link_page`). With a pilot the others find the code ready. Its cost is what the pilot
    /// takes beyond the other INITs, which run meanwhile; where nothing is translated it would
    /// be all cost, one AP's path before the others start, so only TCG has a pilot
    /// ([`Kicker::pilot_pays`]).
    fn kick_pilot_first(&self, group: &[&'static CpuData], pilot_started: bool) {
        let (pilot, others) = group.split_at(1);
        let startup = Icr::startup(self.vector);
        let not_started = CpuState::NotStarted;
        if self.delays.after_init_us == 0 {
            if !pilot_started {
                self.start_pilot(pilot[0]);
            }
            self.send_to(others, Icr::init(), SentIpi::Init, not_started);
        } else {
            self.send_to(group, Icr::init(), SentIpi::Init, not_started);
            self.tsc.delay_us(self.delays.after_init_us);
            self.send_to(pilot, startup, SentIpi::Sipi, not_started);
        }
        if self.wait_all(
            pilot,
            CpuState::InLongMode,
            self.delays.second_sipi_after_us,
        ) {
            self.wait_all(pilot, CpuState::Online, PILOT_ONLINE_US);
        }
        self.send_to(others, startup, SentIpi::Sipi, not_started);
    }

    /// INIT and SIPI to the first AP (the pilot of a larger group), back to back, as the
    /// bring-up's first IPIs: straight-line code without `send_to`'s checks, which cannot fail
    /// here (nothing has touched the AP yet). Its cost is latency before the first AP runs:
    /// under TCG every call and branch on this cold path ends a translation block the BSP
    /// translates first.
    #[inline(always)]
    fn start_pilot(&self, pilot: &'static CpuData) {
        pilot.stamps.stamp_sent(SentIpi::Init, tsc::now());
        let sent = self
            .apic
            .send(Icr::init(), pilot.apic_id, self.tsc)
            .and_then(|()| {
                pilot.stamps.stamp_sent(SentIpi::Sipi, tsc::now());
                self.apic
                    .send(Icr::startup(self.vector), pilot.apic_id, self.tsc)
            });
        if let Err(e) = sent {
            self.fail(pilot, format_args!("{e}"));
        }
    }

    /// Whether a parallel start of `aps` sends its first CPU (the pilot of
    /// [`Kicker::kick_pilot_first`], or the only AP) INIT and SIPI back to back, and if so
    /// sends them: as the first thing the bring-up does after its clock starts, before the
    /// larger code of [`Kicker::start_group`] runs for the first time.
    #[inline(always)]
    fn first_ipis_ahead(&self, aps: &[&'static CpuData]) -> bool {
        let ahead = !aps.is_empty() && self.delays.after_init_us == 0;
        if ahead {
            self.start_pilot(aps[0]);
        }
        ahead
    }

    /// Whether starting a pilot AP ahead of the others pays: only where the CPUs translate
    /// code before they run it, which QEMU's TCG does and says in its CPUID signature. Under
    /// KVM and on bare metal the first AP's cold caches are its own, and the pilot's wait
    /// (its whole path: about 1 ms on the build machine's KVM, which emulates guest ring 0)
    /// would only delay the others.
    pub(super) fn pilot_pays(hypervisor: Hypervisor) -> bool {
        hypervisor == Hypervisor::Tcg
    }

    /// Waits for every started CPU of `group` to be marked online.
    fn wait_online(&self, group: &[&'static CpuData]) {
        if self.wait_all(group, CpuState::Online, self.delays.online_timeout_us) {
            return;
        }
        for cpu in group {
            if cpu.state() != CpuState::Online && !self.is_failed(cpu) {
                self.fail(cpu, format_args!("{}", CpuState::Arrived.describe()));
            }
        }
    }

    /// Gives up on `cpu`: INIT puts it back into wait-for-SIPI so that it cannot run from the
    /// trampoline page once the page is given back, then the failure is printed.
    fn fail(&self, cpu: &'static CpuData, why: core::fmt::Arguments<'_>) {
        if cpu.state() != CpuState::Online {
            let _ = self.apic.send(Icr::init(), cpu.apic_id, self.tsc);
        }
        self.failed[cpu.index as usize].store(true, Ordering::Relaxed);
        self.host.print(format_args!(
            "error: CPU {} (APIC ID {}) failed to start: {}\n",
            cpu.index, cpu.apic_id, why
        ));
    }
}

impl<H: Host> Kicker<'_, H> {
    /// Starts `aps` the way `strategy` says and waits until each is online or failed.
    pub(super) fn start_and_wait(&self, aps: &[&'static CpuData], strategy: Strategy) {
        match strategy {
            Strategy::Sequential => {
                for cpu in aps {
                    self.host
                        .print(format_args!("Starting CPU {}...\n", cpu.index));
                    self.start_group(core::slice::from_ref(cpu), true, false);
                    self.wait_online(core::slice::from_ref(cpu));
                }
            }
            Strategy::Parallel => {
                let first_started = self.first_ipis_ahead(aps);
                self.start_group(aps, false, first_started);
                self.wait_online(aps);
            }
        }
    }
}
