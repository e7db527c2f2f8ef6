//! Finding QEMU and KVM, building QEMU command lines, and running QEMU with a hard timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The accelerator a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM, with the host CPU model (`-cpu host,-arch-capabilities`: this machine's nested KVM
    /// aborts on the arch-capabilities MSR).
    Kvm,
    /// TCG (software emulation), with QEMU's default CPU model unless a case says otherwise.
    Tcg,
}

impl Accel {
    /// "KVM" or "TCG".
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

/// The QEMU binary and what this machine offers.
pub struct Qemu {
    /// Path or name of qemu-system-x86_64.
    pub binary: String,
    /// (major, minor).
    pub version: (u32, u32),
    /// Why KVM cannot be used, if it cannot.
    pub kvm_unusable: Option<String>,
}

impl Qemu {
    /// Finds QEMU (`$QEMU` or qemu-system-x86_64 on PATH) and checks /dev/kvm.
    pub fn detect() -> Result<Qemu, String> {
        let binary = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
        let out = Command::new(&binary).arg("--version").output().map_err(|e| {
            format!("cannot run {binary}: {e} (install it: `make setup`, or apt-get install qemu-system-x86)")
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text)
            .ok_or_else(|| format!("cannot read the version of {binary}: {text}"))?;
        let kvm_unusable = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        {
            Ok(_) => None,
            Err(e) => Some(format!("/dev/kvm: {e}")),
        };
        Ok(Qemu {
            binary,
            version,
            kvm_unusable,
        })
    }

    /// "7.2" etc.
    pub fn version_string(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    /// KVM when usable, else TCG.
    pub fn default_accel(&self) -> Accel {
        if self.kvm_unusable.is_none() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// Whether this QEMU's TCG emulates x2APIC (added in QEMU 8.0).
    pub fn tcg_has_x2apic(&self) -> bool {
        self.version >= (8, 0)
    }

    /// The command line every run shares: the image, COM1 on stdout, isa-debug-exit, no
    /// reboot on triple fault (a crash ends QEMU instead of looping), no default devices.
    pub fn base_command(&self, accel: Accel, machine: &str, image: &Path) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "-M",
            machine,
            "-m",
            "256M",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
        ]);
        cmd.args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
            Accel::Tcg => cmd.args(["-accel", "tcg"]),
        };
        cmd.arg("-kernel").arg(image);
        cmd
    }
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What a QEMU run produced.
pub struct Outcome {
    /// Serial output (stdout).
    pub serial: String,
    /// Each serial line with the time since QEMU was started when the runner read it.
    pub timed_lines: Vec<(Duration, String)>,
    /// QEMU's own messages (stderr).
    pub stderr: String,
    /// Exit status, `None` if killed.
    pub exit: Option<i32>,
    /// Killed because the timeout passed.
    pub timed_out: bool,
    /// Killed on purpose after `stop_after` was printed.
    pub stopped: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` (stdin closed), killing it after `timeout`, or as soon as a serial line
/// contains `stop_after` (for runs without isa-debug-exit, whose kernel halts forever).
pub fn run(cmd: Command, timeout: Duration, stop_after: Option<&str>) -> Result<Outcome, String> {
    run_until(cmd, timeout, &|line| {
        stop_after.is_some_and(|s| line.contains(s))
    })
}

/// [`run`] with any stop condition: QEMU is killed as soon as `stop` accepts a serial line
/// (e.g. a Linux guest's success line or a line that says the boot is doomed).
pub fn run_until(
    mut cmd: Command,
    timeout: Duration,
    stop: &dyn Fn(&str) -> bool,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut serial = String::new();
    let mut timed_lines = Vec::new();
    let mut timed_out = false;
    let mut stopped = false;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                let hit = stop(&line);
                let line = line.trim_end_matches('\r').to_string();
                serial.push_str(&line);
                serial.push('\n');
                timed_lines.push((start.elapsed(), line));
                if hit {
                    stopped = true;
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if start.elapsed() >= timeout {
                    timed_out = true;
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    // Collect what the reader still had queued after the kill.
    let _ = reader.join();
    for line in rx.try_iter() {
        serial.push_str(line.trim_end_matches('\r'));
        serial.push('\n');
    }
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        serial,
        timed_lines,
        stderr,
        exit: status.code(),
        timed_out,
        stopped,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn reads_debian_version_lines() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"),
            Some((7, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            Some((10, 0))
        );
        assert_eq!(parse_version("nonsense"), None);
    }
}
