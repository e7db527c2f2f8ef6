#![cfg_attr(not(test), no_std)]
//! The stand-in host's pure logic: everything that does not touch hardware, so that it runs as
//! ordinary host tests (`cargo test`). The kernel (`standin_host`) feeds it bytes and addresses.
//!
//! - [`cmdline`]: splitting `-append` into host options and the program's argv, and the options;
//! - [`cpio`]: finding the program in the initramfs (cpio "newc");
//! - [`elf`]: checking a static-pie ELF and where its segments go;
//! - [`initial_stack`]: the stack a Linux program starts with (argc, argv, envp, auxv);
//! - [`loader`]: what the host demands of its multiboot loader's information (read by the
//!   `bootinfo` crate): a whole UTF-8 command line, a memory map, the initrd;
//! - [`physmem`]: which RAM the frame allocator hands out (low RAM first) and which low pages
//!   the program may borrow (the dead boot stack);
//! - [`ranges`]: physical range arithmetic (fixed-capacity range sets);
//! - [`rsdp`]: recognising the ACPI RSDP in a scanned BIOS area;
//! - [`civil`]: calendar dates to Unix time (the CMOS clock);
//! - [`layout`]: where things live, physically and in the program's address space;
//! - [`linux`]: the Linux x86_64 ABI numbers the host answers (syscalls, errno, auxv keys).

#[cfg(any(test, feature = "writer"))]
extern crate alloc;

pub mod civil;
pub mod cmdline;
pub mod cpio;
pub mod elf;
pub mod initial_stack;
pub mod layout;
mod le;
pub mod linux;
pub mod loader;
pub mod physmem;
pub mod ranges;
pub mod rsdp;
