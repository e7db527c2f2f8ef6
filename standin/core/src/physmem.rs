//! What the host does with each part of physical RAM, from the multiboot memory map: which
//! frames its allocator hands out and in which order, and which low pages the program may
//! borrow.
//!
//! The order is Unikraft's: low RAM first. Its page allocator starts below 1 MiB, so the
//! kernel's page tables and the program's memory (heap, brk, mmap areas, parts of the stack)
//! sit in the pages a library would look at for an AP trampoline, and only the dead boot stack
//! is left free there. Here the page-table root is the first frame (at [`LOW_FRAMES_START`]),
//! then page tables and program pages follow as they are needed; above the end of low RAM the
//! frames continue from 1 MiB.

use crate::layout::{DEAD_BOOT_STACK, LEGACY_AREA_START, LOW_FRAMES_START, MAX_PHYS, ONE_MIB};
use crate::loader::{self, MemoryKind, MemoryRegion};
use crate::ranges::{Range, RangeSet, PAGE};

/// Frames not handed out yet (whole pages, sorted: the lowest goes first).
pub type FrameRam = RangeSet<64>;

/// The low pages the program may borrow (`STANDIN_LOWMEM_FREE`).
pub type Borrowable = RangeSet<16>;

/// The lowest address the BIOS data area may name as the EBDA's start (the EBDA is at most
/// 128 KiB, right below [`LEGACY_AREA_START`]); anything else is not an EBDA pointer.
const EBDA_LOWEST: u64 = 0x8_0000;

/// The EBDA's physical start from the segment the BIOS data area holds at 0x40E (ACPI 6.5
/// §5.2.5.1 "Finding the RSDP on IA-PC Systems"), if it names one.
pub fn ebda_base(segment: u16) -> Option<u64> {
    let base = (segment as u64) << 4;
    (EBDA_LOWEST..LEGACY_AREA_START)
        .contains(&base)
        .then_some(base)
}

/// Where low RAM ends for the allocator: below the EBDA if there is one (the firmware's, and
/// where the RSDP may be), else at the legacy area, whatever the memory map says.
pub fn low_ram_end(ebda: Option<u64>) -> u64 {
    ebda.map_or(LEGACY_AREA_START, |e| e & !(PAGE - 1))
}

/// The available RAM of `map`, whole pages, inside `limit`.
fn available_in<const N: usize>(map: &[MemoryRegion], limit: Range) -> RangeSet<N> {
    let mut set = RangeSet::new();
    for region in map.iter().filter(|r| r.kind == MemoryKind::Usable) {
        // A full set drops the region: less memory, never memory that is not RAM.
        let _ = set.insert(loader::range(region).pages_inside().clip(&limit));
    }
    set
}

/// The frames the allocator may hand out: available RAM from [`LOW_FRAMES_START`] to the end of
/// low RAM ([`low_ram_end`]), then from 1 MiB to [`MAX_PHYS`], minus `taken` (the host image,
/// the initrd). Page 0, the dead boot stack and the firmware areas are never in it.
pub fn frame_ram(map: &[MemoryRegion], ebda: Option<u64>, taken: &[Range]) -> FrameRam {
    let low: FrameRam = available_in(map, Range::new(LOW_FRAMES_START, low_ram_end(ebda)));
    let mut frames: FrameRam = available_in(map, Range::new(ONE_MIB, MAX_PHYS));
    for range in low.ranges() {
        let _ = frames.insert(*range);
    }
    for range in taken {
        // A removal that does not fit would leave the range in: drop everything above its
        // start rather than ever hand out a page of it.
        if frames.remove(range.pages_covering()).is_err() {
            frames.clip(&Range::new(0, range.start & !(PAGE - 1)));
        }
    }
    frames
}

/// The low RAM the program may borrow: the available part of the dead boot stack, whole pages
/// (`occupy=` pages come off afterwards).
pub fn borrowable(map: &[MemoryRegion]) -> Borrowable {
    available_in(map, DEAD_BOOT_STACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    use bootinfo::PhysRange;

    const MEMORY_AVAILABLE: MemoryKind = MemoryKind::Usable;
    const RESERVED: MemoryKind = MemoryKind::Reserved;

    fn region(start: u64, end: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange {
                base: start,
                len: end - start,
            },
            kind,
        }
    }

    /// QEMU's map for `-M pc -m 256M` (SeaBIOS e820): low RAM up to the EBDA at 0x9fc00, the
    /// BIOS area reserved, RAM from 1 MiB.
    fn qemu_pc() -> [MemoryRegion; 4] {
        [
            region(0, 0x9_fc00, MEMORY_AVAILABLE),
            region(0x9_fc00, 0xa_0000, RESERVED),
            region(0xf_0000, 0x10_0000, RESERVED),
            region(0x10_0000, 0x1000_0000, MEMORY_AVAILABLE),
        ]
    }

    const IMAGE: Range = Range::new(0x10_0000, 0x13_7000);

    #[test]
    fn low_frames_first_the_root_at_0x11000() {
        let mut frames = frame_ram(&qemu_pc(), ebda_base(0x9fc0), &[IMAGE]);
        let low_pages = (0x9_f000 - 0x1_1000) / PAGE;
        let mut order = (0..low_pages).map(|_| frames.take_lowest_page().unwrap());
        assert_eq!(order.next(), Some(0x1_1000));
        assert_eq!(order.next(), Some(0x1_2000));
        assert_eq!(order.last(), Some(0x9_e000));
        // Then from 1 MiB, past the host image.
        assert_eq!(frames.take_lowest_page(), Some(IMAGE.end));
        assert_eq!(frames.take_lowest_page(), Some(IMAGE.end + PAGE));
    }

    #[test]
    fn never_page_0_the_boot_stack_the_ebda_or_the_bios() {
        // A map that claims everything below 1 MiB is RAM.
        let map = [region(0, 0x10_0000, MEMORY_AVAILABLE)];
        let frames = frame_ram(&map, ebda_base(0x9fc0), &[]);
        assert_eq!(frames.ranges(), &[Range::new(0x1_1000, 0x9_f000)]);
        // Without an EBDA, low RAM still ends where VGA memory starts.
        let frames = frame_ram(&map, ebda_base(0), &[]);
        assert_eq!(frames.ranges(), &[Range::new(0x1_1000, 0xa_0000)]);
    }

    #[test]
    fn the_initrd_and_the_image_stay_out() {
        let initrd = Range::new(0x20_0800, 0x30_0100);
        let frames = frame_ram(&qemu_pc(), None, &[IMAGE, initrd]);
        assert_eq!(
            frames.ranges(),
            &[
                Range::new(0x1_1000, 0x9_f000),
                Range::new(IMAGE.end, 0x20_0000),
                Range::new(0x30_1000, 0x1000_0000),
            ]
        );
    }

    #[test]
    fn ebda_pointers() {
        assert_eq!(ebda_base(0x9fc0), Some(0x9_fc00));
        assert_eq!(ebda_base(0), None);
        assert_eq!(ebda_base(0xa000), None);
        assert_eq!(ebda_base(0x7000), None);
        assert_eq!(low_ram_end(Some(0x9_fc00)), 0x9_f000);
        assert_eq!(low_ram_end(None), LEGACY_AREA_START);
    }

    #[test]
    fn only_the_dead_boot_stack_is_borrowable() {
        assert_eq!(borrowable(&qemu_pc()).to_string(), "0x1000-0x11000");
        // A hole in the map stays out.
        let holey = [
            region(0, 0x4_000, MEMORY_AVAILABLE),
            region(0x6_000, 0x9_fc00, MEMORY_AVAILABLE),
        ];
        assert_eq!(
            borrowable(&holey).to_string(),
            "0x1000-0x4000,0x6000-0x11000"
        );
    }
}
