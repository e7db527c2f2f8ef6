//! The stand-in host (issue 6): a small ring-0 kernel of our own that behaves like a Unikraft
//! kernel built without SMP (standin/), and the Linux programs it runs (musl static-pie, from a
//! cpio initrd). This module builds both, writes the initrd, makes the QEMU command line and
//! runs `cargo xtask standin`; its QEMU test cases are rows of the one matrix
//! (crate::cases, kernel `standin:...` and `unikraft:...`).
//!
//! ```text
//! cargo xtask standin [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg]
//!                     [--package P] [--bin B] [--c] [--load 0x..] [--append 'host opts']
//!                     [--unikraft] [-- args]
//! ```
//! `--c` runs the C example (capi/example) instead of a package; `--unikraft` boots the real
//! Unikraft base kernel named by `UKBASE` instead of the stand-in, as a Unikraft user would
//! (`-M pc -cpu max,-pmu -m 953M`, TCG, the program extracted from the initrd).
//! `--accel auto` tries KVM when usable and falls back to TCG, saying why, when this machine's
//! KVM cannot run the program (a nested KVM that emulates ring-0 code stops at the first SSE
//! instruction with "KVM internal error ... emulation failure").

mod initrd;
mod programs;

pub use initrd::{build_initrd, make_initrd, Initrd};
pub use programs::{build_c_example, build_host, build_program};

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build;
use crate::qemu::{Accel, Boot, Qemu};
use crate::runner::{self, Watch};

/// The stand-in host's package (and binary).
pub const HOST_PACKAGE: &str = "standin_host";
/// The test program's package (and binary).
pub const HELLO_PACKAGE: &str = "standin_hello";
/// The target programs are built for.
pub const PROGRAM_TARGET: &str = "x86_64-unknown-linux-musl";
/// The environment variable naming the Unikraft base kernel for the `unikraft-*` cases.
pub const UKBASE: &str = "UKBASE";

/// What the `unikraft-*` cases say when `UKBASE` is not set.
pub const UKBASE_MISSING: &str = "UKBASE is not set: these cases boot the real Unikraft 0.20 base kernel (no SMP); get it as docs/hosted.md says (\"On the real Unikraft kernel\") and run with UKBASE=<path to the kernel file>";

/// What Unikraft prints when it crashes; a run on it fails if this appears.
pub const UNIKRAFT_CRASH: &str = "Unikraft Crash";

/// The Unikraft options that extract the initrd as the root file system (`vfs.fstab`).
pub const UNIKRAFT_FSTAB: &str = r#"vfs.fstab=[ "initrd0:/:extract:::" ]"#;

/// The QEMU arguments of the setting measured on Unikraft (after the shared ones).
pub const UNIKRAFT_MACHINE: [&str; 4] = ["-m", "953M", "-cpu", "max,-pmu"];

/// The Unikraft kernel `UKBASE` names.
pub fn ukbase() -> Result<PathBuf, String> {
    let path = std::env::var_os(UKBASE)
        .map(PathBuf::from)
        .ok_or_else(|| UKBASE_MISSING.to_string())?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{UKBASE}={}: no such file", path.display()))
    }
}

pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
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

/// What QEMU boots.
pub struct Artifacts {
    /// The stand-in host's image (`-kernel`).
    pub host: PathBuf,
    /// The initrd (`-initrd`), if any.
    pub initrd: Option<PathBuf>,
}

/// The QEMU command booting the stand-in host with `smp` CPUs: the shared base command
/// (serial on stdout, isa-debug-exit, no reboot, 256 MiB), the initrd, and
/// `-append '<host_options> -- <argv...>'` (`argv[0]` is the program's path in the initrd).
pub fn qemu_command(
    qemu: &Qemu,
    accel: Accel,
    machine: &str,
    smp: u32,
    artifacts: &Artifacts,
    host_options: &str,
    argv: &[&str],
) -> Command {
    qemu.command(&Boot {
        accel,
        machine,
        kernel: &artifacts.host,
        smp: &smp.to_string(),
        initrd: artifacts.initrd.as_deref(),
        append: &append_line(host_options, argv),
    })
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

// ---------------------------------------------------------------------------------------------
// `cargo xtask standin`

const USAGE: &str =
    "usage: cargo xtask standin [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg]
                           [--package P] [--bin B] [--c] [--load 0x..] [--append 'host options']
                           [--unikraft] [-- program args]";

/// `cargo xtask standin ...`: builds the host and the program, boots them with the serial
/// console on the terminal; Ok when the program exited with status 0 and the host found
/// nothing wrong (QEMU exit 33).
pub fn run(args: &[String]) -> Result<(), String> {
    let mut smp = 1u32;
    let mut machine = "pc".to_string();
    let mut accel = "auto".to_string();
    let mut package = HELLO_PACKAGE.to_string();
    let mut bin = None;
    let mut c_example = false;
    let mut unikraft = false;
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
            "--c" => c_example = true,
            "--unikraft" => unikraft = true,
            "--load" => options.push(format!("load={}", value("--load")?)),
            "--append" => options.push(value("--append")?),
            "--" => program_args.extend(it.by_ref().cloned()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let bin = if c_example {
        "hello_cpus_c".to_string()
    } else {
        bin.unwrap_or_else(|| package.clone())
    };
    let program = if c_example {
        build_c_example()?
    } else {
        build_program(&package, &bin)?
    };
    let initrd = make_initrd(&program, &bin)?;
    let qemu = Qemu::detect()?;
    if unikraft {
        return run_on_unikraft(&qemu, &initrd, &bin, smp, &program_args);
    }
    let host = build_host()?;
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
        let out = runner::run(cmd, &Watch::new(runner::INTERACTIVE_TIMEOUT).echo())?;
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

/// `cargo xtask standin --unikraft`: the program on the Unikraft kernel at `UKBASE`, serial on
/// the terminal. Unikraft ends QEMU with status 0 whatever the program returns; a crash report
/// on the console is a failure.
fn run_on_unikraft(
    qemu: &Qemu,
    initrd: &Path,
    bin: &str,
    smp: u32,
    args: &[String],
) -> Result<(), String> {
    let path = format!("/{bin}");
    let argv: Vec<&str> = std::iter::once(path.as_str())
        .chain(args.iter().map(String::as_str))
        .collect();
    let artifacts = Artifacts {
        host: ukbase()?,
        initrd: Some(initrd.to_path_buf()),
    };
    eprintln!(
        "booting {} with {path} on QEMU {} (TCG, -M pc -cpu max,-pmu -m 953M, -smp {smp}), -append '{}'",
        artifacts.host.display(),
        qemu.version_string(),
        append_line(UNIKRAFT_FSTAB, &argv)
    );
    let mut cmd = qemu_command(
        qemu,
        Accel::Tcg,
        "pc",
        smp,
        &artifacts,
        UNIKRAFT_FSTAB,
        &argv,
    );
    cmd.args(UNIKRAFT_MACHINE);
    let out = runner::run(cmd, &Watch::new(runner::INTERACTIVE_TIMEOUT).echo())?;
    if out.serial.contains(UNIKRAFT_CRASH) {
        return Err("the Unikraft kernel crashed".into());
    }
    match out.exit {
        Some(0) => Ok(()),
        Some(code) => Err(format!("QEMU exited with status {code}")),
        None => Err("QEMU was killed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_lines() {
        assert_eq!(append_line("", &["/p", "a"]), "-- /p a");
        assert_eq!(append_line(" load=0x1 ", &["/p"]), "load=0x1 -- /p");
        assert_eq!(append_line("load=0x1", &[]), "load=0x1");
    }
}
