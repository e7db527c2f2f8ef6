//! `scope(|s| ...)`: tasks spawned with `s.spawn` may borrow from the caller's stack, and the
//! scope does not return before every one of them (and those they spawn) has run. The count of
//! unfinished tasks starts at one for the scope's own body; the task that brings it to zero sets
//! the latch the scope's owner waits on.

use core::marker::PhantomData;

use super::abandon::TaskPanicked;
use super::job::HeapJob;
use super::latch::Latch;
use super::registry::Registry;
use crate::sync::primitives::{AtomicU32, AtomicUsize, Ordering};

/// A scope's shared state; tasks reach it by reference.
pub struct Scope<'scope> {
    registry: &'scope Registry,
    pending: AtomicUsize,
    latch: Latch,
    /// 0, or 1 + the CPU a task panicked on (abandon.rs).
    panicked: AtomicU32,
    /// Invariant in 'scope, like `std::thread::Scope`: tasks may borrow anything that outlives
    /// the scope, and nothing shorter.
    _marker: PhantomData<&'scope mut &'scope ()>,
}

/// A `Scope` pointer that may cross CPUs: tasks only use it while the scope waits for them.
struct ScopePtr<'scope>(*const Scope<'scope>);
// SAFETY: the scope outlives every task (it waits for `pending` to reach zero), and a Scope is
// only used through `&` (its fields are atomics and a shared registry).
unsafe impl Send for ScopePtr<'_> {}

impl<'scope> Scope<'scope> {
    /// Runs `task` on some worker, with this scope again so that it can spawn more.
    pub fn spawn<F>(&self, task: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let scope = ScopePtr(self);
        let run = move || {
            let scope = scope;
            // SAFETY: the scope is alive: it waits until this task has called `task_done`.
            let s = unsafe { &*scope.0 };
            match s.registry.current_worker() {
                Some(w) => {
                    s.registry
                        .run_as_job(w, scope.0 as *const (), Scope::abandon_task, || task(s))
                }
                None => task(s),
            }
            // SAFETY: as above; this is the task's last access to the scope.
            unsafe { Scope::task_done(scope.0) };
        };
        // The closure borrows for 'scope only: the job must run before the scope ends, which
        // the scope's wait for its pending count guarantees.
        let job = HeapJob::into_job_ref(run);
        match self.registry.current_worker() {
            // SAFETY: this CPU is worker w; a heap job lives until it runs.
            Some(w) => unsafe { self.registry.push_local(w, job) },
            None => self.registry.inject(job),
        }
    }

    /// A task's CPU halted after a panic in it: the task counts as done, and the scope re-raises
    /// the panic when it ends.
    unsafe fn abandon_task(ctx: *const (), _registry: &Registry, cpu: u32) {
        let scope = ctx as *const Scope<'scope>;
        // SAFETY: the scope is alive until this task is counted done, just below.
        unsafe { (*scope).panicked.store(cpu + 1, Ordering::Relaxed) };
        // SAFETY: as above; the task's last access to the scope.
        unsafe { Scope::task_done(scope) };
    }

    /// A task (or the body) is finished; the last one sets the latch.
    ///
    /// # Safety
    /// `this` is alive; after the last decrement the owner may return, so nothing of the scope
    /// is touched afterwards but through the latch's own rule.
    unsafe fn task_done(this: *const Scope<'scope>) {
        // SAFETY: alive until pending reaches zero (the caller's contract).
        let scope = unsafe { &*this };
        let registry = scope.registry;
        if scope.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the latch is alive until set; the owner frees the scope after that.
            unsafe { Latch::set_and_wake(&scope.latch, registry) };
        }
    }
}

impl Registry {
    /// Runs `body` with a scope in which it may spawn tasks that borrow from the caller; returns
    /// `body`'s result once every task has run. The caller helps run them while it waits. A
    /// task that panicked (its CPU halted, abandon.rs) is re-raised here.
    pub fn scope<'scope, F, R>(&'scope self, body: F) -> R
    where
        F: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        match self.try_scope(body) {
            Ok(result) => result,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Registry::scope`], but a task that panicked is returned as an error (once every
    /// other task has run).
    pub fn try_scope<'scope, F, R>(&'scope self, body: F) -> Result<R, TaskPanicked>
    where
        F: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        let Some(w) = self.current_worker() else {
            return self.run_in_workers(move || self.try_scope(body));
        };
        let scope = Scope {
            registry: self,
            pending: AtomicUsize::new(1),
            latch: Latch::new(Some(w)),
            panicked: AtomicU32::new(0),
            _marker: PhantomData,
        };
        let result = body(&scope);
        // SAFETY: the scope lives on this frame until the wait below is over.
        unsafe { Scope::task_done(&scope) };
        self.wait_until(Some(w), &scope.latch);
        match scope.panicked.load(Ordering::Relaxed).checked_sub(1) {
            Some(cpu) => Err(TaskPanicked { cpu }),
            None => Ok(result),
        }
    }
}
