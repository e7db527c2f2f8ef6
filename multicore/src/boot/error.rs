//! Why a bring-up could not start at all (a CPU that fails to start is not an error of the
//! bring-up: it is reported per CPU and counted in the report).

use super::lowmem::NoLowPage;
use crate::arch::x86_64::apic::ApicError;
use crate::arch::x86_64::page_walk::SurveyError;
use crate::arch::x86_64::trampoline::RelocError;
use crate::arch::x86_64::transition_tables::TablesError;

/// Why the bring-up could not start at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BringupError {
    /// No page for the trampoline.
    NoLowPage(NoLowPage),
    /// The host's page tables could not be surveyed for the pages they occupy.
    HostPageTables(SurveyError),
    /// The host uses 5-level paging (CR4.LA57); the trampoline enables 4-level paging.
    FiveLevelPaging,
    /// Another bring-up is running.
    AlreadyRunning,
    /// An earlier bring-up published its CPUs' blocks (`cpu_local`); one bring-up per boot.
    SecondBringup,
    /// The page of the library's long-mode entry has no physical address (`Host::virt_to_phys`
    /// returned `None`).
    EntryNotMapped {
        /// The page's virtual address.
        virt: u64,
    },
    /// The transition page tables could not be built.
    TransitionTables(TablesError),
    /// The host ran out of memory.
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// For which CPU index (0 when for all).
        cpu: u32,
        /// Bytes asked for.
        bytes: usize,
    },
    /// The trampoline could not be relocated.
    Relocation(RelocError),
    /// An IPI could not be sent at all.
    Apic(ApicError),
}

impl core::fmt::Display for BringupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BringupError::NoLowPage(e) => write!(f, "{e}"),
            BringupError::HostPageTables(e) => write!(f, "{e}"),
            BringupError::FiveLevelPaging => write!(
                f,
                "the host uses 5-level paging (CR4.LA57); the AP trampoline supports 4-level paging only"
            ),
            BringupError::AlreadyRunning => write!(f, "another bring-up is running"),
            BringupError::SecondBringup => write!(
                f,
                "the CPUs were already brought up once; a second bring-up is not supported"
            ),
            BringupError::EntryNotMapped { virt } => write!(
                f,
                "cannot find the physical page of the library's AP entry code at {virt:#x} (Host::virt_to_phys)"
            ),
            BringupError::TransitionTables(e) => write!(f, "{e}"),
            BringupError::OutOfMemory { what, cpu, bytes } => {
                write!(f, "out of memory: {bytes} bytes for {what} of CPU {cpu}")
            }
            BringupError::Relocation(e) => write!(f, "{e}"),
            BringupError::Apic(e) => write!(f, "{e}"),
        }
    }
}
