//! The stand-in host (issue 6): a small ring-0 kernel of our own that behaves like a Unikraft
//! kernel built without SMP (standin/), and the Linux programs it runs (musl static-pie, from a
//! cpio initrd). This module builds both, writes the initrd, makes the QEMU command line, runs
//! `cargo xtask standin`, and runs the `standin-*` QEMU test cases declared in cases.rs.
//!
//! ```text
//! cargo xtask standin [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg]
//!                     [--package P] [--bin B] [--load 0x..] [--append 'host opts'] [-- args]
//! ```
//! `--accel auto` tries KVM when usable and falls back to TCG, saying why, when this machine's
//! KVM cannot run the program (a nested KVM that emulates ring-0 code stops at the first SSE
//! instruction with "KVM internal error ... emulation failure").

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::build;
use crate::qemu::{Accel, Qemu};

/// The stand-in host's package (and binary).
pub const HOST_PACKAGE: &str = "standin_host";
/// The test program's package (and binary).
pub const HELLO_PACKAGE: &str = "standin_hello";
/// The target programs are built for.
pub const PROGRAM_TARGET: &str = "x86_64-unknown-linux-musl";
/// What QEMU prints (stderr) when KVM cannot emulate a guest instruction.
const KVM_FAILURE: &str = "KVM internal error";

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(build::root())
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed", args.join(" ")))
    }
}

/// Builds the stand-in host (release, x86_64-unknown-none); returns its image.
pub fn build_host() -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        HOST_PACKAGE,
        "--target",
        "x86_64-unknown-none",
    ])?;
    Ok(build::target_dir()
        .join("x86_64-unknown-none/release")
        .join(HOST_PACKAGE))
}

/// Builds binary `bin` of workspace package `package` for x86_64-unknown-linux-musl (release;
/// .cargo/config.toml makes it static-pie) and checks it with the host's own ELF rules, so that
/// a program the host would refuse is refused here, with the same message.
pub fn build_program(package: &str, bin: &str) -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        package,
        "--bin",
        bin,
        "--target",
        PROGRAM_TARGET,
    ])?;
    let path = build::target_dir()
        .join(PROGRAM_TARGET)
        .join("release")
        .join(bin);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    standin_core::elf::parse(&bytes).map_err(|e| {
        format!(
            "{}: {e} (RUSTFLAGS in the environment replace the musl rustflags of .cargo/config.toml)",
            path.display()
        )
    })?;
    Ok(path)
}

/// Builds the C example (capi/example/hello_cpus.c) against the library's static library and
/// C header (capi/: `libmulticore.a`, `include/multicore.h`) as a musl static-pie program.
/// Debian's musl-gcc cannot link static-pie itself (its specs file knows only static and
/// dynamic), so it compiles and `ld` links with musl's self-relocating start file (rcrt1.o).
pub fn build_c_example() -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        "multicore_capi",
        "--target",
        PROGRAM_TARGET,
    ])?;
    let root = build::root();
    let release = build::target_dir().join(PROGRAM_TARGET).join("release");
    let object = release.join("hello_cpus_c.o");
    let out = release.join("hello_cpus_c");
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {what}: {e} (install musl-tools: `make setup`)"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed"))
        }
    };
    run(
        Command::new("musl-gcc")
            .args(["-O2", "-fPIE", "-Wall", "-Werror", "-c", "-o"])
            .arg(&object)
            .arg("-I")
            .arg(root.join("capi/include"))
            .arg(root.join("capi/example/hello_cpus.c")),
        "musl-gcc",
    )?;
    let musl = Path::new("/usr/lib/x86_64-linux-musl");
    let gcc = Command::new("gcc")
        .arg("-print-libgcc-file-name")
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    let libgcc = PathBuf::from(String::from_utf8_lossy(&gcc.stdout).trim());
    let gcc_dir = libgcc.parent().map(Path::to_path_buf).unwrap_or_default();
    run(
        Command::new("ld")
            .args([
                "-static",
                "-pie",
                "--no-dynamic-linker",
                "-z",
                "text",
                "--gc-sections",
            ])
            .arg("-o")
            .arg(&out)
            .arg(musl.join("rcrt1.o"))
            .arg(musl.join("crti.o"))
            .arg(gcc_dir.join("crtbeginS.o"))
            .arg(&object)
            .arg(release.join("libmulticore.a"))
            .arg(musl.join("libc.a"))
            .arg(&libgcc)
            .arg(gcc_dir.join("crtendS.o"))
            .arg(musl.join("crtn.o")),
        "ld (static-pie link of the C example)",
    )?;
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    standin_core::elf::parse(&bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// A cpio "newc" archive of regular files (mode 0755), as the Linux initramfs format defines
/// it: a `070701` header of 13 eight-digit hex fields, the NUL-terminated name, the data, each
/// padded to 4 bytes, and a `TRAILER!!!` entry last.
pub fn cpio_newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn member(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize (with the NUL), check.
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::new();
    for (i, (name, data)) in files.iter().enumerate() {
        member(&mut out, i as u32 + 1, name, 0o100_755, data);
    }
    member(&mut out, 0, "TRAILER!!!", 0, &[]);
    out
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
    let bytes = std::fs::read(program).map_err(|e| format!("{}: {e}", program.display()))?;
    write_initrd(&format!("{name}.cpio"), &[(name, &bytes)])
}

/// What QEMU boots.
pub struct Artifacts {
    /// The stand-in host's image (`-kernel`).
    pub host: PathBuf,
    /// The initrd (`-initrd`), if any.
    pub initrd: Option<PathBuf>,
}

/// The QEMU command booting the stand-in host with `smp` CPUs: the shared base command
/// (serial on stdout, isa-debug-exit, no reboot, 256 MiB), the initrd, and
/// `-append '<host_options> -- <argv...>'` (argv[0] is the program's path in the initrd).
pub fn qemu_command(
    qemu: &Qemu,
    accel: Accel,
    machine: &str,
    smp: u32,
    artifacts: &Artifacts,
    host_options: &str,
    argv: &[&str],
) -> Command {
    let mut cmd = qemu.base_command(accel, machine, &artifacts.host);
    cmd.args(["-smp", &smp.to_string()]);
    if let Some(initrd) = &artifacts.initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    cmd.args(["-append", &append_line(host_options, argv)]);
    cmd
}

/// The host's command line: options, `--`, the program's argv.
pub fn append_line(host_options: &str, argv: &[&str]) -> String {
    let mut line = host_options.trim().to_string();
    if !argv.is_empty() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str("-- ");
        line.push_str(&argv.join(" "));
    }
    line
}

/// What a watched QEMU run produced.
pub struct Run {
    /// Serial output (QEMU's stdout).
    pub serial: String,
    /// QEMU's own messages.
    pub stderr: String,
    /// Exit status (`None`: killed).
    pub exit: Option<i32>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// Stopped because KVM could not emulate an instruction (QEMU pauses the VM then).
    pub kvm_failure: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// "KVM internal error ... emulation failure at RIP 0x.. (code 0f 57 c0), after the program
    /// started" from QEMU's register dump, for skip reasons.
    pub fn kvm_failure_summary(&self) -> String {
        let rip = self
            .stderr
            .split_whitespace()
            .find_map(|w| w.strip_prefix("RIP="))
            .map(|r| format!(" at RIP 0x{}", r.trim_start_matches('0')))
            .unwrap_or_default();
        let code = self
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("Code="))
            .and_then(|c| c.split('<').nth(1))
            .map(|c| {
                let bytes: Vec<&str> = c
                    .split(|ch: char| !ch.is_ascii_hexdigit())
                    .filter(|b| !b.is_empty())
                    .take(3)
                    .collect();
                format!(" (instruction bytes {})", bytes.join(" "))
            })
            .unwrap_or_default();
        let when = if self.serial.contains("standin: running ") {
            ", after the program started in ring 0"
        } else {
            ", while the host itself ran"
        };
        format!("QEMU stopped with `KVM internal error ... emulation failure`{rip}{code}{when}")
    }
}

/// Runs `cmd` with stdin closed, collecting stdout (the serial console) and stderr, echoing
/// both when `echo`. Kills QEMU after `timeout`, and right after a KVM emulation failure has
/// been reported (QEMU would sit paused).
pub fn watch(mut cmd: Command, timeout: Duration, echo: bool) -> Result<Run, String> {
    enum Line {
        Out(String),
        Err(String),
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx_err = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                if tx
                    .send(Line::Out(String::from_utf8_lossy(&line).into()))
                    .is_err()
                {
                    break;
                }
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
                if tx_err
                    .send(Line::Err(String::from_utf8_lossy(&line).into()))
                    .is_err()
                {
                    break;
                }
            }
        }),
    ];
    let mut run = Run {
        serial: String::new(),
        stderr: String::new(),
        exit: None,
        timed_out: false,
        kvm_failure: false,
        elapsed: Duration::ZERO,
    };
    // After the failure, QEMU dumps the registers and pauses: read the dump, then stop.
    let mut failure_deadline: Option<Instant> = None;
    loop {
        let deadline = failure_deadline.unwrap_or(start + timeout);
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Line::Out(line)) => {
                let line = line.trim_end_matches('\r');
                if echo {
                    println!("{line}");
                }
                run.serial.push_str(line);
                run.serial.push('\n');
            }
            Ok(Line::Err(line)) => {
                if echo {
                    eprintln!("{line}");
                }
                if line.contains(KVM_FAILURE) {
                    run.kvm_failure = true;
                    failure_deadline = Some(Instant::now() + Duration::from_secs(2));
                }
                let dump_done = run.kvm_failure && line.starts_with("Code=");
                run.stderr.push_str(&line);
                run.stderr.push('\n');
                if dump_done {
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    run.timed_out = failure_deadline.is_none();
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    for reader in readers {
        let _ = reader.join();
    }
    for line in rx.try_iter() {
        match line {
            Line::Out(l) => {
                run.serial.push_str(l.trim_end_matches('\r'));
                run.serial.push('\n');
            }
            Line::Err(l) => {
                run.stderr.push_str(&l);
                run.stderr.push('\n');
            }
        }
    }
    run.exit = status.code();
    run.elapsed = start.elapsed();
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask standin`

const USAGE: &str =
    "usage: cargo xtask standin [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg]
                           [--package P] [--bin B] [--load 0x..] [--append 'host options']
                           [-- program args]";

/// `cargo xtask standin ...`: builds the host and the program, boots them with the serial
/// console on the terminal; Ok when the program exited with status 0 and the host found
/// nothing wrong (QEMU exit 33).
pub fn run(args: &[String]) -> Result<(), String> {
    let mut smp = 1u32;
    let mut machine = "pc".to_string();
    let mut accel = "auto".to_string();
    let mut package = HELLO_PACKAGE.to_string();
    let mut bin = None;
    let mut options = Vec::new();
    let mut program_args = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or(format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--smp" => {
                smp = value("--smp")?
                    .parse()
                    .map_err(|_| "--smp wants a number".to_string())?
            }
            "--machine" => machine = value("--machine")?,
            "--accel" => accel = value("--accel")?,
            "--package" => package = value("--package")?,
            "--bin" => bin = Some(value("--bin")?),
            "--load" => options.push(format!("load={}", value("--load")?)),
            "--append" => options.push(value("--append")?),
            "--" => program_args.extend(it.by_ref().cloned()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let bin = bin.unwrap_or_else(|| package.clone());
    let host = build_host()?;
    let program = build_program(&package, &bin)?;
    let initrd = make_initrd(&program, &bin)?;
    let qemu = Qemu::detect()?;
    let artifacts = Artifacts {
        host,
        initrd: Some(initrd),
    };
    let path = format!("/{bin}");
    let argv: Vec<&str> = std::iter::once(path.as_str())
        .chain(program_args.iter().map(String::as_str))
        .collect();
    let host_options = options.join(" ");
    let accels = match accel.as_str() {
        "auto" if qemu.kvm_unusable.is_none() => vec![Accel::Kvm, Accel::Tcg],
        "auto" | "tcg" => vec![Accel::Tcg],
        "kvm" => vec![Accel::Kvm],
        other => return Err(format!("--accel must be auto, kvm or tcg, not `{other}`")),
    };
    for (i, &accel) in accels.iter().enumerate() {
        eprintln!(
            "booting {} with {} on QEMU {} ({}, -M {machine}, -smp {smp}), -append '{}'",
            artifacts.host.display(),
            path,
            qemu.version_string(),
            accel.name(),
            append_line(&host_options, &argv)
        );
        let cmd = qemu_command(
            &qemu,
            accel,
            &machine,
            smp,
            &artifacts,
            &host_options,
            &argv,
        );
        let out = watch(cmd, Duration::from_secs(24 * 3600), true)?;
        if out.kvm_failure && i + 1 < accels.len() {
            eprintln!(
                "\nKVM cannot run this here: {}.\nFalling back to TCG.\n",
                out.kvm_failure_summary()
            );
            continue;
        }
        return match out.exit {
            Some(33) => Ok(()),
            Some(35) => {
                Err("the program failed or the host found an error (isa-debug-exit 0x11)".into())
            }
            _ if out.kvm_failure => Err(out.kvm_failure_summary()),
            Some(code) => Err(format!("QEMU exited with status {code}")),
            None => Err("QEMU was killed".into()),
        };
    }
    Err("no accelerator to try".into())
}

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

/// A check on the serial output beyond plain substrings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// This text must be printed.
    Prints(String),
    /// "hello: timer ticked N times" with N at least this.
    TimerTicked(u64),
    /// "hello: main at 0x..." within 16 MiB above this load base.
    LoadedAt(u64),
    /// "hello: STANDIN_LOWMEM_FREE=" exactly this.
    LowFree(String),
    /// "hello_cpus: timer interrupts on the BSP during the bring-up: N" with N at least this.
    BringupTicks(u64),
}

/// One boot of the stand-in host.
pub struct Case {
    /// "standin-hello-... [TCG]".
    pub name: String,
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
    /// A boot of the hello program that must succeed: ring 0, the STANDIN_* variables, std's
    /// collections, the timer ticking, a clean exit with the host's low memory intact.
    pub fn hello(name: &str, accel: Accel, machine: &'static str, smp: u32) -> Case {
        let prints = [
            "standin: running /standin_hello in ring 0, interrupts on",
            "hello: CS=0x8 (ring 0), CR0=0x8001",
            "hello: STANDIN_PHYS_OFFSET=0xffffff8000000000",
            "hello: STANDIN_RSDP=0x",
            "hello: STANDIN_TIMER_HZ=1000",
            "hello: Vec sum 5050, HashMap 100 entries (7² = 49), thread_local 3",
            "hello: exiting with status 0",
            "standin: /standin_hello exited with status 0 after",
            "standin: system calls: ",
            "standin: low memory intact: host data at 0x1000-0x10fff",
        ];
        let mut checks: Vec<Check> = prints
            .iter()
            .map(|s| Check::Prints(s.to_string()))
            .collect();
        checks.push(Check::TimerTicked(5));
        checks.push(Check::LoadedAt(standin_core::layout::DEFAULT_LOAD_BASE));
        checks.push(Check::LowFree("0x11000-0x9f000".into()));
        Case {
            name: format!("{name} [{}]", accel.name()),
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
    /// main's closure, `smp/smp CPUs online`, the host's low memory intact.
    pub fn hello_cpus(name: &str, accel: Accel, machine: &'static str, smp: u32) -> Case {
        let mut checks = vec![
            Check::Prints("standin: running /hello_cpus in ring 0, interrupts on".into()),
            Check::Prints("hello_cpus: main runs on the BSP".into()),
            Check::Prints(format!("hello_cpus: {smp}/{smp} CPUs online")),
            Check::Prints(format!("hello_cpus: {} APs ran the closure", smp - 1)),
            Check::Prints("BSP's own TLS counter: 0".into()),
            Check::Prints("standin: /hello_cpus exited with status 0 after".into()),
            Check::Prints("standin: low memory intact: host data at 0x1000-0x10fff".into()),
            Check::LoadedAt(standin_core::layout::DEFAULT_LOAD_BASE),
        ];
        for cpu in 1..smp {
            checks.push(Check::Prints(format!(
                "Hello World from CPU {cpu} (APIC ID "
            )));
        }
        Case {
            name: format!("{name} [{}]", accel.name()),
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

    /// Replaces the expected exit status and every check.
    pub fn expect(mut self, exit: i32, needles: &[&str]) -> Case {
        self.exit = exit;
        self.checks = needles
            .iter()
            .map(|s| Check::Prints(s.to_string()))
            .collect();
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
        }
    }
    problems
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
    for case in &cases {
        let artifacts = Artifacts {
            host: host.clone(),
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

    #[test]
    fn append_lines() {
        assert_eq!(append_line("", &["/p", "a"]), "-- /p a");
        assert_eq!(append_line(" load=0x1 ", &["/p"]), "load=0x1 -- /p");
        assert_eq!(append_line("load=0x1", &[]), "load=0x1");
    }

    const GOOD: &str = "standin: running /standin_hello in ring 0, interrupts on
hello: CS=0x8 (ring 0), CR0=0x80010033
hello: main at 0x100000b0e0, stack at 0x6ffffffffadb
hello: STANDIN_LOWMEM_FREE=0x11000-0x9f000
hello: STANDIN_PHYS_OFFSET=0xffffff8000000000
hello: STANDIN_RSDP=0xf59d0
hello: STANDIN_TIMER_HZ=1000
hello: Vec sum 5050, HashMap 100 entries (7² = 49), thread_local 3
hello: timer ticked 20 times during a 20 ms busy loop
hello: exiting with status 0
standin: /standin_hello exited with status 0 after 33 timer ticks
standin: system calls: write 10
standin: low memory intact: host data at 0x1000-0x10fff
";

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
            Case::hello("x", Accel::Tcg, "pc", 1).low_free("0x11000-0x20000,0x21000-0x9f000");
        assert!(problems(&occupied, GOOD, Some(33), false)[0].contains("STANDIN_LOWMEM_FREE"));
        let p = problems(&case, "", Some(35), true);
        assert!(p[0].starts_with("timed out"));
        assert!(p[1].contains("exit status Some(35), want 33"));
        let failing = Case::failing("x", Accel::Tcg, &["standin: error: no initrd"]);
        assert!(problems(&failing, "standin: error: no initrd: give", Some(35), false).is_empty());
    }

    #[test]
    fn kvm_failure_summary_reads_qemu_dump() {
        let run = Run {
            serial: "standin: running /standin_hello in ring 0, interrupts on\n".into(),
            stderr: "KVM internal error. Suberror: 1\nemulation failure\nRAX=0000000000001000 RBX=0\nRIP=0000001000029d63 RFL=00000202\nCode=29 0f <0f> 57 c0 90 45\n".into(),
            exit: None,
            timed_out: false,
            kvm_failure: true,
            elapsed: Duration::ZERO,
        };
        let s = run.kvm_failure_summary();
        assert!(s.contains("at RIP 0x1000029d63"), "{s}");
        assert!(s.contains("(instruction bytes 0f 57 c0)"), "{s}");
        assert!(s.contains("after the program started"), "{s}");
    }
}
