//! Where things live, physically and in the one address space the host and its program share.
//!
//! Physical memory, as on the Unikraft 0.20 kernel this host stands in for (measured there:
//! CR3 0x12000, its page tables and the program's heap, brk and mmap pages below 1 MiB, only
//! the dead boot stack free):
//!
//! ```text
//! 0x0 .. 0x1000               page 0 (real-mode IVT, BIOS data area): not mapped, never handed out
//! 0x1000 .. 0x11000           the dead boot stack: identity RW+NX (4 KiB pages), pattern-filled,
//!                             the only low RAM the program may borrow (STANDIN_LOWMEM_FREE)
//! 0x11000 .. end of low RAM   frames, lowest first: the page-table root at 0x11000, then page
//!                             tables and the program's heap (brk, mmap) as they are needed
//!                             (its image and stack take frames from 1 MiB up, as on Unikraft)
//! EBDA .. 0x10_0000           firmware (EBDA, VGA memory, option and BIOS ROMs): never handed out
//! 0x10_0000 .. image end      the host image, identity (text RX, the rest NX; its stacks in the
//!                             bss above unmapped guard pages)
//! image end .. top of RAM     more frames (minus the initrd)
//! ```
//!
//! Virtual memory:
//!
//! ```text
//! 0x1000 .. 0x11000                       the dead boot stack, identity
//! 0x10_0000 .. image end                  the host image, identity
//! LOAD (default 64 GiB)  .. + image       the program's PT_LOAD segments, then its brk heap
//! MMAP_BASE .. MMAP_END                   anonymous mmap()s, bump-allocated
//! STACK_TOP - stack size .. STACK_TOP     the program's stack (NX)
//! PHYS_OFFSET + p                         every physical address p (1 GiB pages, NX)
//! ```
//! Nothing maps a page below 1 MiB executable; frames below 1 MiB are reached through
//! `PHYS_OFFSET` or at the program's own addresses, never identity.

use crate::ranges::Range;

/// Where all of physical memory is mapped: virtual = `PHYS_OFFSET` + physical (PML4 slot 511,
/// the same offset as the Unikraft kernel this host stands in for).
pub const PHYS_OFFSET: u64 = 0xffff_ff80_0000_0000;

/// Unikraft's early boot stack: dead once the program runs, and the only RAM below 1 MiB a
/// program may borrow (for an AP trampoline). The host keeps nothing live there; a borrowed page
/// must come back exactly as it was.
pub const DEAD_BOOT_STACK: Range = Range::new(0x1000, 0x1_1000);

/// Where the frame allocator starts: right above the dead boot stack, so that the page-table
/// root is the first frame and lands here (Unikraft's root is one page higher, at 0x12000,
/// above a page of its own data).
pub const LOW_FRAMES_START: u64 = DEAD_BOOT_STACK.end;

/// The start of the legacy PC area that is never RAM to hand out: VGA memory from 0xA_0000,
/// then option ROMs and the BIOS up to 1 MiB. The EBDA, when there is one, lies just below.
pub const LEGACY_AREA_START: u64 = 0xA_0000;

/// The most physical memory used: what one PML4 slot of the direct map covers.
pub const MAX_PHYS: u64 = 512 << 30;

/// The end of the identity-mapped region the host lives in (the dead boot stack and its image).
pub const HOST_IDENTITY_END: u64 = 2 << 20;

/// 1 MiB: "low memory", where an AP's first instructions must lie.
pub const ONE_MIB: u64 = 0x10_0000;

/// The program's load base when `load=` is not given.
pub const DEFAULT_LOAD_BASE: u64 = 0x10_0000_0000;
/// The lowest load base accepted: above the 4 GiB of 32-bit physical addresses, so that no
/// program address can be mistaken for an identity-mapped one.
pub const MIN_LOAD_BASE: u64 = 0x1_0000_0000;
/// The most the brk heap may grow to.
pub const BRK_MAX: u64 = 1 << 30;
/// Where anonymous mmap()s go.
pub const MMAP_BASE: u64 = 0x4000_0000_0000;
/// The end of the mmap area.
pub const MMAP_END: u64 = 0x6000_0000_0000;
/// The top of the program's stack (exclusive).
pub const STACK_TOP: u64 = 0x7000_0000_0000;
/// The program's stack size when `stack=` is not given.
pub const DEFAULT_STACK_SIZE: u64 = 1 << 20;
/// The largest `stack=` accepted.
pub const MAX_STACK_SIZE: u64 = 256 << 20;
/// The lowest address a program mapping may use: below is the host's identity map.
pub const USER_MIN: u64 = MIN_LOAD_BASE;
/// One past the highest address a program mapping may use (the lower canonical half).
pub const USER_END: u64 = 0x8000_0000_0000;

// The regions above do not overlap (checked at compile time).
const _: () = {
    assert!(DEAD_BOOT_STACK.end == LOW_FRAMES_START);
    assert!(LOW_FRAMES_START < LEGACY_AREA_START);
    assert!(LEGACY_AREA_START <= ONE_MIB);
    assert!(HOST_IDENTITY_END <= USER_MIN);
    assert!(MMAP_END <= STACK_TOP - MAX_STACK_SIZE);
    assert!(STACK_TOP <= USER_END);
    assert!(PHYS_OFFSET > USER_END);
};

/// Why a load base cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLoadBase {
    /// Not a multiple of 4 KiB.
    Unaligned,
    /// Below [`MIN_LOAD_BASE`].
    TooLow,
    /// The image plus its brk heap would reach the mmap area.
    TooHigh,
}

impl core::fmt::Display for BadLoadBase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BadLoadBase::Unaligned => f.write_str("not a multiple of 4 KiB"),
            BadLoadBase::TooLow => write!(f, "below {MIN_LOAD_BASE:#x}"),
            BadLoadBase::TooHigh => write!(
                f,
                "the image and its brk heap ({BRK_MAX:#x}) must end below {MMAP_BASE:#x}"
            ),
        }
    }
}

/// Checks that a program image of `span` bytes can be loaded at `base`, with room for its
/// brk heap before the mmap area.
pub fn check_load_base(base: u64, span: u64) -> Result<(), BadLoadBase> {
    if !base.is_multiple_of(4096) {
        return Err(BadLoadBase::Unaligned);
    }
    if base < MIN_LOAD_BASE {
        return Err(BadLoadBase::TooLow);
    }
    match base.checked_add(span).and_then(|e| e.checked_add(BRK_MAX)) {
        Some(end) if end <= MMAP_BASE => Ok(()),
        _ => Err(BadLoadBase::TooHigh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_bases() {
        assert_eq!(check_load_base(DEFAULT_LOAD_BASE, 0x10_0000), Ok(()));
        assert_eq!(check_load_base(0x40_0000_0000, 0x10_0000), Ok(()));
        assert_eq!(
            check_load_base(0x10_0000_0800, 0x1000),
            Err(BadLoadBase::Unaligned)
        );
        assert_eq!(check_load_base(0x40_0000, 0x1000), Err(BadLoadBase::TooLow));
        assert_eq!(
            check_load_base(MMAP_BASE - 0x1000, 0x1000),
            Err(BadLoadBase::TooHigh)
        );
        assert_eq!(check_load_base(!0xfff, 0x1000), Err(BadLoadBase::TooHigh));
    }
}
