//! What happens to the jobs a CPU is running when a panic halts it (a hosted program: its
//! panic hook calls [`Registry::abandon_this_worker`], then the CPU halts; there is no
//! unwinding with `panic = "abort"`). Every job a worker runs for someone else registers a
//! frame here while it runs; abandoning walks the frames, innermost first, and tells each
//! job's waiter that the job panicked: a joiner re-raises the panic on its own CPU, a scope
//! re-raises it when it ends, a detached task's handle reports it. So no waiter hangs. The
//! frames live on the worker's stack, which is never reused (the CPU halts for good), so the
//! jobs it pushed stay valid for whoever steals them.

use core::ptr;

use super::registry::Registry;
use crate::sync::primitives::{AtomicPtr, Ordering};

/// Tells a job's waiter that the job panicked on CPU `cpu`.
pub(crate) type OnAbandon = unsafe fn(ctx: *const (), registry: &Registry, cpu: u32);

/// One running job, on the running worker's stack.
pub(crate) struct Frame {
    prev: *mut Frame,
    ctx: *const (),
    on_abandon: OnAbandon,
}

/// The innermost running job of a worker.
pub(crate) struct Frames {
    top: AtomicPtr<Frame>,
}

impl Frames {
    pub(crate) fn new() -> Frames {
        Frames {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// A job that panicked; the CPU it panicked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPanicked {
    /// The CPU (worker) index the task panicked on.
    pub cpu: u32,
}

impl core::fmt::Display for TaskPanicked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "a task panicked on CPU {}", self.cpu)
    }
}

impl Registry {
    /// Runs `f`, a job for someone else, on worker `w` with a frame that
    /// [`Registry::abandon_this_worker`] finds.
    pub(crate) fn run_as_job<R>(
        &self,
        w: usize,
        ctx: *const (),
        on_abandon: OnAbandon,
        f: impl FnOnce() -> R,
    ) -> R {
        let frames = self.frames(w);
        let mut frame = Frame {
            prev: frames.top.load(Ordering::Relaxed),
            ctx,
            on_abandon,
        };
        frames.top.store(&mut frame, Ordering::Relaxed);
        let result = f();
        frames.top.store(frame.prev, Ordering::Relaxed);
        result
    }

    /// The running worker is about to halt after a panic: every job it is running for someone
    /// else is reported panicked to its waiter (see the module docs). Call it from the panic
    /// hook of a CPU that will never resume; does nothing on a CPU that is no worker.
    pub fn abandon_this_worker(&self) {
        let Some(w) = self.current_worker() else {
            return;
        };
        let frames = self.frames(w);
        let mut frame = frames.top.swap(ptr::null_mut(), Ordering::Relaxed);
        while !frame.is_null() {
            // SAFETY: frames are pushed and popped by this worker alone, each on its own stack
            // frame that is still live (the job is running below us), innermost first.
            let (prev, ctx, on_abandon) =
                unsafe { ((*frame).prev, (*frame).ctx, (*frame).on_abandon) };
            // SAFETY: ctx is what the job registered with its handler, alive while it runs.
            unsafe { on_abandon(ctx, self, w as u32) };
            frame = prev;
        }
    }
}
