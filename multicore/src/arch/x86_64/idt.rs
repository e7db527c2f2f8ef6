//! The interrupt descriptor table: 256 gates to the stubs of `trap.S`.
//!
//! Written here rather than with the `x86_64` crate's `InterruptDescriptorTable`, whose typed
//! handlers need the unstable `x86-interrupt` calling convention; our stubs are plain assembly
//! and one Rust dispatcher, so the table only needs addresses.

use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

extern "C" {
    /// 256 entry stubs, 16 bytes apart (trap.S).
    static trap_stubs: u8;
}

/// Bytes between two stubs in trap.S.
const STUB_SIZE: u64 = 16;

/// One 16-byte 64-bit interrupt gate (SDM Vol. 3A §7.14.1, Figure 7-8).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 2:0: IST index (0 = none).
    ist: u8,
    /// Present, DPL 0, type 0xE (64-bit interrupt gate: clears IF on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const GATE_INTERRUPT_PRESENT: u8 = 0x8E;
/// The P bit of `type_attr`.
const GATE_PRESENT: u8 = 0x80;

impl Gate {
    /// A gate that is not present.
    pub(crate) const ABSENT: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate to `handler` on code segment `selector`, no IST.
    pub(crate) fn interrupt(handler: u64, selector: u16) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist: 0,
            type_attr: GATE_INTERRUPT_PRESENT,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }

    /// The handler's address, if the gate is present.
    pub(crate) fn handler(&self) -> Option<u64> {
        (self.type_attr & GATE_PRESENT != 0).then_some(
            self.offset_low as u64
                | (self.offset_mid as u64) << 16
                | (self.offset_high as u64) << 32,
        )
    }
}

/// The table, shared by every CPU (per-CPU state is reached through GS, not the IDT).
#[repr(C, align(16))]
pub struct Idt {
    gates: [Gate; 256],
}

impl Idt {
    /// A table routing every vector to its stub on the kernel code segment `code_selector`,
    /// with the given vectors on their IST stacks (`(vector, ist index 1..=7)`).
    pub fn new(code_selector: u16, ist: &[(u8, u8)]) -> Idt {
        let base = (&raw const trap_stubs) as u64;
        let mut idt = Idt {
            gates: [Gate::default(); 256],
        };
        for (vector, gate) in idt.gates.iter_mut().enumerate() {
            *gate = Gate::interrupt(base + vector as u64 * STUB_SIZE, code_selector);
        }
        for &(vector, index) in ist {
            assert!((1..=7).contains(&index), "IST index {index} out of 1..=7");
            idt.gates[vector as usize].ist = index;
        }
        idt
    }

    /// Loads the table on this CPU.
    pub fn load(&'static self) {
        let pointer = DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::from_ptr(self),
        };
        // SAFETY: the table is 'static and every gate points to a stub of trap.S on a 64-bit
        // code segment that the caller's GDT provides.
        unsafe { lidt(&pointer) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_point_at_consecutive_stubs() {
        let idt = Idt::new(0x08, &[(8, 1), (2, 2)]);
        let addr = |g: &Gate| g.handler().unwrap();
        assert_eq!(addr(&idt.gates[1]) - addr(&idt.gates[0]), STUB_SIZE);
        assert_eq!(addr(&idt.gates[255]) - addr(&idt.gates[0]), 255 * STUB_SIZE);
        assert_eq!(idt.gates[8].ist, 1);
        assert_eq!(idt.gates[2].ist, 2);
        assert_eq!(idt.gates[3].ist, 0);
        assert_eq!(idt.gates[3].type_attr, 0x8E);
        assert_eq!(core::mem::size_of::<Gate>(), 16);
        assert_eq!(Gate::default().handler(), None);
    }

    #[test]
    fn stubs_fit_in_sixteen_bytes() {
        // Every stub starts 16-byte aligned and the first byte of each is a push.
        // SAFETY: reading the assembled stub code of this test binary.
        let stubs = unsafe { core::slice::from_raw_parts(&raw const trap_stubs, 256 * 16) };
        for v in 0..256 {
            let first = stubs[v * 16];
            assert!(
                first == 0x6A || first == 0x68,
                "stub {v} starts with {first:#x}"
            );
        }
        // Vector 14 (#PF) pushes no dummy error code; vector 3 does.
        assert_eq!(stubs[14 * 16], 0x68);
        assert_eq!(stubs[3 * 16], 0x6A);
    }
}
