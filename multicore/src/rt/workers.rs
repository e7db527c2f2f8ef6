//! The scheduler (`crate::sched`) on the runtime's CPUs: every CPU that joined the runtime is
//! a worker (index = CPU index). An AP with no job halts in the runtime's idle wait (serving
//! cross-CPU calls meanwhile) and a wake-up is the runtime's call IPI; the BSP works when it
//! calls `join`, `scope` or a parallel loop, and sleeps the same way while it waits.

use super::{current, idle, ipi, vectors};
use crate::sched::{Platform, Registry};

/// The runtime as the scheduler's platform.
pub(crate) struct RuntimeCpus;

impl Platform for RuntimeCpus {
    fn current_worker(&self) -> Option<usize> {
        current().filter(|c| c.joined()).map(|c| c.index as usize)
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
