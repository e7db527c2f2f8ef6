//! The `standin-*` QEMU test cases: what a case boots and what its output must show.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    build_c_example, build_host, build_program, dynamic_elf, qemu_command, watch, write_initrd,
    Artifacts, HELLO_PACKAGE,
};
use crate::qemu::{Accel, Qemu};

// ---------------------------------------------------------------------------------------------
// The QEMU test cases (declared in cases.rs)

/// What a case puts in its initrd.
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

/// Which kernel runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The stand-in host (standin/).
    Standin,
    /// The real Unikraft base kernel named by `UKBASE` (case skipped when it is not set).
    Unikraft,
}

/// The environment variable naming the Unikraft base kernel for the `unikraft-*` cases.
pub const UKBASE: &str = "UKBASE";

/// What the `unikraft-*` cases say when `UKBASE` is not set.
pub const UKBASE_MISSING: &str = "UKBASE is not set: these cases boot the real Unikraft 0.20 base kernel (no SMP); get it as docs/hosted.md says (\"On the real Unikraft kernel\") and run with UKBASE=<path to the kernel file>";

/// A check on the serial output beyond plain substrings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// This text must be printed.
    Prints(String),
    /// This text must not be printed.
    Absent(String),
    /// "hello: timer ticked N times" with N at least this.
    TimerTicked(u64),
    /// "hello: main at 0x..." within 16 MiB above this load base.
    LoadedAt(u64),
    /// "hello: STANDIN_LOWMEM_FREE=" exactly this.
    LowFree(String),
    /// "hello: CR3 0x...; physical: main 0x..., stack 0x..., a Box 0x..." laid out as the
    /// program's memory is on Unikraft: code and stack above 1 MiB, the heap in a low frame
    /// (between the dead boot stack and the legacy area).
    UnikraftLayout,
    /// "hello_cpus: timer interrupts on the BSP during the bring-up: N" with N at least this.
    BringupTicks(u64),
}

/// One boot of the stand-in host (or of the real Unikraft kernel).
pub struct Case {
    /// "standin-hello-... [TCG]".
    pub name: String,
    /// Which kernel.
    pub kernel: Kernel,
    /// The accelerator.
    pub accel: Accel,
    /// `-M`.
    pub machine: &'static str,
    /// `-smp`.
    pub smp: u32,
    /// `-m` when not the shared default.
    pub memory: Option<&'static str>,
    /// More QEMU arguments (`-cpu max`).
    pub qemu_args: Vec<String>,
    /// What the initrd holds.
    pub initrd: Initrd,
    /// Host options (before `--`).
    pub host_options: String,
    /// The program's argv (argv[0] first).
    pub argv: Vec<String>,
    /// The QEMU exit status wanted: 33 (success) or 35.
    pub exit: i32,
    /// What the output must show.
    pub checks: Vec<Check>,
    /// Hard limit.
    pub timeout: Duration,
}

impl Case {
    /// A boot of the hello program that must succeed: ring 0, Unikraft's uname, the page-table
    /// root and the program's code in low memory, the STANDIN_* variables, std's collections,
    /// the timer ticking, a clean exit with the dead boot stack intact.
    pub fn hello(name: &str, accel: Accel, machine: &'static str, smp: u32) -> Case {
        let prints = [
            "standin: running /standin_hello in ring 0, interrupts on",
            "hello: CS=0x8 (ring 0), CR0=0x8001",
            "hello: uname Unikraft standin 5.15.148-Kiviuq 0.20.0~standin x86_64",
            " CR3 0x11000 APIC_BASE ",
            "hello: CR3 0x11000; physical: main 0x",
            "hello: STANDIN_PHYS_OFFSET=0xffffff8000000000",
            "hello: STANDIN_RSDP=0x",
            "hello: STANDIN_TIMER_HZ=1000",
            "hello: Vec sum 5050, HashMap 100 entries (7² = 49), thread_local 3",
            "hello: exiting with status 0",
            "standin: /standin_hello exited with status 0 after",
            "standin: system calls: ",
            "standin: low memory intact: dead boot stack at 0x1000-0x10fff",
        ];
        let mut checks: Vec<Check> = prints
            .iter()
            .map(|s| Check::Prints(s.to_string()))
            .collect();
        checks.push(Check::TimerTicked(5));
        checks.push(Check::LoadedAt(standin_core::layout::DEFAULT_LOAD_BASE));
        checks.push(Check::LowFree("0x1000-0x11000".into()));
        checks.push(Check::UnikraftLayout);
        Case {
            name: format!("{name} [{}]", accel.name()),
            kernel: Kernel::Standin,
            accel,
            machine,
            smp,
            memory: None,
            qemu_args: Vec::new(),
            initrd: Initrd::Hello,
            host_options: String::new(),
            argv: vec![format!("/{HELLO_PACKAGE}")],
            exit: 33,
            checks,
            timeout: Duration::from_secs(if accel == Accel::Kvm { 120 } else { 60 }),
        }
    }

    /// A boot of the multicore example (hello_cpus/) that must succeed: every AP greets and runs
    /// main's closure, `smp/smp CPUs online`, the dead boot stack intact (every page the library
    /// borrowed given back as it was).
    pub fn hello_cpus(name: &str, accel: Accel, machine: &'static str, smp: u32) -> Case {
        let mut checks = vec![
            Check::Prints("standin: running /hello_cpus in ring 0, interrupts on".into()),
            Check::Prints("hello_cpus: main runs on the BSP".into()),
            Check::Prints(
                "hello_cpus: host Unikraft 0.20.0~standin (5.15.148-Kiviuq): the library's Unikraft (x86_64) layout".into(),
            ),
            Check::Prints(format!("hello_cpus: {smp}/{smp} CPUs online")),
            Check::Prints(format!("hello_cpus: {} APs ran the closure", smp - 1)),
            Check::Prints("BSP's own TLS counter: 0".into()),
            Check::Prints("standin: /hello_cpus exited with status 0 after".into()),
            Check::Prints("standin: low memory intact: dead boot stack at 0x1000-0x10fff".into()),
            Check::LoadedAt(standin_core::layout::DEFAULT_LOAD_BASE),
        ];
        if smp > 1 {
            // The preset's free range is the dead boot stack, all of it usable; the tables go
            // into the library's own memory (the program's heap, below 4 GiB here).
            checks.push(Check::Prints(
                "Low memory: 16 pages named free below 1 MiB, 0 refused".into(),
            ));
            checks.push(Check::Prints("Boot trampoline copied to 0x8000".into()));
            checks.push(Check::Prints("(in the library's memory)".into()));
        }
        for cpu in 1..smp {
            checks.push(Check::Prints(format!(
                "Hello World from CPU {cpu} (APIC ID "
            )));
        }
        Case {
            name: format!("{name} [{}]", accel.name()),
            kernel: Kernel::Standin,
            accel,
            machine,
            smp,
            memory: None,
            qemu_args: Vec::new(),
            initrd: Initrd::HelloCpus,
            host_options: String::new(),
            argv: vec!["/hello_cpus".into()],
            exit: 33,
            checks,
            timeout: Duration::from_secs(if accel == Accel::Kvm { 180 } else { 90 }),
        }
    }

    /// The same program on the real Unikraft base kernel (`UKBASE`), in the setting measured
    /// there: `-M pc -cpu max,-pmu -m 953M`, TCG (this machine's KVM cannot run ring-0 SSE),
    /// the program extracted from the initrd as Unikraft's `vfs.fstab` says. Unikraft ends
    /// QEMU with status 0 whatever the program returns, so the serial output is the judge:
    /// the checks that name the stand-in are dropped and Unikraft's crash report must not
    /// appear.
    pub fn on_unikraft(mut self) -> Case {
        self.name = self.name.replacen("standin-", "unikraft-", 1);
        self.kernel = Kernel::Unikraft;
        self.accel = Accel::Tcg;
        self.machine = "pc";
        self.memory = Some("953M");
        self.qemu_args = vec!["-cpu".into(), "max,-pmu".into()];
        self.host_options = r#"vfs.fstab=[ "initrd0:/:extract:::" ]"#.into();
        self.exit = 0;
        self.checks.retain(|c| match c {
            Check::Prints(t) => !t.starts_with("standin: ") && !t.contains("~standin"),
            Check::LoadedAt(_) => false,
            _ => true,
        });
        self.checks.push(Check::Absent("Unikraft Crash".into()));
        self.timeout = Duration::from_secs(120);
        self
    }

    /// Replaces the expected exit status and every check.
    pub fn expect(mut self, exit: i32, needles: &[&str]) -> Case {
        self.exit = exit;
        self.checks = needles
            .iter()
            .map(|s| Check::Prints(s.to_string()))
            .collect();
        self
    }

    /// Drops the printed-text checks that start with `prefix`.
    pub fn without(mut self, prefix: &str) -> Case {
        self.checks
            .retain(|c| !matches!(c, Check::Prints(t) if t.starts_with(prefix)));
        self
    }

    /// Adds a check.
    pub fn check(mut self, check: Check) -> Case {
        self.checks.push(check);
        self
    }

    /// A boot that must end as a failure (exit 35) printing `needles`.
    pub fn failing(name: &str, accel: Accel, needles: &[&str]) -> Case {
        let mut case = Case::hello(name, accel, "pc", 1);
        case.exit = 35;
        case.checks = needles
            .iter()
            .map(|s| Check::Prints(s.to_string()))
            .collect();
        case
    }

    /// Host options; `load=` also moves the expected load base.
    pub fn options(mut self, options: &str) -> Case {
        self.host_options = options.to_string();
        for option in options.split_whitespace() {
            if let Some(load) = option.strip_prefix("load=") {
                let base = standin_core::cmdline::parse_number(load).expect("load= in a case");
                for check in &mut self.checks {
                    if let Check::LoadedAt(b) = check {
                        *b = base;
                    }
                }
            }
        }
        self
    }

    /// Program arguments after argv[0].
    pub fn args(mut self, args: &str) -> Case {
        self.argv.extend(args.split_whitespace().map(String::from));
        self
    }

    /// Replaces the expected STANDIN_LOWMEM_FREE.
    pub fn low_free(mut self, ranges: &str) -> Case {
        for check in &mut self.checks {
            if let Check::LowFree(r) = check {
                *r = ranges.to_string();
            }
        }
        self
    }

    /// Boots with this initrd instead of the hello program's.
    pub fn initrd(mut self, initrd: Initrd) -> Case {
        self.initrd = initrd;
        self
    }

    /// Runs this path (argv[0]) instead of /standin_hello.
    pub fn program(mut self, path: &str) -> Case {
        self.argv[0] = path.to_string();
        self
    }

    /// `-m` for this case.
    pub fn memory(mut self, memory: &'static str) -> Case {
        self.memory = Some(memory);
        self
    }

    /// More QEMU arguments.
    pub fn qemu_args(mut self, args: &str) -> Case {
        self.qemu_args
            .extend(args.split_whitespace().map(String::from));
        self
    }

    /// Adds printed text to check.
    pub fn prints(mut self, text: &str) -> Case {
        self.checks.push(Check::Prints(text.to_string()));
        self
    }
}

fn hex_after(serial: &str, prefix: &str) -> Option<u64> {
    let rest = serial.lines().find_map(|l| l.split(prefix).nth(1))?;
    let digits: String = rest
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Everything wrong with a run of `case` (empty: it passed). Pure, for unit tests.
pub fn problems(case: &Case, serial: &str, exit: Option<i32>, timed_out: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if timed_out {
        problems.push(format!("timed out after {} s", case.timeout.as_secs()));
    }
    if exit != Some(case.exit) {
        problems.push(format!("exit status {exit:?}, want {}", case.exit));
    }
    for check in &case.checks {
        match check {
            Check::Prints(text) if !serial.contains(text.as_str()) => {
                problems.push(format!("missing `{text}`"))
            }
            Check::Prints(_) => {}
            Check::Absent(text) if serial.contains(text.as_str()) => {
                problems.push(format!("printed `{text}`"))
            }
            Check::Absent(_) => {}
            Check::TimerTicked(min) => {
                let ticks = serial
                    .lines()
                    .find_map(|l| l.strip_prefix("hello: timer ticked "))
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok());
                match ticks {
                    Some(n) if n >= *min => {}
                    Some(n) => problems.push(format!(
                        "the timer ticked {n} times during the busy loop, want at least {min}"
                    )),
                    None => problems.push("no `hello: timer ticked N times` line".into()),
                }
            }
            Check::BringupTicks(min) => {
                let ticks = serial
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix(
                            "hello_cpus: timer interrupts on the BSP during the bring-up: ",
                        )
                    })
                    .and_then(|n| n.trim().parse::<u64>().ok());
                match ticks {
                    Some(n) if n >= *min => {}
                    Some(n) => problems.push(format!(
                        "{n} timer interrupts during the bring-up, want at least {min}"
                    )),
                    None => {
                        problems.push("no `timer interrupts ... during the bring-up` line".into())
                    }
                }
            }
            Check::LoadedAt(base) => match hex_after(serial, "hello: main at ")
                .or_else(|| hex_after(serial, "hello_cpus: main at "))
            {
                Some(main) if (*base..base + (16 << 20)).contains(&main) => {}
                Some(main) => problems.push(format!(
                    "main at {main:#x}, want it within 16 MiB above the load base {base:#x}"
                )),
                None => problems.push("no `hello: main at 0x...` line".into()),
            },
            Check::LowFree(ranges) => {
                let line = format!("hello: STANDIN_LOWMEM_FREE={ranges}");
                if !serial.lines().any(|l| l == line) {
                    problems.push(format!("missing the line `{line}`"));
                }
            }
            Check::UnikraftLayout => {
                use standin_core::layout::{LEGACY_AREA_START, LOW_FRAMES_START, ONE_MIB};
                let low = LOW_FRAMES_START..LEGACY_AREA_START;
                let line = serial
                    .lines()
                    .find(|l| l.starts_with("hello: CR3 ") && l.contains("; physical: "))
                    .unwrap_or("");
                let at = |what: &str| hex_after(line, what);
                match (at("main "), at("stack "), at("a Box ")) {
                    (Some(main), Some(stack), Some(heap))
                        if main >= ONE_MIB && stack >= ONE_MIB && low.contains(&heap) => {}
                    (Some(main), Some(stack), Some(heap)) => problems.push(format!(
                        "main at physical {main:#x}, stack {stack:#x}, a Box {heap:#x}: want code and stack above 1 MiB, the heap in a low frame ({:#x}-{:#x})",
                        low.start, low.end
                    )),
                    _ => problems.push("no `hello: CR3 ...; physical: main 0x..., stack 0x..., a Box 0x...` line".into()),
                }
            }
        }
    }
    problems
}

/// Counts of one group of cases.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Skipped (with the reason printed).
    pub skipped: u32,
}

/// Why KVM cases are skipped, if they are: /dev/kvm unusable, or one probe boot of the hello
/// program under KVM stopped with an emulation failure (this machine's nested KVM emulates
/// ring-0 code and cannot emulate SSE). A probe that fails otherwise does not skip anything:
/// the KVM cases then run and show the failure.
fn kvm_skip_reason(qemu: &Qemu, artifacts: &Artifacts) -> Option<String> {
    if let Some(why) = &qemu.kvm_unusable {
        return Some(format!("KVM not usable ({why})"));
    }
    let argv = [format!("/{HELLO_PACKAGE}"), "spin=0".into()];
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let cmd = qemu_command(qemu, Accel::Kvm, "pc", 1, artifacts, "", &argv);
    match watch(cmd, Duration::from_secs(120), false) {
        Ok(run) if run.kvm_failure => Some(format!(
            "this machine's KVM cannot run a std program in ring 0 (probe boot: {})",
            run.kvm_failure_summary()
        )),
        _ => None,
    }
}

/// Runs the cases whose name contains `filter`, printing PASS/FAIL/SKIP lines like the rest
/// of the matrix. Builds the host and the program only if a case is selected.
pub fn run_cases(qemu: &Qemu, cases: Vec<Case>, filter: Option<&str>) -> Result<Tally, String> {
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    let mut tally = Tally::default();
    if cases.is_empty() {
        return Ok(tally);
    }
    let host = build_host()?;
    let hello = build_program(HELLO_PACKAGE, HELLO_PACKAGE)?;
    let hello_bytes = std::fs::read(&hello).map_err(|e| format!("{}: {e}", hello.display()))?;
    let hello_cpus = build_program("hello_cpus", "hello_cpus")?;
    let hello_cpus_bytes =
        std::fs::read(&hello_cpus).map_err(|e| format!("{}: {e}", hello_cpus.display()))?;
    let initrd_for = |kind: Initrd| -> Result<Option<PathBuf>, String> {
        let (file, data): (&str, Vec<u8>) = match kind {
            Initrd::Absent => return Ok(None),
            Initrd::Hello => ("hello.cpio", hello_bytes.clone()),
            Initrd::NotElf => ("not-elf.cpio", b"#!/bin/sh\necho hello\n".to_vec()),
            Initrd::Dynamic => ("dynamic.cpio", dynamic_elf()),
            Initrd::HelloCpus => {
                return write_initrd("hello_cpus.cpio", &[("hello_cpus", &hello_cpus_bytes)])
                    .map(Some)
            }
            Initrd::HelloC => {
                let c = build_c_example()?;
                let bytes = std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?;
                return write_initrd("hello_cpus_c.cpio", &[("hello_cpus_c", &bytes)]).map(Some);
            }
        };
        write_initrd(file, &[(HELLO_PACKAGE, &data)]).map(Some)
    };
    let mut kvm_skip: Option<Option<String>> = None;
    let ukbase = std::env::var_os(UKBASE).map(PathBuf::from);
    for case in &cases {
        let kernel = match case.kernel {
            Kernel::Standin => host.clone(),
            Kernel::Unikraft => match &ukbase {
                Some(path) if path.is_file() => path.clone(),
                Some(path) => {
                    return Err(format!("{UKBASE}={}: no such file", path.display()));
                }
                None => {
                    println!("SKIP  {} — {UKBASE_MISSING}", case.name);
                    tally.skipped += 1;
                    continue;
                }
            },
        };
        let artifacts = Artifacts {
            host: kernel,
            initrd: initrd_for(case.initrd)?,
        };
        if case.accel == Accel::Kvm {
            let reason = kvm_skip.get_or_insert_with(|| {
                let probe = Artifacts {
                    host: host.clone(),
                    initrd: initrd_for(Initrd::Hello).ok().flatten(),
                };
                kvm_skip_reason(qemu, &probe)
            });
            if let Some(why) = reason {
                println!("SKIP  {} — {why}", case.name);
                tally.skipped += 1;
                continue;
            }
        }
        let argv: Vec<&str> = case.argv.iter().map(String::as_str).collect();
        let mut cmd = qemu_command(
            qemu,
            case.accel,
            case.machine,
            case.smp,
            &artifacts,
            &case.host_options,
            &argv,
        );
        if let Some(memory) = case.memory {
            cmd.args(["-m", memory]); // the last -m wins
        }
        cmd.args(&case.qemu_args);
        let run = watch(cmd, case.timeout, false)?;
        let mut found = problems(case, &run.serial, run.exit, run.timed_out);
        if run.kvm_failure {
            found.insert(0, run.kvm_failure_summary());
        }
        if found.is_empty() {
            println!("PASS  {} ({:.1} s)", case.name, run.elapsed.as_secs_f64());
            tally.passed += 1;
            continue;
        }
        println!("FAIL  {}", case.name);
        for p in &found {
            println!("      - {p}");
        }
        println!("      serial output:");
        for line in run.serial.lines() {
            println!("        | {line}");
        }
        for line in run.stderr.lines() {
            println!("        ! {line}");
        }
        let _ = std::io::stdout().flush();
        tally.failed += 1;
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "standin: CR0 0x80010033 CR4 0x620 EFER 0xd01 XCR0 0x3 CR3 0x11000 APIC_BASE 0xfee00900
standin: running /standin_hello in ring 0, interrupts on
hello: CS=0x8 (ring 0), CR0=0x80010033
hello: uname Unikraft standin 5.15.148-Kiviuq 0.20.0~standin x86_64
hello: main at 0x100000b0e0, stack at 0x6ffffffffadb
hello: CR3 0x11000; physical: main 0x1c0e0b0, stack 0x1a6adb0, a Box 0x2a040
hello: STANDIN_LOWMEM_FREE=0x1000-0x11000
hello: STANDIN_PHYS_OFFSET=0xffffff8000000000
hello: STANDIN_RSDP=0xf59d0
hello: STANDIN_TIMER_HZ=1000
hello: Vec sum 5050, HashMap 100 entries (7² = 49), thread_local 3
hello: timer ticked 20 times during a 20 ms busy loop
hello: exiting with status 0
standin: /standin_hello exited with status 0 after 33 timer ticks
standin: system calls: write 10
standin: low memory intact: dead boot stack at 0x1000-0x10fff
";

    #[test]
    fn a_unikraft_case_drops_the_stand_in_checks_and_watches_for_a_crash() {
        let case = Case::hello_cpus("standin-cpus -smp 2", Accel::Kvm, "microvm", 2).on_unikraft();
        assert_eq!(case.name, "unikraft-cpus -smp 2 [KVM]");
        assert_eq!(
            (case.kernel, case.accel, case.exit),
            (Kernel::Unikraft, Accel::Tcg, 0)
        );
        assert!(case.host_options.starts_with("vfs.fstab="));
        let serial = "hello_cpus: main runs on the BSP
Low memory: 16 pages named free below 1 MiB, 0 refused
Boot trampoline copied to 0x8000
Transition page tables at 0x1109000 (in the library's memory)
Hello World from CPU 1 (APIC ID 1)
hello_cpus: 2/2 CPUs online
hello_cpus: 1 APs ran the closure, results sum 386 (expected 386); BSP's own TLS counter: 0
";
        assert_eq!(
            problems(&case, serial, Some(0), false),
            Vec::<String>::new()
        );
        let crashed = format!("{serial}[    0.23] CRIT:  Unikraft Crash - Kiviuq\n");
        assert_eq!(
            problems(&case, &crashed, Some(0), false),
            vec!["printed `Unikraft Crash`".to_string()]
        );
    }

    #[test]
    fn a_good_run_passes() {
        let case = Case::hello("standin-hello-pc", Accel::Tcg, "pc", 1);
        assert_eq!(problems(&case, GOOD, Some(33), false), Vec::<String>::new());
    }

    #[test]
    fn each_check_catches_its_problem() {
        let case = Case::hello("x", Accel::Tcg, "pc", 1);
        let slow = GOOD.replace("ticked 20 times", "ticked 2 times");
        assert!(problems(&case, &slow, Some(33), false)[0].contains("ticked 2 times"));
        let moved = Case::hello("x", Accel::Tcg, "pc", 1).options("load=0x4000000000");
        assert!(problems(&moved, GOOD, Some(33), false)[0].contains("load base 0x4000000000"));
        let occupied =
            Case::hello("x", Accel::Tcg, "pc", 1).low_free("0x1000-0x8000,0x9000-0x11000");
        assert!(problems(&occupied, GOOD, Some(33), false)[0].contains("STANDIN_LOWMEM_FREE"));
        let low_code = GOOD.replace("physical: main 0x1c0e0b0", "physical: main 0x1c0e0");
        assert!(problems(&case, &low_code, Some(33), false)[0].contains("above 1 MiB"));
        let high_heap = GOOD.replace("a Box 0x2a040", "a Box 0x2a0400");
        assert!(problems(&case, &high_heap, Some(33), false)[0].contains("in a low frame"));
        let p = problems(&case, "", Some(35), true);
        assert!(p[0].starts_with("timed out"));
        assert!(p[1].contains("exit status Some(35), want 33"));
        let failing = Case::failing("x", Accel::Tcg, &["standin: error: no initrd"]);
        assert!(problems(&failing, "standin: error: no initrd: give", Some(35), false).is_empty());
    }
}
