//! The fuzz targets: one plain function per parser of bytes the project did not write, each
//! taking `&[u8]` and panicking only when a property fails (a parser panic, or a result that
//! contradicts its input). Two drivers call them:
//!
//! - `cargo test` (stable, `tests/replay.rs`): the committed seed corpus under `corpus/`,
//!   then a few thousand deterministic pseudo-random and mutated inputs per target;
//! - libFuzzer (`fuzz/libfuzzer`, nightly, `make fuzz`): one binary per target.
//!
//! Targets that read physical memory take a machine image ([`image`]): a flags byte, their
//! parameters, then memory regions; everything else is unreadable.

pub mod boot;
pub mod firmware;
pub mod image;
pub mod mutate;
pub mod seeds;
pub mod standin;

/// A target: its name (the corpus directory and the libFuzzer binary) and its body.
pub struct Target {
    /// Name of the corpus directory and of the libFuzzer binary.
    pub name: &'static str,
    /// The body: panics only when a property fails.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "acpi_rsdp",
        run: firmware::acpi_rsdp,
    },
    Target {
        name: "acpi_sdt",
        run: firmware::acpi_sdt,
    },
    Target {
        name: "acpi_madt",
        run: firmware::acpi_madt,
    },
    Target {
        name: "mp_tables",
        run: firmware::mp_tables,
    },
    Target {
        name: "topology",
        run: firmware::topology,
    },
    Target {
        name: "pvh",
        run: boot::pvh,
    },
    Target {
        name: "multiboot",
        run: boot::multiboot,
    },
    Target {
        name: "demo_options",
        run: boot::demo_options,
    },
    Target {
        name: "standin_elf",
        run: standin::standin_elf,
    },
    Target {
        name: "standin_cpio",
        run: standin::standin_cpio,
    },
    Target {
        name: "standin_cmdline",
        run: standin::standin_cmdline,
    },
    Target {
        name: "standin_rsdp",
        run: standin::standin_rsdp,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
