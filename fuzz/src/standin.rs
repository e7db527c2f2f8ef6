//! Targets for the stand-in host's readers of what it is given: the program's ELF, the cpio
//! initrd, its command line, and the RSDP finder it uses instead of the library's.

use standin_core::cmdline::{self, CommandLine};
use standin_core::elf;
use standin_core::layout::{self, DEAD_BOOT_STACK};
use standin_core::ranges::PAGE;
use standin_core::{cpio, rsdp};

/// `elf::parse`: an accepted program's segments lie in the file and in its span, ascending,
/// without overlap, and its entry point is in an executable one.
pub fn standin_elf(data: &[u8]) {
    let program = match elf::parse(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let segments = program.segments();
    assert!(!segments.is_empty() && segments.len() <= elf::MAX_LOAD_SEGMENTS);
    let mut previous_end = 0;
    for s in segments {
        assert!(s.file_size <= s.mem_size);
        assert_eq!(s.file_bytes(data).len() as u64, s.file_size);
        assert!(
            s.vaddr >= previous_end,
            "segments overlap or are out of order"
        );
        previous_end = s.vaddr + s.mem_size;
        assert!(program.span.start <= s.vaddr && previous_end <= program.span.end);
        // A PT_LOAD with p_memsz 0 (accepted: it loads nothing) may touch no page.
        assert!(s.mem_size == 0 || program.page_access(s.vaddr).is_some());
    }
    assert!(program.span.len() <= elf::MAX_IMAGE_SPAN + PAGE);
    assert!(program
        .page_access(program.entry)
        .is_some_and(|a| a.execute));
}

/// The cpio reader: the members are slices of the archive, the walk ends, and `find` agrees
/// with it.
pub fn standin_cpio(data: &[u8]) {
    let mut names = Vec::new();
    for entry in cpio::entries(data) {
        match entry {
            Ok(e) => {
                let inside = |s: &[u8]| {
                    let (start, at) = (data.as_ptr() as usize, s.as_ptr() as usize);
                    s.is_empty() || (at >= start && at + s.len() <= start + data.len())
                };
                assert!(inside(e.data) && inside(e.name.as_bytes()));
                assert!(!e.name.contains('\0'));
                names.push(e.name);
                // Each member takes at least its 110-byte header.
                assert!(names.len() <= data.len() / 110);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    let wanted = names.first().copied().unwrap_or("/hello");
    if let Ok(Some(found)) = cpio::find(data, wanted) {
        assert_eq!(cpio::normalize(found.name), cpio::normalize(wanted));
        assert!(names.contains(&found.name));
    }
    assert_eq!(
        cpio::normalize(cpio::normalize(wanted)),
        cpio::normalize(wanted)
    );
}

/// The command line as the host would print it back: host options, `--`, the argv.
fn unparse(line: &CommandLine<'_>) -> String {
    let mut out = format!("load={:#x} stack={}", line.load_base, line.stack_size);
    for page in line.occupied_pages() {
        out += &format!(" occupy={page:#x}");
    }
    for (key, value) in line.extra_env() {
        out += &format!(" env.{key}={value}");
    }
    out += " --";
    for arg in line.argv() {
        out += " ";
        out += arg;
    }
    out
}

/// `cmdline::parse` on the input as text: an accepted line is within the limits it checks,
/// and the same line written out again parses to the same values.
pub fn standin_cmdline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let line = match cmdline::parse(&text) {
        Ok(line) => line,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(!line.argv().is_empty() && line.argv().len() <= cmdline::MAX_ARGS);
    // Split at ASCII whitespace only, as the host does (other blanks belong to the argument).
    assert!(line
        .argv()
        .iter()
        .all(|a| !a.is_empty() && !a.contains(|c: char| c.is_ascii_whitespace())));
    assert!(layout::check_load_base(line.load_base, 0).is_ok());
    assert!(line.stack_size.is_multiple_of(PAGE) && line.stack_size <= layout::MAX_STACK_SIZE);
    for &page in line.occupied_pages() {
        assert!(page.is_multiple_of(PAGE) && DEAD_BOOT_STACK.contains(page));
    }
    let again_text = unparse(&line);
    let again = cmdline::parse(&again_text).expect("the written-out line parses");
    assert_eq!(again.load_base, line.load_base);
    assert_eq!(again.stack_size, line.stack_size);
    assert_eq!(again.occupied_pages(), line.occupied_pages());
    assert_eq!(again.extra_env(), line.extra_env());
    assert_eq!(again.argv(), line.argv(), "{again_text}");
}

/// The stand-in's own RSDP finder over a BIOS area at 0xE0000: what it finds is on a
/// paragraph in the area and checks out.
pub fn standin_rsdp(data: &[u8]) {
    const BASE: u64 = 0xE_0000;
    if let Some(found) = rsdp::find(data, BASE) {
        let off = (found - BASE) as usize;
        assert!(off.is_multiple_of(16) && off + 20 <= data.len());
        assert_eq!(&data[off..off + 8], b"RSD PTR ");
        let sum = data[off..off + 20]
            .iter()
            .fold(0u8, |s, &b| s.wrapping_add(b));
        assert_eq!(sum, 0);
    }
}
