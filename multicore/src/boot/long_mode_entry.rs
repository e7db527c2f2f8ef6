//! The APs' long-mode entry (`long_mode_entry.S`) and the table it finds its CPU in.
//!
//! The trampoline page holds only what must run below 1 MiB; everything that needs the host's
//! address space (the CPU table, stacks, the Rust entry) starts here, in the library's own
//! code, once the AP has loaded the host's page-table root.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering};

use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::cpu_data::{CpuData, CpuState};
use super::phases::PhaseStamps;

/// What the long-mode entry reads (layout shared with `long_mode_entry.S`).
#[repr(C)]
#[derive(Debug)]
pub struct ApBootTable {
    /// Address of `[u32; count]`: APIC ID of each slot.
    apic_ids: u64,
    /// Address of `[*const CpuData; count]`, parallel to `apic_ids`.
    cpus: u64,
    /// `extern "C" fn(&'static CpuData) -> !` to call on the AP's own stack.
    entry: u64,
    /// Number of slots.
    count: u32,
    /// The CPUID leaf that gives an AP its APIC ID ([`apic_id_leaf`]).
    id_leaf: u32,
    /// APs that found no slot for their APIC ID (incremented by them, atomically).
    stray: AtomicU32,
    /// The library's GDT (ap_entry.rs), loaded here: the trampoline's lives in the borrowed
    /// page. One `lgdt` in the entry costs the AP nothing more; in Rust it was a call.
    gdt: DescriptorTablePointer,
}

/// The one table: one bring-up runs at a time (start.rs holds a flag for it).
struct TableCell(UnsafeCell<ApBootTable>);

// SAFETY: the BSP writes the table only while no AP can read it (before the first SIPI of a
// bring-up, see `ApBootTable::publish`); APs only read it, and `stray` is atomic.
unsafe impl Sync for TableCell {}

#[no_mangle]
static AP_BOOT_TABLE: TableCell = TableCell(UnsafeCell::new(ApBootTable {
    apic_ids: 0,
    cpus: 0,
    entry: 0,
    count: 0,
    id_leaf: 1,
    stray: AtomicU32::new(0),
    gdt: DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::zero(),
    },
}));

core::arch::global_asm!(
    include_str!("long_mode_entry.S"),
    TABLE = sym AP_BOOT_TABLE,
    T_APIC_IDS = const offset_of!(ApBootTable, apic_ids),
    T_CPUS = const offset_of!(ApBootTable, cpus),
    T_ENTRY = const offset_of!(ApBootTable, entry),
    T_COUNT = const offset_of!(ApBootTable, count),
    T_ID_LEAF = const offset_of!(ApBootTable, id_leaf),
    T_STRAY = const offset_of!(ApBootTable, stray),
    T_GDT = const offset_of!(ApBootTable, gdt),
    C_STACK_TOP = const CpuData::STACK_TOP_OFFSET,
    C_STATE = const CpuData::STATE_OFFSET,
    C_STAMP_REAL = const CpuData::STAMPS_OFFSET + PhaseStamps::REAL_OFFSET,
    C_STAMP_LONG = const CpuData::STAMPS_OFFSET + PhaseStamps::LONG_OFFSET,
    C_STAMP_ENTRY = const CpuData::STAMPS_OFFSET + PhaseStamps::ENTRY_OFFSET,
    STATE_IN_LONG_MODE = const CpuState::InLongMode as u32,
);

extern "C" {
    static ap_long_mode_entry: u8;
    static ap_long_mode_entry_on_host_root: u8;
    static ap_long_mode_entry_end: u8;
}

/// Virtual address of the long-mode entry: where the trampoline jumps on the transition
/// tables (it loads the host's root first), and the start of the code the transition tables
/// map.
pub fn entry_address() -> u64 {
    (&raw const ap_long_mode_entry) as u64
}

/// Virtual address of the long-mode entry past its CR3 load: where the trampoline jumps when
/// the APs turned paging on with the host's root.
pub fn entry_on_host_root_address() -> u64 {
    (&raw const ap_long_mode_entry_on_host_root) as u64
}

/// Length of the long-mode entry code in bytes.
pub fn entry_len() -> usize {
    (&raw const ap_long_mode_entry_end) as usize - (&raw const ap_long_mode_entry) as usize
}

impl ApBootTable {
    /// Publishes the CPU table and entry for the APs about to be started, and clears the stray
    /// count.
    ///
    /// # Safety
    /// No AP may be running the long-mode entry (none started yet in this bring-up, and those
    /// of an earlier one have left it); `apic_ids` and `cpus` must stay valid, with `count`
    /// entries each (at least one: the entry's search reads the first before it compares the
    /// count), for as long as APs may be started with them.
    pub unsafe fn publish(
        apic_ids: *const u32,
        cpus: *const *const CpuData,
        count: u32,
        entry: u64,
    ) {
        assert!(
            count >= 1,
            "a bring-up publishes the table for at least one AP"
        );
        // SAFETY: no reader exists now (caller's contract); the SIPIs that follow order these
        // writes before any AP's reads (the ICR write is serializing for the sending CPU and the
        // AP starts after it).
        unsafe {
            let t = &mut *AP_BOOT_TABLE.0.get();
            t.apic_ids = apic_ids as u64;
            t.cpus = cpus as u64;
            t.entry = entry;
            t.count = count;
            t.id_leaf = apic_id_leaf(raw_cpuid::native_cpuid::cpuid_count);
            t.gdt = super::ap_entry::gdt_pointer();
        }
        Self::stray_counter().store(0, Ordering::SeqCst);
    }

    /// APs that woke up with an APIC ID not in the table (they halt in the entry code).
    pub fn stray() -> u32 {
        Self::stray_counter().load(Ordering::Acquire)
    }

    fn stray_counter() -> &'static AtomicU32 {
        // SAFETY: `stray` is only ever accessed atomically (here and by `lock inc` in the
        // entry code); taking a shared reference to it does not alias a `&mut`.
        unsafe { &(*AP_BOOT_TABLE.0.get()).stray }
    }
}

/// The CPUID leaf that gives this CPU's full APIC ID: 0x1F (V2 extended topology) or 0x0B
/// (extended topology) where the leaf exists and is valid (EBX[15:0] non-zero at sub-leaf 0),
/// else 0x01 (SDM Vol. 2A CPUID). Asked on the BSP once for all APs: the CPUs of one virtual
/// machine are one model, and the leaf's presence is not per CPU.
fn apic_id_leaf(cpuid: impl Fn(u32, u32) -> raw_cpuid::CpuIdResult) -> u32 {
    let highest = cpuid(0, 0).eax;
    [0x1F, 0x0B]
        .into_iter()
        .find(|&leaf| highest >= leaf && cpuid(leaf, 0).ebx & 0xFFFF != 0)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(eax: u32, ebx: u32) -> raw_cpuid::CpuIdResult {
        raw_cpuid::CpuIdResult {
            eax,
            ebx,
            ecx: 0,
            edx: 0,
        }
    }

    #[test]
    fn picks_the_richest_valid_topology_leaf() {
        // Highest basic leaf 0x1F, 0x1F valid.
        assert_eq!(
            apic_id_leaf(|l, _| result(0x1F, u32::from(l == 0x1F))),
            0x1F
        );
        // 0x1F present but invalid (EBX[15:0] = 0), 0x0B valid.
        assert_eq!(
            apic_id_leaf(|l, _| result(0x1F, u32::from(l == 0x0B))),
            0x0B
        );
        // 0x1F beyond the highest leaf (a CPU may answer it with the highest leaf's data).
        assert_eq!(
            apic_id_leaf(|l, _| result(0x0D, 1 + u32::from(l == 0))),
            0x0B
        );
        // Neither: leaf 1.
        assert_eq!(apic_id_leaf(|_, _| result(0x0A, 1)), 1);
        assert_eq!(apic_id_leaf(|_, _| result(0x1F, 0)), 1);
    }

    #[test]
    fn entry_fits_in_one_page_wherever_it_is_loaded() {
        assert!(entry_len() > 0);
        assert!(
            entry_len() <= 256,
            "long-mode entry is {} bytes",
            entry_len()
        );
        assert_eq!(entry_address() % 256, 0);
        assert!((entry_address()..entry_address() + entry_len() as u64)
            .contains(&entry_on_host_root_address()));
        assert_eq!(
            entry_address() / 4096,
            (entry_address() + entry_len() as u64 - 1) / 4096
        );
    }
}
