//! Reading memory that may not be mapped, without faulting the host: a short-lived IDT of the
//! library's own that turns a #PF or #GP on one known instruction into an error value.
//!
//! A hosted program tells the library how physical memory is mapped (`phys_offset`); if it is
//! wrong (0 on a Unikraft kernel, which maps nothing at 0), the first read through it faults,
//! and the host's fault handler ends the whole VM. So the library reads through the mapping
//! first under a [`ProbeSession`]:
//!
//! 1. interrupts off (IF saved), so no device interrupt is taken while the host's IDT is not
//!    loaded;
//! 2. the host's IDT (SIDT) is copied gate by gate into the library's table, and only #GP (13)
//!    and #PF (14) are replaced by `probe.S`'s handlers: every other vector — NMI, machine
//!    check, double fault, with their IST stacks — still goes straight to the host's handler;
//! 3. a probe copies with one `rep movsb`; a fault on that instruction resumes at the copy's
//!    error exit, a fault anywhere else is handed to the host's own #GP/#PF handler with the
//!    frame untouched, as if the library's table had not been there;
//! 4. dropping the session reloads the host's IDTR exactly as read and restores IF.
//!
//! Why that is safe: nothing the host relies on changes for any event but a fault on the
//! probing instruction, the host's IDT itself is only read, and the window is a few page-table
//! walks long. What a probe cannot make safe: reading a device register with read side
//! effects; the library only probes page tables and the memory the page tables say is RAM.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::interrupts;
use x86_64::instructions::segmentation::{Segment, CS};
use x86_64::instructions::tables::{lidt, sidt};
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::idt::Gate;

/// #GP and #PF (SDM Vol. 3A Table 7-1).
const GENERAL_PROTECTION: usize = 13;
const PAGE_FAULT: usize = 14;

/// The host's handlers for the two vectors, for faults that are not the probe's.
static HOST_GP: AtomicU64 = AtomicU64::new(0);
static HOST_PF: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    include_str!("probe.S"),
    HOST_GP = sym HOST_GP,
    HOST_PF = sym HOST_PF,
);

extern "C" {
    fn multicore_probe_copy(dst: *mut u8, src: *const u8, len: usize) -> u32;
    static multicore_probe_gp: u8;
    static multicore_probe_pf: u8;
}

#[repr(C, align(16))]
struct ProbeIdt(UnsafeCell<[Gate; 256]>);

// SAFETY: written only by the one open session (SESSION_OPEN), on its CPU, before it is loaded.
unsafe impl Sync for ProbeIdt {}

static PROBE_IDT: ProbeIdt = ProbeIdt(UnsafeCell::new([Gate::ABSENT; 256]));
static SESSION_OPEN: AtomicBool = AtomicBool::new(false);

/// Why no session could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// Another session is open.
    Busy,
    /// The host's IDT has no present #GP or #PF gate to hand other faults to.
    NoHostHandler,
}

/// A read that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The address read.
    pub addr: u64,
}

/// An open probe session on this CPU (see the module documentation); closed when dropped.
pub struct ProbeSession {
    host_idt: DescriptorTablePointer,
    interrupts_were_on: bool,
    /// The session must end on the CPU that opened it.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl ProbeSession {
    /// Opens a session: interrupts off, the probe IDT loaded.
    pub fn open() -> Result<ProbeSession, ProbeError> {
        if SESSION_OPEN.swap(true, Ordering::Acquire) {
            return Err(ProbeError::Busy);
        }
        let interrupts_were_on = interrupts::are_enabled();
        interrupts::disable();
        let host_idt = sidt();
        let host_gates = (host_idt.limit as usize + 1) / core::mem::size_of::<Gate>();
        // SAFETY: SESSION_OPEN makes this the only writer, and the probe table is not loaded on
        // any CPU (it is loaded only inside a session, on the session's CPU, and unloaded
        // before SESSION_OPEN is released). The host's IDT is mapped and readable at its base
        // (the CPU delivers interrupts through it); `host_gates` gates of it exist (its limit).
        let ready = unsafe {
            let gates = &mut *PROBE_IDT.0.get();
            let host = host_idt.base.as_ptr::<Gate>();
            for (vector, gate) in gates.iter_mut().enumerate() {
                *gate = if vector < host_gates {
                    host.add(vector).read_unaligned()
                } else {
                    Gate::ABSENT
                };
            }
            match (
                gates[GENERAL_PROTECTION].handler(),
                gates[PAGE_FAULT].handler(),
            ) {
                (Some(gp), Some(pf)) => {
                    HOST_GP.store(gp, Ordering::Relaxed);
                    HOST_PF.store(pf, Ordering::Relaxed);
                    let cs = CS::get_reg().0;
                    gates[GENERAL_PROTECTION] =
                        Gate::interrupt((&raw const multicore_probe_gp) as u64, cs);
                    gates[PAGE_FAULT] = Gate::interrupt((&raw const multicore_probe_pf) as u64, cs);
                    true
                }
                _ => false,
            }
        };
        let session = ProbeSession {
            host_idt,
            interrupts_were_on,
            _not_send: core::marker::PhantomData,
        };
        if !ready {
            drop(session); // restores IF, reloads the (unchanged) host IDTR
            return Err(ProbeError::NoHostHandler);
        }
        let probe = DescriptorTablePointer {
            limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
            base: VirtAddr::from_ptr(PROBE_IDT.0.get()),
        };
        // SAFETY: the table is 'static and complete: every gate is the host's own but #GP and
        // #PF, which point at probe.S on the current code segment; interrupts are off.
        unsafe { lidt(&probe) };
        Ok(session)
    }

    /// Copies `dst.len()` bytes from virtual address `src`; `Err` if the read faulted (`dst`
    /// may then hold part of the bytes).
    pub fn copy(&self, src: u64, dst: &mut [u8]) -> Result<(), Fault> {
        // SAFETY: `dst` is a valid buffer of that length; a fault reading `src` is caught by
        // this session's IDT (which `self` proves is loaded on this CPU) and reported.
        let faulted =
            unsafe { multicore_probe_copy(dst.as_mut_ptr(), src as *const u8, dst.len()) };
        if faulted == 0 {
            Ok(())
        } else {
            Err(Fault { addr: src })
        }
    }

    /// Reads the little-endian u64 at virtual address `addr`.
    pub fn read_u64(&self, addr: u64) -> Result<u64, Fault> {
        let mut bytes = [0u8; 8];
        self.copy(addr, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

impl Drop for ProbeSession {
    fn drop(&mut self) {
        // SAFETY: the host's own IDTR as SIDT read it when the session opened.
        unsafe { lidt(&self.host_idt) };
        if self.interrupts_were_on {
            interrupts::enable();
        }
        SESSION_OPEN.store(false, Ordering::Release);
    }
}
