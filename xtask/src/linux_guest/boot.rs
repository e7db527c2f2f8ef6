//! Booting a guest kernel: its QEMU command and time limit, one boot watched until its
//! bring-up line, and the repeats when the guest kernel itself dies.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use super::fetch::Kernel;
use super::serial::{bringup_ms, tsc_check};
use super::tsc::TscRate;
use super::{Config, LinuxRow, DONE, DOOMED};
use crate::qemu::Qemu;
use crate::runner::{self, Watch};

/// What Linux prints when it dies; such a boot is repeated (see [`measure`]).
const PANIC: &str = "Kernel panic - not syncing";
/// Boots of one sample that may die before one gets through.
const CRASHED_BOOTS: usize = 3;

/// Boots `kernel` until one boot gives its bring-up time, and adds it to `row`. A boot in
/// which Linux itself dies (`Kernel panic`) is repeated, at most [`CRASHED_BOOTS`] times, and
/// listed in the results: seen once in a full run, 6.12 at `-smp 4` under QEMU 7.2's TCG, a
/// page fault in the slab allocator's `cmpxchg16b` fast path at 0.5 s, before the bring-up —
/// the emulator, not the measured window. Every other failure ends the run with the boot's
/// last serial lines: a timeout, QEMU dying, a bring-up without every CPU, or a TSC rate other
/// than the one given (see `tsc_check`).
pub(super) fn measure(sample: &Sample, row: &mut LinuxRow) -> Result<(), String> {
    for _ in 0..CRASHED_BOOTS {
        match boot_once(sample, row)? {
            None => return Ok(()),
            Some(crash) => row.crashed.push(crash),
        }
    }
    Err(format!(
        "Linux {} -smp {} `{}`: the guest kernel died in {CRASHED_BOOTS} boots in a row: {}",
        sample.kernel.version,
        sample.cpus,
        row.config,
        row.crashed.join("; ")
    ))
}

/// What the boots of one sample boot, and with what.
pub(super) struct Sample<'a> {
    pub(super) qemu: &'a Qemu,
    pub(super) kernel: &'a Kernel,
    pub(super) cpus: u32,
    pub(super) config: Config,
    /// The run's TSC rate, given to every boot.
    pub(super) tsc: &'a TscRate,
    /// The `lpj=` value of this kernel, for configurations that preset it.
    pub(super) lpj: u64,
}

/// One boot: `Ok(None)` with its figures added to `row`, `Ok(Some(where))` if Linux died.
fn boot_once(sample: &Sample, row: &mut LinuxRow) -> Result<Option<String>, String> {
    let &Sample {
        qemu,
        kernel,
        cpus,
        config,
        tsc,
        lpj,
    } = sample;
    let mut append = format!("console=ttyS0 panic=-1 tsc_early_khz={}", tsc.khz);
    if config.lpj {
        let _ = write!(append, " lpj={lpj}");
    }
    if config.parallel_off {
        append.push_str(" cpuhp.parallel=0");
    }
    let cmd = command(qemu, kernel, cpus, &append);
    let watch = Watch::new(timeout(cpus)).stop_when(|l| l.contains(DONE) || l.contains(DOOMED));
    let out = runner::run(cmd, &watch)?;
    let lines: Vec<&str> = out.timed_lines.iter().map(|(_, l)| l.as_str()).collect();
    let checked = bringup_ms(&out.timed_lines, cpus).and_then(|ms| {
        let pit = tsc_check(&lines, tsc.khz, (!config.lpj).then_some(lpj))?;
        Ok((ms, pit))
    });
    match checked {
        Ok((ms, pit)) => {
            row.samples_ms.push(ms);
            row.pit_khz.extend(pit);
            Ok(None)
        }
        Err(_) if lines.iter().any(|l| l.contains(PANIC)) => Ok(Some(crash_site(&lines))),
        Err(why) => {
            let how = if out.timed_out() {
                format!("stopped after {} s", timeout(cpus).as_secs())
            } else if out.stopped() {
                format!(
                    "stopped at that line, {:.1} s in",
                    out.elapsed.as_secs_f64()
                )
            } else {
                format!("QEMU exited, status {:?}", out.exit)
            };
            let tail: Vec<&str> = lines.iter().rev().take(15).rev().copied().collect();
            Err(format!(
                "Linux {} -smp {cpus} `{append}`: {why} ({how})\nlast serial lines:\n{}\n{}",
                kernel.version,
                tail.join("\n"),
                out.stderr
            ))
        }
    }
}

/// Where a dying kernel was: its `RIP:` line and the panic's reason.
fn crash_site(lines: &[&str]) -> String {
    let after = |key: &str| {
        lines
            .iter()
            .rev()
            .find_map(|l| l.split(key).nth(1))
            .map(str::trim)
    };
    format!(
        "{} ({})",
        after("RIP: ").unwrap_or("no RIP line"),
        after(PANIC).map_or("", |r| r.trim_start_matches(':').trim())
    )
}

/// The QEMU command: our benchmark's machine (see `Qemu::base_command`) without
/// isa-debug-exit, which Linux does not use, and with a bzImage instead of our image.
fn command(qemu: &Qemu, kernel: &Kernel, cpus: u32, append: &str) -> Command {
    let mut cmd = Command::new(&qemu.binary);
    cmd.args(["-M", "microvm", "-accel", "tcg", "-m", "256M"]);
    cmd.args(["-smp", &cpus.to_string()]);
    cmd.args([
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]);
    cmd.arg("-kernel").arg(&kernel.image);
    cmd.args(["-append", append]);
    cmd
}

/// How long one boot may take to print `smp: Brought up`. The kernel's own start-up takes
/// 1-4 s under TCG; the bring-up up to ~100 ms per AP one at a time without `lpj=`, but
/// 6.12's parallel bring-up without `lpj=` took 269 s for 64 CPUs here (64 vCPU threads
/// calibrating their delay loops at once on 2 host cores; it is normally not booted at that
/// size, see `run`, but can be asked for with `--smp 64`). So: ~4 s per CPU and a margin.
/// A boot that is merely slow is not a hang here; a boot without a TSC rate, the hang we know
/// of, is caught at once (see [`DOOMED`]).
fn timeout(cpus: u32) -> Duration {
    Duration::from_secs(120) + Duration::from_secs(5) * cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dying_kernel_says_where() {
        let lines = [
            "[    0.524884] RIP: 0010:kmem_cache_alloc_noprof+0xc3/0x2f0",
            "[    0.524884] Kernel panic - not syncing: Fatal exception in interrupt",
        ];
        assert_eq!(
            crash_site(&lines),
            "0010:kmem_cache_alloc_noprof+0xc3/0x2f0 (Fatal exception in interrupt)"
        );
    }
}
