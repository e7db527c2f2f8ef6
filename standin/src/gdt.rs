//! The host's GDT and TSS: one 64-bit ring-0 code segment at 0x08 (the program runs there too),
//! data at 0x10, and a TSS whose interrupt stack table gives every interrupt gate a stack of its
//! own (SDM Vol. 3A §8.7 "Task Management in 64-bit Mode", §6.14.5 "Interrupt Stack Table"):
//! an interrupt taken in ring 0 would otherwise push onto the program's stack, over the
//! 128-byte red zone below its RSP that the System V ABI lets it use without moving RSP.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use crate::stacks;

/// The code segment selector (ring 0, 64-bit): the host's and the program's, and what SYSCALL
/// loads (STAR[47:32]).
pub const CODE: u16 = 0x08;
/// The data/stack segment selector: what SYSCALL loads into SS (STAR[47:32] + 8).
pub const DATA: u16 = 0x10;

/// IST slot (1-based, as in a gate) for external interrupts.
pub const IST_IRQ: u8 = 1;
/// IST slot for exceptions.
pub const IST_EXCEPTION: u8 = 2;
/// IST slot for NMI, double fault and machine check.
pub const IST_CRITICAL: u8 = 3;

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();

/// Loads the GDT and TSS and reloads the segment registers.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (slot, stack) in [
            (IST_IRQ, stacks::IRQ.range()),
            (IST_EXCEPTION, stacks::EXCEPTION.range()),
            (IST_CRITICAL, stacks::CRITICAL.range()),
        ] {
            tss.interrupt_stack_table[slot as usize - 1] = VirtAddr::new(stack.end);
        }
        tss
    });
    let mut selectors = (0, 0, 0);
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        selectors = (
            gdt.append(Descriptor::kernel_code_segment()).0,
            gdt.append(Descriptor::kernel_data_segment()).0,
            gdt.append(Descriptor::tss_segment(tss)).0,
        );
        gdt
    });
    assert_eq!((selectors.0, selectors.1), (CODE, DATA));
    gdt.load();
    // SAFETY: the GDT just loaded has 64-bit ring-0 code at CODE and writable data at DATA, and
    // the TSS descriptor at selectors.2 describes the static TSS.
    unsafe {
        CS::set_reg(SegmentSelector(CODE));
        SS::set_reg(SegmentSelector(DATA));
        DS::set_reg(SegmentSelector(DATA));
        ES::set_reg(SegmentSelector(DATA));
        load_tss(SegmentSelector(selectors.2));
    }
}
