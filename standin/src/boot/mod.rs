//! From the multiboot loader to `kmain` (entry.S), and the boot information copied out of low
//! memory before the host takes that memory for its own data.

use standin_core::loader::{self, MemoryRegion, PhysRead};
use standin_core::ranges::Range;

core::arch::global_asm!(include_str!("entry.S"));

/// `%eax` from a multiboot 1 loader (Multiboot spec §3.2).
pub const MULTIBOOT_LOADER_MAGIC: u32 = 0x2BAD_B002;

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

/// What the loader told us, copied into the host's own memory (checked by
/// `standin_core::loader`: a whole UTF-8 command line, a memory map).
pub struct BootInfo {
    info: bootinfo::BootInfo,
    /// Module 0 (`-initrd`), where the loader put it.
    pub initrd: Option<Range>,
}

impl BootInfo {
    /// The command line (`-append`), without the image name the loader puts first.
    pub fn cmdline(&self) -> &str {
        self.info.cmdline()
    }

    /// The memory map.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        self.info.memory_map()
    }
}

/// Physical memory through entry.S's temporary identity map of the first 4 GiB.
struct BootIdentityMap;

impl PhysRead for BootIdentityMap {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), bootinfo::ReadError> {
        let err = bootinfo::ReadError {
            addr: pa,
            len: buf.len(),
        };
        let end = pa.checked_add(buf.len() as u64).ok_or(err)?;
        // Address 0 would be a null pointer; nothing the loader passes lives there.
        if pa == 0 || end > 4 << 30 {
            return Err(err);
        }
        // SAFETY: entry.S identity-maps 0..4 GiB and the final page tables are not installed
        // yet (read_multiboot runs first); the loader's structures are not written while read,
        // and `buf` is the host's own memory, not part of them.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// Copies the multiboot information at `info` (through the boot identity map: call before the
/// final page tables replace it). `Err` with the reason on a malformed block.
pub fn read_multiboot(magic: u32, info: u32) -> Result<&'static BootInfo, &'static str> {
    if magic != MULTIBOOT_LOADER_MAGIC {
        return Err("not started by a multiboot 1 loader (boot with QEMU -kernel)");
    }
    let info = match loader::read(&BootIdentityMap, info as u64) {
        Ok(info) => info,
        Err(e) => {
            crate::println!("standin: error: {e}");
            return Err("unusable multiboot information");
        }
    };
    let initrd = loader::initrd(&info);
    Ok(BOOT_INFO.call_once(|| BootInfo { info, initrd }))
}
