//! Building the kernel image, and its PVH-only twin.
//!
//! QEMU's `-kernel` tries multiboot before PVH: an image with a multiboot header is always
//! booted through multiboot. To boot the same kernel through its PVH note, the twin is a copy
//! whose multiboot magic is zeroed; every other byte is the same.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The two boot images.
pub struct Images {
    /// The release image (multiboot header and PVH note): what `make` leaves.
    pub multiboot: PathBuf,
    /// The same bytes with the multiboot magic zeroed, so QEMU uses the PVH note.
    pub pvh: PathBuf,
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Builds the release kernel for x86_64-unknown-none and writes the PVH twin.
pub fn kernel() -> Result<Images, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "rust_multicore",
            "--target",
            "x86_64-unknown-none",
        ])
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err("kernel build failed".into());
    }
    let multiboot = target_dir().join("x86_64-unknown-none/release/rust_multicore");
    let pvh = multiboot.with_extension("pvh");
    let mut bytes =
        std::fs::read(&multiboot).map_err(|e| format!("{}: {e}", multiboot.display()))?;
    let at = find_multiboot_header(&bytes).ok_or("the image has no multiboot header")?;
    bytes[at..at + 4].fill(0);
    std::fs::write(&pvh, &bytes).map_err(|e| format!("{}: {e}", pvh.display()))?;
    Ok(Images { multiboot, pvh })
}

/// Offset of the multiboot 1 header: magic 0x1BADB002 on a 4-byte boundary in the first
/// 8 KiB, with flags and checksum summing to zero (Multiboot spec §3.1.1).
pub fn find_multiboot_header(image: &[u8]) -> Option<usize> {
    let word = |i: usize| u32::from_le_bytes(image[i..i + 4].try_into().unwrap());
    (0..image.len().min(8192).saturating_sub(12))
        .step_by(4)
        .find(|&i| {
            word(i) == 0x1BAD_B002
                && word(i).wrapping_add(word(i + 4)).wrapping_add(word(i + 8)) == 0
        })
}

#[cfg(test)]
mod tests {
    use super::find_multiboot_header;

    #[test]
    fn finds_only_a_header_with_a_valid_checksum() {
        let mut image = vec![0u8; 64];
        let magic = 0x1BAD_B002u32;
        let flags = 0x0001_0002u32;
        image[16..20].copy_from_slice(&magic.to_le_bytes());
        image[20..24].copy_from_slice(&flags.to_le_bytes());
        image[24..28].copy_from_slice(&(0u32.wrapping_sub(magic + flags)).to_le_bytes());
        assert_eq!(find_multiboot_header(&image), Some(16));
        image[24] ^= 1;
        assert_eq!(find_multiboot_header(&image), None);
    }
}
