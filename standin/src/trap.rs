//! Where every interrupt and exception lands (from trap.S): the timer tick, the other legacy
//! IRQs, and the fault report for everything else.

use core::mem::{offset_of, size_of};

use crate::{fault, pic, timer, virtual_wire};

core::arch::global_asm!(include_str!("trap.S"), options(att_syntax));

/// The registers trap.S saves, then the vector, the error code and the CPU's interrupt frame.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// trap.S pushes 15 registers (rax last, so first here), after the stub's vector and error code
// and the CPU's 5-word frame (SDM Vol. 3A Figure 6-9, 64-bit mode).
const _: () = {
    assert!(offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(size_of::<TrapFrame>() == 22 * 8);
};

/// Called by trap.S on the gate's IST stack, interrupts off.
#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        v if v == pic::vector_of(timer::IRQ) => timer::tick(),
        v if pic::irq_of(v).is_some() => pic::unexpected(v),
        // The local APIC's spurious vector: no EOI (SDM Vol. 3A §11.9).
        virtual_wire::SPURIOUS => {}
        _ => fault::report(frame),
    }
}
