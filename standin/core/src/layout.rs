//! Where things live, physically and in the one address space the host and its program share.
//!
//! ```text
//! 0x0000_0000_0000_1000 .. 0x1_1000      host live data (stacks, canaries): RW, NX, identity
//! 0x0000_0000_0010_0000 .. image end     the host image, identity (text RX, the rest NX)
//! LOAD (default 64 GiB)  .. + image       the program's PT_LOAD segments, then its brk heap
//! MMAP_BASE .. MMAP_END                   anonymous mmap()s, bump-allocated
//! STACK_TOP - stack size .. STACK_TOP     the program's stack (NX)
//! PHYS_OFFSET + p                         every physical address p (1 GiB pages, NX)
//! ```
//! Nothing maps a page below 1 MiB executable.

use crate::ranges::Range;

/// Where all of physical memory is mapped: virtual = `PHYS_OFFSET` + physical (PML4 slot 511,
/// the same offset as the Unikraft kernel this host stands in for).
pub const PHYS_OFFSET: u64 = 0xffff_ff80_0000_0000;

/// Low memory the host keeps live data in (its syscall and interrupt stacks, canary pages): a
/// library that assumes, say, 0x8000 is free would corrupt the host, and the host would notice.
pub const HOST_LOW_LIVE: Range = Range::new(0x1000, 0x1_1000);

/// The end of the identity-mapped region the host lives in (its image and low data).
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
    assert!(HOST_LOW_LIVE.end <= ONE_MIB);
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
