//! The running program's own TLS segment (PT_TLS), found from its ELF program headers in
//! memory, for hosted programs that give their APs `thread_local!` storage ([`crate::tls`]).
//!
//! An executable's first loadable segment starts with its ELF header (file offset 0), and the
//! static linker defines `__ehdr_start` at its run-time address (GNU ld and lld both do, for
//! executables and static-pie alike). The program headers follow at `e_phoff` inside the same
//! segment. Addresses in them are link-time ones; the load bias is the difference between where
//! the header is and the link-time address of file offset 0.
//!
//! Layouts: ELF-64 header and program header, System V gABI "ELF Header" and "Program Header".

use crate::tls::TlsTemplate;

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const PT_LOAD: u32 = 1;
const PT_TLS: u32 = 7;

/// Why the headers cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Not an ELF-64 header.
    NotElf64,
    /// Program header entries of an unexpected size.
    BadPhentsize(u16),
    /// No loadable segment holds file offset 0 (the header itself): the bias is unknown.
    HeaderNotLoaded,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::NotElf64 => write!(f, "the program's ELF header is not ELF-64"),
            HeaderError::BadPhentsize(n) => {
                write!(f, "program header entries of {n} bytes (not {PHDR_LEN})")
            }
            HeaderError::HeaderNotLoaded => {
                write!(f, "no loadable segment holds the ELF header")
            }
        }
    }
}

/// The PT_TLS segment of an image whose ELF header is `ehdr` and program headers `phdrs`,
/// loaded with its header at `ehdr_addr`: `(run-time vaddr, file size, memory size, align)`.
fn tls_segment(
    ehdr: &[u8; EHDR_LEN],
    phdrs: &[u8],
    ehdr_addr: u64,
) -> Result<Option<(u64, usize, usize, usize)>, HeaderError> {
    if ehdr[..4] != ELF_MAGIC || ehdr[4] != ELFCLASS64 {
        return Err(HeaderError::NotElf64);
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8"));
    let phentsize = u16_at(ehdr, 54);
    if phentsize as usize != PHDR_LEN {
        return Err(HeaderError::BadPhentsize(phentsize));
    }
    let mut base = None; // link-time address of file offset 0
    let mut tls = None;
    for ph in phdrs.chunks_exact(PHDR_LEN) {
        let (kind, offset, vaddr) = (u32_at(ph, 0), u64_at(ph, 8), u64_at(ph, 16));
        let (filesz, memsz, align) = (u64_at(ph, 32), u64_at(ph, 40), u64_at(ph, 48));
        match kind {
            PT_LOAD if offset == 0 && base.is_none() => base = Some(vaddr),
            PT_TLS => tls = Some((vaddr, filesz as usize, memsz as usize, align as usize)),
            _ => {}
        }
    }
    let Some(base) = base else {
        return Err(HeaderError::HeaderNotLoaded);
    };
    let bias = ehdr_addr.wrapping_sub(base);
    Ok(tls.map(|(vaddr, f, m, a)| (vaddr.wrapping_add(bias), f, m, a)))
}

/// This program's TLS segment, or `None` if it has none (then its APs need no TLS block).
#[inline]
pub fn this_program_tls() -> Result<Option<TlsTemplate>, HeaderError> {
    extern "C" {
        static __ehdr_start: [u8; EHDR_LEN];
    }
    // SAFETY: the linker places `__ehdr_start` on the program's ELF header, which is mapped
    // (first loadable segment, read-only, for the program's whole life): 64 readable bytes.
    let ehdr: &'static [u8; EHDR_LEN] = unsafe { &__ehdr_start };
    let ehdr_addr = ehdr.as_ptr() as u64;
    if ehdr[..4] != ELF_MAGIC || ehdr[4] != ELFCLASS64 {
        return Err(HeaderError::NotElf64);
    }
    let phoff = u64::from_le_bytes(ehdr[32..40].try_into().expect("8 bytes")) as usize;
    let phnum = u16::from_le_bytes([ehdr[56], ehdr[57]]) as usize;
    // SAFETY: an executable's program headers lie in its first loadable segment right after
    // the header (`e_phoff`, `e_phnum` entries), mapped like the header for ever.
    let phdrs = unsafe {
        core::slice::from_raw_parts(ehdr.as_ptr().add(phoff), phnum.saturating_mul(PHDR_LEN))
    };
    let Some((vaddr, file_size, mem_size, align)) = tls_segment(ehdr, phdrs, ehdr_addr)? else {
        return Ok(None);
    };
    // SAFETY: PT_TLS's initialization image is `p_filesz` bytes at its (biased) `p_vaddr`,
    // inside a loaded read-only segment, for the program's whole life.
    let image = unsafe { core::slice::from_raw_parts(vaddr as *const u8, file_size) };
    Ok(Some(TlsTemplate {
        vaddr,
        image,
        mem_size,
        align,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehdr(phentsize: u16) -> [u8; EHDR_LEN] {
        let mut h = [0u8; EHDR_LEN];
        h[..4].copy_from_slice(&ELF_MAGIC);
        h[4] = ELFCLASS64;
        h[54..56].copy_from_slice(&phentsize.to_le_bytes());
        h
    }

    fn phdr(kind: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64, align: u64) -> Vec<u8> {
        let mut p = vec![0u8; PHDR_LEN];
        p[0..4].copy_from_slice(&kind.to_le_bytes());
        p[8..16].copy_from_slice(&offset.to_le_bytes());
        p[16..24].copy_from_slice(&vaddr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p[48..56].copy_from_slice(&align.to_le_bytes());
        p
    }

    #[test]
    fn finds_tls_with_the_load_bias_of_a_pie() {
        let mut phdrs = phdr(6, 64, 64, 0x1c0, 0x1c0, 8); // PT_PHDR
        phdrs.extend(phdr(PT_LOAD, 0, 0, 0x1000, 0x1000, 0x1000));
        phdrs.extend(phdr(PT_TLS, 0x5000, 0x6000, 0x10, 0x48, 16));
        let found = tls_segment(&ehdr(56), &phdrs, 0x40_0000).unwrap();
        assert_eq!(found, Some((0x40_6000, 0x10, 0x48, 16)));
    }

    #[test]
    fn no_tls_segment_is_none() {
        let phdrs = phdr(PT_LOAD, 0, 0x20_0000, 0x1000, 0x1000, 0x1000);
        assert_eq!(tls_segment(&ehdr(56), &phdrs, 0x20_0000), Ok(None));
    }

    #[test]
    fn bad_headers_are_errors() {
        let phdrs = phdr(PT_TLS, 0x5000, 0x6000, 0x10, 0x48, 16);
        assert_eq!(
            tls_segment(&ehdr(56), &phdrs, 0),
            Err(HeaderError::HeaderNotLoaded)
        );
        assert_eq!(
            tls_segment(&ehdr(32), &phdrs, 0),
            Err(HeaderError::BadPhentsize(32))
        );
        let mut not_elf = ehdr(56);
        not_elf[4] = 1;
        assert_eq!(tls_segment(&not_elf, &phdrs, 0), Err(HeaderError::NotElf64));
    }

    #[test]
    fn this_test_binary_has_readable_headers() {
        // The host test binary is an ELF executable too, with thread locals (std has some).
        let tls = this_program_tls()
            .unwrap()
            .expect("std programs have a PT_TLS");
        assert!(tls.mem_size >= tls.image.len() && tls.align.is_power_of_two());
    }
}
