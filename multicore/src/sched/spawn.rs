//! Detached tasks: `spawn(f)` queues a `'static` closure for any worker and returns a handle;
//! `JoinHandle::join` waits for the result (a worker helps run other jobs meanwhile and sleeps
//! when there are none).

use alloc::sync::Arc;

use super::job::HeapJob;
use super::latch::Latch;
use super::registry::Registry;
use crate::sync::primitives::UnsafeCell;

/// Where a detached task leaves its result.
struct Packet<T> {
    result: UnsafeCell<Option<T>>,
    latch: Latch,
}

// SAFETY: `result` is written once by the task before the latch is set (release) and read by
// the joiner only after it saw the latch set (acquire); T: Send moves it across CPUs once.
unsafe impl<T: Send> Sync for Packet<T> {}

/// The handle of a detached task.
pub struct JoinHandle<T> {
    packet: Arc<Packet<T>>,
    registry: &'static Registry,
}

impl<T: Send + 'static> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.packet.latch.probe()
    }

    /// Waits for the task and returns its result.
    pub fn join(self) -> T {
        let w = self.registry.current_worker();
        if let Some(w) = w {
            self.packet.latch.register_owner(w);
        }
        self.registry.wait_until(w, &self.packet.latch);
        // SAFETY: the latch is set: the task has stored the result and touches it no more;
        // this handle is the only reader (it is consumed).
        self.packet
            .result
            .with_mut(|r| unsafe { (*r).take() })
            .expect("a finished task left its result")
    }
}

impl Registry {
    /// Queues `task` for any worker (the caller's own deque when it is a worker) and returns
    /// its handle.
    pub fn spawn<F, T>(&'static self, task: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let packet = Arc::new(Packet {
            result: UnsafeCell::new(None),
            latch: Latch::new(None),
        });
        let theirs = packet.clone();
        let registry = self;
        let job = HeapJob::into_job_ref(move || {
            let value = task();
            // SAFETY: only this task writes the result, before setting the latch.
            theirs.result.with_mut(|r| unsafe { *r = Some(value) });
            theirs.latch.set_and_wake_shared(registry);
        });
        match self.current_worker() {
            // SAFETY: this CPU is worker w; a heap job lives until it runs.
            Some(w) => unsafe { self.push_local(w, job) },
            None => self.inject(job),
        }
        JoinHandle {
            packet,
            registry: self,
        }
    }
}
