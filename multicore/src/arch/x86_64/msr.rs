//! Model-specific registers the bring-up touches, each with its SDM entry.
//!
//! The `x86_64` crate covers EFER and the control registers; the local APIC MSRs and the
//! KVM paravirtual clock MSR are not in it, so they are named here.

use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (SDM Vol. 4 Table 2-2, address 0x1B; Vol. 3A §11.4.4).
pub const IA32_APIC_BASE: Msr = Msr::new(0x1B);
/// IA32_APIC_BASE bit 8: this processor is the BSP.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 10: x2APIC mode enable (SDM Vol. 3A §11.12.1).
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE bit 11: APIC global enable.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bits 12..=51: physical base of the xAPIC MMIO page.
pub const APIC_BASE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// MSR_KVM_SYSTEM_TIME_NEW (Linux `Documentation/virt/kvm/x86/msr.rst`): physical address
/// of a pvclock structure, bit 0 = enable.
pub const MSR_KVM_SYSTEM_TIME_NEW: Msr = Msr::new(0x4b56_4d01);
