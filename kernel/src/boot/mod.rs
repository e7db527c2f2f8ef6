//! The image's entry from the boot loader (PVH or multiboot 1) into `kmain`; see `entry.S`.

core::arch::global_asm!(include_str!("entry.S"));

/// `boot_protocol` values passed to `kmain` by `entry.S`.
pub const BOOT_PROTOCOL_PVH: u32 = 1;
/// See [`BOOT_PROTOCOL_PVH`].
pub const BOOT_PROTOCOL_MULTIBOOT1: u32 = 2;

extern "C" {
    /// First byte of the image (linker script).
    pub static __image_start: u8;
    /// One past the image's last byte, bss included (linker script).
    pub static __image_end: u8;
    /// The boot page directories: 4 × 512 entries mapping 0..4 GiB with 2 MiB pages (entry.S).
    pub static mut boot_pd: [u64; 2048];
}
