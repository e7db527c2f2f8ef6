//! Recognising the ACPI RSDP ("Root System Description Pointer", ACPI 6.5 §5.2.5) in a scanned
//! BIOS area: the signature "RSD PTR " on a 16-byte boundary, the first 20 bytes summing to 0,
//! and for revision >= 2 all `length` bytes summing to 0 too.

/// The RSDP signature.
const SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// ACPI 1.0 RSDP size (the part the first checksum covers).
const V1_LEN: usize = 20;
/// ACPI 2.0+ RSDP size.
const V2_LEN: usize = 36;

/// The physical address of the first valid RSDP in `area`, which starts at physical `base`.
pub fn find(area: &[u8], base: u64) -> Option<u64> {
    (0..area.len().saturating_sub(V1_LEN - 1))
        .step_by(16)
        .find(|&o| is_valid(&area[o..]))
        .map(|o| base + o as u64)
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0
}

fn is_valid(at: &[u8]) -> bool {
    if at.len() < V1_LEN || &at[..8] != SIGNATURE || !sums_to_zero(&at[..V1_LEN]) {
        return false;
    }
    let revision = at[15];
    if revision < 2 {
        return true;
    }
    let len = crate::le::u32_at(at, 20).unwrap_or(0) as usize;
    len >= V2_LEN && len <= at.len() && sums_to_zero(&at[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsdp(revision: u8) -> Vec<u8> {
        let mut r = vec![0u8; V2_LEN];
        r[..8].copy_from_slice(SIGNATURE);
        r[9..15].copy_from_slice(b"BOCHS ");
        r[15] = revision;
        r[16..20].copy_from_slice(&0x7fe_1234u32.to_le_bytes());
        r[20..24].copy_from_slice(&(V2_LEN as u32).to_le_bytes());
        let sum = r[..V1_LEN].iter().fold(0u8, |s, &b| s.wrapping_add(b));
        r[8] = sum.wrapping_neg();
        let sum = r.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        r[32] = sum.wrapping_neg();
        r
    }

    #[test]
    fn finds_valid_rsdps_on_16_byte_boundaries() {
        for revision in [0, 2] {
            let mut area = vec![0u8; 0x1000];
            area[0x10..0x18].copy_from_slice(SIGNATURE); // bad checksum
            area[0x235..0x23d].copy_from_slice(SIGNATURE); // not aligned
            let r = rsdp(revision);
            area[0x9d0..0x9d0 + r.len()].copy_from_slice(&r);
            assert_eq!(find(&area, 0xf5000), Some(0xf59d0));
        }
    }

    #[test]
    fn rejects_broken_extended_checksum_and_short_areas() {
        let mut r = rsdp(2);
        r[30] ^= 1;
        assert_eq!(find(&r, 0), None);
        assert_eq!(find(&rsdp(2)[..30], 0), None);
        assert_eq!(find(&[], 0), None);
        assert_eq!(find(&rsdp(0)[..V1_LEN], 0xe0000), Some(0xe0000));
    }
}
