//! From the multiboot loader to `kmain` (entry.S), and the boot information copied out of low
//! memory before the host takes that memory for its own data.

use standin_core::multiboot::{self, MemoryRegion, PhysMemory, MAX_CMDLINE};
use standin_core::ranges::Range;

core::arch::global_asm!(include_str!("entry.S"));

/// `%eax` from a multiboot 1 loader (Multiboot spec §3.2).
pub const MULTIBOOT_LOADER_MAGIC: u32 = 0x2BAD_B002;
/// Memory map entries kept.
const MAX_REGIONS: usize = 64;

extern "C" {
    /// First byte of the image (linker script).
    pub static __image_start: u8;
    /// End of the text (page-aligned).
    pub static __text_start: u8;
    /// End of the text (page-aligned).
    pub static __text_end: u8;
    /// End of the read-only data (page-aligned).
    pub static __rodata_end: u8;
    /// One past the image's last byte, bss included (page-aligned).
    pub static __image_end: u8;
}

/// The host image's physical (= virtual) bounds.
pub fn image() -> Range {
    Range::new(
        (&raw const __image_start) as u64,
        (&raw const __image_end) as u64,
    )
}

/// What the loader told us, copied into the host's own memory.
pub struct BootInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    /// Module 0 (`-initrd`), where the loader put it.
    pub initrd: Option<Range>,
}

impl BootInfo {
    /// The command line (`-append`), without the image name the loader puts first.
    pub fn cmdline(&self) -> &str {
        multiboot::arguments(self.full_cmdline())
    }

    fn full_cmdline(&self) -> &str {
        // Copied from a validated `&str`.
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }
}

/// Physical memory through entry.S's temporary identity map of the first 4 GiB.
struct BootIdentityMap;

impl PhysMemory for BootIdentityMap {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if addr == 0 || end > 4 << 30 {
            return None;
        }
        // SAFETY: entry.S identity-maps 0..4 GiB and the final page tables are not installed
        // yet (read_multiboot runs first); the loader's structures are not written while read.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// Copies the multiboot information at `info` (through the boot identity map: call before the
/// final page tables replace it). `Err` with the reason on a malformed block.
pub fn read_multiboot(magic: u32, info: u32) -> Result<&'static BootInfo, &'static str> {
    if magic != MULTIBOOT_LOADER_MAGIC {
        return Err("not started by a multiboot 1 loader (boot with QEMU -kernel)");
    }
    let parsed = match multiboot::parse(&BootIdentityMap, info as u64) {
        Ok(parsed) => parsed,
        Err(e) => {
            crate::println!("standin: error: {e}");
            return Err("unusable multiboot information");
        }
    };
    let mut boot = BootInfo {
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: parsed.cmdline.len(),
        regions: [MemoryRegion {
            range: Range::new(0, 0),
            kind: 0,
        }; MAX_REGIONS],
        region_count: 0,
        initrd: parsed.modules().next().map(|m| m.range),
    };
    boot.cmdline[..parsed.cmdline.len()].copy_from_slice(parsed.cmdline.as_bytes());
    for region in parsed.memory_map().take(MAX_REGIONS) {
        boot.regions[boot.region_count] = region;
        boot.region_count += 1;
    }
    Ok(BOOT_INFO.call_once(|| boot))
}
