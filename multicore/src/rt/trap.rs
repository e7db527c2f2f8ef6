//! The one Rust entry for every interrupt and exception (`trap.S` stubs call it).

use super::percpu::current;
use super::{stop, vectors};

core::arch::global_asm!(include_str!("../arch/x86_64/trap.S"), DISPATCH = sym trap_dispatch);

/// The registers as `trap.S` saved them, then the CPU's interrupt frame.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number (pushed by the stub).
    pub vector: u64,
    /// Error code (pushed by the CPU, or 0 by the stub).
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Called by `trap.S` with interrupts off (interrupt gates), on the interrupted stack or the
/// vector's IST stack.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    match vector as u8 {
        2 => stop::on_nmi(frame),
        0..=31 => exception(frame),
        vectors::TIMER => {
            let cpu = current().expect("timer interrupt before the runtime");
            cpu.count_timer();
            cpu.apic.eoi();
        }
        vectors::CALL => match current() {
            Some(cpu) => {
                cpu.ipis
                    .fetch_add(1, crate::sync::primitives::Ordering::Relaxed);
                cpu.apic.eoi();
                cpu.calls.run_pending();
            }
            // An AP halted in `join` before the runtime existed: this IPI only wakes it.
            None => crate::arch::x86_64::apic::LocalApic::current().eoi(),
        },
        vectors::PING | vectors::PONG => {
            if let Some(cpu) = current() {
                cpu.apic.eoi();
            }
            if vector as u8 == vectors::PING {
                super::ipi::on_ping();
            } else {
                super::ipi::on_pong();
            }
        }
        vectors::SPURIOUS => {} // no EOI for spurious interrupts (SDM Vol. 3A §11.9)
        // Spurious IRQ 7 / 15 of the masked legacy PICs: nothing to acknowledge at the APIC.
        v if v == vectors::LEGACY_PIC_BASE + 7 || v == vectors::LEGACY_PIC_BASE + 15 => {}
        _ => {
            if let Some(cpu) = current() {
                cpu.apic.eoi();
            }
            stop::fatal(format_args!(
                "unexpected interrupt vector {vector:#x} on CPU {} at RIP {:#x}",
                cpu_label(),
                frame.rip
            ));
        }
    }
}

/// "N" for any CPU of the bring-up (runtime CPU or hosted AP), "?" before it.
fn cpu_label() -> CpuLabel {
    CpuLabel(crate::cpu_local::current_index())
}

struct CpuLabel(Option<u32>);

impl core::fmt::Display for CpuLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(i) => write!(f, "{i}"),
            None => write!(f, "?"),
        }
    }
}

/// A CPU exception: report it and stop every CPU.
fn exception(frame: &TrapFrame) -> ! {
    let name = vectors::exception_name(frame.vector);
    if frame.vector == 14 {
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        stop::fatal(format_args!(
            "{name} on CPU {}: vector {}, error code {:#x}, RIP {:#x}, CR2 {cr2:#x}",
            cpu_label(),
            frame.vector,
            frame.error_code,
            frame.rip
        ))
    } else {
        stop::fatal(format_args!(
            "{name} on CPU {}: vector {}, error code {:#x}, RIP {:#x}",
            cpu_label(),
            frame.vector,
            frame.error_code,
            frame.rip
        ))
    }
}
