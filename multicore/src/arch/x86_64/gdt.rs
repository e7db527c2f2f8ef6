//! Each CPU's GDT and TSS: kernel code/data segments and the interrupt stack table (IST) that
//! gives double fault, NMI and machine check handlers a known-good stack of their own.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// Kernel code segment: the GDT's first entry after null (the same as the trampoline's and the
/// boot AP GDT's 64-bit selectors use for data, so switching is seamless).
pub const KERNEL_CS: SegmentSelector = SegmentSelector(0x08);
/// Kernel data segment.
pub const KERNEL_DS: SegmentSelector = SegmentSelector(0x10);
/// The TSS (a 16-byte system descriptor: entries 3 and 4).
pub const TSS_SELECTOR: SegmentSelector = SegmentSelector(0x18);

/// IST slot (1-based, as the IDT gate names it) of the double-fault stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot of the NMI stack: an NMI can arrive on any stack, even a broken one.
pub const IST_NMI: u8 = 2;
/// IST slot of the machine-check stack.
pub const IST_MACHINE_CHECK: u8 = 3;

/// One CPU's descriptor tables, in memory that lives as long as the CPU.
pub struct CpuTables {
    /// The GDT (null, code, data, TSS).
    pub gdt: GlobalDescriptorTable,
    /// The TSS with the IST stack tops.
    pub tss: TaskStateSegment,
}

impl CpuTables {
    /// Tables to be filled by [`CpuTables::install`] on their CPU.
    pub fn empty() -> CpuTables {
        CpuTables {
            gdt: GlobalDescriptorTable::new(),
            tss: TaskStateSegment::new(),
        }
    }

    /// Fills `tables` (zeroed memory) with a GDT and a TSS whose IST 1..=3 point at
    /// `ist_tops`, then loads them on this CPU and reloads every segment register.
    pub fn install(tables: &'static mut CpuTables, ist_tops: [u64; 3]) {
        tables.tss = TaskStateSegment::new();
        for (slot, top) in ist_tops.iter().enumerate() {
            tables.tss.interrupt_stack_table[slot] = VirtAddr::new(*top);
        }
        let tables: &'static CpuTables = {
            let tss_ptr: *const TaskStateSegment = &raw const tables.tss;
            // SAFETY: the TSS is not written again after this point (the CPU itself only sets
            // the busy bit in the GDT's copy of the descriptor), so a shared 'static reference
            // to it may coexist with the write of the `gdt` field below.
            let tss: &'static TaskStateSegment = unsafe { &*tss_ptr };
            let mut gdt = GlobalDescriptorTable::new();
            let cs = gdt.append(Descriptor::kernel_code_segment());
            let ds = gdt.append(Descriptor::kernel_data_segment());
            let tss_sel = gdt.append(Descriptor::tss_segment(tss));
            debug_assert_eq!((cs, ds, tss_sel), (KERNEL_CS, KERNEL_DS, TSS_SELECTOR));
            tables.gdt = gdt;
            tables
        };
        tables.gdt.load();
        // SAFETY: the GDT just loaded has a 64-bit code segment at KERNEL_CS, a data segment at
        // KERNEL_DS and an available TSS at TSS_SELECTOR, all in memory that lives as long as
        // this CPU ('static).
        unsafe {
            CS::set_reg(KERNEL_CS);
            SS::set_reg(KERNEL_DS);
            DS::set_reg(KERNEL_DS);
            ES::set_reg(KERNEL_DS);
            load_tss(TSS_SELECTOR);
        }
    }
}
