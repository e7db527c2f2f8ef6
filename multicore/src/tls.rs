//! Thread-local storage for APs that run code of a program with TLS (`thread_local!` in a `std`
//! program): each AP gets its own copy of the program's TLS block and thread pointer.
//!
//! x86-64 uses TLS "variant II" (System V x86-64 ABI §3.4.6; Drepper, "ELF Handling For Thread-
//! Local Storage" §3.4.2): the thread pointer (FS base) points at the thread control block (TCB),
//! whose first word points to itself, and the executable's TLS block lies just below it. Code
//! compiled for an executable reaches a variable at a constant negative offset from FS, which
//! the linker computed from the PT_TLS segment alone; so a block laid out the same way below a
//! fresh TCB works for every AP without knowing anything else about the program.
//!
//! The block's placement follows what the C library does for the main thread (musl's
//! `__init_tls`/`__copy_tls`, glibc's `_dl_allocate_tls`): the block ends at the thread pointer
//! and starts at the same address modulo the segment's alignment as the segment's own virtual
//! address. The TCB is the library's business: the caller passes the bytes to start it from
//! (typically a copy of the BSP's own, so that a C library finds what it expects), and the first
//! word is replaced by the self-pointer.

/// The program's TLS segment (its PT_TLS program header).
#[derive(Debug, Clone, Copy)]
pub struct TlsTemplate {
    /// Virtual address of the initialization image (`p_vaddr`).
    pub vaddr: u64,
    /// The initialization image: `p_filesz` bytes at `p_vaddr`.
    pub image: &'static [u8],
    /// Size of the block (`p_memsz`): the image, then zeros.
    pub mem_size: usize,
    /// Alignment (`p_align`, a power of two; 0 and 1 mean none).
    pub align: usize,
}

/// Why a TLS area cannot be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The alignment is not a power of two.
    BadAlignment(usize),
    /// The image is longer than the block.
    ImageTooLong {
        /// `p_filesz`.
        file_size: usize,
        /// `p_memsz`.
        mem_size: usize,
    },
    /// The TCB template is shorter than the self-pointer.
    TcbTooShort(usize),
    /// The memory given is smaller than [`TlsLayout::size`].
    AreaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
}

impl core::fmt::Display for TlsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TlsError::BadAlignment(a) => write!(f, "TLS alignment {a} is not a power of two"),
            TlsError::ImageTooLong {
                file_size,
                mem_size,
            } => write!(
                f,
                "TLS image of {file_size} bytes does not fit its {mem_size}-byte block"
            ),
            TlsError::TcbTooShort(n) => {
                write!(f, "a TCB of {n} bytes has no room for its self-pointer")
            }
            TlsError::AreaTooSmall { needed, given } => {
                write!(f, "TLS area of {given} bytes, {needed} needed")
            }
        }
    }
}

/// Where things go in one AP's TLS area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLayout {
    /// Bytes to reserve for one area (room for aligning the thread pointer included).
    pub size: usize,
    /// Distance from the start of the TLS block to the thread pointer.
    pub block_to_tp: usize,
    /// Alignment of the thread pointer.
    pub tp_align: usize,
    /// Bytes of TCB at the thread pointer.
    pub tcb_size: usize,
}

/// The thread pointer is at least 16-byte aligned (the TCB holds pointers; 16 keeps the ABI's
/// stack-like alignment for whatever a C library puts there).
const MIN_TP_ALIGN: usize = 16;

/// Lays out an area for `template` with a TCB of `tcb_size` bytes.
pub fn layout(template: &TlsTemplate, tcb_size: usize) -> Result<TlsLayout, TlsError> {
    let align = template.align.max(1);
    if !align.is_power_of_two() {
        return Err(TlsError::BadAlignment(template.align));
    }
    if template.image.len() > template.mem_size {
        return Err(TlsError::ImageTooLong {
            file_size: template.image.len(),
            mem_size: template.mem_size,
        });
    }
    if tcb_size < 8 {
        return Err(TlsError::TcbTooShort(tcb_size));
    }
    // The block ends at the thread pointer and is congruent to `vaddr` modulo `align`: pad the
    // size so that (block_to_tp + vaddr) is a multiple of the alignment.
    let misalign = (template.vaddr as usize)
        .wrapping_neg()
        .wrapping_sub(template.mem_size)
        & (align - 1);
    let block_to_tp = template.mem_size + misalign;
    let tp_align = align.max(MIN_TP_ALIGN);
    Ok(TlsLayout {
        size: block_to_tp + tcb_size + tp_align,
        block_to_tp,
        tp_align,
        tcb_size,
    })
}

/// Fills `area` (at least `layout.size` bytes) for one AP: the image, zeros up to the block's
/// size, then the TCB copied from `tcb` with its first word set to the thread pointer. Returns
/// the thread pointer, the value for FS base.
pub fn init_area(
    area: &mut [u8],
    template: &TlsTemplate,
    layout: &TlsLayout,
    tcb: &[u8],
) -> Result<u64, TlsError> {
    if area.len() < layout.size {
        return Err(TlsError::AreaTooSmall {
            needed: layout.size,
            given: area.len(),
        });
    }
    if tcb.len() < layout.tcb_size || layout.tcb_size < 8 {
        return Err(TlsError::TcbTooShort(tcb.len().min(layout.tcb_size)));
    }
    let base = area.as_ptr() as usize;
    let tp = (base + layout.block_to_tp).next_multiple_of(layout.tp_align);
    let tp_at = tp - base;
    let block_at = tp_at - layout.block_to_tp;
    // The image starts the block (a variable at segment offset k is at FS - block_to_tp + k);
    // the rest of the block, and the padding that keeps the alignment phase, are zero.
    area[block_at..tp_at].fill(0);
    area[block_at..block_at + template.image.len()].copy_from_slice(template.image);
    area[tp_at..tp_at + layout.tcb_size].copy_from_slice(&tcb[..layout.tcb_size]);
    area[tp_at..tp_at + 8].copy_from_slice(&(tp as u64).to_le_bytes());
    Ok(tp as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    static IMAGE: [u8; 5] = [1, 2, 3, 4, 5];

    fn template(vaddr: u64, mem_size: usize, align: usize) -> TlsTemplate {
        TlsTemplate {
            vaddr,
            image: &IMAGE,
            mem_size,
            align,
        }
    }

    #[test]
    fn block_ends_at_the_aligned_thread_pointer() {
        let t = template(0x20_0000, 24, 8);
        let l = layout(&t, 64).unwrap();
        assert_eq!(l.block_to_tp, 24);
        let mut area = vec![0xAAu8; l.size];
        let tcb = [0x55u8; 64];
        let tp = init_area(&mut area, &t, &l, &tcb).unwrap();
        assert_eq!(tp % 16, 0);
        let at = (tp as usize) - area.as_ptr() as usize;
        // A variable at image offset k sits at FS - 24 + k, as the linker computed.
        assert_eq!(&area[at - 24..at - 19], &IMAGE);
        assert_eq!(&area[at - 19..at], &[0u8; 19]);
        assert_eq!(u64::from_le_bytes(area[at..at + 8].try_into().unwrap()), tp);
        assert_eq!(&area[at + 8..at + 64], &[0x55u8; 56]);
    }

    #[test]
    fn block_keeps_the_segment_alignment_phase() {
        // A 64-byte aligned segment at an address 0x10 past an alignment boundary: the block
        // starts 0x10 past a 64-byte boundary too (what musl and glibc do for the main thread).
        let t = template(0x20_0010, 40, 64);
        let l = layout(&t, 16).unwrap();
        assert_eq!((l.block_to_tp + 0x20_0010) % 64, 0);
        assert_eq!(l.tp_align, 64);
        let mut area = vec![0u8; l.size];
        let tp = init_area(&mut area, &t, &l, &[0u8; 16]).unwrap();
        assert_eq!(tp % 64, 0);
        let block = tp as usize - l.block_to_tp;
        assert_eq!(block % 64, 0x10);
        let at = tp as usize - area.as_ptr() as usize;
        assert_eq!(&area[at - 48..at - 43], &IMAGE);
        assert_eq!(&area[at - 43..at], &[0u8; 43]);
    }

    #[test]
    fn refuses_bad_templates_and_areas() {
        assert_eq!(
            layout(&template(0, 8, 12), 16),
            Err(TlsError::BadAlignment(12))
        );
        assert_eq!(
            layout(&template(0, 4, 8), 16),
            Err(TlsError::ImageTooLong {
                file_size: 5,
                mem_size: 4
            })
        );
        assert_eq!(layout(&template(0, 8, 8), 4), Err(TlsError::TcbTooShort(4)));
        let t = template(0, 8, 8);
        let l = layout(&t, 16).unwrap();
        let mut small = vec![0u8; l.size - 1];
        assert!(matches!(
            init_area(&mut small, &t, &l, &[0u8; 16]),
            Err(TlsError::AreaTooSmall { .. })
        ));
        let mut area = vec![0u8; l.size];
        assert_eq!(
            init_area(&mut area, &t, &l, &[0u8; 8]),
            Err(TlsError::TcbTooShort(8))
        );
    }
}
