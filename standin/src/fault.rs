//! The report of a CPU exception (in the program or in the host): which one, where, the
//! registers; then the run ends as a failure.

use x86_64::registers::control::Cr2;

use crate::trap::TrapFrame;
use crate::{finish, program};

/// Mnemonic and name (SDM Vol. 3A Table 6-1 "Protected-Mode Exceptions and Interrupts").
fn name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point exception"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        v if v < 32 => ("#??", "reserved exception"),
        _ => ("IRQ", "unexpected interrupt"),
    }
}

/// What a page fault's error code says (SDM Vol. 3A §5.7 "Page-Fault Exceptions", Figure 5-12):
/// bit 0 protection violation (else not present), bit 1 write, bit 4 instruction fetch.
fn page_fault_cause(code: u64) -> &'static str {
    let present = code & 1 != 0;
    match (present, code & 2 != 0, code & 16 != 0) {
        (_, _, true) if present => "instruction fetch from a no-execute page",
        (_, _, true) => "instruction fetch from an unmapped page",
        (true, true, _) => "write to a read-only page",
        (false, true, _) => "write to an unmapped page",
        (true, false, _) => "read of a protected page",
        (false, false, _) => "read of an unmapped page",
    }
}

/// Prints the report and ends the run.
pub fn report(frame: &TrapFrame) -> ! {
    let (mnemonic, what) = name(frame.vector);
    let place = program::describe(frame.rip);
    crate::println!(
        "standin: CPU exception {mnemonic} ({what}, vector {}) {place}",
        frame.vector
    );
    let cr2 = Cr2::read_raw();
    if frame.vector == 14 {
        crate::println!(
            "standin:   page fault at {cr2:#x}: {}",
            page_fault_cause(frame.error_code)
        );
        if let Some(stack) = crate::stacks::overflowed(cr2) {
            crate::println!("standin:   the host's {stack} overflowed into its guard page");
        }
    }
    crate::println!(
        "standin:   error code {:#x}  RIP {:#x}  CR2 {cr2:#x}  RSP {:#x}  CS {:#x}  RFLAGS {:#x}",
        frame.error_code,
        frame.rip,
        frame.rsp,
        frame.cs,
        frame.rflags
    );
    crate::println!(
        "standin:   RAX {:#x} RBX {:#x} RCX {:#x} RDX {:#x} RSI {:#x} RDI {:#x} RBP {:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp
    );
    crate::println!(
        "standin:   R8 {:#x} R9 {:#x} R10 {:#x} R11 {:#x} R12 {:#x} R13 {:#x} R14 {:#x} R15 {:#x}",
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15
    );
    finish::after_fault()
}
