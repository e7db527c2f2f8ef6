//! Letting the 8259 PIC's interrupts reach the CPU through the local APIC ("virtual wire
//! mode", Intel MultiProcessor Specification §3.6.2.2; SDM Vol. 3A §11.5.1 "Local Vector
//! Table"): LINT0 delivers ExtINT, LINT1 NMI, and the APIC is software-enabled. SeaBIOS (QEMU
//! pc, q35) leaves it so; qboot (microvm) leaves every LVT entry masked, and then the PIT's IRQ
//! 0 never arrives. The APIC stays in xAPIC mode, as the firmware left it; only these three
//! registers are touched, through the direct map (the APIC page is not identity-mapped).

use x86_64::registers::model_specific::Msr;

use crate::paging::phys_to_virt;

/// IA32_APIC_BASE (SDM Vol. 4 Table 2-2): bits 12+ the MMIO base, bit 11 enabled, bit 10 x2APIC.
const IA32_APIC_BASE: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_X2APIC_MODE: u64 = 1 << 10;
/// xAPIC register offsets (SDM Vol. 3A Table 11-1).
const SPURIOUS_VECTOR: u64 = 0xF0;
const LVT_LINT0: u64 = 0x350;
const LVT_LINT1: u64 = 0x360;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT delivery modes (bits 10:8) and the mask bit (16).
const DELIVERY_EXTINT: u32 = 0b111 << 8;
const DELIVERY_NMI: u32 = 0b100 << 8;
const LVT_MASKED: u32 = 1 << 16;
/// The spurious-interrupt vector (trap.rs ignores it).
pub const SPURIOUS: u64 = 0xFF;

/// What was found and done.
pub enum Outcome {
    /// LINT0 already passed ExtINT.
    AlreadySet,
    /// LINT0 was masked or not ExtINT; now it is (value found).
    Set(u32),
    /// The APIC is disabled or in x2APIC mode: left alone (a disabled APIC passes the PIC's
    /// interrupts straight through; x2APIC would need MSR access, which no firmware leaves).
    LeftAlone(u64),
}

/// Makes LINT0 pass the PIC's interrupts (see the top of this file).
pub fn ensure() -> Outcome {
    // SAFETY: reading IA32_APIC_BASE has no side effect.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() };
    if base & APIC_GLOBAL_ENABLE == 0 || base & APIC_X2APIC_MODE != 0 {
        return Outcome::LeftAlone(base);
    }
    let mmio = base & 0x000f_ffff_ffff_f000;
    let register = |offset: u64| phys_to_virt(mmio + offset) as *mut u32;
    // SAFETY: the xAPIC registers of this CPU, 4-byte aligned, mapped uncached by the direct
    // map (paging.rs); host code runs alone with interrupts off.
    unsafe {
        let lint0 = register(LVT_LINT0).read_volatile();
        let svr = register(SPURIOUS_VECTOR).read_volatile();
        if lint0 & (LVT_MASKED | 0b111 << 8) == DELIVERY_EXTINT && svr & SVR_ENABLE != 0 {
            return Outcome::AlreadySet;
        }
        register(SPURIOUS_VECTOR).write_volatile(SVR_ENABLE | SPURIOUS as u32);
        register(LVT_LINT0).write_volatile(DELIVERY_EXTINT);
        register(LVT_LINT1).write_volatile(DELIVERY_NMI);
        Outcome::Set(lint0)
    }
}

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Outcome::AlreadySet => f.write_str("local APIC LINT0 ExtINT as the firmware left it"),
            Outcome::Set(found) => {
                write!(
                    f,
                    "local APIC LINT0 set to ExtINT (the firmware left {found:#x})"
                )
            }
            Outcome::LeftAlone(base) => {
                write!(f, "local APIC left alone (APIC_BASE {base:#x})")
            }
        }
    }
}
