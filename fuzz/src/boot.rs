//! Targets for what boot loaders hand over (the `bootinfo` crate: PVH start info and
//! multiboot 1 info, and the stand-in host's stricter view of the latter) and for the demo
//! kernel's command line.

use crate::image::{FakeMemory, Params};
use bootinfo::{BootInfo, MAX_CMDLINE, MAX_MEMORY_REGIONS, MAX_MODULES, MAX_OCCUPIED};

/// Most bytes a parse may read: the fixed structure, the command line and its NUL, one map
/// entry past the kept ones, the kept modules. More is a walk driven by a corrupt count.
const MAX_BOOT_INFO_READ: u64 =
    64 + MAX_CMDLINE as u64 + 1 + (MAX_MEMORY_REGIONS as u64 + 1) * 24 + MAX_MODULES as u64 * 32;

/// What holds for any boot information that parsed.
fn check(info: &BootInfo, mem: &FakeMemory, pa: u64, fixed: u64) {
    assert!(
        mem.readable(pa, fixed),
        "accepted a structure that is not there"
    );
    assert!(info.memory_map().len() <= MAX_MEMORY_REGIONS);
    assert!(info.modules().len() <= MAX_MODULES);
    assert!(info.occupied().len() <= MAX_OCCUPIED);
    assert!(info.cmdline().len() <= MAX_CMDLINE && !info.cmdline().contains('\0'));
    if let Ok(line) = info.strict_cmdline() {
        assert_eq!(line, info.cmdline());
    }
    assert!(
        mem.read_bytes() <= MAX_BOOT_INFO_READ,
        "read {} bytes",
        mem.read_bytes()
    );
}

/// `bootinfo::parse_pvh`. Params: the start info's address (u64).
pub fn pvh(data: &[u8]) {
    let mut p = Params::new(data);
    let flags = p.u8();
    let pa = p.u64();
    let mem = FakeMemory::load(flags, p.rest());
    match bootinfo::parse_pvh(&mem, pa) {
        Ok(info) => check(&info, &mem, pa, 48),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// `bootinfo::parse_multiboot`, and the stand-in host's `standin_core::loader::read` over the
/// same memory. Params: the info block's address (u64).
pub fn multiboot(data: &[u8]) {
    let mut p = Params::new(data);
    let flags = p.u8();
    let pa = p.u64();
    let mem = FakeMemory::load(flags, p.rest());
    let parsed = bootinfo::parse_multiboot(&mem, pa);
    match &parsed {
        Ok(info) => {
            check(info, &mem, pa, 52);
            // The image name the loader puts first is gone, and the space after it.
            assert!(!info
                .cmdline()
                .starts_with(|c: char| c.is_ascii_whitespace()));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let standin = standin_core::loader::read(&mem, pa);
    let usable = parsed
        .as_ref()
        .is_ok_and(|i| i.strict_cmdline().is_ok() && !i.memory_map().is_empty());
    assert_eq!(
        standin.is_ok(),
        usable,
        "the stand-in's verdict: {standin:?}"
    );
    match standin {
        Ok(info) => {
            let initrd = standin_core::loader::initrd(&info);
            assert_eq!(initrd.is_some(), !info.modules().is_empty());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// `demo_options::parse` on the input as text (invalid UTF-8 replaced): an accepted line's
/// options print as a line that parses to the same options; a rejected one names a token of
/// the input.
pub fn demo_options(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    match demo_options::parse(&line) {
        Ok(options) => {
            let printed = options.to_string();
            assert_eq!(demo_options::parse(&printed), Ok(options), "{printed}");
            assert!((1..=demo_options::MAX_SUPPORTED_CPUS).contains(&options.max_cpus));
            let stack = options.ap_stack_size;
            assert!(
                (demo_options::MIN_AP_STACK_SIZE..=demo_options::MAX_AP_STACK_SIZE)
                    .contains(&stack)
                    && stack.is_multiple_of(demo_options::AP_STACK_GRANULE)
            );
        }
        Err(e) => {
            let token = e.token();
            let (start, end) = (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
            let at = token.as_ptr() as usize;
            assert!(!token.is_empty() && at >= start && at + token.len() <= end);
            assert!(e.to_string().contains("valid options"));
        }
    }
}
