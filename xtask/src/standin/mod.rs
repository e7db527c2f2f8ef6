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

mod cases;
mod initrd;
mod programs;
mod watch;

pub use cases::{run_cases, Case, Check, Initrd};
pub use initrd::{dynamic_elf, make_initrd, write_initrd};
pub use programs::{build_c_example, build_host, build_program};
pub use watch::watch;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::build;
use crate::qemu::{Accel, Qemu};

/// The stand-in host's package (and binary).
pub const HOST_PACKAGE: &str = "standin_host";
/// The test program's package (and binary).
pub const HELLO_PACKAGE: &str = "standin_hello";
/// The target programs are built for.
pub const PROGRAM_TARGET: &str = "x86_64-unknown-linux-musl";
/// What QEMU prints (stderr) when KVM cannot emulate a guest instruction.
pub(crate) const KVM_FAILURE: &str = "KVM internal error";

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
