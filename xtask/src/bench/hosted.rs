//! Hosted bring-up: the `hello_cpus` example starting every CPU from its `main` on the stand-in
//! host, and on the real Unikraft kernel when `UKBASE` names it, beside the demo kernel in the
//! same QEMU machine (`-M pc -cpu max,-pmu -m 953M`, TCG: the setting measured on Unikraft;
//! this machine's KVM cannot run a `std` program in ring 0). Each figure is the library's own
//! `time_us`, first INIT to the last AP's arrival, TSC-timed in the guest; the boots of the
//! three kernels are interleaved, so that a busy spell of the host falls on all of them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bringup;
use crate::qemu::{Accel, Boot, Qemu};
use crate::runner::{self, Watch};
use crate::standin::{self, Artifacts};

/// Which kernel a figure is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The demo kernel (bare metal), `bringup=parallel delays=fast`.
    Demo,
    /// `hello_cpus` on the stand-in host.
    Standin,
    /// `hello_cpus` on the Unikraft base kernel (`UKBASE`).
    Unikraft,
}

impl Kernel {
    fn name(self) -> &'static str {
        match self {
            Kernel::Demo => "demo kernel",
            Kernel::Standin => "hello_cpus on the stand-in",
            Kernel::Unikraft => "hello_cpus on Unikraft 0.20",
        }
    }
}

/// The boots of one kernel at one CPU count.
pub struct HostedPoint {
    /// The kernel.
    pub kernel: Kernel,
    /// `-smp`.
    pub cpus: u32,
    /// Bring-up µs, one per boot.
    pub samples_us: Vec<u64>,
}

/// "hello_cpus: bring-up took 6870 us (...)" → 6870.
fn hosted_us(serial: &str) -> Option<u64> {
    serial
        .lines()
        .find_map(|l| l.strip_prefix("hello_cpus: bring-up took "))?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Boots each kernel `boots` times at each of `cpus`.
pub fn measure(
    qemu: &Qemu,
    demo: &Path,
    cpus: &[u32],
    boots: usize,
) -> Result<Vec<HostedPoint>, String> {
    let host = standin::build_host()?;
    let program = standin::build_program("hello_cpus", "hello_cpus")?;
    let initrd = standin::make_initrd(&program, "hello_cpus")?;
    let ukbase = std::env::var_os(standin::UKBASE).map(PathBuf::from);
    let mut kernels = vec![Kernel::Demo, Kernel::Standin];
    if ukbase.is_some() {
        kernels.push(Kernel::Unikraft);
    }
    let mut points: Vec<HostedPoint> = cpus
        .iter()
        .flat_map(|&n| {
            kernels.iter().map(move |&kernel| HostedPoint {
                kernel,
                cpus: n,
                samples_us: Vec::new(),
            })
        })
        .collect();
    for boot in 0..boots {
        for point in &mut points {
            eprint!(
                "\rbench: hosted bring-up: {} -smp {} (#{})            ",
                point.kernel.name(),
                point.cpus,
                boot + 1
            );
            let n = point.cpus;
            let us = match point.kernel {
                Kernel::Demo => {
                    let mut cmd = qemu.command(&Boot {
                        accel: Accel::Tcg,
                        machine: "pc",
                        kernel: demo,
                        smp: &n.to_string(),
                        initrd: None,
                        append: "bringup=parallel delays=fast bench=floor",
                    });
                    cmd.args(standin::UNIKRAFT_MACHINE);
                    let out = runner::run(cmd, &Watch::new(Duration::from_secs(180)))?;
                    if out.exit != Some(33) {
                        return Err(format!("demo kernel -smp {n}: exit {:?}", out.exit));
                    }
                    bringup::parse_sample(&out.timed_lines, n)
                        .map_err(|e| format!("demo kernel -smp {n}: {e}"))?
                        .bringup_us
                }
                Kernel::Standin | Kernel::Unikraft => {
                    let (kernel, options) = if point.kernel == Kernel::Standin {
                        (host.clone(), "")
                    } else {
                        (
                            ukbase.clone().expect("only with UKBASE"),
                            standin::UNIKRAFT_FSTAB,
                        )
                    };
                    let artifacts = Artifacts {
                        host: kernel,
                        initrd: Some(initrd.clone()),
                    };
                    let mut cmd = standin::qemu_command(
                        qemu,
                        Accel::Tcg,
                        "pc",
                        n,
                        &artifacts,
                        options,
                        &["/hello_cpus"],
                    );
                    cmd.args(standin::UNIKRAFT_MACHINE);
                    let run = runner::run(cmd, &Watch::new(Duration::from_secs(180)))?;
                    let online = format!("hello_cpus: {n}/{n} CPUs online");
                    match hosted_us(&run.serial) {
                        Some(us) if run.serial.contains(&online) => us,
                        _ => {
                            return Err(format!(
                                "{} -smp {n}: no `{online}` and bring-up time; last lines:\n{}",
                                point.kernel.name(),
                                run.serial
                                    .lines()
                                    .rev()
                                    .take(8)
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            ))
                        }
                    }
                }
            };
            point.samples_us.push(us);
        }
    }
    eprintln!();
    Ok(points)
}

/// The results section: min/median/max per kernel and CPU count, and the ratio to the demo
/// kernel's median of the same run.
pub fn render(points: &[HostedPoint], boots: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Hosted bring-up\n");
    let _ = writeln!(
        s,
        "`hello_cpus` starting every CPU from its `main` (docs/hosted.md), beside the demo kernel: \
         `-M pc -cpu max,-pmu -m 953M`, TCG, {boots} boots per point, interleaved. First INIT to \
         the last AP's arrival, µs. The Unikraft rows need `UKBASE=<kernel>`.\n"
    );
    let _ = writeln!(
        s,
        "| kernel | CPUs | min µs | median µs | max µs | × demo kernel |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for p in points {
        let median = bringup::median_u64(p.samples_us.clone());
        let demo = points
            .iter()
            .find(|d| d.kernel == Kernel::Demo && d.cpus == p.cpus)
            .map(|d| bringup::median_u64(d.samples_us.clone()))
            .unwrap_or(0);
        let ratio = bringup::ratio(median, demo);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {median} | {} | {ratio} |",
            p.kernel.name(),
            p.cpus,
            p.samples_us.iter().min().copied().unwrap_or(0),
            p.samples_us.iter().max().copied().unwrap_or(0),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_examples_figure_and_renders_ratios() {
        assert_eq!(
            hosted_us("x\nhello_cpus: bring-up took 6870 us (28 ms wall), xAPIC\n"),
            Some(6870)
        );
        assert_eq!(hosted_us("hello_cpus: cannot start"), None);
        let points = [
            HostedPoint {
                kernel: Kernel::Demo,
                cpus: 4,
                samples_us: vec![1000, 3000, 2000],
            },
            HostedPoint {
                kernel: Kernel::Standin,
                cpus: 4,
                samples_us: vec![5000, 4000, 6000],
            },
        ];
        let s = render(&points, 3);
        assert!(
            s.contains("| demo kernel | 4 | 1000 | 2000 | 3000 | 1.0 |"),
            "{s}"
        );
        assert!(
            s.contains("| hello_cpus on the stand-in | 4 | 4000 | 5000 | 6000 | 2.5 |"),
            "{s}"
        );
    }
}
