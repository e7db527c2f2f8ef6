//! Little-endian field access in structures already copied out of physical memory. Firmware
//! and boot-loader structures on x86 (ACPI 6.5 §5.2: "all numeric values ... are
//! little-endian", the MP tables, PVH start info, multiboot info) store multi-byte fields
//! little-endian and without alignment guarantees.

/// The `N` bytes at `off`. Panics if the slice is too short: callers index fixed layouts
/// whose size they have already checked.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[off..off + N]);
    out
}

/// The little-endian `u16` at `off`.
pub(crate) fn u16_at(bytes: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(array_at(bytes, off))
}

/// The little-endian `u32` at `off`.
pub(crate) fn u32_at(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, off))
}

/// The little-endian `u64` at `off`.
pub(crate) fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unaligned_little_endian() {
        let b = [0xAA, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(u16_at(&b, 1), 0x0201);
        assert_eq!(u32_at(&b, 1), 0x0403_0201);
        assert_eq!(u64_at(&b, 1), 0x0807_0605_0403_0201);
        assert_eq!(array_at::<2>(&b, 7), [0x07, 0x08]);
    }
}
