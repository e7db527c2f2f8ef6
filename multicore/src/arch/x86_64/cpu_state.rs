//! The control-register state an AP must share with the BSP, and the BSP's FPU/SSE/AVX setup.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

/// XCR0 as [`enable_fpu_sse_avx`] set it (0: not set by us). Remembered rather than read back
/// with XGETBV: some nested KVM setups (this project's build machine among them) cannot emulate
/// XGETBV in ring 0 and stop the guest with an emulation failure, while XSETBV works.
static XCR0_SET: AtomicU64 = AtomicU64::new(0);

/// Turns on x87, SSE and (where offered) XSAVE with AVX on this CPU, and returns XCR0.
///
/// The kernel itself is soft-float (x86_64-unknown-none); this is for the application code
/// that runs on the CPUs and so that APs can copy one consistent state (SDM Vol. 3A §13.1).
pub fn enable_fpu_sse_avx() -> Option<XCr0Flags> {
    let features = raw_cpuid::CpuId::new().get_feature_info();
    let (xsave, avx) = features.map_or((false, false), |f| (f.has_xsave(), f.has_avx()));
    // SAFETY: clearing EM and setting MP/NE selects native x87 error reporting with FWAIT
    // honouring TS; setting OSFXSR/OSXMMEXCPT declares that the OS saves SSE state with
    // FXSAVE and handles #XM. Neither changes memory or paging.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        core::arch::asm!("fninit", options(nomem, nostack));
    }
    if !xsave {
        return None;
    }
    let mut xcr0 = XCr0Flags::X87 | XCr0Flags::SSE;
    if avx {
        xcr0 |= XCr0Flags::AVX;
    }
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; XCR0 gets only components CPUID
    // reports (x87 and SSE always with XSAVE, AVX when CPUID.01H:ECX.AVX). XSETBV is issued
    // directly: XCr0::write would read XCR0 first with XGETBV (see XCR0_SET).
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::OSXSAVE));
        let value = xcr0.bits();
        core::arch::asm!(
            "xsetbv",
            in("ecx") 0,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nomem, nostack)
        );
    }
    XCR0_SET.store(xcr0.bits(), Ordering::Relaxed);
    Some(xcr0)
}

/// Control-register values an AP loads in the trampoline, taken from the running BSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApControlState {
    /// CR3: the page-table root the AP switches to (without PCID bits).
    pub cr3: u64,
    /// CR0: PE, MP, ET, NE, WP, PG (caches on: CD and NW clear), written explicitly.
    pub cr0: u64,
    /// CR4: the BSP's (PAE and whatever it enabled: OSFXSR, OSXSAVE, ...).
    pub cr4: u64,
    /// CR4 as the trampoline loads it in real mode, before paging: `cr4` without PCIDE, which
    /// can only be set in IA-32e mode, and CET, which needs CR0.WP (SDM Vol. 3A §2.5, MOV to
    /// CR4 faults). The trampoline adds them once in 64-bit mode, and writes CR4 only once
    /// when they are clear.
    pub cr4_before_paging: u64,
    /// EFER: LME plus the BSP's NXE and SCE.
    pub efer: u64,
    /// XCR0 when CR4.OSXSAVE is set, else 0.
    pub xcr0: u64,
}

impl ApControlState {
    /// Reads the BSP's registers. `cr3` overrides the page-table root (the BSP's by default).
    pub fn from_bsp(cr3: Option<u64>) -> ApControlState {
        let cr4 = Cr4::read_raw();
        let xcr0 = match XCR0_SET.load(Ordering::Relaxed) {
            _ if cr4 & Cr4Flags::OSXSAVE.bits() == 0 => 0,
            0 => XCr0::read_raw(), // set by the host, not by us: ask the CPU
            ours => ours,
        };
        let bsp_efer = Efer::read();
        let keep = EferFlags::NO_EXECUTE_ENABLE | EferFlags::SYSTEM_CALL_EXTENSIONS;
        let efer = EferFlags::LONG_MODE_ENABLE | (bsp_efer & keep);
        let cr0 = Cr0Flags::PROTECTED_MODE_ENABLE
            | Cr0Flags::MONITOR_COPROCESSOR
            | Cr0Flags::EXTENSION_TYPE
            | Cr0Flags::NUMERIC_ERROR
            | Cr0Flags::WRITE_PROTECT
            | Cr0Flags::PAGING;
        let root = cr3.unwrap_or_else(|| Cr3::read_raw().0.start_address().as_u64());
        let needs_long_mode = Cr4Flags::PCID | Cr4Flags::CONTROL_FLOW_ENFORCEMENT;
        ApControlState {
            cr3: root & !0xFFF,
            cr0: cr0.bits(),
            cr4,
            cr4_before_paging: cr4 & !needs_long_mode.bits(),
            efer: efer.bits(),
            xcr0,
        }
    }
}
