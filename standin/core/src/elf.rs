//! Checking a static-pie ELF (what `x86_64-unknown-linux-musl` with `+crt-static` and the PIE
//! relocation model produces) and describing where its PT_LOAD segments go. Field layouts from
//! the System V ABI (gABI "ELF Header" and "Program Header", AMD64 psABI for EM_X86_64).

use core::fmt;

use crate::le::{u16_at, u32_at, u64_at};
use crate::ranges::{Range, PAGE};

/// Segments kept (static-pie programs have four PT_LOADs; the linker may add a few).
pub const MAX_LOAD_SEGMENTS: usize = 16;
/// The largest image accepted (sum of the span of its segments).
pub const MAX_IMAGE_SPAN: u64 = 1 << 30;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// A segment's (or a page's) access rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// PF_R.
    pub read: bool,
    /// PF_W.
    pub write: bool,
    /// PF_X.
    pub execute: bool,
}

impl Access {
    fn from_flags(flags: u32) -> Access {
        Access {
            read: flags & PF_R != 0,
            write: flags & PF_W != 0,
            execute: flags & PF_X != 0,
        }
    }

    fn union(self, other: Access) -> Access {
        Access {
            read: self.read || other.read,
            write: self.write || other.write,
            execute: self.execute || other.execute,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |on: bool, c: char| if on { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            bit(self.read, 'r'),
            bit(self.write, 'w'),
            bit(self.execute, 'x')
        )
    }
}

/// One PT_LOAD segment, at its link-time address (add the load base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// p_vaddr.
    pub vaddr: u64,
    /// p_offset.
    pub offset: u64,
    /// p_filesz: bytes copied from the file; the rest up to `memsz` is zero.
    pub file_size: u64,
    /// p_memsz.
    pub mem_size: u64,
    /// p_flags.
    pub access: Access,
}

impl Segment {
    /// The bytes to copy to `vaddr`.
    pub fn file_bytes<'a>(&self, elf: &'a [u8]) -> &'a [u8] {
        &elf[self.offset as usize..(self.offset + self.file_size) as usize]
    }

    /// Its link-time address range.
    pub fn range(&self) -> Range {
        Range::from_len(self.vaddr, self.mem_size)
    }
}

/// Why the file cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError<'a> {
    /// No `\x7fELF` magic.
    NotElf,
    /// Not ELFCLASS64 little-endian.
    NotElf64Le,
    /// e_machine is not EM_X86_64.
    NotX86_64(u16),
    /// ET_EXEC: linked at a fixed address, not position-independent.
    FixedAddress,
    /// Neither ET_DYN nor ET_EXEC.
    NotExecutable(u16),
    /// PT_INTERP: dynamically linked, needs this interpreter.
    Interpreter(&'a str),
    /// The program header table is malformed or outside the file.
    BadProgramHeaders,
    /// PT_LOAD number `index` is malformed (why in the text).
    BadSegment(usize, &'static str),
    /// More PT_LOAD segments than [`MAX_LOAD_SEGMENTS`].
    TooManySegments,
    /// No PT_LOAD at all.
    NoSegments,
    /// The segments span more than [`MAX_IMAGE_SPAN`].
    TooLarge,
    /// e_entry is not in an executable segment.
    EntryNotExecutable(u64),
    /// The program headers are not in any segment (AT_PHDR would point nowhere).
    PhdrNotLoaded,
}

impl fmt::Display for ElfError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => f.write_str("not an ELF file (no \\x7fELF magic)"),
            ElfError::NotElf64Le => f.write_str("not a 64-bit little-endian ELF"),
            ElfError::NotX86_64(m) => write!(f, "not an x86_64 ELF (e_machine {m})"),
            ElfError::FixedAddress => f.write_str(
                "not static-pie: ET_EXEC, linked at a fixed address (build with -C relocation-model=pie)",
            ),
            ElfError::NotExecutable(t) => write!(f, "not an executable (e_type {t})"),
            ElfError::Interpreter(path) => write!(
                f,
                "not static-pie: dynamically linked (PT_INTERP {path}); build with -C target-feature=+crt-static"
            ),
            ElfError::BadProgramHeaders => f.write_str("malformed program header table"),
            ElfError::BadSegment(i, why) => write!(f, "PT_LOAD segment {i}: {why}"),
            ElfError::TooManySegments => {
                write!(f, "more than {MAX_LOAD_SEGMENTS} PT_LOAD segments")
            }
            ElfError::NoSegments => f.write_str("no PT_LOAD segment"),
            ElfError::TooLarge => write!(f, "segments span more than {MAX_IMAGE_SPAN:#x} bytes"),
            ElfError::EntryNotExecutable(e) => {
                write!(f, "entry point {e:#x} is not in an executable segment")
            }
            ElfError::PhdrNotLoaded => f.write_str("program headers are not in a loaded segment"),
        }
    }
}

/// A checked static-pie program.
#[derive(Debug, Clone)]
pub struct Program {
    /// e_entry (link-time).
    pub entry: u64,
    /// Link-time address of the program header table (for AT_PHDR).
    pub phdr_vaddr: u64,
    /// e_phnum (AT_PHNUM).
    pub phnum: u16,
    /// e_phentsize (AT_PHENT).
    pub phentsize: u16,
    /// Whether it has PT_TLS (left to the program's C library to set up).
    pub has_tls: bool,
    /// The pages the segments touch, link-time (starts at 0 for a usual static-pie).
    pub span: Range,
    segments: [Segment; MAX_LOAD_SEGMENTS],
    count: usize,
}

impl Program {
    /// The PT_LOAD segments, ascending.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// The rights of the page at link-time address `page`: the union of every segment that
    /// touches it (two segments may share a page at their boundary); `None` if none does.
    pub fn page_access(&self, page: u64) -> Option<Access> {
        let page = Range::from_len(page & !(PAGE - 1), PAGE);
        self.segments()
            .iter()
            .filter(|s| s.range().pages_covering().overlaps(&page))
            .map(|s| s.access)
            .reduce(Access::union)
    }
}

fn is_page_congruent(a: u64, b: u64) -> bool {
    a % PAGE == b % PAGE
}

/// Checks `bytes` as a static-pie x86_64 executable.
pub fn parse(bytes: &[u8]) -> Result<Program, ElfError<'_>> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < EHDR_LEN || bytes[4] != ELFCLASS64 || bytes[5] != ELFDATA2LSB {
        return Err(ElfError::NotElf64Le);
    }
    let field16 = |o| u16_at(bytes, o).ok_or(ElfError::NotElf64Le);
    let field64 = |o| u64_at(bytes, o).ok_or(ElfError::NotElf64Le);
    let e_type = field16(16)?;
    let machine = field16(18)?;
    let entry = field64(24)?;
    let phoff = field64(32)?;
    let phentsize = field16(54)?;
    let phnum = field16(56)?;
    if machine != EM_X86_64 {
        return Err(ElfError::NotX86_64(machine));
    }
    match e_type {
        ET_DYN => {}
        ET_EXEC => return Err(ElfError::FixedAddress),
        other => return Err(ElfError::NotExecutable(other)),
    }
    if phentsize as usize != PHDR_LEN || phnum == 0 {
        return Err(ElfError::BadProgramHeaders);
    }
    let table_len = phnum as u64 * PHDR_LEN as u64;
    let table_end = phoff
        .checked_add(table_len)
        .filter(|&end| end <= bytes.len() as u64)
        .ok_or(ElfError::BadProgramHeaders)?;

    let mut program = Program {
        entry,
        phdr_vaddr: 0,
        phnum,
        phentsize,
        has_tls: false,
        span: Range::new(0, 0),
        segments: [Segment::default(); MAX_LOAD_SEGMENTS],
        count: 0,
    };
    let mut pt_phdr = None;
    for i in 0..phnum as usize {
        let ph = &bytes[phoff as usize + i * PHDR_LEN..phoff as usize + (i + 1) * PHDR_LEN];
        let p_type = u32_at(ph, 0).ok_or(ElfError::BadProgramHeaders)?;
        let p_flags = u32_at(ph, 4).ok_or(ElfError::BadProgramHeaders)?;
        let [offset, vaddr, _paddr, file_size, mem_size] =
            [8, 16, 24, 32, 40].map(|o| u64_at(ph, o).unwrap_or(0));
        match p_type {
            PT_INTERP => {
                let path = offset
                    .checked_add(file_size)
                    .filter(|&end| end <= bytes.len() as u64)
                    .map(|end| &bytes[offset as usize..end as usize])
                    .map(|p| p.split(|&b| b == 0).next().unwrap_or(&[]))
                    .and_then(|p| core::str::from_utf8(p).ok())
                    .unwrap_or("?");
                return Err(ElfError::Interpreter(path));
            }
            PT_PHDR => pt_phdr = Some(vaddr),
            PT_TLS => program.has_tls = true,
            PT_LOAD => {
                let index = program.count;
                if index == MAX_LOAD_SEGMENTS {
                    return Err(ElfError::TooManySegments);
                }
                let bad = |why| Err(ElfError::BadSegment(index, why));
                if file_size > mem_size {
                    return bad("p_filesz is larger than p_memsz");
                }
                if offset
                    .checked_add(file_size)
                    .is_none_or(|end| end > bytes.len() as u64)
                {
                    return bad("its file bytes run past the end of the file");
                }
                if !is_page_congruent(offset, vaddr) {
                    return bad("p_offset and p_vaddr differ modulo 4 KiB");
                }
                if vaddr
                    .checked_add(mem_size)
                    .is_none_or(|e| e > MAX_IMAGE_SPAN)
                {
                    return Err(ElfError::TooLarge);
                }
                if let Some(prev) = program.segments().last() {
                    if vaddr < prev.vaddr + prev.mem_size {
                        return bad("overlaps or precedes the previous PT_LOAD");
                    }
                }
                program.segments[index] = Segment {
                    vaddr,
                    offset,
                    file_size,
                    mem_size,
                    access: Access::from_flags(p_flags),
                };
                program.count += 1;
            }
            _ => {}
        }
    }
    let segments = &program.segments[..program.count];
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(ElfError::NoSegments);
    };
    program.span = Range::new(first.vaddr, last.vaddr + last.mem_size).pages_covering();
    if !segments
        .iter()
        .any(|s| s.access.execute && s.range().contains(entry))
    {
        return Err(ElfError::EntryNotExecutable(entry));
    }
    program.phdr_vaddr = match pt_phdr {
        Some(vaddr) => vaddr,
        None => segments
            .iter()
            .find(|s| s.offset <= phoff && table_end <= s.offset + s.file_size)
            .map(|s| s.vaddr + (phoff - s.offset))
            .ok_or(ElfError::PhdrNotLoaded)?,
    };
    Ok(program)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A program header: (type, flags, offset, vaddr, filesz, memsz).
    pub type Ph = (u32, u32, u64, u64, u64, u64);

    /// An ELF64 image with these program headers right after the ELF header, `size` bytes.
    pub fn image(e_type: u16, entry: u64, phdrs: &[Ph], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[6] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, &(t, f, off, va, fs, ms)) in phdrs.iter().enumerate() {
            let p = 64 + i * PHDR_LEN;
            b[p..p + 4].copy_from_slice(&t.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&f.to_le_bytes());
            for (o, v) in [
                (8, off),
                (16, va),
                (24, va),
                (32, fs),
                (40, ms),
                (48, 0x1000),
            ] {
                b[p + o..p + o + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// The layout of a real musl static-pie (`readelf -l` of standin_hello).
    pub fn musl_like() -> Vec<u8> {
        image(
            ET_DYN,
            0x92eb,
            &[
                (PT_LOAD, PF_R, 0, 0, 0x3f68, 0x3f68),
                (PT_LOAD, PF_R | PF_X, 0x4000, 0x4000, 0x50956, 0x50956),
                (PT_LOAD, PF_R, 0x55000, 0x55000, 0x12788, 0x12788),
                (PT_LOAD, PF_R | PF_W, 0x679c0, 0x689c0, 0x3114, 0x4960),
                (2, PF_R | PF_W, 0x696d0, 0x6a6d0, 0x180, 0x180),
                (PT_TLS, PF_R, 0x679c0, 0x689c0, 0x20, 0x50),
                (0x6474_e551, PF_R | PF_W, 0, 0, 0, 0),
            ],
            0x6b000,
        )
    }

    #[test]
    fn accepts_a_musl_static_pie() {
        let bytes = musl_like();
        let p = parse(&bytes).unwrap();
        assert_eq!(p.segments().len(), 4);
        assert_eq!(p.entry, 0x92eb);
        assert_eq!(p.phdr_vaddr, 64);
        assert_eq!(p.phnum, 7);
        assert_eq!(p.phentsize, 56);
        assert!(p.has_tls);
        assert_eq!(p.span, Range::new(0, 0x6e000));
        let rx = p.page_access(0x9000).unwrap();
        assert!(rx.execute && !rx.write);
        assert_eq!(p.page_access(0x55000).unwrap().to_string(), "r--");
        // The page 0x68000 holds the end of nothing and the start of the RW segment.
        assert_eq!(p.page_access(0x68000).unwrap().to_string(), "rw-");
        assert_eq!(p.page_access(0x6d000).unwrap().to_string(), "rw-");
        assert_eq!(p.page_access(0x6e000), None);
        assert_eq!(p.segments()[3].file_bytes(&bytes).len(), 0x3114);
    }

    #[test]
    fn shared_boundary_pages_get_both_rights() {
        let bytes = image(
            ET_DYN,
            0x100,
            &[
                (PT_LOAD, PF_R | PF_X, 0, 0, 0x1800, 0x1800),
                (PT_LOAD, PF_R | PF_W, 0x1800, 0x1800, 0x100, 0x2000),
            ],
            0x2000,
        );
        let p = parse(&bytes).unwrap();
        assert_eq!(p.page_access(0x1000).unwrap().to_string(), "rwx");
        assert_eq!(p.page_access(0x2000).unwrap().to_string(), "rw-");
    }

    #[test]
    fn rejects_what_cannot_run() {
        assert_eq!(parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
        let mut b = musl_like();
        b[4] = 1;
        assert_eq!(parse(&b).unwrap_err(), ElfError::NotElf64Le);
        let mut b = musl_like();
        b[18] = 183; // EM_AARCH64
        assert_eq!(parse(&b).unwrap_err(), ElfError::NotX86_64(183));
        let exec = image(
            ET_EXEC,
            0x401000,
            &[(PT_LOAD, PF_R | PF_X, 0, 0x400000, 0x2000, 0x2000)],
            0x2000,
        );
        assert_eq!(parse(&exec).unwrap_err(), ElfError::FixedAddress);
        let mut dynamic = image(
            ET_DYN,
            0x100,
            &[
                (PT_INTERP, PF_R, 0x200, 0x200, 0x1b, 0x1b),
                (PT_LOAD, PF_R | PF_X, 0, 0, 0x1000, 0x1000),
            ],
            0x1000,
        );
        dynamic[0x200..0x21b].copy_from_slice(b"/lib/ld-musl-x86_64.so.1\0\0\0");
        assert_eq!(
            parse(&dynamic).unwrap_err(),
            ElfError::Interpreter("/lib/ld-musl-x86_64.so.1")
        );
        assert!(parse(&dynamic)
            .unwrap_err()
            .to_string()
            .contains("not static-pie"));
    }

    #[test]
    fn rejects_bad_segments() {
        let past_end = image(
            ET_DYN,
            0x100,
            &[(PT_LOAD, PF_R | PF_X, 0, 0, 0x3000, 0x3000)],
            0x1000,
        );
        assert!(matches!(parse(&past_end), Err(ElfError::BadSegment(0, _))));
        let file_gt_mem = image(
            ET_DYN,
            0x100,
            &[(PT_LOAD, PF_R | PF_X, 0, 0, 0x800, 0x400)],
            0x1000,
        );
        assert!(matches!(
            parse(&file_gt_mem),
            Err(ElfError::BadSegment(0, _))
        ));
        let incongruent = image(
            ET_DYN,
            0x100,
            &[
                (PT_LOAD, PF_R | PF_X, 0, 0, 0x800, 0x800),
                (PT_LOAD, PF_R | PF_W, 0x800, 0x1900, 0x100, 0x100),
            ],
            0x1000,
        );
        assert!(matches!(
            parse(&incongruent),
            Err(ElfError::BadSegment(1, _))
        ));
        let overlapping = image(
            ET_DYN,
            0x100,
            &[
                (PT_LOAD, PF_R | PF_X, 0, 0, 0x800, 0x1800),
                (PT_LOAD, PF_R | PF_W, 0x800, 0x800, 0x100, 0x100),
            ],
            0x1000,
        );
        assert!(matches!(
            parse(&overlapping),
            Err(ElfError::BadSegment(1, _))
        ));
        let no_exec = image(
            ET_DYN,
            0x100,
            &[(PT_LOAD, PF_R | PF_W, 0, 0, 0x800, 0x800)],
            0x1000,
        );
        assert_eq!(
            parse(&no_exec).unwrap_err(),
            ElfError::EntryNotExecutable(0x100)
        );
        let none = image(ET_DYN, 0x100, &[(2, PF_R, 0, 0, 0, 0)], 0x1000);
        assert_eq!(parse(&none).unwrap_err(), ElfError::NoSegments);
        let huge = image(
            ET_DYN,
            0x100,
            &[(PT_LOAD, PF_R | PF_X, 0, 0, 0x800, 1 << 40)],
            0x1000,
        );
        assert_eq!(parse(&huge).unwrap_err(), ElfError::TooLarge);
        let phdr_outside = image(
            ET_DYN,
            0x1100,
            &[(PT_LOAD, PF_R | PF_X, 0x1000, 0x1000, 0x800, 0x800)],
            0x2000,
        );
        assert_eq!(parse(&phdr_outside).unwrap_err(), ElfError::PhdrNotLoaded);
        let mut bad_table = musl_like();
        bad_table[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&bad_table).unwrap_err(), ElfError::BadProgramHeaders);
    }
}
