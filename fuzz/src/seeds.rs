//! Seed inputs: the firmware tables, boot information and command lines the parsers meet in
//! practice, built here byte by byte (the layouts QEMU 7.2 produces), and the conversion of
//! real QEMU memory dumps (`fuzz/qemu_tables.sh`) into machine images. `fuzz_seeds` writes
//! them to `fuzz/corpus/<target>/`, which is committed; the replay test and libFuzzer start
//! from there.

use crate::image::{fix_sum, InputBuilder, FIX_CHECKSUMS};

/// Where the builders put things (QEMU `-M pc -m 128M` puts them about there too).
pub mod at {
    /// The BIOS data area (EBDA segment at 0x40E, base memory size at 0x413).
    pub const BDA: u64 = 0x400;
    /// The EBDA, as the BDA names it.
    pub const EBDA: u64 = 0x9_FC00;
    /// The RSDP, in the BIOS ROM area the scan covers.
    pub const RSDP: u64 = 0xF_59D0;
    /// An RSDP outside every scanned area, as a boot protocol (PVH) may name it.
    pub const BOOT_RSDP: u64 = 0x7FD_0000;
    /// The MP floating pointer and configuration table.
    pub const MP_FP: u64 = 0xF_5BA0;
    /// MP configuration table.
    pub const MP_TABLE: u64 = 0xF_5BB0;
    /// The root table, then FACP and MADT 0x1000 apart.
    pub const TABLES: u64 = 0x7FE_0000;
    /// The MADT.
    pub const MADT: u64 = TABLES + 0x2000;
    /// Boot information structures.
    pub const BOOT_INFO: u64 = 0x9000;
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// A BIOS data area naming the EBDA at [`at::EBDA`] and 639 KiB of base memory.
pub fn bda() -> Vec<u8> {
    let mut b = vec![0u8; 0x100];
    b[0x0E..0x10].copy_from_slice(&le16((at::EBDA >> 4) as u16));
    b[0x13..0x15].copy_from_slice(&le16(639));
    b
}

/// An RSDP (revision 0: 20 bytes; 2: 36 bytes) with valid checksums.
pub fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut b = b"RSD PTR ".to_vec();
    b.push(0);
    b.extend_from_slice(b"BOCHS ");
    b.push(revision);
    b.extend_from_slice(&le32(rsdt));
    if revision >= 2 {
        b.extend_from_slice(&le32(36));
        b.extend_from_slice(&le64(xsdt));
        b.extend_from_slice(&[0; 4]);
    }
    fix_sum(&mut b[..20], 8);
    if revision >= 2 {
        fix_sum(&mut b, 32);
    }
    b
}

/// An ACPI table: the 36-byte header (valid checksum) and `body`.
pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut b = signature.to_vec();
    b.extend_from_slice(&le32((36 + body.len()) as u32));
    b.push(revision);
    b.push(0);
    b.extend_from_slice(b"BOCHS BXPC    ");
    b.extend_from_slice(&le32(1));
    b.extend_from_slice(b"BXPC");
    b.extend_from_slice(&le32(1));
    b.extend_from_slice(body);
    fix_sum(&mut b, 9);
    b
}

/// An RSDT (32-bit entries) or XSDT (64-bit entries) listing `tables`.
pub fn root(signature: &[u8; 4], tables: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = tables
        .iter()
        .flat_map(|&t| {
            if signature == b"XSDT" {
                le64(t).to_vec()
            } else {
                le32(t as u32).to_vec()
            }
        })
        .collect();
    table(signature, 1, &body)
}

/// One MADT processor entry: `(apic_id, flags, x2apic)`.
pub type MadtCpu = (u32, u32, bool);

/// A MADT (revision 5, local APIC at 0xFEE00000, PCAT_COMPAT) listing `cpus`, then an I/O
/// APIC, an interrupt source override and a local APIC NMI entry as QEMU's has.
pub fn madt(cpus: &[MadtCpu]) -> Vec<u8> {
    let mut body = le32(0xFEE0_0000).to_vec();
    body.extend_from_slice(&le32(1));
    for (uid, &(apic_id, flags, x2apic)) in cpus.iter().enumerate() {
        if x2apic {
            body.extend_from_slice(&[9, 16, 0, 0]);
            body.extend_from_slice(&le32(apic_id));
            body.extend_from_slice(&le32(flags));
            body.extend_from_slice(&le32(uid as u32));
        } else {
            body.extend_from_slice(&[0, 8, uid as u8, apic_id as u8]);
            body.extend_from_slice(&le32(flags));
        }
    }
    body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0]);
    body.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    table(b"APIC", 5, &body)
}

/// Enabled Local APIC entries for `ids`.
pub fn xapics(ids: &[u32]) -> Vec<MadtCpu> {
    ids.iter().map(|&id| (id, 1, false)).collect()
}

/// An MP floating pointer (one paragraph, MP 1.4, IMCR present) naming `table` or a default
/// configuration.
pub fn mp_floating_pointer(table: u32, default_config: u8) -> Vec<u8> {
    let mut b = b"_MP_".to_vec();
    b.extend_from_slice(&le32(table));
    b.extend_from_slice(&[1, 4, 0, default_config, 0x80, 0, 0, 0]);
    fix_sum(&mut b, 10);
    b
}

/// An MP configuration table with one processor entry per `(apic_id, cpu_flags)`, then a bus,
/// an I/O APIC and an interrupt assignment entry.
pub fn mp_config_table(cpus: &[(u8, u8)]) -> Vec<u8> {
    let mut b = b"PCMP".to_vec();
    b.extend_from_slice(&[0, 0, 4, 0]);
    b.extend_from_slice(b"BOCHSCPU0.1         ");
    b.extend_from_slice(&[0; 4]); // OEM table pointer
    b.extend_from_slice(&[0; 2]); // OEM table size
    b.extend_from_slice(&le16(cpus.len() as u16 + 3));
    b.extend_from_slice(&le32(0xFEE0_0000));
    b.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    for &(apic_id, flags) in cpus {
        b.extend_from_slice(&[0, apic_id, 0x14, flags]);
        b.extend_from_slice(&le32(0x0663));
        b.extend_from_slice(&le32(0x0781_ABFD));
        b.extend_from_slice(&[0; 8]);
    }
    b.extend_from_slice(&[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
    b.extend_from_slice(&[2, 0, 0x11, 1, 0, 0, 0xC0, 0xFE]);
    b.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 2]);
    let len = b.len() as u16;
    b[4..6].copy_from_slice(&le16(len));
    fix_sum(&mut b, 7);
    b
}

/// A machine's memory: `(base, bytes)` regions.
pub type Regions = Vec<(u64, Vec<u8>)>;

/// The BDA, an RSDP in the ROM area, an XSDT (or RSDT) → FACP, `madt`.
pub fn acpi_machine(root_sig: &[u8; 4], madt: Vec<u8>) -> Regions {
    let rsdp_bytes = if root_sig == b"XSDT" {
        rsdp(2, 0, at::TABLES)
    } else {
        rsdp(0, at::TABLES as u32, 0)
    };
    vec![
        (at::BDA, bda()),
        (at::RSDP, rsdp_bytes),
        (at::TABLES, root(root_sig, &[at::TABLES + 0x1000, at::MADT])),
        (at::TABLES + 0x1000, table(b"FACP", 6, &[0; 208])),
        (at::MADT, madt),
    ]
}

/// The BDA and MP tables listing `cpus`.
pub fn mp_machine(cpus: &[(u8, u8)]) -> Regions {
    vec![
        (at::BDA, bda()),
        (at::MP_FP, mp_floating_pointer(at::MP_TABLE as u32, 0)),
        (at::MP_TABLE, mp_config_table(cpus)),
    ]
}

/// An input of the machine-image layout: `flags`, `params`, the regions.
pub fn machine_input(flags: u8, params: &[u8], regions: &Regions) -> Vec<u8> {
    regions
        .iter()
        .fold(InputBuilder::new(flags, params), |b, (base, bytes)| {
            b.region(*base, bytes)
        })
        .build()
}

/// A PVH start info (version 1) at [`at::BOOT_INFO`] with a command line, an RSDP, a module
/// and an e820 map.
pub fn pvh_info(cmdline: &[u8]) -> Regions {
    let base = at::BOOT_INFO;
    let mut info = le32(0x336e_c578).to_vec();
    info.extend_from_slice(&le32(1)); // version
    info.extend_from_slice(&le32(0)); // flags
    info.extend_from_slice(&le32(1)); // nr_modules
    info.extend_from_slice(&le64(base + 0x100)); // modlist
    info.extend_from_slice(&le64(base + 0x200)); // cmdline
    info.extend_from_slice(&le64(at::RSDP));
    info.extend_from_slice(&le64(base + 0x400)); // memmap
    info.extend_from_slice(&le32(3)); // memmap_entries
    info.extend_from_slice(&le32(0));
    let module: Vec<u8> = [0x20_0000u64, 0x10_0000, 0, 0]
        .iter()
        .flat_map(|&v| le64(v))
        .collect();
    let map: Vec<u8> = [
        (0u64, 0x9_FC00u64, 1u32),
        (0xF_0000, 0x1_0000, 2),
        (0x10_0000, 0x7EE_0000, 1),
    ]
    .iter()
    .flat_map(|&(a, s, t)| {
        [
            le64(a).to_vec(),
            le64(s).to_vec(),
            le32(t).to_vec(),
            vec![0; 4],
        ]
        .concat()
    })
    .collect();
    let mut line = cmdline.to_vec();
    line.push(0);
    vec![
        (base, info),
        (base + 0x100, module),
        (base + 0x200, line),
        (base + 0x400, map),
    ]
}

/// Multiboot 1 info at [`at::BOOT_INFO`] as QEMU's loader writes it: memory sizes, the command
/// line (image name first), `modules` modules, an e820 map.
pub fn multiboot_info(cmdline: &[u8], modules: u32) -> Regions {
    let base = at::BOOT_INFO as u32;
    let mut info = vec![0u8; 52];
    let flags: u32 = 1 | (1 << 2) | (1 << 3) | (1 << 6);
    info[0..4].copy_from_slice(&le32(flags));
    info[4..8].copy_from_slice(&le32(639));
    info[8..12].copy_from_slice(&le32(0x1_FB80));
    info[16..20].copy_from_slice(&le32(base + 0x200));
    info[20..24].copy_from_slice(&le32(modules));
    info[24..28].copy_from_slice(&le32(base + 0x100));
    info[44..48].copy_from_slice(&le32(72));
    info[48..52].copy_from_slice(&le32(base + 0x400));
    let mods: Vec<u8> = (0..modules)
        .flat_map(|i| [0x20_0000 + i * 0x10_0000, 0x28_0000 + i * 0x10_0000, 0, 0])
        .flat_map(le32)
        .collect();
    let map: Vec<u8> = [
        (0u64, 0x9_FC00u64, 1u32),
        (0xF_0000, 0x1_0000, 2),
        (0x10_0000, 0x7EE_0000, 1),
    ]
    .iter()
    .flat_map(|&(a, s, t)| {
        [
            le32(20).to_vec(),
            le64(a).to_vec(),
            le64(s).to_vec(),
            le32(t).to_vec(),
        ]
        .concat()
    })
    .collect();
    let mut line = cmdline.to_vec();
    line.push(0);
    let mut regions = vec![
        (at::BOOT_INFO, info),
        (at::BOOT_INFO + 0x200, line),
        (at::BOOT_INFO + 0x400, map),
    ];
    if !mods.is_empty() {
        regions.push((at::BOOT_INFO + 0x100, mods));
    }
    regions
}

/// A small static-pie ELF laid out as a musl one is: R, RX, R and RW PT_LOADs, PT_TLS,
/// PT_GNU_STACK, the program headers in the first segment.
pub fn elf() -> Vec<u8> {
    const PT_LOAD: u32 = 1;
    const R: u32 = 4;
    const W: u32 = 2;
    const X: u32 = 1;
    // (type, flags, offset, vaddr, filesz, memsz)
    let phdrs: [(u32, u32, u64, u64, u64, u64); 6] = [
        (PT_LOAD, R, 0, 0, 0x1c0, 0x1c0),
        (PT_LOAD, R | X, 0x200, 0x1200, 0x100, 0x100),
        (PT_LOAD, R, 0x300, 0x2300, 0x80, 0x80),
        (PT_LOAD, R | W, 0x380, 0x3380, 0x40, 0x1000),
        (7, R, 0x380, 0x3380, 0x10, 0x20),
        (0x6474_e551, R | W, 0, 0, 0, 0),
    ];
    let mut b = vec![0u8; 0x400];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little-endian
    b[6] = 1;
    b[16..18].copy_from_slice(&le16(3)); // ET_DYN
    b[18..20].copy_from_slice(&le16(62)); // EM_X86_64
    b[24..32].copy_from_slice(&le64(0x1210));
    b[32..40].copy_from_slice(&le64(64));
    b[52..54].copy_from_slice(&le16(64));
    b[54..56].copy_from_slice(&le16(56));
    b[56..58].copy_from_slice(&le16(phdrs.len() as u16));
    for (i, &(t, f, off, va, fs, ms)) in phdrs.iter().enumerate() {
        let p = 64 + i * 56;
        b[p..p + 4].copy_from_slice(&le32(t));
        b[p + 4..p + 8].copy_from_slice(&le32(f));
        for (o, v) in [
            (8, off),
            (16, va),
            (24, va),
            (32, fs),
            (40, ms),
            (48, 0x1000),
        ] {
            b[p + o..p + o + 8].copy_from_slice(&le64(v));
        }
    }
    b
}

/// Every built seed: `(target, name, input)`.
pub fn built() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, input: Vec<u8>| {
        out.push((target, name.to_string(), input));
    };
    let four = acpi_machine(b"XSDT", madt(&xapics(&[0, 1, 2, 3])));
    let rsdt = acpi_machine(b"RSDT", madt(&xapics(&[0, 1, 2, 3])));
    let sparse = acpi_machine(b"XSDT", madt(&xapics(&[0, 1, 2, 4, 5, 6])));
    let mut wide_cpus = xapics(&[0, 1]);
    wide_cpus.extend([
        (255, 1, true),
        (256, 1, true),
        (0x1_0000, 1, true),
        (2, 2, true),
        (3, 0, false),
    ]);
    let wide = acpi_machine(b"XSDT", madt(&wide_cpus));
    let mut twice = xapics(&[0, 1, 2]);
    twice.extend([(0, 1, true), (1, 1, true), (2, 1, true), (300, 1, true)]);
    let twice = acpi_machine(b"XSDT", madt(&twice));
    let mp = mp_machine(&[(0, 3), (1, 1), (2, 0), (4, 1)]);
    let mut both = four.clone();
    both.extend(mp.iter().skip(1).cloned());
    let mut boot_rsdp = four.clone();
    boot_rsdp[1].0 = at::BOOT_RSDP;
    let fix = FIX_CHECKSUMS;

    for (name, regions) in [("xsdt-4", &four), ("rsdt-4", &rsdt)] {
        add(
            "acpi_rsdp",
            name,
            machine_input(fix, &le64(at::RSDP), regions),
        );
    }
    add(
        "acpi_rsdp",
        "unrepaired",
        machine_input(0, &le64(at::RSDP), &four),
    );
    for (name, regions, rsdt_pa, xsdt_pa) in [
        ("xsdt-4", &four, 0u32, at::TABLES),
        ("rsdt-4", &rsdt, at::TABLES as u32, 0),
        ("x2apic", &wide, 0, at::TABLES),
    ] {
        let mut params = le64(at::MADT).to_vec();
        params.extend_from_slice(&le32(rsdt_pa));
        params.extend_from_slice(&le64(xsdt_pa));
        params.extend_from_slice(b"APIC");
        add("acpi_sdt", name, machine_input(fix, &params, regions));
    }
    for (name, regions) in [
        ("xapic-4", &four),
        ("sparse", &sparse),
        ("x2apic", &wide),
        ("listed-twice", &twice),
    ] {
        add(
            "acpi_madt",
            name,
            machine_input(fix, &le64(at::MADT), regions),
        );
    }
    add(
        "mp_tables",
        "four",
        machine_input(fix, &le64(at::MP_FP), &mp),
    );
    add(
        "mp_tables",
        "default-config",
        machine_input(
            fix,
            &le64(at::MP_FP),
            &vec![(at::BDA, bda()), (at::MP_FP, mp_floating_pointer(0, 5))],
        ),
    );
    let topo = |hint: u64, bsp: u32, max: u8| {
        let mut p = le64(hint).to_vec();
        p.extend_from_slice(&le32(bsp));
        p.push(max);
        p
    };
    for (name, params, regions) in [
        ("acpi-4", topo(0, 0, 255), &four),
        ("acpi-sparse-bsp4-max3", topo(0, 4, 2), &sparse),
        ("x2apic", topo(0, 0, 255), &wide),
        ("listed-twice-max2", topo(0, 2, 1), &twice),
        ("mp-only", topo(0, 0, 255), &mp),
        ("acpi-and-mp", topo(0, 1, 255), &both),
        ("boot-rsdp", topo(at::BOOT_RSDP, 0, 255), &boot_rsdp),
    ] {
        add("topology", name, machine_input(fix, &params, regions));
    }
    add(
        "pvh",
        "qemu-like",
        machine_input(
            0,
            &le64(at::BOOT_INFO),
            &pvh_info(b"bringup=sequential delays=spec"),
        ),
    );
    add(
        "multiboot",
        "demo",
        machine_input(
            0,
            &le64(at::BOOT_INFO),
            &multiboot_info(b"/boot/rust_multicore maxcpus=4", 0),
        ),
    );
    add(
        "multiboot",
        "standin",
        machine_input(
            0,
            &le64(at::BOOT_INFO),
            &multiboot_info(b"standin_host load=0x2000000000 -- /hello_cpus", 2),
        ),
    );
    for (name, line) in [
        ("defaults", ""),
        (
            "all",
            "bringup=sequential delays=spec maxcpus=6 apstack=32K test=absent-ap bench=floor",
        ),
        (
            "suffixes",
            "apstack=1MiB maxcpus=4096 test=lock-torture bench=runtime",
        ),
        ("bad", "maxcpus=0 apstack=10K quiet"),
    ] {
        add("demo_options", name, line.as_bytes().to_vec());
    }
    add("standin_elf", "musl-like", elf());
    let archive = standin_core::cpio::archive(&[
        ("bin", 0o040755, b""),
        ("./hello_cpus", 0o100755, &elf()),
        ("etc/motd", 0o100644, b"hi\n"),
    ]);
    add("standin_cpio", "three-members", archive);
    for (name, line) in [
        ("every-option", "load=0x20_0000_0000 stack=8M occupy=0x8000 occupy=0x10000 env.RUST_BACKTRACE=1 env.EMPTY= -- /hello exit=3  two"),
        ("plain", "-- /hello_cpus"),
        ("bad", "load=0x1000 -- /p"),
    ] {
        add("standin_cmdline", name, line.as_bytes().to_vec());
    }
    let mut area = vec![0u8; 0x1000];
    area[0x9d0..0x9d0 + 36].copy_from_slice(&rsdp(2, 0x7FE_1000, 0));
    area[0x10..0x18].copy_from_slice(b"RSD PTR ");
    add("standin_rsdp", "one-valid", area);
    out
}

/// A QEMU memory dump: its low MiB and the top MiB of its 128 MiB of RAM.
pub struct Dump<'a> {
    /// Physical [0, 1 MiB).
    pub low: &'a [u8],
    /// Physical [`HIGH_BASE`, `HIGH_BASE` + 1 MiB).
    pub high: &'a [u8],
}

/// Where the high part of a dump starts (`fuzz/qemu_tables.sh`).
pub const HIGH_BASE: u64 = 0x7F0_0000;

impl Dump<'_> {
    fn bytes(&self, pa: u64, len: usize) -> Option<&[u8]> {
        let (base, mem) = if pa < 0x10_0000 {
            (0, self.low)
        } else {
            (HIGH_BASE, self.high)
        };
        let off = usize::try_from(pa.checked_sub(base)?).ok()?;
        mem.get(off..off.checked_add(len)?)
    }

    fn sums_to_zero(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0
    }

    /// The structures the parsers read, as regions: the BDA, the EBDA's first KiB, every valid
    /// RSDP and MP floating pointer in the ROM area, the MP configuration table, the RSDT, the
    /// XSDT and every table they list. Also returns the RSDP's and the floating pointer's
    /// addresses and the MADT's.
    pub fn regions(&self) -> (Regions, Option<u64>, Option<u64>, Option<u64>) {
        let mut regions: Regions = Vec::new();
        let add = |pa: u64, len: usize, regions: &mut Regions| {
            if let Some(b) = self.bytes(pa, len) {
                if !regions.iter().any(|(p, _)| *p == pa) {
                    regions.push((pa, b.to_vec()));
                }
            }
        };
        add(0x400, 0x100, &mut regions);
        let ebda = u64::from(u16::from_le_bytes([self.low[0x40E], self.low[0x40F]])) << 4;
        if (0x500..0xA_0000).contains(&ebda) {
            add(ebda, 1024, &mut regions);
        }
        let (mut rsdp_at, mut fp_at, mut madt_at) = (None, None, None);
        let mut tables = Vec::new();
        for pa in (0xE_0000..0x10_0000u64).step_by(16) {
            let b = self.bytes(pa, 36).unwrap_or(&[]);
            if b.starts_with(b"RSD PTR ") && Self::sums_to_zero(&b[..20]) && rsdp_at.is_none() {
                let v2 = b[15] >= 2;
                add(pa, if v2 { 36 } else { 20 }, &mut regions);
                rsdp_at = Some(pa);
                tables.push(u64::from(u32::from_le_bytes(b[16..20].try_into().unwrap())));
                if v2 {
                    tables.push(u64::from_le_bytes(b[24..32].try_into().unwrap()));
                }
            }
            if b.starts_with(b"_MP_") && Self::sums_to_zero(&b[..16]) && fp_at.is_none() {
                add(pa, 16, &mut regions);
                fp_at = Some(pa);
                let table = u64::from(u32::from_le_bytes(b[4..8].try_into().unwrap()));
                if let Some(h) = self.bytes(table, 44) {
                    let len = u16::from_le_bytes([h[4], h[5]]) as usize
                        + u16::from_le_bytes([h[40], h[41]]) as usize;
                    add(table, len, &mut regions);
                }
            }
        }
        let mut i = 0;
        while i < tables.len() {
            let pa = tables[i];
            i += 1;
            let Some(h) = self.bytes(pa, 36).filter(|_| pa != 0) else {
                continue;
            };
            let len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
            let sig: [u8; 4] = h[..4].try_into().unwrap();
            if !(36..=0x1_0000).contains(&len) || self.bytes(pa, len).is_none() {
                continue;
            }
            add(pa, len, &mut regions);
            let entries = &self.bytes(pa, len).unwrap()[36..];
            match &sig {
                b"RSDT" => tables.extend(
                    entries
                        .chunks_exact(4)
                        .map(|e| u64::from(u32::from_le_bytes(e.try_into().unwrap()))),
                ),
                b"XSDT" => tables.extend(
                    entries
                        .chunks_exact(8)
                        .map(|e| u64::from_le_bytes(e.try_into().unwrap())),
                ),
                b"APIC" => madt_at = madt_at.or(Some(pa)),
                _ => {}
            }
        }
        (regions, rsdp_at, fp_at, madt_at)
    }

    /// The seeds this dump gives: the whole machine for `topology`, and the RSDP, root table,
    /// MADT and MP tables for their own targets. `(target, input)`.
    pub fn seeds(&self) -> Vec<(&'static str, Vec<u8>)> {
        let (regions, rsdp_at, fp_at, madt_at) = self.regions();
        let mut out = Vec::new();
        let mut topo = le64(0).to_vec();
        topo.extend_from_slice(&le32(0));
        topo.push(255);
        out.push(("topology", machine_input(0, &topo, &regions)));
        if let Some(rsdp) = rsdp_at {
            out.push(("acpi_rsdp", machine_input(0, &le64(rsdp), &regions)));
            let r = self.bytes(rsdp, 36).unwrap_or(&[0; 36]);
            let mut params = le64(madt_at.unwrap_or(0)).to_vec();
            params.extend_from_slice(&r[16..20]);
            params.extend_from_slice(if r[15] >= 2 { &r[24..32] } else { &[0; 8] });
            params.extend_from_slice(b"APIC");
            out.push(("acpi_sdt", machine_input(0, &params, &regions)));
        }
        if let Some(madt) = madt_at {
            out.push(("acpi_madt", machine_input(0, &le64(madt), &regions)));
        }
        if let Some(fp) = fp_at {
            out.push(("mp_tables", machine_input(0, &le64(fp), &regions)));
        }
        out
    }
}
