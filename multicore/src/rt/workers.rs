//! The scheduler (`crate::sched`) on the runtime's CPUs: every CPU that joined the runtime is
//! a worker (index = CPU index). An AP with no job halts in the runtime's idle wait (serving
//! cross-CPU calls meanwhile) and a wake-up is the runtime's call IPI; the BSP works when it
//! calls `join`, `scope` or a parallel loop, and sleeps the same way while it waits. In a
//! hosted program the BSP is the host's CPU: it is worker 0 all the same (found through
//! `cpu_local`, which never reads through the host's GS), but it cannot be sent the library's
//! IPIs, so it polls where another worker would sleep.

use super::{current, idle, ipi, vectors};
use crate::sched::{Platform, Registry};

/// The runtime as the scheduler's platform.
pub(crate) struct RuntimeCpus;

impl Platform for RuntimeCpus {
    fn current_worker(&self) -> Option<usize> {
        if let Some(cpu) = current().filter(|c| c.joined()) {
            return Some(cpu.index as usize);
        }
        let local = crate::cpu_local::current()?;
        let hosted_bsp = local.role() == crate::cpu_local::CpuRole::HostedBsp;
        (hosted_bsp && super::runtime().is_some_and(|rt| rt.hosted)).then_some(0)
    }

    fn can_sleep(&self, worker: usize) -> bool {
        !(worker == 0 && super::runtime().is_some_and(|rt| rt.hosted))
    }

    fn wait(&self, _worker: usize, asleep: &dyn Fn() -> bool) {
        // Checked with interrupts off, halted with `sti; hlt` (idle.rs): the wake-up IPI that
        // follows a waker's state change cannot be missed.
        idle::wait_until(|| !asleep());
    }

    fn wake(&self, worker: usize) {
        // The call vector: its handler runs any pending calls, and the HLT returns.
        let _ = ipi::send(worker, vectors::CALL);
    }
}

pub(crate) static PLATFORM: RuntimeCpus = RuntimeCpus;

/// The runtime's scheduler, once [`super::start`] has run.
pub fn scheduler() -> &'static Registry {
    &super::runtime().expect("runtime not started").sched
}
