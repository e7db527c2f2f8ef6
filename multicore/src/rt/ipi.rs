//! Inter-processor interrupts between runtime CPUs: a fixed vector to one CPU, a set, or all
//! but the sender; and NMIs.
//!
//! "All but self" is sent to each runtime CPU in turn rather than with the ICR's all-excluding-
//! self shorthand: the shorthand also reaches CPUs outside the runtime (failed or parked ones,
//! hot-plug slots the firmware woke), which must not get vectors they have no handler for.

use super::percpu::current;
use super::{cpu, online_cpus, runtime};
use crate::arch::x86_64::apic::icr::Icr;
use crate::arch::x86_64::apic::ApicError;

/// A set of CPU indexes (up to 4096).
#[derive(Clone, PartialEq, Eq)]
pub struct CpuSet {
    bits: [u64; 64],
}

impl Default for CpuSet {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuSet {
    /// The empty set.
    pub const fn new() -> CpuSet {
        CpuSet { bits: [0; 64] }
    }

    /// Adds CPU `index`.
    pub fn insert(&mut self, index: usize) {
        self.bits[index / 64] |= 1 << (index % 64);
    }

    /// Whether CPU `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        self.bits
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// The indexes in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 64).filter(|&i| self.contains(i))
    }
}

/// Why an IPI was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// No such CPU, or it has not joined the runtime.
    NotRunning(usize),
    /// The local APIC refused.
    Apic(ApicError),
}

fn send_icr(target: usize, icr: Icr) -> Result<(), IpiError> {
    let rt = runtime().ok_or(IpiError::NotRunning(target))?;
    let dest = cpu(target)
        .filter(|c| c.joined())
        .ok_or(IpiError::NotRunning(target))?;
    let apic = current().map_or(rt.bsp_apic, |c| c.apic);
    apic.send(icr, dest.apic_id, &rt.tsc)
        .map_err(IpiError::Apic)
}

/// Sends `vector` to CPU `target`.
pub fn send(target: usize, vector: u8) -> Result<(), IpiError> {
    send_icr(target, Icr::fixed(vector))
}

/// Sends `vector` to every CPU in `set`.
pub fn send_set(set: &CpuSet, vector: u8) -> Result<(), IpiError> {
    set.iter().try_for_each(|i| send(i, vector))
}

/// Sends `vector` to every runtime CPU except the caller.
pub fn send_all_but_self(vector: u8) -> Result<(), IpiError> {
    let me = current().map(|c| c.index as usize);
    online_cpus()
        .map(|c| c.index as usize)
        .filter(|&i| Some(i) != me)
        .try_for_each(|i| send(i, vector))
}

/// Sends an NMI to CPU `target` (the runtime's NMI handler treats one outside a stop as fatal).
pub fn send_nmi(target: usize) -> Result<(), IpiError> {
    send_icr(target, Icr::nmi())
}

/// CPU index that sent the last PING (the one to answer), and PONGs received.
static PING_FROM: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static PONGS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Measures one IPI round trip: a PING to `target`, whose handler sends a PONG back; returns
/// the TSC ticks until the PONG's handler ran here. One ping at a time (the runtime's benchmark
/// runs it from one CPU).
pub fn ping(target: usize) -> Result<u64, IpiError> {
    use core::sync::atomic::Ordering;
    let me = current().map_or(0, |c| c.index);
    PING_FROM.store(me, Ordering::Relaxed);
    let before = PONGS.load(Ordering::Acquire);
    let start = crate::arch::x86_64::tsc::now();
    send(target, super::vectors::PING)?;
    while PONGS.load(Ordering::Acquire) == before {
        core::hint::spin_loop();
    }
    Ok(crate::arch::x86_64::tsc::now() - start)
}

/// PING handler: answer the sender.
pub(crate) fn on_ping() {
    let from = PING_FROM.load(core::sync::atomic::Ordering::Relaxed) as usize;
    let _ = send(from, super::vectors::PONG);
}

/// PONG handler: count it.
pub(crate) fn on_pong() {
    PONGS.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
}
