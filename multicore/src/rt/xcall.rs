//! Cross-CPU function calls: run a closure on another CPU (or on all) and get its result.
//!
//! Requests go into the target's [`CallQueue`](super::call_queue::CallQueue), which has no
//! capacity limit, so no request is ever lost or refused, then a CALL IPI wakes the target. A
//! caller waiting for its result keeps serving its own queue, so two CPUs calling each other at
//! the same moment both complete (each runs the other's request while it waits).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::call_queue::CallHandle;
use super::{cpu, ipi, this_cpu, tsc, vectors};
use crate::sync::primitives::spin_hint;

/// How long a synchronous call may wait before it is declared hung (then the machine stops:
/// the closure may still borrow the caller's stack, so returning would be unsound), unless
/// [`set_call_timeout_us`] says otherwise.
const DEFAULT_CALL_TIMEOUT_US: u64 = 10_000_000;

static CALL_TIMEOUT_US: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(DEFAULT_CALL_TIMEOUT_US);

/// Sets how long a synchronous call ([`run_on`], [`run_on_all`]) may take before it is declared
/// hung (default 10 s): longer for work that is slow on purpose, such as a lock benchmark on
/// more vCPUs than host cores.
pub fn set_call_timeout_us(us: u64) {
    CALL_TIMEOUT_US.store(us.max(1), core::sync::atomic::Ordering::Relaxed);
}

/// Why a call could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No such CPU, or it has not joined the runtime.
    NotRunning(usize),
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CallError::NotRunning(i) => write!(f, "CPU {i} does not run the runtime"),
        }
    }
}

/// Queues `job` on CPU `target` and sends it the CALL IPI, unless the queue already held
/// requests: then whoever made it non-empty has sent (or is about to send) the IPI, and the
/// target drains the whole queue when it takes it.
fn post(target: usize, job: Box<dyn FnOnce() + Send>) -> Result<CallHandle, CallError> {
    let dest = cpu(target)
        .filter(|c| c.joined())
        .ok_or(CallError::NotRunning(target))?;
    let pushed = dest.calls.push(job);
    if pushed.was_empty {
        ipi::send(target, vectors::CALL).map_err(|_| CallError::NotRunning(target))?;
    }
    Ok(pushed.handle)
}

/// Waits for `handle`, running this CPU's own queued calls meanwhile.
fn wait(handle: &CallHandle, target: usize) {
    let me = this_cpu();
    let tsc = tsc();
    let timeout_us = CALL_TIMEOUT_US.load(core::sync::atomic::Ordering::Relaxed);
    let deadline = tsc.deadline_us(timeout_us);
    while !handle.is_done() {
        me.calls.run_pending();
        if tsc.passed(deadline) {
            super::stop::fatal(format_args!(
                "CPU {}: cross-CPU call to CPU {target} not done after {} s",
                me.index,
                timeout_us / 1_000_000
            ));
        }
        spin_hint();
    }
}

/// Runs `f` on CPU `target` and returns its result (on the calling CPU directly when it is
/// the target). The closure may borrow from the caller: the call does not return before the
/// closure has run.
pub fn run_on<R: Send>(target: usize, f: impl FnOnce() -> R + Send) -> Result<R, CallError> {
    if this_cpu().index as usize == target {
        return Ok(f());
    }
    let mut result: Option<R> = None;
    let slot = SendPtr(&mut result as *mut Option<R>);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let slot = slot;
        // SAFETY: `result` outlives the job: the caller waits for completion below (or stops
        // the machine), and only this job writes it before completion is published.
        unsafe { *slot.0 = Some(f()) };
    });
    // SAFETY: erasing the closure's lifetime is sound because `wait` does not return before
    // the target has run it to completion (the queue publishes completion with Release after
    // the job returns); on a hang the machine is stopped instead of returning.
    let job: Box<dyn FnOnce() + Send + 'static> = unsafe { core::mem::transmute(job) };
    let handle = post(target, job)?;
    wait(&handle, target);
    Ok(result.expect("a completed call has stored its result"))
}

/// Queues `f` on CPU `target` and returns at once; the handle tells when it has run.
pub fn run_on_async(
    target: usize,
    f: impl FnOnce() + Send + 'static,
) -> Result<CallHandle, CallError> {
    post(target, Box::new(f))
}

/// Runs `f(cpu_index)` on every runtime CPU (this one included, last) and returns the results
/// by CPU index.
pub fn run_on_all<R: Send>(f: impl Fn(usize) -> R + Sync) -> Vec<(usize, R)> {
    let me = this_cpu().index as usize;
    let targets: Vec<usize> = super::online_cpus()
        .map(|c| c.index as usize)
        .filter(|&i| i != me)
        .collect();
    let mut results: Vec<Option<R>> = (0..targets.len()).map(|_| None).collect();
    let f = &f;
    let mut handles = Vec::with_capacity(targets.len());
    for (slot, &target) in results.iter_mut().zip(&targets) {
        let slot = SendPtr(slot as *mut Option<R>);
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            let slot = slot;
            // SAFETY: as in run_on: `results` outlives every job (all are waited for below);
            // each job writes its own element only.
            unsafe { *slot.0 = Some(f(target)) };
        });
        // SAFETY: as in run_on: every handle is waited for before `results` and `f` go away.
        let job: Box<dyn FnOnce() + Send + 'static> = unsafe { core::mem::transmute(job) };
        match post(target, job) {
            Ok(h) => handles.push((h, target)),
            Err(e) => super::stop::fatal(format_args!("run_on_all: {e}")),
        }
    }
    let mine = f(me);
    for (handle, target) in &handles {
        wait(handle, *target);
    }
    let mut out: Vec<(usize, R)> = targets
        .into_iter()
        .zip(results)
        .map(|(t, r)| (t, r.expect("a completed call has stored its result")))
        .collect();
    out.push((me, mine));
    out.sort_by_key(|(i, _)| *i);
    out
}

/// A raw pointer the closure may carry to another CPU.
struct SendPtr<T>(*mut T);
// SAFETY: the pointee is only written by the one job holding the pointer, while its owner
// waits (see run_on); `T: Send` is required by the callers' bounds.
unsafe impl<T: Send> Send for SendPtr<T> {}
