//! What the CPU offers (CPUID) and the FPU/SSE/AVX state a Linux program expects to find on.

use core::arch::x86_64::__cpuid_count;

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::xcontrol::XCr0Flags;

/// The CPUID bits the host acts on (SDM Vol. 2A, CPUID, Tables 3-8 and 3-10 for leaf 1, leaf 7
/// EBX, leaf 0x80000001 EDX; Vol. 1 §13.2 for leaf 0xD).
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// Leaf 1 EDX: the feature word Linux hands programs as AT_HWCAP.
    pub leaf1_edx: u32,
    /// 0x80000001 EDX bit 20: execute-disable (PTE bit 63).
    pub nx: bool,
    /// 0x80000001 EDX bit 26: 1 GiB pages.
    pub page_1g: bool,
    /// Leaf 1 EDX bit 24 (FXSR) and bit 25 (SSE).
    pub sse: bool,
    /// Leaf 1 ECX bit 26: XSAVE/XSETBV, XCR0.
    pub xsave: bool,
    /// Leaf 1 ECX bit 28.
    pub avx: bool,
    /// Leaf 1 ECX bit 30.
    pub rdrand: bool,
    /// Leaf 1 ECX bit 21 (offered, not enabled: the host stays in xAPIC mode).
    pub x2apic: bool,
    /// Leaf 7 subleaf 0 EBX bit 0: RDFSBASE & co. once CR4.FSGSBASE is set.
    pub fsgsbase: bool,
    /// Leaf 0xD subleaf 0 EDX:EAX: the XCR0 bits this CPU supports.
    pub xcr0_supported: u64,
}

/// Reads the CPUID leaves above.
pub fn detect() -> Features {
    let max_leaf = __cpuid_count(0, 0).eax;
    let max_ext = __cpuid_count(0x8000_0000, 0).eax;
    let leaf1 = __cpuid_count(1, 0);
    let ext1 = if max_ext >= 0x8000_0001 {
        __cpuid_count(0x8000_0001, 0).edx
    } else {
        0
    };
    let leaf7_ebx = if max_leaf >= 7 {
        __cpuid_count(7, 0).ebx
    } else {
        0
    };
    let xsave = leaf1.ecx & (1 << 26) != 0;
    let xcr0_supported = if xsave && max_leaf >= 0xD {
        let d = __cpuid_count(0xD, 0);
        (d.edx as u64) << 32 | d.eax as u64
    } else {
        0
    };
    Features {
        leaf1_edx: leaf1.edx,
        nx: ext1 & (1 << 20) != 0,
        page_1g: ext1 & (1 << 26) != 0,
        sse: leaf1.edx & (1 << 24) != 0 && leaf1.edx & (1 << 25) != 0,
        xsave,
        avx: leaf1.ecx & (1 << 28) != 0,
        rdrand: leaf1.ecx & (1 << 30) != 0,
        x2apic: leaf1.ecx & (1 << 21) != 0,
        fsgsbase: leaf7_ebx & 1 != 0,
        xcr0_supported,
    }
}

/// Sets CR0/CR4/XCR0 as a Linux program expects (and as the Unikraft kernel this host stands
/// in for leaves them): x87 native errors, SSE with its exceptions, XSAVE with x87|SSE and AVX
/// when offered, FSGSBASE when offered (SDM Vol. 3A §2.5, §13.1 "Provisions for SSE"; Vol. 1
/// §13.3 "Enabling the XSAVE feature set"). The host itself is soft-float and never touches
/// this state. Returns XCR0 (0 without XSAVE), or why the program cannot run.
pub fn enable_fpu_sse(f: &Features) -> Result<u64, &'static str> {
    if !f.sse {
        return Err("this CPU has no SSE (FXSR+SSE), which every x86_64 program uses");
    }
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
    // SAFETY: only FPU-related bits change; paging, protection and WP stay as they are.
    unsafe { Cr0::write(cr0) };
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    if f.xsave {
        cr4.insert(Cr4Flags::OSXSAVE);
    }
    if f.fsgsbase {
        cr4.insert(Cr4Flags::FSGSBASE);
    }
    // SAFETY: every bit set is offered by CPUID (checked above) and changes no mapping.
    unsafe { Cr4::write(cr4) };
    if !f.xsave {
        return Ok(0);
    }
    let mut xcr0 = XCr0Flags::X87 | XCr0Flags::SSE;
    if f.avx && f.xcr0_supported & XCr0Flags::AVX.bits() != 0 {
        xcr0 |= XCr0Flags::AVX;
    }
    // SAFETY: CR4.OSXSAVE is set; x87 is mandatory, SSE and AVX are set only when supported,
    // and AVX only together with SSE (SDM Vol. 1 §13.3). XSETBV directly: XCr0::write reads
    // XCR0 first with XGETBV, which some nested KVM setups (this project's machine) cannot
    // emulate in ring 0 ("KVM internal error: emulation failure"), while XSETBV works.
    unsafe {
        core::arch::asm!(
            "xsetbv",
            in("ecx") 0,
            in("eax") xcr0.bits() as u32,
            in("edx") (xcr0.bits() >> 32) as u32,
            options(nomem, nostack)
        )
    };
    Ok(xcr0.bits())
}
