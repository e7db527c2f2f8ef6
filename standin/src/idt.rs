//! The interrupt descriptor table: 256 interrupt gates (IF cleared on entry), each on an IST
//! stack (gdt.rs), each entering its stub in trap.S (SDM Vol. 3A §6.14.1 "64-Bit Mode IDT",
//! Figure 6-8 for the gate layout).

use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use crate::gdt::{self, IST_CRITICAL, IST_EXCEPTION, IST_IRQ};

/// Bytes between two stubs in trap.S.
const STUB_SIZE: u64 = 16;
/// Type 0xE (64-bit interrupt gate), DPL 0, present (SDM Vol. 3A Table 3-2, Figure 6-8).
const INTERRUPT_GATE: u8 = 0x8E;

extern "C" {
    /// The first stub (trap.S).
    static trap_stubs: u8;
    /// One past the last stub (trap.S).
    static trap_stubs_end: u8;
}

/// One 16-byte gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

impl Gate {
    fn new(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: gdt::CODE,
            ist,
            attributes: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// The IST slot for `vector`: NMI (2), double fault (8) and machine check (18) on their own
/// stack, other exceptions (< 32) on the exception stack, interrupts on the IRQ stack.
fn ist_for(vector: u64) -> u8 {
    match vector {
        2 | 8 | 18 => IST_CRITICAL,
        0..=31 => IST_EXCEPTION,
        _ => IST_IRQ,
    }
}

static IDT: spin::Once<[Gate; 256]> = spin::Once::new();

/// Builds and loads the IDT.
pub fn init() {
    let first = (&raw const trap_stubs) as u64;
    let end = (&raw const trap_stubs_end) as u64;
    // Each stub is aligned to 16 bytes and shorter than that, so 256 of them fill exactly 4 KiB;
    // a longer stub would shift every later one and the gates would miss them.
    assert_eq!(
        end - first,
        256 * STUB_SIZE,
        "trap.S stubs are not 16 bytes apart"
    );
    let idt = IDT.call_once(|| {
        let mut gates = [Gate::new(0, 0); 256];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let vector = vector as u64;
            *gate = Gate::new(first + vector * STUB_SIZE, ist_for(vector));
        }
        gates
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of_val(idt) - 1) as u16,
        base: VirtAddr::new(idt.as_ptr() as u64),
    };
    // SAFETY: the table is static, every gate points at a stub of trap.S with the host's code
    // selector and a valid IST slot (gdt::init set up the TSS before).
    unsafe { lidt(&pointer) };
}
