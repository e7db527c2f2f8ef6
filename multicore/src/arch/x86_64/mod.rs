//! x86_64 hardware: local APIC, timers, FPU state and the AP trampoline.

pub mod apic;
pub mod cpu_state;
pub mod gdt;
pub mod hypervisor;
pub mod idt;
pub mod irq;
pub mod msr;
pub mod page_walk;
pub mod pic;
pub mod pit;
pub mod probe;
pub mod spin_wait;
pub mod trampoline;
pub mod transition_tables;
pub mod tsc;
