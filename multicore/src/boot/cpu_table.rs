//! Step 1 of the bring-up: every CPU's [`CpuData`] and each AP's guarded stack, in the host's
//! memory, before any AP starts.

use core::mem::size_of;
use core::sync::atomic::AtomicBool;

use super::cpu_data::{ApEntry, CpuData};
use super::error::BringupError;
use super::host::Host;
use crate::arch::x86_64::trampoline::PAGE_SIZE;
use crate::cpu_local::{self, CpuLocal, CpuRole, GsOwner};

/// `CpuData` is aligned to a cache line so that one CPU's state word never shares a line with
/// another's.
pub(super) const CPU_DATA_ALIGN: usize = 64;

/// The CPUs of one bring-up, allocated and filled in.
pub(super) struct CpuTable {
    /// Every CPU's data by index (0 = BSP); the APs' part is also the table the long-mode entry
    /// searches, parallel to `ap_ids`.
    pub cpus: &'static [&'static CpuData],
    /// The APs' APIC IDs, in index order (the long-mode entry finds its slot by them).
    pub ap_ids: &'static [u32],
    /// Per CPU index: the BSP gave up on it (kick.rs).
    pub failed: &'static [AtomicBool],
    /// Whether every AP stack has a guard page.
    pub stack_guards: bool,
}

impl CpuTable {
    /// Allocates and fills the table for `apic_ids` (`[0]` is the BSP, which keeps its stack).
    pub fn allocate<H: Host>(
        host: &'static H,
        apic_ids: &[u32],
        stack_size: usize,
        entry: ApEntry,
        arg: usize,
    ) -> Result<CpuTable, BringupError> {
        let n = apic_ids.len();
        let oom = |what, cpu, bytes| BringupError::OutOfMemory { what, cpu, bytes };
        // The identity blocks first: each CpuData carries its block's address, which the AP
        // loads into GS base without looking anything up.
        let owner = host.gs_owner();
        let role = |index: usize| match (owner == GsOwner::HOST, index) {
            (false, _) => CpuRole::Kernel,
            (true, 0) => CpuRole::HostedBsp,
            (true, _) => CpuRole::HostedAp,
        };
        let blocks = host
            .alloc_slice_with(n, CPU_DATA_ALIGN, |i| {
                CpuLocal::new(i as u32, apic_ids[i], role(i))
            })
            .ok_or(oom("the CPU-local blocks", 0, n * size_of::<CpuLocal>()))?;
        let block_address = |i: usize| &blocks[i] as *const CpuLocal as u64;
        let mut stack_guards = true;
        let cpus = host.try_alloc_slice_with(n, 8, oom("the CpuData table", 0, 8 * n), |i| {
            let (index, apic_id) = (i as u32, apic_ids[i]);
            let stack = if index == 0 {
                (0, 0) // the BSP keeps the stack it runs on
            } else {
                let bytes = stack_size + PAGE_SIZE;
                let base = host
                    .alloc_zeroed(bytes, PAGE_SIZE)
                    .ok_or(oom("the stack", index, bytes))?
                    .as_ptr() as u64;
                stack_guards &= host.guard_page(base);
                (base + PAGE_SIZE as u64, base + bytes as u64)
            };
            let data = CpuData::new((index, apic_id), stack, block_address(i), entry, arg);
            let data = host.alloc_value(data, CPU_DATA_ALIGN).ok_or(oom(
                "CpuData",
                index,
                core::mem::size_of::<CpuData>(),
            ))?;
            if index > 0 {
                host.print(format_args!(
                    "Initialized CPU {index} (APIC ID {apic_id})\n"
                ));
            }
            Ok(&*data)
        })?;
        let aps = n.saturating_sub(1);
        let ap_ids = host
            .alloc_slice_with(aps, 8, |i| apic_ids[i + 1])
            .ok_or(oom("the APIC ID table", 0, 4 * aps))?;
        let failed =
            host.alloc_zeroed_slice::<AtomicBool>(n)
                .ok_or(oom("the failure flags", 0, n))?;
        cpu_local::publish(blocks, owner, host)
            .map_err(|cpu_local::AlreadyPublished| BringupError::SecondBringup)?;
        Ok(CpuTable {
            cpus,
            ap_ids,
            failed,
            stack_guards,
        })
    }

    /// The APs' part of the table.
    pub fn aps(&self) -> &'static [&'static CpuData] {
        &self.cpus[1..]
    }
}
