//! The interrupt vectors the runtime uses (0..=31 are the CPU's exceptions).

/// Non-maskable interrupt (on its own IST stack).
pub const NMI: u8 = 2;
/// Double fault (on its own IST stack: it often comes from a broken stack).
pub const DOUBLE_FAULT: u8 = 8;
/// Machine check (on its own IST stack).
pub const MACHINE_CHECK: u8 = 18;

/// The exceptions that run on IST stacks, `(vector, IST index)`: the ones that can arrive with
/// a broken or borrowed stack. The runtime's IDT and a hosted AP's IDT both use it.
pub const ON_IST_STACKS: [(u8, u8); 3] = [
    (DOUBLE_FAULT, crate::arch::x86_64::gdt::IST_DOUBLE_FAULT),
    (NMI, crate::arch::x86_64::gdt::IST_NMI),
    (MACHINE_CHECK, crate::arch::x86_64::gdt::IST_MACHINE_CHECK),
];

/// Where the legacy PICs are moved (and masked): IRQ 0..15 at 0x20..0x2F, never raised except
/// as a spurious IRQ 7/15, which the dispatcher ignores.
pub const LEGACY_PIC_BASE: u8 = 0x20;

/// Local APIC timer.
pub const TIMER: u8 = 0x30;
/// Cross-CPU call / wake-up IPI: "look at your call queue".
pub const CALL: u8 = 0x31;
/// Latency probe: the target answers with [`PONG`] to the sender (see `ipi::ping`).
pub const PING: u8 = 0x32;
/// Answer to [`PING`].
pub const PONG: u8 = 0x33;
/// Spurious interrupts (SDM Vol. 3A §11.9: low 4 bits 1111b on older parts; 0xFF works on all).
pub const SPURIOUS: u8 = 0xFF;

/// Name of an exception vector (SDM Vol. 3A Table 7-1).
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "NMI",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "BOUND range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack fault (#SS)",
        13 => "general protection (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point (#XM)",
        20 => "virtualization (#VE)",
        21 => "control protection (#CP)",
        _ => "reserved exception",
    }
}
