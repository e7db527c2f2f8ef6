//! The local APIC, in x2APIC (MSR) or xAPIC (MMIO) mode, behind one type.
//!
//! Registers are named once by their xAPIC MMIO offset; the x2APIC MSR of the same register is
//! `0x800 + offset / 16` (SDM Vol. 3A §11.12.1.2, Table 11-6), so one code path drives both
//! modes. QEMU 7.2's TCG has no x2APIC, KVM offers it, and APIC IDs above 255 need it.

pub mod icr;
pub mod timer;

use crate::phys::LinearMapping;
use core::sync::atomic::{AtomicU64, Ordering};
use icr::{Icr, DELIVERY_STATUS_PENDING};
use x86_64::registers::model_specific::Msr;

use super::msr::{APIC_BASE_ADDR_MASK, APIC_BASE_ENABLE, APIC_BASE_EXTD, IA32_APIC_BASE};
use super::tsc::Tsc;

/// Local APIC registers used here, by xAPIC MMIO offset (SDM Vol. 3A Table 11-1).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Register {
    /// Local APIC ID.
    Id = 0x20,
    /// Version.
    Version = 0x30,
    /// End of interrupt.
    Eoi = 0xB0,
    /// Spurious interrupt vector (bit 8: APIC software enable).
    SpuriousVector = 0xF0,
    /// Error status.
    ErrorStatus = 0x280,
    /// Interrupt command, low half (x2APIC: the whole 64-bit ICR).
    IcrLow = 0x300,
    /// Interrupt command, high half (xAPIC only).
    IcrHigh = 0x310,
    /// LVT timer: vector, mask (bit 16), mode (bits 18:17).
    LvtTimer = 0x320,
    /// Timer initial count.
    TimerInitialCount = 0x380,
    /// Timer current count.
    TimerCurrentCount = 0x390,
    /// Timer divide configuration.
    TimerDivide = 0x3E0,
}

/// How this CPU's local APIC is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// x2APIC: registers are MSRs 0x800..0x8FF, IDs are 32-bit.
    X2Apic,
    /// xAPIC: registers are a 4 KiB MMIO page, reached at virtual address `mmio`.
    XApic {
        /// Physical address of the register page.
        phys: u64,
        /// Virtual address where the host maps it (uncached).
        mmio: u64,
    },
}

/// Why the local APIC cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicError {
    /// CPUID.01H:EDX.APIC\[bit 9\] is clear: there is no local APIC to send IPIs with.
    NoApic,
    /// The firmware left x2APIC mode on but CPUID does not offer x2APIC.
    X2ApicWithoutCpuid,
    /// An xAPIC IPI stayed "send pending" past the timeout.
    IcrBusy {
        /// Destination of the stuck IPI.
        dest: u32,
    },
    /// The destination APIC ID does not fit xAPIC's 8-bit destination field.
    DestinationTooWide {
        /// The APIC ID.
        dest: u32,
    },
}

impl core::fmt::Display for ApicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ApicError::NoApic => write!(
                f,
                "this CPU has no local APIC (CPUID.01H:EDX bit 9 is clear): other CPUs cannot be started"
            ),
            ApicError::X2ApicWithoutCpuid => {
                write!(f, "the local APIC is in x2APIC mode but CPUID does not report x2APIC")
            }
            ApicError::IcrBusy { dest } => {
                write!(f, "IPI to APIC ID {dest} still pending after 100 ms (xAPIC ICR busy)")
            }
            ApicError::DestinationTooWide { dest } => write!(
                f,
                "APIC ID {dest} cannot be addressed in xAPIC mode (8-bit destinations; needs x2APIC)"
            ),
        }
    }
}

/// The mode chosen on the BSP, which APs copy when they start (0 = not chosen, 1 = x2APIC,
/// otherwise the xAPIC MMIO virtual address; the physical address is kept beside it).
static BSP_MODE: AtomicU64 = AtomicU64::new(0);
static BSP_XAPIC_PHYS: AtomicU64 = AtomicU64::new(0);

/// The local APIC of the CPU that holds it (each CPU reaches only its own).
#[derive(Debug, Clone, Copy)]
pub struct LocalApic {
    mode: ApicMode,
}

/// Records the BSP's mode for [`LocalApic::init_ap`] and [`LocalApic::current`].
fn remember_bsp_mode(mode: ApicMode) {
    match mode {
        ApicMode::X2Apic => BSP_MODE.store(1, Ordering::Release),
        ApicMode::XApic { phys, mmio } => {
            BSP_XAPIC_PHYS.store(phys, Ordering::Relaxed);
            BSP_MODE.store(mmio, Ordering::Release);
        }
    }
}

/// Whether CPUID offers (local APIC, x2APIC).
fn cpuid_apic_features() -> (bool, bool) {
    let features = raw_cpuid::CpuId::new().get_feature_info();
    features.map_or((false, false), |f| (f.has_apic(), f.has_x2apic()))
}

impl LocalApic {
    /// Takes the BSP's local APIC into use: x2APIC when CPUID offers it and `allow_x2apic`
    /// (switching from xAPIC if needed), else xAPIC through `phys`. The choice is remembered
    /// for [`LocalApic::init_ap`].
    pub fn init_bsp(phys: &LinearMapping, allow_x2apic: bool) -> Result<LocalApic, ApicError> {
        let (has_apic, has_x2apic) = cpuid_apic_features();
        if !has_apic {
            return Err(ApicError::NoApic);
        }
        // SAFETY: IA32_APIC_BASE exists on every CPU whose CPUID reports an APIC (SDM Vol. 4
        // Table 2-2); reading it has no side effects.
        let base = unsafe { IA32_APIC_BASE.read() };
        let already_x2apic =
            base & (APIC_BASE_ENABLE | APIC_BASE_EXTD) == APIC_BASE_ENABLE | APIC_BASE_EXTD;
        if already_x2apic && !has_x2apic {
            return Err(ApicError::X2ApicWithoutCpuid);
        }
        let mode = if already_x2apic || (has_x2apic && allow_x2apic) {
            ApicMode::X2Apic
        } else {
            let phys_base = base & APIC_BASE_ADDR_MASK;
            ApicMode::XApic {
                phys: phys_base,
                mmio: phys.virt(phys_base),
            }
        };
        let apic = LocalApic { mode };
        apic.enable_hardware();
        remember_bsp_mode(mode);
        Ok(apic)
    }

    /// The mode [`LocalApic::attach_bsp`] would use, without writing anything: a hosted
    /// program checks that the xAPIC page is reachable before the APIC is used.
    pub fn attach_mode(
        phys: &LinearMapping,
        allow_x2apic: bool,
        xapic_mmio: Option<u64>,
    ) -> Result<ApicMode, ApicError> {
        Self::attach_plan(phys, allow_x2apic, xapic_mmio).map(|(mode, _)| mode)
    }

    /// The mode, and whether IA32_APIC_BASE must be written (a switch to x2APIC, or an APIC
    /// the host left globally disabled).
    fn attach_plan(
        phys: &LinearMapping,
        allow_x2apic: bool,
        xapic_mmio: Option<u64>,
    ) -> Result<(ApicMode, bool), ApicError> {
        let (has_apic, has_x2apic) = cpuid_apic_features();
        if !has_apic {
            return Err(ApicError::NoApic);
        }
        // SAFETY: IA32_APIC_BASE exists on every CPU whose CPUID reports an APIC (SDM Vol. 4
        // Table 2-2); reading it has no side effects.
        let base = unsafe { IA32_APIC_BASE.read() };
        let enabled = base & APIC_BASE_ENABLE != 0;
        let already_x2apic = enabled && base & APIC_BASE_EXTD != 0;
        if already_x2apic && !has_x2apic {
            return Err(ApicError::X2ApicWithoutCpuid);
        }
        let switch = !already_x2apic && has_x2apic && allow_x2apic;
        let mode = if already_x2apic || switch {
            ApicMode::X2Apic
        } else {
            let phys_base = base & APIC_BASE_ADDR_MASK;
            ApicMode::XApic {
                phys: phys_base,
                mmio: xapic_mmio.unwrap_or_else(|| phys.virt(phys_base)),
            }
        };
        Ok((mode, switch || !enabled))
    }

    /// Uses the BSP's local APIC as the host left it, for a library running inside a host
    /// kernel: the mode is kept (xAPIC stays xAPIC) unless `allow_x2apic` lets it switch to
    /// x2APIC, and nothing else is written (the spurious-vector register is the host's). The
    /// xAPIC registers are reached at `xapic_mmio` when given (a mapping the host made
    /// uncached), else through `phys`.
    pub fn attach_bsp(
        phys: &LinearMapping,
        allow_x2apic: bool,
        xapic_mmio: Option<u64>,
    ) -> Result<LocalApic, ApicError> {
        let (mode, enable) = Self::attach_plan(phys, allow_x2apic, xapic_mmio)?;
        let apic = LocalApic { mode };
        if enable {
            apic.enable_hardware();
        }
        remember_bsp_mode(mode);
        Ok(apic)
    }

    /// Takes an AP's local APIC into use in the mode the BSP chose.
    ///
    /// # Panics
    /// If the BSP has not called [`LocalApic::init_bsp`] (APs are only started after it).
    #[inline(always)]
    pub fn init_ap() -> LocalApic {
        let apic = Self::current();
        apic.enable_hardware();
        apic
    }

    /// This CPU's local APIC in the mode the BSP chose, without touching the hardware (for a
    /// CPU that [`LocalApic::init_ap`] already set up, e.g. to send an EOI).
    ///
    /// # Panics
    /// If the BSP has not called [`LocalApic::init_bsp`].
    #[inline(always)]
    pub fn current() -> LocalApic {
        let mode = match BSP_MODE.load(Ordering::Acquire) {
            0 => panic!("LocalApic::current before init_bsp"),
            1 => ApicMode::X2Apic,
            mmio => ApicMode::XApic {
                phys: BSP_XAPIC_PHYS.load(Ordering::Relaxed),
                mmio,
            },
        };
        LocalApic { mode }
    }

    /// The mode in use.
    pub fn mode(&self) -> ApicMode {
        self.mode
    }

    /// Sets the global enable (and x2APIC) bits in IA32_APIC_BASE, then software-enables the
    /// APIC with spurious vector 0xFF (SDM Vol. 3A §11.9): an APIC left software-disabled by
    /// INIT would not accept fixed IPIs later.
    #[inline(always)]
    fn enable_hardware(&self) {
        // SAFETY: the CPU has a local APIC (checked by init_bsp; APs are the same model), so
        // the MSR exists. Setting EN, then EXTD, is the documented xAPIC -> x2APIC transition
        // (SDM Vol. 3A §11.12.5, Figure 11-27); we never clear EXTD, which would be invalid.
        unsafe {
            let mut msr = IA32_APIC_BASE;
            let base = msr.read();
            let want = match self.mode {
                ApicMode::X2Apic => base | APIC_BASE_ENABLE | APIC_BASE_EXTD,
                ApicMode::XApic { .. } => base | APIC_BASE_ENABLE,
            };
            if want != base {
                // From disabled, xAPIC first (disabled -> x2APIC is not a valid transition); an
                // enabled xAPIC goes to x2APIC in one write, one MSR write (a VM exit) fewer.
                if base & APIC_BASE_ENABLE == 0 {
                    msr.write(base | APIC_BASE_ENABLE);
                }
                msr.write(want);
            }
        }
        self.write(Register::SpuriousVector, 0x1FF);
    }

    /// Reads a 32-bit register.
    pub fn read(&self, reg: Register) -> u32 {
        match self.mode {
            // SAFETY: x2APIC mode is enabled, so MSRs 0x800.. are the APIC registers; the
            // registers read here have no read side effects.
            ApicMode::X2Apic => unsafe { Msr::new(0x800 + (reg as u32 >> 4)).read() as u32 },
            // SAFETY: `mmio` maps this CPU's APIC page (host contract, uncached); the offset
            // is a valid, 16-byte aligned register inside it.
            ApicMode::XApic { mmio, .. } => unsafe {
                core::ptr::read_volatile((mmio + reg as u64) as *const u32)
            },
        }
    }

    /// Writes a 32-bit register.
    #[inline]
    pub fn write(&self, reg: Register, value: u32) {
        match self.mode {
            // SAFETY: as in `read`; writing SVR/EOI/ESR/ICR has only the APIC effects asked for.
            ApicMode::X2Apic => unsafe { Msr::new(0x800 + (reg as u32 >> 4)).write(value as u64) },
            // SAFETY: as in `read`.
            ApicMode::XApic { mmio, .. } => unsafe {
                core::ptr::write_volatile((mmio + reg as u64) as *mut u32, value)
            },
        }
    }

    /// Signals the end of the interrupt being handled (SDM Vol. 3A §11.8.5). Not for NMIs,
    /// INIT, SIPI or the spurious vector.
    pub fn eoi(&self) {
        self.write(Register::Eoi, 0);
    }

    /// This CPU's APIC ID (x2APIC: 32 bits; xAPIC: bits 31:24 of the ID register).
    pub fn id(&self) -> u32 {
        match self.mode {
            ApicMode::X2Apic => self.read(Register::Id),
            ApicMode::XApic { .. } => self.read(Register::Id) >> 24,
        }
    }

    /// Sends `icr` to APIC ID `dest`. In xAPIC mode, first waits (up to 100 ms) for the
    /// previous IPI to leave the ICR, as SDM Vol. 3A §11.6.1 requires before a new write;
    /// x2APIC has no delivery-status bit: ICR writes are serialized by the CPU (§11.12.9).
    pub fn send(&self, icr: Icr, dest: u32, tsc: &Tsc) -> Result<(), ApicError> {
        match self.mode {
            ApicMode::X2Apic => {
                // SAFETY: x2APIC mode is on; MSR 0x830 is the ICR; the IPI's effect on the
                // destination is what the caller asked for.
                unsafe { Msr::new(0x830).write(icr.x2apic_value(dest)) };
                Ok(())
            }
            ApicMode::XApic { .. } => {
                if dest > 0xFF {
                    return Err(ApicError::DestinationTooWide { dest });
                }
                self.wait_icr_idle(dest, tsc)?;
                self.write(Register::IcrHigh, Icr::xapic_high(dest));
                self.write(Register::IcrLow, icr.low());
                Ok(())
            }
        }
    }

    fn wait_icr_idle(&self, dest: u32, tsc: &Tsc) -> Result<(), ApicError> {
        let deadline = tsc.deadline_us(100_000);
        while self.read(Register::IcrLow) & DELIVERY_STATUS_PENDING != 0 {
            if tsc.passed(deadline) {
                return Err(ApicError::IcrBusy { dest });
            }
            core::hint::spin_loop();
        }
        Ok(())
    }
}
