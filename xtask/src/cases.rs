//! The QEMU integration tests: one real boot per case, each with a hard timeout, judged by the
//! serial output and QEMU's exit status (isa-debug-exit: 33 success, 35 failure).

use std::path::PathBuf;
use std::time::Duration;

use crate::build;
use crate::check::{self, ApicMode, BootExpect};
use crate::qemu::{self, Accel, Qemu};
use crate::standin;

/// Which image a case boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    /// The release image: QEMU boots it through multiboot 1.
    Multiboot,
    /// The PVH-only twin: QEMU boots it through the PVH ELF note.
    Pvh,
}

/// What a case must end with.
enum Expect {
    /// A full bring-up, exit 33.
    Boot(BootExpect),
    /// Exit 35 with these substrings printed.
    Failure(Vec<String>),
    /// The seed's own command: no exit device, so QEMU is stopped after the bringup line;
    /// these lines must have been printed.
    SeedLines(Vec<String>),
}

struct Case {
    name: String,
    accel: Accel,
    machine: &'static str,
    image: Image,
    /// Arguments after the shared ones (-smp, -cpu, -device ...).
    args: Vec<String>,
    append: Option<&'static str>,
    expect: Expect,
    /// Extra substrings that must be printed.
    also: Vec<String>,
    timeout: Duration,
    /// Why the case cannot run on this machine.
    skip: Option<String>,
    /// Replaces the whole command line (the seed's command).
    raw_command: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn ids(n: u32) -> Vec<u32> {
    (0..n).collect()
}

struct Matrix<'a> {
    qemu: &'a Qemu,
    cases: Vec<Case>,
}

impl Matrix<'_> {
    fn mode(&self, accel: Accel) -> ApicMode {
        // Default CPU models: KVM's host CPU offers x2APIC here; QEMU's TCG default (qemu64)
        // does not.
        match accel {
            Accel::Kvm => ApicMode::X2Apic,
            Accel::Tcg => ApicMode::XApic,
        }
    }

    fn skip_for(&self, accel: Accel) -> Option<String> {
        match accel {
            Accel::Kvm => self
                .qemu
                .kvm_unusable
                .as_ref()
                .map(|why| format!("KVM not usable ({why})")),
            Accel::Tcg => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn boot(
        &mut self,
        name: &str,
        accel: Accel,
        machine: &'static str,
        image: Image,
        args: &str,
        append: Option<&'static str>,
        expect: BootExpect,
    ) -> &mut Case {
        let timeout = Duration::from_secs(if expect.apic_ids.len() > 16 { 120 } else { 60 });
        self.cases.push(Case {
            name: format!("{name} [{}]", accel.name()),
            accel,
            machine,
            image,
            args: words(args),
            append,
            expect: Expect::Boot(expect),
            also: Vec::new(),
            timeout,
            skip: self.skip_for(accel),
            raw_command: false,
        });
        self.cases.last_mut().expect("just pushed")
    }

    fn simple(
        &mut self,
        name: &str,
        accel: Accel,
        machine: &'static str,
        image: Image,
        smp: u32,
    ) -> &mut Case {
        let expect = BootExpect {
            found: smp,
            apic_ids: ids(smp),
            apic_mode: self.mode(accel),
            strategy: "parallel",
            delays: "fast",
        };
        self.boot(
            name,
            accel,
            machine,
            image,
            &format!("-smp {smp}"),
            None,
            expect,
        )
    }

    fn failure(
        &mut self,
        name: &str,
        accel: Accel,
        args: &str,
        append: Option<&'static str>,
        needles: &[&str],
    ) {
        self.cases.push(Case {
            name: format!("{name} [{}]", accel.name()),
            accel,
            machine: "pc",
            image: Image::Multiboot,
            args: words(args),
            append,
            expect: Expect::Failure(needles.iter().map(|s| s.to_string()).collect()),
            also: Vec::new(),
            timeout: Duration::from_secs(60),
            skip: self.skip_for(accel),
            raw_command: false,
        });
    }
}

/// Every case, in the order they run.
fn matrix(qemu: &Qemu) -> Vec<Case> {
    use Accel::{Kvm, Tcg};
    use Image::{Multiboot, Pvh};
    let mut m = Matrix {
        qemu,
        cases: Vec::new(),
    };

    // -smp 1, 2, 4, 8 on the seed's machine (pc), under both accelerators.
    for accel in [Kvm, Tcg] {
        for smp in [1, 2, 4, 8] {
            m.simple(&format!("pc -smp {smp}"), accel, "pc", Multiboot, smp);
        }
    }
    // Machine types × boot protocols.
    let auto = qemu.default_accel();
    for (machine, image, label) in [
        ("q35", Multiboot, "q35 multiboot"),
        ("microvm", Multiboot, "microvm multiboot"),
        ("pc", Pvh, "pc PVH"),
        ("q35", Pvh, "q35 PVH"),
        ("microvm", Pvh, "microvm PVH"),
    ] {
        let case = m.simple(&format!("{label} -smp 4"), auto, machine, image, 4);
        case.also.push(format!(
            "Booted by {}",
            if image == Pvh { "PVH" } else { "multiboot1" }
        ));
        if image == Pvh {
            case.also.push("from the boot loader".into());
        }
    }
    let tcg = Tcg;
    m.simple("microvm PVH -smp 4", tcg, "microvm", Pvh, 4)
        .also
        .push("via XSDT".into());

    // APIC modes.
    let xapic = BootExpect {
        found: 4,
        apic_ids: ids(4),
        apic_mode: ApicMode::XApic,
        strategy: "parallel",
        delays: "fast",
    };
    m.boot(
        "xAPIC (-cpu qemu64)",
        Tcg,
        "pc",
        Multiboot,
        "-smp 4 -cpu qemu64",
        None,
        xapic.clone(),
    );
    let x2apic = BootExpect {
        apic_mode: ApicMode::X2Apic,
        ..xapic.clone()
    };
    m.boot(
        "x2APIC (-cpu host)",
        Kvm,
        "pc",
        Multiboot,
        "-smp 4",
        None,
        x2apic.clone(),
    );
    if qemu.tcg_has_x2apic() {
        m.boot(
            "x2APIC (-cpu qemu64,+x2apic)",
            Tcg,
            "pc",
            Multiboot,
            "-smp 4 -cpu qemu64,+x2apic",
            None,
            x2apic,
        );
    } else {
        let note = format!(
            "x2APIC under TCG needs QEMU >= 8.0 (this is {}): checks the xAPIC fallback for -cpu qemu64,+x2apic",
            qemu.version_string()
        );
        m.boot(
            "x2APIC (-cpu qemu64,+x2apic)",
            Tcg,
            "pc",
            Multiboot,
            "-smp 4 -cpu qemu64,+x2apic",
            None,
            xapic,
        )
        .name += &format!(" — {note}");
    }

    // Topologies.
    for accel in [auto, Tcg] {
        let sparse = BootExpect {
            found: 6,
            apic_ids: vec![0, 1, 2, 4, 5, 6],
            apic_mode: m.mode(accel),
            strategy: "parallel",
            delays: "fast",
        };
        m.boot(
            "sparse -smp 6,sockets=2,cores=3",
            accel,
            "pc",
            Multiboot,
            "-smp 6,sockets=2,cores=3",
            None,
            sparse,
        );
    }
    let hotplug = BootExpect {
        found: 2,
        apic_ids: ids(2),
        apic_mode: m.mode(auto),
        strategy: "parallel",
        delays: "fast",
    };
    m.boot(
        "-smp 2,maxcpus=8",
        auto,
        "pc",
        Multiboot,
        "-smp 2,maxcpus=8",
        None,
        hotplug,
    )
    .also
    .push("6 ".into());
    let big_ids = BootExpect {
        found: 3,
        apic_ids: vec![0, 1, 256],
        apic_mode: ApicMode::X2Apic,
        strategy: "parallel",
        delays: "fast",
    };
    m.boot(
        "APIC ID 256 (-device ...,socket-id=2)",
        Kvm,
        "q35",
        Multiboot,
        "-smp 2,sockets=3,cores=96,maxcpus=288 -device host-x86_64-cpu,socket-id=2,core-id=0,thread-id=0,arch-capabilities=off",
        None,
        big_ids,
    );

    let big_ids_tcg = BootExpect {
        found: 3,
        apic_ids: vec![0, 1, 256],
        apic_mode: ApicMode::X2Apic,
        strategy: "parallel",
        delays: "fast",
    };
    let case = m.boot(
        "APIC ID 256 (-device ...,socket-id=2)",
        Tcg,
        "q35",
        Multiboot,
        "-cpu qemu64,+x2apic -smp 2,sockets=3,cores=96,maxcpus=288 -device qemu64-x86_64-cpu,socket-id=2,core-id=0,thread-id=0,x2apic=on",
        None,
        big_ids_tcg,
    );
    if !qemu.tcg_has_x2apic() {
        case.skip = Some(format!(
            "APIC IDs above 255 need x2APIC, which TCG offers from QEMU 8.0 (this is {}); covered under KVM",
            qemu.version_string()
        ));
    }

    // Strategies × delay policies.
    for accel in [auto, Tcg] {
        for (strategy, delays, append) in [
            ("sequential", "spec", "bringup=sequential delays=spec"),
            ("sequential", "fast", "bringup=sequential delays=fast"),
            ("parallel", "spec", "bringup=parallel delays=spec"),
            ("parallel", "fast", "bringup=parallel delays=fast"),
        ] {
            let e = BootExpect {
                found: 4,
                apic_ids: ids(4),
                apic_mode: m.mode(accel),
                strategy,
                delays,
            };
            let case = m.boot(
                &format!("microvm -smp 4 {append}"),
                accel,
                "microvm",
                Multiboot,
                "-smp 4",
                Some(append),
                e,
            );
            if strategy == "sequential" {
                case.also
                    .extend(["Starting CPU 3...".into(), "SIPI sent to CPU 3".into()]);
            }
        }
    }

    // 64 CPUs; and 288, the most QEMU 7.2 gives a q35/microvm guest (KVM only: 288 vCPU
    // threads under TCG on two host cores take minutes). 1024 works too (QEMU 10, q35 with
    // intremap) but takes ~5 minutes here, almost all of it QEMU and firmware start-up.
    for accel in [Kvm, Tcg] {
        m.simple("microvm -smp 64", accel, "microvm", Multiboot, 64);
    }
    m.simple("microvm -smp 288", Kvm, "microvm", Multiboot, 288)
        .timeout = Duration::from_secs(240);

    // Limits and bad input.
    let capped = BootExpect {
        found: 4,
        apic_ids: ids(2),
        apic_mode: m.mode(auto),
        strategy: "parallel",
        delays: "fast",
    };
    m.boot(
        "maxcpus=2 on -smp 4",
        auto,
        "pc",
        Multiboot,
        "-smp 4",
        Some("maxcpus=2"),
        capped,
    )
    .also
    .push("note: 4 CPUs found, starting 2 (maxcpus=2".into());
    let mp = BootExpect {
        found: 1,
        apic_ids: ids(1),
        apic_mode: m.mode(Tcg),
        strategy: "parallel",
        delays: "fast",
    };
    m.boot(
        "no ACPI (-M pc,acpi=off): MP tables",
        Tcg,
        "pc,acpi=off",
        Multiboot,
        "-smp 4",
        None,
        mp,
    )
    .also
    .push("CPUs from MP tables".into());
    m.failure(
        "bad option",
        auto,
        "-smp 2",
        Some("bringup=fastest"),
        &[
            "invalid value in option `bringup=fastest`",
            "valid options: bringup=sequential|parallel",
        ],
    );
    m.failure(
        "unknown option",
        auto,
        "-smp 2",
        Some("cpus=4"),
        &["unknown option `cpus=4`", "valid options:"],
    );
    m.failure(
        "no local APIC (-cpu qemu64,-apic)",
        Tcg,
        "-smp 2 -cpu qemu64,-apic",
        None,
        &["error: this CPU has no local APIC"],
    );
    m.failure(
        "AP that never answers (test=absent-ap)",
        auto,
        "-smp 2",
        Some("test=absent-ap"),
        &[
            "CPU 1 online! APIC ID: 1",
            "retrying",
            "error: CPU 2 (APIC ID 2) failed to start: no sign of life",
            "bringup: cpus=3 online=2",
        ],
    );

    // The runtime: a panic and a page fault on an AP stop every CPU; the lock torture run.
    for accel in [auto, Tcg] {
        m.failure(
            "panic on an AP stops all CPUs (test=panic-ap)",
            accel,
            "-smp 4",
            Some("test=panic-ap"),
            &[
                "PANIC on CPU 1: deliberate panic (test=panic-ap) at kernel/src/main.rs:",
                "stopped 3 of 3 other CPUs; halting",
            ],
        );
        m.failure(
            "page fault on an AP stops all CPUs (test=fault-ap)",
            accel,
            "-smp 4",
            Some("test=fault-ap"),
            &[
                "page fault (#PF) on CPU 1: vector 14, error code 0x0, RIP 0x",
                "CR2 0x100000000",
                "stopped 3 of 3 other CPUs; halting",
            ],
        );
        let torture = BootExpect {
            found: 4,
            apic_ids: ids(4),
            apic_mode: m.mode(accel),
            strategy: "parallel",
            delays: "fast",
        };
        m.boot(
            "lock torture (test=lock-torture)",
            accel,
            "microvm",
            Multiboot,
            "-smp 4",
            Some("test=lock-torture"),
            torture,
        )
        .also
        .extend([
            "check lock spin: 4 CPUs x 20000 = 80000".to_string(),
            "check lock irq-safe: 4 CPUs x 20000 = 80000".to_string(),
        ]);
    }

    // The seed's own command line (with -cpu host,-arch-capabilities for this machine's KVM).
    m.cases.push(Case {
        name: "the seed's QEMU command [KVM]".into(),
        accel: Kvm,
        machine: "pc",
        image: Image::Multiboot,
        args: words(
            "-cpu host,-arch-capabilities -enable-kvm -smp 4 -m 128M -serial stdio -display none",
        ),
        append: None,
        expect: Expect::SeedLines(
            [
                "Rust Multicore Boot Starting...",
                "x2APIC enabled on BSP",
                "Found 4 CPUs",
                "Boot trampoline copied to 0x8000",
                "Relocations applied",
                "Page table set: 0x",
                "Initialized CPU 1 (APIC ID 1)",
                "CPU 1 online! APIC ID: 1",
                "CPU 3 online! APIC ID: 3",
                "All CPUs started!",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        also: Vec::new(),
        timeout: Duration::from_secs(60),
        skip: m.skip_for(Kvm),
        raw_command: true,
    });
    m.cases
}

/// The stand-in host (issue 6): the hello program (Rust std, musl static-pie) run in ring 0 by a
/// one-CPU host that behaves like a Unikraft kernel without SMP (its page tables and the
/// program's memory in low RAM, only the dead boot stack 0x1000-0x10fff free), on pc and
/// microvm, at two load addresses, with a page of the dead boot stack occupied; then the ways
/// such a run must fail loudly. KVM cases
/// are skipped, with the reason found by one probe boot, where this machine's KVM cannot run
/// SSE in ring 0.
fn standin_cases() -> Vec<standin::Case> {
    use standin::{Case, Initrd};
    use Accel::{Kvm, Tcg};
    let mut cases = Vec::new();
    for accel in [Tcg, Kvm] {
        cases.push(Case::hello("standin-hello-pc -smp 1", accel, "pc", 1));
        cases.push(
            Case::hello("standin-hello-pc -smp 4 load=0x2000000000", accel, "pc", 4)
                .options("load=0x2000000000"),
        );
        cases.push(Case::hello(
            "standin-hello-microvm -smp 1",
            accel,
            "microvm",
            1,
        ));
        cases.push(
            Case::hello(
                "standin-hello-microvm -smp 4 load=0x4000000000 occupy=0x8000",
                accel,
                "microvm",
                4,
            )
            .options("load=0x4000000000 occupy=0x8000")
            .low_free("0x1000-0x8000,0x9000-0x11000")
            .prints("dead boot stack at 0x1000-0x10fff, occupied page 0x8000"),
        );
    }
    // The multicore example (hello_cpus/): the library starts every CPU from a std program's
    // main, on the stand-in host.
    for accel in [Tcg, Kvm] {
        for smp in [1, 2, 4, 8] {
            cases.push(Case::hello_cpus(
                &format!("standin-cpus-microvm -smp {smp}"),
                accel,
                "microvm",
                smp,
            ));
        }
        cases.push(
            Case::hello_cpus("standin-cpus-pc -smp 4 load=0x4000000000", accel, "pc", 4)
                .options("load=0x4000000000")
                .check(standin::Check::LoadedAt(0x40_0000_0000)),
        );
    }
    // The host still uses the page the library prefers (0x8000), holding live data as the
    // page above Unikraft's boot stack does (pointers into the direct map): the library must
    // see that by itself, take another page and leave that one intact (the host checks).
    cases.push(
        Case::hello_cpus("standin-cpus occupy=0x8000", Tcg, "microvm", 4)
            .options("occupy=0x8000")
            .without("Low memory:")
            .without("Boot trampoline copied to")
            .prints("Low memory: 16 pages named free below 1 MiB, 1 refused: 0x8000-0x8fff host data (pointer 0xffffff8000008000 at 0x8000)")
            .prints("Boot trampoline copied to 0x1000")
            .prints("occupied page 0x8000"),
    );
    // As many CPUs as a small unikernel gets, with the memory sized by the library.
    cases.push(Case::hello_cpus("standin-cpus -smp 32", Tcg, "microvm", 32));
    // Wrong settings: each is an error naming it, main goes on alone, the host is intact.
    let alone = |name: &str, args: &str, error: &str| {
        Case::hello_cpus(name, Tcg, "microvm", 4).args(args).expect(
            35,
            &[
                &format!("hello_cpus: cannot start the other CPUs: {error}"),
                "hello_cpus: main goes on alone: 1/1 CPUs online",
                "standin: /hello_cpus exited with status 2",
                "standin: low memory intact: dead boot stack at 0x1000-0x10fff",
            ],
        )
    };
    cases.push(alone(
        "standin-cpus phys-offset=0",
        "phys-offset=0x0",
        "phys_offset 0x0 does not map physical memory: the page-table root (physical 0x11000) is not mapped at 0x11000",
    ));
    cases.push(alone(
        "standin-cpus phys-offset= the program's address",
        "phys-offset=0x1000000000",
        "phys_offset 0x1000000000 does not map physical memory: the page tables read through it do not lead to the program's own data",
    ));
    cases.push(alone(
        "standin-cpus phys-limit=1G",
        "phys-limit=0x40000000",
        "phys_limit 0x40000000 is too small: the local APIC's page is at physical 0xfee00000",
    ));
    // The range the docs used to suggest: on Unikraft (and here) it is the host's page tables
    // and the program's memory.
    cases.push(alone(
        "standin-cpus low-free= the old example range",
        "low-free=0x11000-0x9f000",
        "low_free: not enough usable pages below 1 MiB for the AP trampoline page: 142 pages named free below 1 MiB, 142 refused: 0x11000-0x",
    ));
    // The C interface (capi/: static library + cbindgen header) from a C program.
    let c_example = |name: &str, smp: u32| {
        Case::hello_cpus(name, Tcg, "microvm", smp)
            .initrd(standin::Initrd::HelloC)
            .program("/hello_cpus_c")
    };
    cases.push(c_example("standin-c hello_cpus.c -smp 4", 4).expect(
        33,
        &[
            "hello_cpus.c: main runs on the BSP",
            "hello_cpus.c: host Unikraft 0.20.0~standin (5.15.148-Kiviuq): its known layout",
            "Hello World from CPU 1 (APIC ID 1) [C, arg 42]",
            "Hello World from CPU 2 (APIC ID 2) [C, arg 42]",
            "Hello World from CPU 3 (APIC ID 3) [C, arg 42]",
            "hello_cpus.c: 3 APs ran the entry, index sum 6",
            "hello_cpus.c: 4/4 CPUs online",
            "standin: low memory intact",
        ],
    ));
    // The C program uses less low memory than the Rust one: some pages of the old range are
    // still free, and the library may take one of those, never a live one.
    cases.push(
        c_example("standin-c hello_cpus.c low-free= the old example range", 4)
            .args("low-free=0x11000-0x9f000")
            .expect(
                33,
                &[
                    "Low memory: 142 pages named free below 1 MiB, ",
                    " host page tables; ",
                    "host memory (mapped at 0x10000",
                    "hello_cpus.c: 4/4 CPUs online",
                    "standin: low memory intact",
                ],
            ),
    );
    // The real Unikraft base kernel (UKBASE=..., skipped otherwise): both examples with no
    // settings at all, from 4 to 32 CPUs, and wrong settings refused with the host alive (the
    // program's last line is a system call that went through it).
    for smp in [4, 8, 16, 32] {
        cases.push(
            Case::hello_cpus(&format!("standin-cpus -smp {smp}"), Tcg, "pc", smp)
                .on_unikraft()
                .prints("hello_cpus: host Unikraft 0.20.0~"),
        );
    }
    for smp in [4, 32] {
        cases.push(
            c_example(&format!("standin-c hello_cpus.c -smp {smp}"), smp)
                .on_unikraft()
                .expect(
                    0,
                    &[
                        "hello_cpus.c: host Unikraft 0.20.0~",
                        &format!("hello_cpus.c: {}/{} CPUs online", smp, smp),
                        &format!("hello_cpus.c: {} APs ran the entry", smp - 1),
                    ],
                )
                .check(standin::Check::Absent("Unikraft Crash".into())),
        );
    }
    for (name, args, error) in [
        (
            "phys-offset=0",
            "phys-offset=0x0",
            "phys_offset 0x0 does not map physical memory: the page-table root (physical 0x",
        ),
        (
            "low-free= the old example range",
            "low-free=0x11000-0x9f000",
            "low_free: not enough usable pages below 1 MiB for the AP trampoline page: 142 pages named free below 1 MiB, 142 refused: 0x11000-0x11fff host data (pointer 0xffffff80000",
        ),
    ] {
        cases.push(
            alone(&format!("standin-cpus {name}"), args, error)
                .on_unikraft()
                .prints("hello_cpus: host Unikraft 0.20.0~"),
        );
    }
    // The host's timer keeps ticking while the BSP starts the APs (spec waits: 10 ms at least).
    cases.push(
        Case::hello_cpus("standin-cpus timer during bring-up", Tcg, "pc", 4)
            .args("delays=spec strategy=sequential")
            .check(standin::Check::BringupTicks(10)),
    );
    cases.push(
        Case::hello_cpus("standin-cpus too little memory", Tcg, "microvm", 4)
            .args("memory=64")
            .expect(
                35,
                &[
                    "hello_cpus: cannot start the other CPUs: out of memory:",
                    "hello_cpus: main goes on alone: 1/1 CPUs online",
                    "standin: low memory intact",
                ],
            ),
    );
    cases.push(
        Case::hello_cpus("standin-cpus panic on an AP", Tcg, "microvm", 4)
            .args("panic-ap")
            .expect(
                33,
                &[
                    "panic on CPU 1: panicked at",
                    "deliberate panic on CPU 1 (panic-ap)",
                    "hello_cpus: 2 APs ran the closure",
                    "hello_cpus: 4/4 CPUs online",
                ],
            ),
    );
    cases.push(
        Case::hello_cpus("standin-cpus fault on an AP", Tcg, "microvm", 4)
            .args("fault-ap")
            .expect(
                33,
                &[
                    "page fault (#PF) on CPU 1: vector 14, error code 0x0",
                    "CR2 0x18",
                    "hello_cpus: 2 APs ran the closure",
                    "standin: low memory intact",
                ],
            ),
    );
    // The CPU features of the setting measured on Unikraft (CR4 with FSGSBASE and OSXSAVE,
    // XCR0 x87|SSE|AVX, 1 GiB pages in the direct map), which TCG's default CPU lacks.
    cases.push(
        Case::hello("standin-hello-pc -cpu max", Tcg, "pc", 4)
            .qemu_args("-cpu max")
            .prints("CR4 0x50620 EFER 0xd01 XCR0 0x7")
            .prints("at 0xffffff8000000000 (1 GiB pages)"),
    );
    cases.push(
        Case::hello("standin-hello-q35 env. stack= churn=", Tcg, "q35", 2)
            .options("env.STANDIN_EXTRA=yes stack=8M")
            .args("churn=100")
            .prints("hello: STANDIN_EXTRA=yes")
            // munmap()ed addresses are reused: the 100th 1 MiB block is where the first was.
            .prints("hello: allocated and freed 1 MiB 100 times, last at 0x4000000"),
    );
    cases.push(
        Case::failing(
            "standin-hello-exit=3",
            Tcg,
            &[
                "hello: exiting with status 3",
                "standin: /standin_hello exited with status 3",
                "standin: low memory intact",
            ],
        )
        .args("exit=3"),
    );
    cases.push(
        Case::failing(
            "standin-hello-fault",
            Tcg,
            &[
                "standin: CPU exception #PF (page fault, vector 14) in the program at 0x",
                "(/standin_hello+0x",
                "standin:   page fault at 0x10: read of an unmapped page",
            ],
        )
        .args("fault"),
    );
    cases.push(
        Case::failing(
            "standin-hello-panic",
            Tcg,
            &[
                "deliberate panic (hello panic)",
                "standin: /standin_hello killed by signal 6 (SIGABRT)",
            ],
        )
        .args("panic"),
    );
    // A borrowed page not given back as it was, and a write to a page the host still uses.
    cases.push(
        Case::failing(
            "standin-hello-corrupt low memory",
            Tcg,
            &[
                "standin: /standin_hello exited with status 0",
                "standin: LOW MEMORY CORRUPTED: 8 bad words in the dead boot stack (0x1000-0x8000), first at 0x4000 (found 0x0)",
                "standin: LOW MEMORY CORRUPTED: 8 bad words in the occupied page (0x8000-0x9000), first at 0x8000 (found 0x0)",
                "standin: failing the run: the dead boot stack or an occupied page is not as the host left it",
            ],
        )
        .options("occupy=0x8000")
        .args("corrupt=0x4000 corrupt=0x8000"),
    );
    cases.push(
        Case::failing(
            "standin-hello-movegs",
            Tcg,
            &["standin: error: system call 1 (write) made with GS base 0x10"],
        )
        .args("movegs"),
    );
    cases.push(
        Case::failing(
            "standin-hello-out of memory (-m 64M, alloc=100M)",
            Tcg,
            &[
                "memory allocation of 104857600 bytes failed",
                "killed by signal 6 (SIGABRT)",
            ],
        )
        .memory("64M")
        .args("alloc=100M"),
    );
    let refusals: [(&str, Initrd, &str, &str, &str); 8] = [
        (
            "no initrd",
            Initrd::Absent,
            "",
            "/standin_hello",
            "standin: error: no initrd: give the program in a cpio archive with -initrd",
        ),
        (
            "program not in the initrd",
            Initrd::Hello,
            "",
            "/nothere",
            "standin: error: /nothere is not in the initrd (it holds: /standin_hello)",
        ),
        (
            "not an ELF",
            Initrd::NotElf,
            "",
            "/standin_hello",
            "standin: error: /standin_hello: not an ELF file",
        ),
        (
            "not static-pie",
            Initrd::Dynamic,
            "",
            "/standin_hello",
            "not static-pie: dynamically linked (PT_INTERP /lib/ld-musl-x86_64.so.1)",
        ),
        (
            "unknown host option",
            Initrd::Hello,
            "cpus=4",
            "/standin_hello",
            "standin: error: unknown host option `cpus=4`",
        ),
        (
            "occupy= a page outside the dead boot stack",
            Initrd::Hello,
            "occupy=0x11000",
            "/standin_hello",
            "standin: error: bad host option `occupy=0x11000`: want a 4 KiB-aligned page of the dead boot stack (0x1000 to 0x10000)",
        ),
        (
            "occupy= a page twice",
            Initrd::Hello,
            "occupy=0x8000 occupy=0x8000",
            "/standin_hello",
            "standin: error: occupy=0x8000 is not in the free low RAM (0x1000-0x8000,0x9000-0x11000)",
        ),
        (
            "stack too large for memory",
            Initrd::Hello,
            "stack=256M",
            "/standin_hello",
            "standin: error: out of memory for the program's stack",
        ),
    ];
    for (what, initrd, options, program, needle) in refusals {
        cases.push(
            Case::failing(&format!("standin-bad {what}"), Tcg, &[needle])
                .initrd(initrd)
                .options(options)
                .program(program)
                .memory("64M"),
        );
    }
    cases
}

/// Runs every case whose name contains `filter`; prints one line per case and a summary.
pub fn run_all(filter: Option<&str>) -> Result<(), String> {
    let images = build::kernel()?;
    let qemu = Qemu::detect()?;
    println!(
        "QEMU {} ({}); KVM: {}",
        qemu.version_string(),
        qemu.binary,
        qemu.kvm_unusable
            .as_deref()
            .map_or("usable".to_string(), |why| format!(
                "not usable: {why}; KVM cases are skipped, TCG ones run"
            ))
    );
    let cases: Vec<Case> = matrix(&qemu)
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for case in &cases {
        if let Some(why) = &case.skip {
            println!("SKIP  {} — {why}", case.name);
            skipped += 1;
            continue;
        }
        let image = match case.image {
            Image::Multiboot => &images.multiboot,
            Image::Pvh => &images.pvh,
        };
        match run_case(&qemu, case, image) {
            Ok(secs) => {
                println!("PASS  {} ({secs:.1} s)", case.name);
                passed += 1;
            }
            Err(report) => {
                println!("FAIL  {}\n{report}", case.name);
                failed += 1;
            }
        }
    }
    // The stand-in host (issue 6): its own images, built only when one of its cases is selected.
    let standin = standin::run_cases(&qemu, standin_cases(), filter)?;
    passed += standin.passed;
    failed += standin.failed;
    skipped += standin.skipped;
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        Err(format!("{failed} QEMU test(s) failed"))
    } else {
        Ok(())
    }
}

fn run_case(qemu: &Qemu, case: &Case, image: &PathBuf) -> Result<f64, String> {
    let cmd = if case.raw_command {
        let mut cmd = std::process::Command::new(&qemu.binary);
        cmd.arg("-kernel").arg(image).args(&case.args);
        cmd
    } else {
        let mut cmd = qemu.base_command(case.accel, case.machine, image);
        cmd.args(&case.args);
        if let Some(append) = case.append {
            cmd.args(["-append", append]);
        }
        cmd
    };
    let stop_after = matches!(case.expect, Expect::SeedLines(_)).then_some("bringup:");
    let out = qemu::run(cmd, case.timeout, stop_after)?;
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push(format!("timed out after {} s", case.timeout.as_secs()));
    }
    match &case.expect {
        Expect::Boot(expect) => {
            if out.exit != Some(33) {
                problems.push(format!(
                    "exit status {:?}, want 33 (isa-debug-exit success)",
                    out.exit
                ));
            }
            problems.extend(check::boot_problems(&out.serial, expect));
        }
        Expect::Failure(needles) => {
            if out.exit != Some(35) {
                problems.push(format!(
                    "exit status {:?}, want 35 (isa-debug-exit failure)",
                    out.exit
                ));
            }
            problems.extend(check::missing(&out.serial, needles));
        }
        Expect::SeedLines(needles) => {
            if !out.stopped {
                problems.push("the bringup line never came".into());
            }
            problems.extend(check::missing(&out.serial, needles));
        }
    }
    problems.extend(check::missing(&out.serial, &case.also));
    if problems.is_empty() {
        return Ok(out.elapsed.as_secs_f64());
    }
    let mut report = String::new();
    for p in &problems {
        report += &format!("      - {p}\n");
    }
    report += "      serial output:\n";
    for line in out.serial.lines() {
        report += &format!("        | {line}\n");
    }
    for line in out.stderr.lines() {
        report += &format!("        ! {line}\n");
    }
    Err(report)
}
