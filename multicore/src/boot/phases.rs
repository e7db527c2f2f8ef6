//! Where an AP's start-up time goes: TSC stamps taken by the AP itself at each phase of its way
//! up (and by the BSP when it sends the AP's IPIs), kept in the AP's [`CpuData`](super::CpuData) and read back
//! after the bring-up.
//!
//! They cost a few `rdtsc` and stores per AP, so they are always on. The trampoline has no
//! memory of its own per AP (it does not know which AP it is until the long-mode entry looks
//! its APIC ID up), so the stamps of real and 64-bit mode travel in registers and the
//! long-mode entry stores them all once it has found the AP's `CpuData`:
//!
//! | phase | taken where | carried in |
//! |---|---|---|
//! | `real` | first instruction after the SIPI (trampoline.S, real mode) | EBP:EDI, then R14 |
//! | `long` | first instruction of 64-bit mode, still in the trampoline page | R12 |
//! | `entry` | long_mode_entry.S, once the host's page tables are loaded (by it, or already) | R13 |
//! | `rust` | first line of `ap_rust_entry` | — |
//! | `arrived` | `CpuData::mark_arrived` (the bring-up's "in Rust" mark) | — |
//! | `online` | `CpuData::mark_online` (the host's entry says so; `rt::join` once the CPU waits for the runtime) | — |
//!
//! The trampoline goes from real mode straight to long mode (trampoline.S), so there is no
//! protected-mode stamp. TSCs are compared across CPUs (the BSP's send times against an AP's
//! stamps): QEMU's TCG gives every vCPU the same TSC and KVM keeps them synchronized, which
//! is what the benchmark runs on.

use core::sync::atomic::{AtomicU64, Ordering};

/// The stamps, in the AP's `CpuData`. The assembly writes the first three fields at the offsets
/// of [`PhaseStamps::REAL_OFFSET`] etc. (plain stores, read here atomically after the AP's
/// state store that follows them).
#[repr(C)]
#[derive(Debug, Default)]
pub struct PhaseStamps {
    real: AtomicU64,
    long: AtomicU64,
    entry: AtomicU64,
    rust: AtomicU64,
    init_sent: AtomicU64,
    sipi_sent: AtomicU64,
    second_sipi_sent: AtomicU64,
}

impl PhaseStamps {
    /// Offset of the real-mode stamp (u64).
    pub const REAL_OFFSET: usize = core::mem::offset_of!(PhaseStamps, real);
    /// Offset of the 64-bit-mode stamp (u64).
    pub const LONG_OFFSET: usize = core::mem::offset_of!(PhaseStamps, long);
    /// Offset of the long-mode entry's stamp (u64).
    pub const ENTRY_OFFSET: usize = core::mem::offset_of!(PhaseStamps, entry);

    /// The AP reached its first line of Rust.
    pub(crate) fn stamp_rust(&self, tsc: u64) {
        self.rust.store(tsc, Ordering::Relaxed);
    }

    /// The BSP sent `ipi` to this AP at `tsc`; only the first of each kind is kept.
    #[inline(always)]
    pub(crate) fn stamp_sent(&self, ipi: SentIpi, tsc: u64) {
        let slot = match ipi {
            SentIpi::Init => &self.init_sent,
            SentIpi::Sipi => &self.sipi_sent,
            SentIpi::SecondSipi => &self.second_sipi_sent,
        };
        if slot.load(Ordering::Relaxed) == 0 {
            slot.store(tsc, Ordering::Relaxed);
        }
    }

    /// The stamps as TSC values (`arrived` and `online` come from the `CpuData`).
    pub(crate) fn read(&self, arrived: Option<u64>, online: Option<u64>) -> ApPhases {
        ApPhases {
            init_sent: nonzero(self.init_sent.load(Ordering::Relaxed)),
            sipi_sent: nonzero(self.sipi_sent.load(Ordering::Relaxed)),
            second_sipi_sent: nonzero(self.second_sipi_sent.load(Ordering::Relaxed)),
            real: nonzero(self.real.load(Ordering::Relaxed)),
            long: nonzero(self.long.load(Ordering::Relaxed)),
            entry: nonzero(self.entry.load(Ordering::Relaxed)),
            rust: nonzero(self.rust.load(Ordering::Relaxed)),
            arrived,
            online,
        }
    }
}

/// Which IPI the BSP sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SentIpi {
    Init,
    Sipi,
    SecondSipi,
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// One AP's phases of one bring-up, as TSC values (`None`: not reached, or not sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApPhases {
    /// The BSP sent the first INIT.
    pub init_sent: Option<u64>,
    /// The BSP sent the first SIPI.
    pub sipi_sent: Option<u64>,
    /// The BSP sent a second SIPI (the AP had not reached long mode in time).
    pub second_sipi_sent: Option<u64>,
    /// The AP's first instruction, in real mode.
    pub real: Option<u64>,
    /// In 64-bit mode on the transition tables.
    pub long: Option<u64>,
    /// In the long-mode entry on the host's page tables.
    pub entry: Option<u64>,
    /// In Rust.
    pub rust: Option<u64>,
    /// GDT, GS base and local APIC set up: checked in (the end of the bring-up's time).
    pub arrived: Option<u64>,
    /// Marked online by the host's entry.
    pub online: Option<u64>,
}

impl ApPhases {
    /// The stamps in the order an AP takes them, with their names as printed.
    pub fn named(&self) -> [(&'static str, Option<u64>); 9] {
        [
            ("init", self.init_sent),
            ("sipi", self.sipi_sent),
            ("sipi2", self.second_sipi_sent),
            ("real", self.real),
            ("long", self.long),
            ("entry", self.entry),
            ("rust", self.rust),
            ("arrived", self.arrived),
            ("online", self.online),
        ]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_ap_and_the_bsp_wrote() {
        let s = PhaseStamps::default();
        assert_eq!(s.read(None, None), ApPhases::default());
        s.real.store(0x1_FFFF_FF00, Ordering::Relaxed);
        s.long.store(0x2_0000_0200, Ordering::Relaxed);
        s.entry.store(0x2_0000_0300, Ordering::Relaxed);
        s.stamp_rust(0x2_0000_0400);
        s.stamp_sent(SentIpi::Init, 0x1_FFFF_0000);
        s.stamp_sent(SentIpi::Init, 0x1_FFFF_0001);
        s.stamp_sent(SentIpi::Sipi, 0x1_FFFF_0010);
        let p = s.read(Some(0x2_0000_0500), None);
        assert_eq!(p.init_sent, Some(0x1_FFFF_0000), "the first INIT is kept");
        assert_eq!(p.sipi_sent, Some(0x1_FFFF_0010));
        assert_eq!(p.second_sipi_sent, None);
        assert_eq!(p.real, Some(0x1_FFFF_FF00));
        assert_eq!(p.long, Some(0x2_0000_0200));
        assert_eq!(p.arrived, Some(0x2_0000_0500));
        let names: Vec<_> = p.named().iter().map(|(n, _)| *n).collect();
        assert_eq!(names[3..7], ["real", "long", "entry", "rust"]);
    }
}
