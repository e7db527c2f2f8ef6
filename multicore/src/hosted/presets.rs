//! Known host layouts: what a program would otherwise have to be told (where physical memory is
//! mapped, which low pages are free), for kernels measured here. A program picks one from what
//! `uname()` says ([`for_uname`]); the library still checks every number (mapping.rs,
//! boot/live_pages.rs), so a preset that does not fit a kernel ends in an error naming the
//! setting, never in a fault of the host.

use crate::phys::PhysRange;

/// A host kernel's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLayout {
    /// Which kernel, for messages.
    pub name: &'static str,
    /// Physical memory is mapped at `virt = phys + phys_offset` ...
    pub phys_offset: u64,
    /// ... for `phys < phys_limit`.
    pub phys_limit: u64,
    /// RAM below 1 MiB that is free once the program's `main` runs.
    pub low_free: &'static [PhysRange],
}

/// Unikraft on x86_64, as measured on the 0.20 (Kiviuq) "base" kernel built without SMP, under
/// QEMU `-M pc` with 128 MiB to 2 GiB, by walking CR3 from a ring-0 program (issue 10):
/// - `phys_offset`: PML4 slot 511 (0xffff_ff80_0000_0000) maps physical memory from 0 with
///   1 GiB pages, read/write, no-execute; nothing is mapped at virtual 0 (so offset 0, the
///   identity, faults at once).
/// - `phys_limit`: that slot's 512 entries of 1 GiB: 512 GiB.
/// - `low_free`: 0x1000-0x10fff, the kernel's early boot stack (identity-mapped 4 KiB pages),
///   dead once `main` runs on its own stack. Every other page below 1 MiB was in use: the
///   kernel's page tables (CR3 = 0x12000, 26 of its 33 tables below 1 MiB), the program's heap
///   and stack pages (mapped at the program's addresses), kernel data at 0x11000, page 0.
pub const UNIKRAFT_X86_64: HostLayout = HostLayout {
    name: "Unikraft (x86_64)",
    phys_offset: 0xffff_ff80_0000_0000,
    phys_limit: 512 << 30,
    low_free: &[PhysRange {
        base: 0x1000,
        len: 0x10000,
    }],
};

/// The layout for a kernel by its `uname()` sysname and machine, if one is known.
pub fn for_uname(sysname: &str, machine: &str) -> Option<&'static HostLayout> {
    match (sysname, machine) {
        ("Unikraft", "x86_64") => Some(&UNIKRAFT_X86_64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unikraft_by_uname() {
        assert_eq!(for_uname("Unikraft", "x86_64"), Some(&UNIKRAFT_X86_64));
        assert_eq!(for_uname("Linux", "x86_64"), None);
        assert_eq!(for_uname("Unikraft", "aarch64"), None);
        let low = UNIKRAFT_X86_64.low_free[0];
        assert_eq!((low.base, low.end()), (0x1000, 0x11000));
    }
}
