//! What the library can see for itself about the low pages a host named free, before it
//! writes any of them: the host's page tables (every table, and every low page they map with a
//! 4 KiB page at an address of the host's own choosing, or keep in a non-present entry), the
//! BSP's stack, GDT, IDT and TSS, the memory the host handed to the library, and pages whose
//! content shows live kernel data (a pointer into themselves through the direct map). Each such
//! page is refused (lowmem.rs), so a host that names a live range by mistake gets an error
//! naming the pages, never a corrupted page table or heap. What no rule here can see (data a
//! kernel reaches through its direct map only, with no pointer into its own page) stays the
//! host's word.

use super::error::BringupError;
use super::host::Host;
use super::lowmem::{LowPageCensus, Refusal};
use crate::arch::x86_64::page_walk;
use crate::phys::PhysRead;

const PAGE: u64 = 4096;

/// Most page tables read: a 4-level tree mapping hundreds of GiB with 4 KiB pages has fewer.
pub const MAX_TABLES: u32 = 1 << 16;

/// How much of the BSP's stack is checked on each side of its stack pointer: the bring-up's
/// own frames lie below it, its callers' above, and neither reaches this far.
const STACK_WINDOW: u64 = 64 * 1024;

/// The census of the pages below 1 MiB: the host's free ranges minus everything in use that
/// the library can see. Reads the page tables in force (CR3) through `host.phys()`.
pub fn census<H: Host>(host: &H) -> Result<LowPageCensus, BringupError> {
    let mut census = LowPageCensus::new(&host.low_memory());
    let phys = host.phys();
    let read = |pa: u64| phys.read_array::<8>(pa).ok().map(u64::from_le_bytes);
    let root = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    let survey = page_walk::survey(root, phys.offset(), MAX_TABLES, read)
        .map_err(BringupError::HostPageTables)?;
    census.refuse_surveyed(&survey);

    // Refuses the low physical pages behind virtual [start, start + len).
    let refuse_virt = |census: &mut LowPageCensus, start: u64, len: u64, why: Refusal| {
        let end = start.saturating_add(len);
        let mut virt = start & !(PAGE - 1);
        while virt < end {
            let Some(leaf) = page_walk::translate_leaf(root, virt, read) else {
                virt += PAGE;
                continue;
            };
            // The rest of the leaf's page maps on contiguously from `leaf.phys`.
            let rest = (leaf.size - (leaf.phys & (leaf.size - 1))).min(end - virt);
            let mut page = leaf.phys;
            while page < leaf.phys + rest && page < 1 << 20 {
                census.refuse(page, why);
                page += PAGE;
            }
            virt += rest.next_multiple_of(PAGE);
        }
    };
    let rsp: u64;
    // SAFETY: reads the stack pointer into a register; no memory access.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    refuse_virt(
        &mut census,
        rsp.saturating_sub(STACK_WINDOW),
        2 * STACK_WINDOW,
        Refusal::BspStack,
    );
    for (base, len) in descriptor_tables() {
        refuse_virt(&mut census, base, len, Refusal::DescriptorTable);
    }
    if let Some((base, len)) = host.library_memory() {
        refuse_virt(&mut census, base, len as u64, Refusal::LibraryMemory);
    }
    refuse_pages_with_host_pointers(&mut census, &phys, phys.offset(), phys.limit());
    Ok(census)
}

/// Refuses each remaining candidate page that holds a pointer, through the host's direct map,
/// into the page itself.
///
/// Why: a kernel keeps data it reaches through its direct map (heap objects, allocator and
/// list heads) at no address of its own choosing, so neither the page tables nor any other
/// structure the library can read shows that such a page is live; its content can. A linked
/// structure that lives in a page points into that page (an empty list head points at
/// itself). Free RAM holds no such value, and neither does a dead stack, whose stack
/// addresses are those it was used at (its identity addresses), not direct-map ones. Measured
/// on Unikraft 0.20: the page above the boot stack, 0x11000, is live kernel data with such
/// self-pointers; the boot stack below holds direct-map pointers to elsewhere now and then
/// (values a dead function left), never into its own pages. Only for a direct map at a high
/// offset, where such values are distinctive: with an identity map any small number would
/// look like one.
fn refuse_pages_with_host_pointers(
    census: &mut LowPageCensus,
    phys: &impl PhysRead,
    offset: u64,
    limit: u64,
) {
    if offset < 1 << 47 {
        return;
    }
    let mut found = [None; page_walk::LOW_PAGES];
    for (n, page) in census.candidates().enumerate().take(page_walk::LOW_PAGES) {
        let mut words = [0u8; PAGE as usize];
        if phys.read(page, &mut words).is_err() {
            continue;
        }
        let here = offset.wrapping_add(page);
        let pointer = words
            .chunks_exact(8)
            .enumerate()
            .map(|(i, w)| (i, u64::from_le_bytes(w.try_into().expect("8 bytes"))))
            .find(|&(_, v)| v.wrapping_sub(here) < PAGE && page < limit);
        if let Some((i, value)) = pointer {
            found[n] = Some((
                page,
                Refusal::HoldsHostPointer {
                    at: (page + 8 * i as u64) as u32,
                    value,
                },
            ));
        }
    }
    for (page, why) in found.into_iter().flatten() {
        census.refuse(page, why);
    }
}

/// The BSP's GDT, IDT and TSS as (virtual base, bytes).
fn descriptor_tables() -> [(u64, u64); 3] {
    let gdt = x86_64::instructions::tables::sgdt();
    let idt = x86_64::instructions::tables::sidt();
    let tr: u16;
    // SAFETY: STR only copies the task register's selector into a register.
    unsafe { core::arch::asm!("str {0:x}", out(reg) tr, options(nomem, nostack)) };
    let gdt_base = gdt.base.as_u64();
    let index = (tr & !7) as u64;
    let tss = if tr != 0 && index + 16 <= gdt.limit as u64 + 1 {
        // SAFETY: the GDT in use is mapped readable, and the 16-byte TSS descriptor lies inside
        // its limit (checked).
        let d = unsafe { ((gdt_base + index) as *const [u8; 16]).read_unaligned() };
        // 64-bit TSS descriptor (SDM Vol. 3A §8.2.3, Figure 8-4): base 15:0 in bytes 2-3,
        // 23:16 in byte 4, 31:24 in byte 7, 63:32 in bytes 8-11.
        let base = u16::from_le_bytes([d[2], d[3]]) as u64
            | (d[4] as u64) << 16
            | (d[7] as u64) << 24
            | (u32::from_le_bytes([d[8], d[9], d[10], d[11]]) as u64) << 32;
        (base, 104)
    } else {
        (0, 0)
    };
    [
        (gdt_base, gdt.limit as u64 + 1),
        (idt.base.as_u64(), idt.limit as u64 + 1),
        tss,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::host::LowMemory;
    use crate::phys::PhysRange;
    use crate::test_mem::FakeMem;

    const DIRECT: u64 = 0xFFFF_FF80_0000_0000;

    #[test]
    fn pages_holding_direct_map_pointers_are_refused() {
        let page = |words: &[(usize, u64)]| {
            let mut bytes = vec![0u8; 4096];
            for &(i, v) in words {
                bytes[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
            }
            bytes
        };
        // 0x1000: a dead stack (return addresses, stack addresses); 0x2000: a list head
        // pointing to itself through the direct map; 0x3000: zeroes; 0x4000: a value past the
        // mapping's limit.
        let mem = FakeMem::new()
            .with(
                0x1000,
                page(&[(0, 0x10_2a3f), (1, 0x1ff8), (9, 0x8000_0000_0000_0000)]),
            )
            .with(0x2000, page(&[(7, DIRECT + 0x2038), (8, DIRECT + 0x2038)]))
            .with(0x3000, page(&[]))
            .with(0x4000, page(&[(3, DIRECT + (8 << 30))]));
        let free = [PhysRange {
            base: 0x1000,
            len: 0x4000,
        }];
        let low = LowMemory {
            free: &free,
            in_use: &[],
        };
        let mut census = LowPageCensus::new(&low);
        refuse_pages_with_host_pointers(&mut census, &mem, DIRECT, 4 << 30);
        assert_eq!(
            census.candidates().collect::<Vec<_>>(),
            [0x1000, 0x3000, 0x4000]
        );
        let summary = census.summary();
        assert_eq!(summary.refused, 1);
        assert_eq!(
            summary.runs[0].unwrap().why,
            Refusal::HoldsHostPointer {
                at: 0x2038,
                value: DIRECT + 0x2038
            }
        );
        // With an identity map (offset 0) content says nothing.
        let mut census = LowPageCensus::new(&low);
        refuse_pages_with_host_pointers(&mut census, &mem, 0, 4 << 30);
        assert_eq!(census.candidates().count(), 4);
    }
}
