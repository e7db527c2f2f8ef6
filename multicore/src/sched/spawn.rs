//! Detached tasks: `spawn(f)` queues a `'static` closure for any worker and returns a handle;
//! `JoinHandle::join` waits for the result (a worker helps run other jobs meanwhile and sleeps
//! when there are none).

use alloc::sync::Arc;

use super::abandon::TaskPanicked;
use super::job::HeapJob;
use super::latch::Latch;
use super::registry::Registry;
use crate::sync::primitives::{AtomicU32, Ordering, UnsafeCell};

/// Where a detached task leaves its result.
struct Packet<T> {
    result: UnsafeCell<Option<T>>,
    latch: Latch,
    /// 0, or 1 + the CPU the task panicked on (abandon.rs).
    panicked: AtomicU32,
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

    /// Waits for the task and returns its result; a panic in the task is re-raised here.
    pub fn join(self) -> T {
        match self.try_join() {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits for the task: its result, or the CPU it panicked on.
    pub fn try_join(self) -> Result<T, TaskPanicked> {
        let w = self.registry.current_worker();
        if let Some(w) = w {
            self.packet.latch.register_owner(w);
        }
        self.registry.wait_until(w, &self.packet.latch);
        if let Some(cpu) = self.packet.panicked.load(Ordering::Relaxed).checked_sub(1) {
            return Err(TaskPanicked { cpu });
        }
        // SAFETY: the latch is set: the task has stored the result and touches it no more;
        // this handle is the only reader (it is consumed).
        Ok(self
            .packet
            .result
            .with_mut(|r| unsafe { (*r).take() })
            .expect("a finished task left its result"))
    }
}

impl<T> Packet<T> {
    /// The task's CPU halted after a panic in it: its handle is told.
    unsafe fn abandon(ctx: *const (), registry: &Registry, cpu: u32) {
        // SAFETY: ctx is the running task's packet, kept alive by the task's own reference.
        let packet = unsafe { &*(ctx as *const Packet<T>) };
        packet.panicked.store(cpu + 1, Ordering::Relaxed);
        packet.latch.set_and_wake_shared(registry);
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
            panicked: AtomicU32::new(0),
        });
        let theirs = packet.clone();
        let registry = self;
        let job = HeapJob::into_job_ref(move || {
            let ctx = &*theirs as *const Packet<T> as *const ();
            let value = match registry.current_worker() {
                Some(w) => registry.run_as_job(w, ctx, Packet::<T>::abandon, task),
                None => task(),
            };
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
