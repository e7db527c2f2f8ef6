//! The initrd: cpio "newc" archives of the programs, and a dynamic ELF the host must refuse.

use std::path::{Path, PathBuf};

use super::{build_c_example, build_program, HELLO_PACKAGE};
use crate::build;

/// What an initrd holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initrd {
    /// The hello program as /standin_hello.
    Hello,
    /// No -initrd at all.
    Absent,
    /// A text file as /standin_hello.
    NotElf,
    /// A dynamically linked ELF (PT_INTERP) as /standin_hello.
    Dynamic,
    /// The example of the multicore library as /hello_cpus.
    HelloCpus,
    /// The C example (capi/example) as /hello_cpus_c.
    HelloC,
}

/// Builds what `kind` holds and writes it as an initrd; `None` for [`Initrd::Absent`].
pub fn build_initrd(kind: Initrd) -> Result<Option<PathBuf>, String> {
    let hello = |file: &str, data: &[u8]| write_initrd(file, &[(HELLO_PACKAGE, data)]);
    let path = match kind {
        Initrd::Absent => return Ok(None),
        Initrd::Hello => {
            let program = build_program(HELLO_PACKAGE, HELLO_PACKAGE)?;
            hello("hello.cpio", &read(&program)?)?
        }
        Initrd::NotElf => hello("not-elf.cpio", b"#!/bin/sh\necho hello\n")?,
        Initrd::Dynamic => hello("dynamic.cpio", &dynamic_elf())?,
        Initrd::HelloCpus => {
            make_initrd(&build_program("hello_cpus", "hello_cpus")?, "hello_cpus")?
        }
        Initrd::HelloC => make_initrd(&build_c_example()?, "hello_cpus_c")?,
    };
    Ok(Some(path))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A cpio "newc" archive of regular files (mode 0755) and its trailer
/// (`standin_core::cpio::archive`, the format the stand-in host reads).
pub fn cpio_newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let members: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|&(name, data)| (name, 0o100_755, data))
        .collect();
    standin_core::cpio::archive(&members)
}

/// Writes `files` as target/standin/`file_name` (a cpio newc archive); returns its path.
pub fn write_initrd(file_name: &str, files: &[(&str, &[u8])]) -> Result<PathBuf, String> {
    let dir = build::target_dir().join("standin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(file_name);
    if path.to_string_lossy().contains([',', ' ']) {
        // QEMU's multiboot loader splits -initrd at commas and takes words after a space as
        // the module's arguments.
        return Err(format!(
            "{}: QEMU cannot take an initrd path with a comma or a space",
            path.display()
        ));
    }
    std::fs::write(&path, cpio_newc(files)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// An initrd holding the program at `program`, named `name` in the archive (run it as
/// `/name`); written next to the other initrds as `name.cpio`.
pub fn make_initrd(program: &Path, name: &str) -> Result<PathBuf, String> {
    write_initrd(&format!("{name}.cpio"), &[(name, &read(program)?)])
}

/// A tiny dynamically linked ELF: a header, PT_INTERP naming musl's loader, one PT_LOAD. Only
/// its program headers matter (the host must refuse it before running anything).
pub fn dynamic_elf() -> Vec<u8> {
    let mut elf = vec![0u8; 0x200];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf[6] = 1;
    let put16 =
        |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut elf, 16, 3); // ET_DYN
    put16(&mut elf, 18, 62); // EM_X86_64
    put32(&mut elf, 20, 1);
    put64(&mut elf, 24, 0x100); // entry
    put64(&mut elf, 32, 64); // phoff
    put16(&mut elf, 52, 64);
    put16(&mut elf, 54, 56);
    put16(&mut elf, 56, 2);
    let interp = b"/lib/ld-musl-x86_64.so.1\0";
    elf[0x180..0x180 + interp.len()].copy_from_slice(interp);
    // PT_INTERP (3), R.
    put32(&mut elf, 64, 3);
    put32(&mut elf, 68, 4);
    put64(&mut elf, 72, 0x180);
    put64(&mut elf, 80, 0x180);
    put64(&mut elf, 96, interp.len() as u64);
    put64(&mut elf, 104, interp.len() as u64);
    // PT_LOAD (1), R+X, the whole file.
    put32(&mut elf, 120, 1);
    put32(&mut elf, 124, 5);
    put64(&mut elf, 144, 0x200);
    put64(&mut elf, 152, 0x200);
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpio_writer_is_read_back_by_the_host() {
        let archive = cpio_newc(&[("standin_hello", b"\x7fELF..."), ("other", b"12345")]);
        assert_eq!(archive.len() % 4, 0);
        let hello = standin_core::cpio::find(&archive, "/standin_hello")
            .unwrap()
            .unwrap();
        assert_eq!(hello.data, b"\x7fELF...");
        assert!(hello.is_regular_file());
        assert_eq!(
            standin_core::cpio::find(&archive, "other")
                .unwrap()
                .unwrap()
                .data,
            b"12345"
        );
        assert_eq!(standin_core::cpio::entries(&archive).count(), 2);
        assert!(cpio_newc(&[]).starts_with(b"070701"));
    }

    #[test]
    fn the_dynamic_stub_is_refused_as_not_static_pie() {
        let elf = dynamic_elf();
        let err = standin_core::elf::parse(&elf).unwrap_err();
        assert_eq!(
            err,
            standin_core::elf::ElfError::Interpreter("/lib/ld-musl-x86_64.so.1")
        );
    }
}
