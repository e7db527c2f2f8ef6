//! The legacy PC BIOS memory areas that firmware pointer structures hide in, and a chunked scan
//! of them. Used for the ACPI RSDP (ACPI 6.5 §5.2.5.1) and the MP Floating Pointer Structure
//! (MP 1.4 §4), which are both found by a signature on a 16-byte boundary.

use crate::phys::PhysRead;

/// BIOS Data Area word (40:0Eh) holding the real-mode segment of the Extended BIOS Data Area.
// ACPI 6.5 §5.2.5.1 Finding the RSDP on IA-PC Systems; MP 1.4 §4 (item a).
const EBDA_SEGMENT_PTR: u64 = 0x40E;

/// The BIOS Data Area ends here; an EBDA below it would overlap the BDA or the real-mode
/// interrupt vector table, so such a segment value is garbage.
const BDA_END: u64 = 0x500;

/// End of conventional memory (the VGA window starts here): the EBDA sits just below it.
const CONVENTIONAL_END: u64 = 0xA_0000;

/// Both specs only search the first KiB of the EBDA.
// ACPI 6.5 §5.2.5.1; MP 1.4 §4 (item a).
pub(crate) const EBDA_SEARCH_LEN: u64 = 1024;

/// Pointer structures are aligned on 16-byte ("paragraph") boundaries.
// ACPI 6.5 §5.2.5.1; MP 1.4 §4.
const PARAGRAPH: u64 = 16;

/// Bytes read per scan step: one read per KiB instead of one per paragraph, while keeping the
/// buffer small enough for a boot stack.
const SCAN_CHUNK: usize = 1024;

/// Physical address of the Extended BIOS Data Area, from the segment the BIOS stored at
/// 40:0Eh; `None` when the word is unreadable, 0 (no EBDA) or points outside conventional
/// memory (firmware such as some UEFI CSM-less setups leave garbage there).
pub(crate) fn ebda_base(mem: &impl PhysRead) -> Option<u64> {
    let segment = u16::from_le_bytes(mem.read_array::<2>(EBDA_SEGMENT_PTR).ok()?);
    let base = u64::from(segment) << 4;
    if base < BDA_END || base + EBDA_SEARCH_LEN > CONVENTIONAL_END {
        return None;
    }
    Some(base)
}

/// Scans `[start, end)` on 16-byte boundaries for `signature` and returns the first address
/// where it appears and `accept` agrees (it validates checksums, so bad candidates are passed
/// over and the scan goes on).
///
/// Memory is read `SCAN_CHUNK` bytes at a time; a chunk that cannot be read is skipped so an
/// unmapped hole does not hide a structure further on. `signature` must be at most 16 bytes
/// (it always fits inside a chunk from a paragraph boundary).
pub(crate) fn scan_paragraphs(
    mem: &impl PhysRead,
    start: u64,
    end: u64,
    signature: &[u8],
    mut accept: impl FnMut(u64) -> bool,
) -> Option<u64> {
    debug_assert!(signature.len() <= PARAGRAPH as usize);
    let mut buf = [0u8; SCAN_CHUNK];
    let mut chunk_start = start.checked_next_multiple_of(PARAGRAPH)?;
    while chunk_start < end {
        // `min` with SCAN_CHUNK keeps the cast lossless.
        let n = (end - chunk_start).min(SCAN_CHUNK as u64) as usize;
        if mem.read(chunk_start, &mut buf[..n]).is_ok() {
            for off in (0..n).step_by(PARAGRAPH as usize) {
                let candidate = chunk_start + off as u64;
                if buf[off..].starts_with(signature) && accept(candidate) {
                    return Some(candidate);
                }
            }
        }
        chunk_start += n as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_mem::{low_memory, FakeMem};

    #[test]
    fn ebda_segment_is_validated() {
        let mut mem = low_memory();
        assert_eq!(ebda_base(&mem), None, "segment 0 means no EBDA");
        mem.poke(EBDA_SEGMENT_PTR, &0x9FC0u16.to_le_bytes());
        assert_eq!(ebda_base(&mem), Some(0x9_FC00));
        mem.poke(EBDA_SEGMENT_PTR, &0x0010u16.to_le_bytes());
        assert_eq!(ebda_base(&mem), None, "inside the BDA");
        mem.poke(EBDA_SEGMENT_PTR, &0xF000u16.to_le_bytes());
        assert_eq!(ebda_base(&mem), None, "in the ROM area");
        assert_eq!(ebda_base(&FakeMem::new()), None, "unreadable BDA");
    }

    #[test]
    fn scan_is_aligned_chunked_and_skips_rejected_candidates() {
        let mut mem = low_memory();
        mem.poke(0xE_0008, b"SIG!"); // not on a paragraph boundary
        mem.poke(0xE_0010, b"SIG!"); // rejected by `accept`
        mem.poke(0xE_43F0, b"SIG!"); // last paragraph of a chunk
        let before = mem.reads();
        let mut seen = Vec::new();
        let found = scan_paragraphs(&mem, 0xE_0000, 0x10_0000, b"SIG!", |pa| {
            seen.push(pa);
            pa != 0xE_0010
        });
        assert_eq!(found, Some(0xE_43F0));
        assert_eq!(seen, [0xE_0010, 0xE_43F0]);
        assert_eq!(mem.reads() - before, 0x4400 / SCAN_CHUNK);
    }

    #[test]
    fn scan_survives_unreadable_holes() {
        let mut tail = vec![0u8; 0x400];
        tail[0x20..0x24].copy_from_slice(b"SIG!");
        let mem = FakeMem::new().with(0xF_0400, tail);
        assert_eq!(
            scan_paragraphs(&mem, 0xF_0000, 0xF_0800, b"SIG!", |_| true),
            Some(0xF_0420)
        );
        assert_eq!(
            scan_paragraphs(&mem, 0xF_0000, 0xF_0420, b"SIG!", |_| true),
            None
        );
    }
}
