//! The QEMU integration tests (`cargo xtask qemu-test [filter]`): the demo kernel and the
//! stand-in host, one real boot per case, each with a hard time limit, judged by its serial
//! output and QEMU's exit status.
//!
//! - matrix.txt: every case, one line each (what boots, how, within what time, what it must
//!   show); table.rs reads it into [`Case`]s, presets.rs holds the stand-in's long presets.
//! - This module: what a case needs built (only what the selected cases boot), its QEMU
//!   command, the run (crate::runner), the verdict (crate::check) and one PASS/FAIL/SKIP line.

mod presets;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::build;
use crate::check::{self, Ending, Expect};
use crate::qemu::{Accel, Boot, Qemu};
use crate::runner::{self, Outcome, Watch};
use crate::standin::{self, Initrd};

/// What a case boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The demo kernel's release image: QEMU boots it through multiboot 1.
    Demo,
    /// The PVH-only twin: QEMU boots it through the PVH ELF note.
    DemoPvh,
    /// The demo image under the seed's own command line (no exit device, nothing of ours).
    Seed,
    /// The stand-in host running the program of this initrd.
    Standin(Initrd),
    /// The real Unikraft base kernel named by `UKBASE`, running the program of this initrd.
    Unikraft(Initrd),
}

/// One boot of the matrix, for this QEMU.
#[derive(Debug, Clone)]
pub struct Case {
    /// `pc -smp 1 [KVM]`.
    pub name: String,
    /// The accelerator.
    pub accel: Accel,
    /// `-M` (unused by the seed's command).
    pub machine: String,
    /// `-smp`.
    pub smp: String,
    /// What boots.
    pub kernel: Kernel,
    /// `-append` (empty: none).
    pub append: String,
    /// More QEMU arguments, after the shared ones.
    pub qemu_args: Vec<String>,
    /// The hard limit.
    pub timeout: Duration,
    /// How QEMU must end and what it must print.
    pub expect: Expect,
    /// Why the case cannot run with this QEMU (KVM unusable, a feature QEMU lacks).
    pub skip: Option<String>,
}

/// Runs every case whose name contains `filter`; prints one line per case and a summary.
pub fn run_all(filter: Option<&str>) -> Result<(), String> {
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
    let cases: Vec<Case> = table::cases(table::MATRIX, &qemu)?
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    let mut builds = Builds::default();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for case in &cases {
        if let Some(why) = builds.skip_reason(&qemu, case)? {
            println!("SKIP  {} — {why}", case.name);
            skipped += 1;
            continue;
        }
        let cmd = builds.command(&qemu, case)?;
        let out = runner::run(cmd, &watch(case))?;
        keep_transcript(case, &out);
        let problems = check::problems(&case.expect, case.timeout, &out);
        if problems.is_empty() {
            println!("PASS  {} ({:.1} s)", case.name, out.elapsed.as_secs_f64());
            passed += 1;
        } else {
            println!("FAIL  {}\n{}", case.name, failure_report(&problems, &out));
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        Err(format!("{failed} QEMU test(s) failed"))
    } else {
        Ok(())
    }
}

/// How a case's run is watched: its limit, and its stop line if the guest never exits.
fn watch(case: &Case) -> Watch<'_> {
    let watch = Watch::new(case.timeout);
    match &case.expect.ending {
        Ending::StopAt(line) => watch.stop_after(line),
        Ending::Exit(_) => watch,
    }
}

/// The problems, then the whole transcript (serial `|`, QEMU's messages `!`).
fn failure_report(problems: &[String], out: &Outcome) -> String {
    let mut report = String::new();
    for p in problems {
        report += &format!("      - {p}\n");
    }
    report += "      serial output:\n";
    for line in out.serial.lines() {
        report += &format!("        | {line}\n");
    }
    for line in out.stderr.lines() {
        report += &format!("        ! {line}\n");
    }
    report
}

/// Writes the case's transcript to target/qemu-test/, for reading after a run (a failing
/// case's is printed as well).
fn keep_transcript(case: &Case, out: &Outcome) {
    let dir = build::target_dir().join("qemu-test");
    let file: String = case
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let text = format!("{}--- QEMU's messages ---\n{}", out.serial, out.stderr);
    // A transcript that cannot be written costs nothing but itself.
    let _ = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{file}.txt")), text));
}

/// What the selected cases boot, built when a case first needs it.
#[derive(Default)]
struct Builds {
    demo: Option<build::Images>,
    standin_host: Option<PathBuf>,
    initrds: Vec<(Initrd, Option<PathBuf>)>,
    /// Why the stand-in's KVM cases are skipped (`Some(None)`: they run), found once.
    standin_kvm: Option<Option<String>>,
}

impl Builds {
    fn demo(&mut self) -> Result<&build::Images, String> {
        if self.demo.is_none() {
            self.demo = Some(build::kernel()?);
        }
        Ok(self.demo.as_ref().expect("just built"))
    }

    fn standin_host(&mut self) -> Result<PathBuf, String> {
        if self.standin_host.is_none() {
            self.standin_host = Some(standin::build_host()?);
        }
        Ok(self.standin_host.clone().expect("just built"))
    }

    fn initrd(&mut self, kind: Initrd) -> Result<Option<PathBuf>, String> {
        if let Some((_, path)) = self.initrds.iter().find(|(k, _)| *k == kind) {
            return Ok(path.clone());
        }
        let path = standin::build_initrd(kind)?;
        self.initrds.push((kind, path.clone()));
        Ok(path)
    }

    /// Why `case` cannot run here: what the table decided, `UKBASE` unset for the Unikraft
    /// cases, or this machine's KVM unable to run the stand-in's programs.
    fn skip_reason(&mut self, qemu: &Qemu, case: &Case) -> Result<Option<String>, String> {
        if case.skip.is_some() {
            return Ok(case.skip.clone());
        }
        match case.kernel {
            Kernel::Unikraft(_) if std::env::var_os(standin::UKBASE).is_none() => {
                Ok(Some(standin::UKBASE_MISSING.to_string()))
            }
            Kernel::Standin(_) if case.accel == Accel::Kvm => {
                if self.standin_kvm.is_none() {
                    let reason = self.standin_kvm_probe(qemu)?;
                    self.standin_kvm = Some(reason);
                }
                Ok(self.standin_kvm.clone().flatten())
            }
            _ => Ok(None),
        }
    }

    /// One boot of the hello program under KVM: this machine's nested KVM emulates ring-0
    /// code and cannot emulate SSE, which a std program uses at once. A probe that fails
    /// otherwise skips nothing: the KVM cases then run and show the failure.
    fn standin_kvm_probe(&mut self, qemu: &Qemu) -> Result<Option<String>, String> {
        let host = self.standin_host()?;
        let initrd = self.initrd(Initrd::Hello)?;
        let append = format!("-- /{} spin=0", standin::HELLO_PACKAGE);
        let cmd = qemu.command(&Boot {
            accel: Accel::Kvm,
            machine: "pc",
            kernel: &host,
            smp: "1",
            initrd: initrd.as_deref(),
            append: &append,
        });
        Ok(
            match runner::run(cmd, &Watch::new(Duration::from_secs(120))) {
                Ok(out) if out.kvm_failure => Some(format!(
                    "this machine's KVM cannot run a std program in ring 0 (probe boot: {})",
                    out.kvm_failure_summary()
                )),
                _ => None,
            },
        )
    }

    /// The QEMU command of `case`, building what it boots.
    fn command(&mut self, qemu: &Qemu, case: &Case) -> Result<Command, String> {
        let (kernel, initrd) = match case.kernel {
            Kernel::Demo | Kernel::Seed => (self.demo()?.multiboot.clone(), None),
            Kernel::DemoPvh => (self.demo()?.pvh.clone(), None),
            Kernel::Standin(kind) => (self.standin_host()?, self.initrd(kind)?),
            Kernel::Unikraft(kind) => (standin::ukbase()?, self.initrd(kind)?),
        };
        let mut cmd = if case.kernel == Kernel::Seed {
            seed_command(qemu, &kernel, &case.smp)
        } else {
            qemu.command(&Boot {
                accel: case.accel,
                machine: &case.machine,
                kernel: &kernel,
                smp: &case.smp,
                initrd: initrd.as_deref(),
                append: &case.append,
            })
        };
        cmd.args(&case.qemu_args);
        Ok(cmd)
    }
}

/// The seed's command line: QEMU, the image, the CPUs; the rest is the case's.
fn seed_command(qemu: &Qemu, image: &Path, smp: &str) -> Command {
    let mut cmd = Command::new(&qemu.binary);
    cmd.arg("-kernel").arg(image).args(["-smp", smp]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Ended;

    fn seven_two() -> Qemu {
        Qemu {
            binary: "qemu-system-x86_64".into(),
            version: (7, 2),
            kvm_unusable: None,
        }
    }

    fn case(name: &str) -> Case {
        table::cases(table::MATRIX, &seven_two())
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case `{name}`"))
    }

    fn judge(case: &Case, serial: &str, exit: Option<i32>, ended: Ended) -> Vec<String> {
        let out = Outcome {
            serial: serial.into(),
            exit,
            ended: Some(ended),
            ..Outcome::default()
        };
        check::problems(&case.expect, case.timeout, &out)
    }

    /// What `cargo xtask run --smp 2,maxcpus=8` printed under KVM (QEMU 7.2; 10.0 prints the
    /// same CPU lines).
    const HOTPLUG: &str = include_str!("testdata/smp2-maxcpus8-kvm.txt");

    #[test]
    fn the_hotplug_case_checks_the_line_the_kernel_prints() {
        let hotplug = case("-smp 2,maxcpus=8 [KVM]");
        assert_eq!(
            judge(&hotplug, HOTPLUG, Some(33), Ended::Exited),
            Vec::<String>::new()
        );
        // A kernel that took the slots for online-capable CPUs, or counted a different number.
        for wrong in [
            "6 more CPU slots are online-capable (hot-plug): not started",
            "5 disabled CPU entries ignored",
        ] {
            let serial = HOTPLUG.replace("6 disabled CPU entries ignored", wrong);
            assert_eq!(
                judge(&hotplug, &serial, Some(33), Ended::Exited),
                ["expected the line `6 disabled CPU entries ignored` exactly once"]
            );
        }
        // The whole bring-up is judged too, runtime checks included.
        let timer_line = HOTPLUG
            .lines()
            .find(|l| l.starts_with("check timer: "))
            .expect("the capture has the timer check");
        let skipped = HOTPLUG.replace(timer_line, "check timer: skipped (no TSC-deadline)");
        assert_eq!(
            judge(&hotplug, &skipped, Some(33), Ended::Exited),
            ["`check timer: skipped (no TSC-deadline)`: this check may not skip in this bring-up"]
        );
        let p = judge(&hotplug, HOTPLUG, Some(35), Ended::Exited);
        assert_eq!(
            p,
            ["exit status Some(35), want 33 (isa-debug-exit success)"]
        );
    }

    #[test]
    fn the_seed_case_wants_its_stop_line() {
        let seed = case("the seed's QEMU command [KVM]");
        let serial = HOTPLUG
            .replace("Found 2 CPUs", "Found 4 CPUs")
            .replace("6 disabled CPU entries ignored\n", "")
            + "CPU 3 online! APIC ID: 3\n";
        assert_eq!(
            judge(&seed, &serial, None, Ended::Stopped),
            Vec::<String>::new()
        );
        assert_eq!(
            judge(
                &seed,
                "Rust Multicore Boot Starting...\n",
                None,
                Ended::TimedOut
            ),
            [
                "timed out after 60 s",
                "no line with `bringup:` came",
                "expected output containing `x2APIC enabled on BSP`",
                "expected output containing `Found 4 CPUs`",
                "expected output containing `Boot trampoline copied to 0x8000`",
                "expected output containing `Relocations applied`",
                "expected output containing `Page table set: 0x`",
                "expected output containing `Initialized CPU 1 (APIC ID 1)`",
                "expected output containing `CPU 1 online! APIC ID: 1`",
                "expected output containing `CPU 3 online! APIC ID: 3`",
                "expected output containing `All CPUs started!`",
            ]
        );
    }

    /// What the stand-in host and its two programs printed in `cargo xtask qemu-test`.
    const HELLO: &str = include_str!("testdata/standin-hello-pc-smp1-tcg.txt");
    const CPUS: &str = include_str!("testdata/standin-cpus-microvm-smp4-tcg.txt");

    #[test]
    fn captured_stand_in_runs_pass_their_cases() {
        let hello = case("standin-hello-pc -smp 1 [TCG]");
        assert_eq!(
            judge(&hello, HELLO, Some(33), Ended::Exited),
            Vec::<String>::new()
        );
        let cpus = case("standin-cpus-microvm -smp 4 [TCG]");
        assert_eq!(
            judge(&cpus, CPUS, Some(33), Ended::Exited),
            Vec::<String>::new()
        );
        // The program's main somewhere else than the load base the row gives.
        let moved = case("standin-hello-pc -smp 4 load=0x2000000000 [TCG]");
        assert_eq!(
            judge(&moved, HELLO, Some(33), Ended::Exited),
            ["main at 0x100000b110, want it within 16 MiB above the load base 0x2000000000"]
        );
    }

    #[test]
    fn each_stand_in_check_catches_its_problem() {
        let hello = case("standin-hello-pc -smp 1 [TCG]");
        let first = |serial: &str| judge(&hello, serial, Some(33), Ended::Exited).remove(0);
        let slow = HELLO.replace("ticked 20 times", "ticked 2 times");
        assert!(first(&slow).contains("ticked 2 times"));
        let low_code = HELLO.replace("physical: main 0x642110", "physical: main 0x6421");
        assert!(first(&low_code).contains("above 1 MiB"));
        let high_heap = HELLO.replace("a Box 0x27430", "a Box 0x274300");
        assert!(first(&high_heap).contains("in a low frame"));
        let occupied = case("standin-hello-microvm -smp 4 load=0x4000000000 occupy=0x8000 [TCG]");
        let p = judge(&occupied, HELLO, Some(33), Ended::Exited);
        assert!(p
            .iter()
            .any(|p| p.contains("STANDIN_LOWMEM_FREE=0x1000-0x8000,0x9000-0x11000")));
        let p = judge(&hello, "", Some(35), Ended::TimedOut);
        assert!(p[0].starts_with("timed out after 60 s"));
        assert_eq!(
            p[1],
            "exit status Some(35), want 33 (isa-debug-exit success)"
        );
        let refused = case("standin-bad no initrd [TCG]");
        let serial = "standin: error: no initrd: give the program in a cpio archive with -initrd\n";
        assert!(judge(&refused, serial, Some(35), Ended::Exited).is_empty());
        // A KVM emulation failure is reported first, from QEMU's register dump.
        let out = Outcome {
            serial: HELLO.into(),
            stderr: "KVM internal error. Suberror: 1\nRIP=0000001000029d63\n".into(),
            exit: None,
            ended: Some(Ended::KvmFailure),
            kvm_failure: true,
            ..Outcome::default()
        };
        let p = check::problems(&hello.expect, hello.timeout, &out);
        assert!(
            p[0].starts_with("QEMU stopped with `KVM internal error"),
            "{p:?}"
        );
    }

    #[test]
    fn a_unikraft_case_drops_the_stand_in_checks_and_watches_for_a_crash() {
        let uk = case("unikraft-cpus -smp 4 [TCG]");
        assert_eq!(uk.kernel, Kernel::Unikraft(Initrd::HelloCpus));
        // Unikraft says nothing of the stand-in's: its lines left out, the run still passes.
        let serial: String = CPUS
            .lines()
            .filter(|l| !l.starts_with("standin: "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            judge(&uk, &serial, Some(0), Ended::Exited),
            Vec::<String>::new()
        );
        let crashed = format!("{serial}[    0.23] CRIT:  Unikraft Crash - Kiviuq\n");
        assert_eq!(
            judge(&uk, &crashed, Some(0), Ended::Exited),
            ["printed `Unikraft Crash`"]
        );
    }

    #[test]
    fn the_seed_command_is_the_seeds() {
        let seed = case("the seed's QEMU command [KVM]");
        let mut cmd = seed_command(&seven_two(), Path::new("/k"), &seed.smp);
        cmd.args(&seed.qemu_args);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-kernel /k -smp 4 -cpu host,-arch-capabilities -enable-kvm -m 128M -serial stdio -display none"
        );
    }
}
