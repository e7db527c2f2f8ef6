//! Finding QEMU and KVM, and the command line every run shares (runs go through
//! crate::runner).

use std::path::Path;
use std::process::Command;

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

    /// [`Qemu::base_command`] booting `boot`: with its `-smp`, its initrd and its command line.
    pub fn command(&self, boot: &Boot) -> Command {
        let mut cmd = self.base_command(boot.accel, boot.machine, boot.kernel);
        cmd.args(["-smp", boot.smp]);
        if let Some(initrd) = boot.initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        if !boot.append.is_empty() {
            cmd.args(["-append", boot.append]);
        }
        cmd
    }
}

/// What a run boots, and how (see [`Qemu::command`]).
pub struct Boot<'a> {
    /// The accelerator.
    pub accel: Accel,
    /// `-M`.
    pub machine: &'a str,
    /// `-kernel`.
    pub kernel: &'a Path,
    /// `-smp`.
    pub smp: &'a str,
    /// `-initrd`, if any.
    pub initrd: Option<&'a Path>,
    /// `-append`, left out when empty.
    pub append: &'a str,
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
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
