//! Checking the physical mapping a hosted program named (`phys_offset`, `phys_limit`) before
//! anything is read or written through it.
//!
//! The host's tables are read under a probe session (`arch::x86_64::probe`): a wrong offset
//! makes a read fault, and the probe turns that fault into an error value instead of the host's
//! crash dump. The checks, in order:
//! 1. the page-table root (CR3) is readable at `root + phys_offset`;
//! 2. walking the tables through the offset leads from a static of the library to a physical
//!    address where the offset shows the same, freshly written, value: the offset maps RAM,
//!    and the tables read through it are the tables in force (these reads may go anywhere the
//!    CPU can address: under the probe a wrong address is an error, not a fault); then
//!    `phys_limit` must cover the tables that walk read and the static;
//! 3. from physical 0 up, every page up to `phys_limit` is mapped at `phys + phys_offset`
//!    (1 GiB pages make this a few hundred steps); where that stops first, the mapping the
//!    library uses stops.
//!
//! After that every physical address below the checked limit can be read and written through
//! the offset: a [`LinearMapping`] with that limit is sound, and its reads are bounds-checked.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::page_walk::{self, canonical};
use crate::arch::x86_64::probe::{ProbeError, ProbeSession};
use crate::arch::x86_64::tsc;
use crate::phys::{LinearMapping, PhysRead};

/// Most translations spent checking the extent (each a 4-level walk): a mapping of 4 KiB
/// pages is checked for its first 4 GiB, larger pages much further.
const MAX_EXTENT_STEPS: usize = 1 << 20;

/// The value step 2 looks for.
static MARKER: AtomicU64 = AtomicU64::new(0);

/// Why the mapping cannot be used. Every variant names the setting that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingError {
    /// `phys_offset` is not a canonical address, or `phys_offset + phys_limit` overflows.
    OffsetNotCanonical {
        /// The offset.
        offset: u64,
    },
    /// Reading the page-table root through `phys_offset` faulted.
    RootNotMapped {
        /// The offset.
        offset: u64,
        /// The root's physical address.
        root: u64,
    },
    /// The tables read through `phys_offset` do not lead back to the library's own data.
    OffsetMapsOther {
        /// The offset.
        offset: u64,
    },
    /// Something the library must reach lies at or above `phys_limit`.
    LimitTooSmall {
        /// The limit given.
        limit: u64,
        /// The physical address needed.
        needed: u64,
        /// What lies there.
        what: &'static str,
    },
    /// Something the library must reach is below `phys_limit` but not mapped at the offset.
    NotMapped {
        /// The offset.
        offset: u64,
        /// Up to where the offset maps physical memory.
        extent: u64,
        /// The physical address needed.
        needed: u64,
        /// What lies there.
        what: &'static str,
    },
    /// `xapic_mmio` does not map the local APIC's page.
    XapicMmio {
        /// The address given.
        given: u64,
        /// The APIC's physical page.
        apic: u64,
    },
    /// The probe could not be set up.
    Probe(ProbeError),
}

impl core::fmt::Display for MappingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            MappingError::OffsetNotCanonical { offset } => write!(
                f,
                "phys_offset {offset:#x} cannot map physical memory (not a canonical address, or the mapping would not be)"
            ),
            MappingError::RootNotMapped { offset, root } => write!(
                f,
                "phys_offset {offset:#x} does not map physical memory: the page-table root (physical {root:#x}) is not mapped at {:#x}",
                root.wrapping_add(offset)
            ),
            MappingError::OffsetMapsOther { offset } => write!(
                f,
                "phys_offset {offset:#x} does not map physical memory: the page tables read through it do not lead to the program's own data"
            ),
            MappingError::LimitTooSmall { limit, needed, what } => write!(
                f,
                "phys_limit {limit:#x} is too small: {what} is at physical {needed:#x}"
            ),
            MappingError::NotMapped {
                offset,
                extent,
                needed,
                what,
            } => write!(
                f,
                "phys_offset {offset:#x} maps physical memory only up to {extent:#x}, but {what} is at physical {needed:#x}"
            ),
            MappingError::XapicMmio { given, apic } => write!(
                f,
                "xapic_mmio {given:#x} does not map the local APIC's page (physical {apic:#x})"
            ),
            MappingError::Probe(ProbeError::Busy) => {
                write!(f, "another probe of the physical mapping is running")
            }
            MappingError::Probe(ProbeError::NoHostHandler) => write!(
                f,
                "the host's IDT has no #GP or #PF handler, so the physical mapping cannot be probed safely"
            ),
        }
    }
}

/// The mapping after the checks.
#[derive(Debug, Clone, Copy)]
pub struct CheckedMapping {
    /// Physical memory below `limit` at `phys + offset`, checked.
    pub mapping: LinearMapping,
    /// The page-table root the checks walked.
    pub root: u64,
    /// The offset given.
    pub offset: u64,
    /// The limit given.
    pub limit_given: u64,
    /// Up to where the offset really maps, at most `limit_given`.
    pub limit: u64,
}

/// Runs the checks of the module documentation on `offset` and `limit`.
pub fn check(offset: u64, limit: u64) -> Result<CheckedMapping, MappingError> {
    let end = offset.checked_add(limit.saturating_sub(1));
    if !canonical(offset) || !end.is_some_and(canonical) {
        return Err(MappingError::OffsetNotCanonical { offset });
    }
    let root = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    if root >= limit {
        return Err(MappingError::LimitTooSmall {
            limit,
            needed: root,
            what: "the host's page-table root",
        });
    }
    let marker = tsc::now() ^ 0x6d75_6c74_6963_6f72; // "multicor"
    MARKER.store(marker, Ordering::SeqCst);
    let marker_virt = MARKER.as_ptr() as u64;

    let session = ProbeSession::open().map_err(MappingError::Probe)?;
    // Under the probe every read is safe, so the offset is checked first on its own (reads
    // anywhere the CPU can address); the limit is then checked against what the walk needed.
    let addressable = 1u64 << physical_address_bits();
    let highest = core::cell::Cell::new(0u64);
    let read_any = |pa: u64| {
        if pa >= addressable {
            return None;
        }
        highest.set(highest.get().max(pa));
        session.read_u64(pa.wrapping_add(offset)).ok()
    };
    if read_any(root).is_none() {
        return Err(MappingError::RootNotMapped { offset, root });
    }
    let marker_phys = page_walk::translate(root, marker_virt, read_any)
        .ok_or(MappingError::OffsetMapsOther { offset })?;
    if read_any(marker_phys) != Some(marker) {
        return Err(MappingError::OffsetMapsOther { offset });
    }
    let tables_end = highest.get();
    if marker_phys >= limit {
        return Err(MappingError::LimitTooSmall {
            limit,
            needed: marker_phys,
            what: "the program's own memory",
        });
    }
    if tables_end >= limit {
        return Err(MappingError::LimitTooSmall {
            limit,
            needed: tables_end & !0xFFF,
            what: "a page table of the host's",
        });
    }
    let read = |pa: u64| {
        if pa >= limit {
            return None;
        }
        session.read_u64(pa.wrapping_add(offset)).ok()
    };
    let extent = page_walk::mapped_extent(root, offset, limit, MAX_EXTENT_STEPS, read);
    drop(session);

    let checked = CheckedMapping {
        // SAFETY: check 3 found every physical page below `extent` mapped at the offset, and
        // check 2 that the offset reaches RAM through the tables in force.
        mapping: unsafe { LinearMapping::new(offset, extent) },
        root,
        offset,
        limit_given: limit,
        limit: extent,
    };
    checked.reaches(root, "the host's page-table root")?;
    checked.reaches(marker_phys, "the program's own memory")?;
    Ok(checked)
}

/// MAXPHYADDR (CPUID 0x8000_0008 EAX[7:0], SDM Vol. 3A §5.1.4); 36 without the leaf.
fn physical_address_bits() -> u32 {
    raw_cpuid::CpuId::new()
        .get_processor_capacity_feature_info()
        .map_or(36, |i| i.physical_address_bits() as u32)
        .clamp(32, 52)
}

impl CheckedMapping {
    /// `Ok` if physical page `phys` can be reached through the checked mapping, else the error
    /// naming the setting that keeps it out.
    pub fn reaches(&self, phys: u64, what: &'static str) -> Result<(), MappingError> {
        let end = (phys | 0xFFF) + 1;
        if end > self.limit_given {
            Err(MappingError::LimitTooSmall {
                limit: self.limit_given,
                needed: phys,
                what,
            })
        } else if end > self.limit {
            Err(MappingError::NotMapped {
                offset: self.offset,
                extent: self.limit,
                needed: phys,
                what,
            })
        } else {
            Ok(())
        }
    }

    /// Checks that `mmio` (a mapping the program made of the local APIC's page) maps `apic`.
    pub fn check_xapic_mmio(&self, mmio: u64, apic: u64) -> Result<(), MappingError> {
        let phys = self.mapping;
        let read = |pa: u64| phys.read_array::<8>(pa).ok().map(u64::from_le_bytes);
        match page_walk::translate(self.root, mmio, read) {
            Some(p) if p & !0xFFF == apic & !0xFFF => Ok(()),
            _ => Err(MappingError::XapicMmio { given: mmio, apic }),
        }
    }
}
