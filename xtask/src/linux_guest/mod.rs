//! The Linux guest baseline: how long stock Debian kernels take to bring up their CPUs in the
//! same QEMU machine as our benchmark, so our figures have something to be compared with.
//!
//! Kernels: bookworm's `linux-image-cloud-amd64` (6.1, one AP at a time) and the 6.12 one from
//! bookworm-backports (parallel CPU bring-up, `CONFIG_HOTPLUG_PARALLEL`), fetched and unpacked
//! by `scripts/fetch-linux-guest.sh` into `target/linux-guest/`. Each is booted without an
//! initrd (it panics later, unable to mount a root file system; we stop QEMU long before).
//!
//! By concept: fetch.rs gets the kernels and reads their configuration; tsc.rs measures the
//! TSC rate every boot is given; boot.rs makes one boot (its command, time limit, stop line,
//! repeats when the guest dies); serial.rs reads what a boot's lines say (bring-up time, CPU
//! count, TSC checks); render.rs writes the results section. This file holds the plan: which
//! kernel, configuration and CPU count is booted, how often, in what order.
//!
//! What is timed: on the host, as each serial line arrives, from the line with
//! `smp: Bringing up secondary CPUs` to the one with `smp: Brought up 1 node, N CPUs`; the N
//! printed must be the `-smp` asked for. Only under TCG: this machine's KVM emulates guest
//! ring-0 code, a Linux guest under it is ~300× slower and does not reach the bring-up within
//! minutes.
//!
//! Configurations (kernel command line on top of `console=ttyS0 panic=-1 tsc_early_khz=K`,
//! see "The TSC rate" below):
//! - `default`: nothing else. Every AP then calibrates its delay loop (under TCG there is no
//!   invariant TSC to trust, so Linux measures each CPU: ~100 ms per AP);
//! - `lpj=N`: the loops-per-jiffy value preset, which skips that calibration. N = K × 1000 /
//!   CONFIG_HZ (rounded down; HZ from the kernel's config file): what Linux derives itself for
//!   its boot CPU from the TSC rate, and what its `default` boots print (`Calibrating delay
//!   loop (skipped), value calculated using timer frequency.. (lpj=N)`, checked on each);
//! - for kernels built with CONFIG_HOTPLUG_PARALLEL (6.12): `cpuhp.parallel=0` (one AP at a
//!   time, the pre-6.5 way) with and without `lpj=`.
//!
//! The machine is our benchmark's: `-M microvm -accel tcg -m 256M -nodefaults -display none
//! -serial stdio -no-reboot`. microvm works for these kernels as it is, no option needed: the
//! Debian cloud kernels find their CPUs only through the ACPI MADT (CONFIG_X86_MPPARSE is
//! off, so no MP table fallback), and QEMU's microvm has ACPI on by default (`acpi=auto`:
//! RSDP, XSDT, FADT, DSDT and MADT, seen in the boot log), plus the 8250 UART at 0x3f8 that
//! `console=ttyS0` wants. 256 MiB is enough up to 64 CPUs (tried; the measurement ends long
//! before user space). `panic=-1` makes a kernel that panics before the bring-up reboot at
//! once, which `-no-reboot` turns into QEMU exiting, instead of waiting for the timeout.
//!
//! # The TSC rate
//!
//! Left to itself, Linux on this machine can learn its TSC rate only from the PIT: QEMU's
//! default CPU model has no CPUID leaf or MSR that states it, microvm has no HPET or ACPI PM
//! timer. When the vCPU thread is preempted during that calibration, both the quick and the
//! slow PIT calibration fail (`tsc: Unable to calibrate against PIT`, `No reference
//! (HPET/PMTIMER) available`), Linux marks the TSC unusable (`could not calculate TSC khz`)
//! and hangs for good, its clock stuck at 0. On this machine's 2 shared cores that took most
//! boots even with no load of ours (552 of 630 in the A/B runs below), and every boot with two
//! busy loops on the cores (10 of 10, 6.1 `-smp 2 lpj=`).
//!
//! So every boot gets `tsc_early_khz=K`: `tsc_early_init` then takes K as the TSC rate and
//! the calibration that fails never runs. (Linux still runs its quick PIT calibration, but
//! only for `cpu_khz`, a figure for display: it prints `tsc: Detected P MHz processor`, then
//! `tsc: Detected K MHz TSC` when P differs; a P more than 10% off, or none, is replaced by K.)
//! With the option no boot hung: not the 80 of the A/B runs, nor the 96 with the two busy
//! loops (those same 10 boots; the quick run's two configurations 30 times; every
//! configuration of both kernels at `-smp 2` and 8 twice; `-smp` 2 to 16 three times; four
//! `cargo xtask bench --quick`).
//!
//! K is the host's TSC rate, measured by the runner at the start of each run
//! (`host_tsc_rate`: RDTSC against the monotonic clock over 5 × 100 ms). Under TCG that is
//! the guest's rate: QEMU answers the guest's RDTSC with `cpu_get_host_ticks()`, the host's
//! own RDTSC, plus an offset, and its PIT counts on the host's monotonic clock, so the runner
//! measures what the guest's PIT calibration measures, without the guest's exposure to
//! preemption. Checked here: the host kernel says `tsc: Detected 2600.000 MHz processor`;
//! the runner measured 2599976–2600005 kHz over its runs, idle and loaded; the 78 boots
//! without the option that got through calibrated 2599.982–2600.014 MHz, and the 15 of 90
//! with it that printed their own PIT figure 2599.986–2600.017 MHz. Each boot is checked too
//! (`tsc_check`): the rate Linux runs on must be K, a boot without `lpj=` must derive its
//! loops-per-jiffy from it, and the PIT figures the boots print beside K go in the results.
//!
//! What the option changes in the comparison: which boots get through, not what is timed.
//! The calibration is done early in `start_kernel`, well before the bring-up (which starts
//! ~0.9 s after QEMU for 6.1, ~1.5 s for 6.12), and inside the window the TSC rate only
//! scales the delays and clocks derived from it, with the same value either way (within
//! ~10 ppm). A/B with no load of ours, QEMU 7.2, boots interleaved; bring-up ms
//! min/median/max (boots; without the option only the boots that did not hang count):
//!
//! | kernel | -smp | config | without | with `tsc_early_khz=` |
//! |---|---:|---|---|---|
//! | 6.1 | 2 | `default` | 121/315/435 (5) | 107/261/298 (5) |
//! | 6.1 | 2 | `lpj=` | 23/30/61 (15) | 23/33/49 (15) |
//! | 6.1 | 8 | `default` | 851/1059/2099 (5) | 923/991/1972 (5) |
//! | 6.1 | 8 | `lpj=` | 40/59/143 (13) | 42/55/113 (15) |
//! | 6.12 | 2 | `default` | 103/113/125 (5) | 109/119/120 (5) |
//! | 6.12 | 2 | `lpj=` | 24/28/36 (15) | 24/29/41 (15) |
//! | 6.12 | 8 | `default` | 1832/2533/3450 (5) | 1683/1748/2975 (5) |
//! | 6.12 | 8 | `lpj=` | 131/171/386 (15) | 80/142/613 (15) |
//!
//! Every pair overlaps, the medians move both ways, and QEMU start to `smp: Bringing up`
//! stayed the same too (medians 0.94 vs 0.96 s for 6.1, 1.60 vs 1.54 s for 6.12). The cost of
//! going without: the 78 samples on the left took 630 boots.
//!
//! Since a boot can no longer hang that way, a hang is not repeated: it ends the run with its
//! serial log, as does any other failure but one: a guest kernel that dies (`Kernel panic`,
//! seen once in a full run under QEMU 7.2's TCG, before the bring-up) is booted again, at most
//! three times a sample, and the repeat is listed in the results. The `could not calculate TSC khz` line is still watched for, so
//! that a kernel ignoring the option fails at once and says why instead of timing out.

mod boot;
mod fetch;
mod render;
mod serial;
mod tsc;

pub use render::{best, render};

use crate::qemu::Qemu;
use boot::{measure, Sample};
use fetch::{fetch, Kernel};
use tsc::{host_tsc_rate, lpj_of};

/// The line Linux prints just before it starts the first AP.
pub(super) const START: &str = "smp: Bringing up secondary CPUs";
/// The line Linux prints once every AP is online: `smp: Brought up 1 node, 4 CPUs`.
pub(super) const DONE: &str = "smp: Brought up ";
/// The line after which a boot hangs forever: Linux found no TSC rate (see the module
/// documentation). With `tsc_early_khz=` it cannot happen; if it does, the option was not
/// taken, and the boot is stopped at once instead of waiting for the timeout.
pub(super) const DOOMED: &str = "could not calculate TSC khz";

/// One kernel × configuration × CPU count, with its samples.
#[derive(Debug, Clone)]
pub struct LinuxRow {
    /// The kernel release, e.g. `6.1.0-28-cloud-amd64`.
    pub kernel: String,
    /// The options added to the command line, e.g. `lpj=9781704 cpuhp.parallel=0`, or
    /// `default` for none.
    pub config: String,
    /// `-smp`.
    pub cpus: u32,
    /// Bring-up times in ms, one per boot (host clock, serial line to serial line).
    pub samples_ms: Vec<f64>,
    /// Where the `lpj=` value came from, for configurations that preset it.
    pub lpj_from: Option<String>,
    /// The TSC rate every boot was given (`tsc_early_khz=`), in kHz.
    pub tsc_khz: u64,
    /// How that rate was obtained.
    pub tsc_from: String,
    /// What each boot's own PIT calibration of the TSC gave, in kHz, for the boots that
    /// printed it beside the given rate (see `tsc_check`).
    pub pit_khz: Vec<u64>,
    /// Boots in which the guest kernel died and that were repeated: where it died.
    pub crashed: Vec<String>,
}

impl LinuxRow {
    /// The median of the samples (the upper one for an even count, as in the main table).
    pub fn median_ms(&self) -> f64 {
        median(&self.samples_ms)
    }
}

/// The median as the main table computes it: the middle sample, the upper one of the two
/// middles for an even count. 0 for no samples.
pub(super) fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// What to measure.
struct Plan<'a> {
    /// Suites to fetch and boot.
    suites: &'a [&'a str],
    cpu_counts: &'a [u32],
    boots: usize,
    /// Only `default` and `lpj=` (the quick run), or every configuration the kernel has.
    all_configs: bool,
    /// Stop measuring a configuration at larger N once it is clearly beaten (see `dominated`).
    drop_dominated: bool,
}

/// The baseline: every kernel × configuration × CPU count, `boots` boots each; `progress`
/// gets a short status line before each boot.
///
/// Full (`quick` false): both kernels, every configuration. From 32 CPUs on, configurations
/// without `lpj=` whose median at the previous CPU count was more than twice the kernel's best
/// are no longer booted: each AP then calibrates its delay loop, they only get slower (6.12's
/// default took 11 s at 16 CPUs and 269 s at 64 here); `render` says which cells are missing.
/// The `lpj=` configurations cost at most ~20 s a boot and are always measured, so 6.12's
/// parallel bring-up shows at every size.
///
/// Quick, the smoke run (with `-smp 2` and one boot: two boots, ~3 s): bookworm's 6.1 only
/// (no backports suite needed), its default configuration and `lpj=`. It proves fetching, booting, timing and parsing work end to end; its
/// figures mean little.
pub fn run(
    qemu: &Qemu,
    cpu_counts: &[u32],
    boots: usize,
    quick: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LinuxRow>, String> {
    let plan = Plan {
        suites: if quick {
            &["bookworm"]
        } else {
            &["bookworm", "bookworm-backports"]
        },
        cpu_counts,
        boots,
        all_configs: !quick,
        drop_dominated: !quick,
    };
    run_plan(qemu, &plan, progress)
}

/// A configuration: which of the two knobs it turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Config {
    pub(super) lpj: bool,
    pub(super) parallel_off: bool,
}

impl Config {
    /// The configurations a kernel is measured with.
    fn all(kernel: &Kernel, all: bool) -> Vec<Config> {
        let mut configs = vec![
            Config {
                lpj: false,
                parallel_off: false,
            },
            Config {
                lpj: true,
                parallel_off: false,
            },
        ];
        if all && kernel.parallel_bringup {
            configs.push(Config {
                lpj: false,
                parallel_off: true,
            });
            configs.push(Config {
                lpj: true,
                parallel_off: true,
            });
        }
        configs
    }

    /// What it adds to the command line besides `tsc_early_khz=`, which every boot has
    /// (`default` for nothing).
    fn label(self, lpj: u64) -> String {
        let mut words = Vec::new();
        if self.lpj {
            words.push(format!("lpj={lpj}"));
        }
        if self.parallel_off {
            words.push("cpuhp.parallel=0".to_string());
        }
        if words.is_empty() {
            "default".to_string()
        } else {
            words.join(" ")
        }
    }
}

fn run_plan(
    qemu: &Qemu,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LinuxRow>, String> {
    progress("measuring the host's TSC rate");
    let tsc = host_tsc_rate()?;
    progress("fetching the kernels");
    let kernels = fetch(plan.suites)?;
    let names: Vec<String> = kernels
        .iter()
        .map(|k| format!("{} ({})", k.version, k.suite))
        .collect();
    progress(&format!("kernels {}", names.join(", ")));
    let lpj = kernels
        .iter()
        .map(|k| {
            let hz = k.hz.filter(|&hz| hz > 0).ok_or_else(|| {
                format!(
                    "{}: no CONFIG_HZ in config-{} beside {} (needed for `lpj=`; \
                     scripts/fetch-linux-guest.sh copies it there)",
                    k.version,
                    k.version,
                    k.image.display()
                )
            })?;
            Ok((lpj_of(tsc.khz, hz), hz))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut counts = plan.cpu_counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let mut rows: Vec<LinuxRow> = Vec::new();
    let configs_of = |k: &Kernel| Config::all(k, plan.all_configs);
    let total =
        kernels.iter().map(|k| configs_of(k).len()).sum::<usize>() * counts.len() * plan.boots;
    let mut done = 0;
    for (n_index, &cpus) in counts.iter().enumerate() {
        for (kernel, &(lpj, hz)) in kernels.iter().zip(&lpj) {
            let configs = configs_of(kernel);
            let active: Vec<Config> = configs
                .iter()
                .copied()
                .filter(|c| {
                    let previous = n_index.checked_sub(1).map(|i| counts[i]);
                    let drop = plan.drop_dominated
                        && !c.lpj
                        && previous.is_some_and(|prev| {
                            dominated(&rows, &kernel.version, prev, &c.label(lpj), cpus)
                        });
                    !drop
                })
                .collect();
            done += (configs.len() - active.len()) * plan.boots;
            let first_row = rows.len();
            rows.extend(active.iter().map(|&config| LinuxRow {
                kernel: kernel.version.clone(),
                config: config.label(lpj),
                cpus,
                samples_ms: Vec::new(),
                lpj_from: config.lpj.then(|| {
                    format!(
                        "= tsc_early_khz {} × 1000 / CONFIG_HZ {hz}, what Linux derives from \
                         that rate itself (checked: its boots without `lpj=` print it)",
                        tsc.khz
                    )
                }),
                tsc_khz: tsc.khz,
                tsc_from: tsc.from.clone(),
                pit_khz: Vec::new(),
                crashed: Vec::new(),
            }));
            // Boots go round the configurations (boot 1 of each, then boot 2 of each...), so
            // that a burst of load from elsewhere on the host spreads over all of them.
            for boot in 1..=plan.boots {
                for (row, &config) in rows[first_row..].iter_mut().zip(&active) {
                    done += 1;
                    progress(&format!(
                        "boot {done}/{total}: {} -smp {cpus} {} (#{boot})",
                        kernel.version, row.config
                    ));
                    let sample = Sample {
                        qemu,
                        kernel,
                        cpus,
                        config,
                        tsc: &tsc,
                        lpj,
                    };
                    measure(&sample, row)?;
                }
            }
        }
    }
    Ok(rows)
}

/// Whether `config` of `kernel` was clearly beaten at the previous CPU count `prev`: its
/// median more than twice the best median of that kernel there, or not measured there at all
/// (dropped before). Only from 32 CPUs on, so the small counts show every configuration.
fn dominated(rows: &[LinuxRow], kernel: &str, prev: u32, config: &str, cpus: u32) -> bool {
    if cpus < 32 {
        return false;
    }
    let at_prev = || rows.iter().filter(|r| r.kernel == kernel && r.cpus == prev);
    let Some(best) = at_prev()
        .filter(|r| !r.samples_ms.is_empty())
        .map(|r| r.median_ms())
        .min_by(|a, b| a.total_cmp(b))
    else {
        return false;
    };
    match at_prev().find(|r| r.config == config) {
        Some(row) => row.median_ms() > 2.0 * best,
        // Not measured at `prev`: it was dropped there already.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn row(kernel: &str, config: &str, cpus: u32, samples: &[f64]) -> LinuxRow {
        LinuxRow {
            kernel: kernel.into(),
            config: config.into(),
            cpus,
            samples_ms: samples.to_vec(),
            lpj_from: None,
            tsc_khz: 2_600_000,
            tsc_from: "measured".into(),
            pit_khz: Vec::new(),
            crashed: Vec::new(),
        }
    }

    #[test]
    fn labels_configurations() {
        let c = |lpj, parallel_off| Config { lpj, parallel_off };
        assert_eq!(c(false, false).label(7), "default");
        assert_eq!(c(true, false).label(7), "lpj=7");
        assert_eq!(c(true, true).label(7), "lpj=7 cpuhp.parallel=0");
        assert_eq!(c(false, true).label(7), "cpuhp.parallel=0");
    }

    #[test]
    fn drops_only_clearly_beaten_configurations_from_32_cpus() {
        let rows = vec![
            row("6.12", "default", 16, &[1700.0]),
            row("6.12", "lpj=7", 16, &[400.0]),
            row("6.12", "cpuhp.parallel=0", 16, &[800.0]),
            row("6.1", "default", 16, &[100.0]),
        ];
        assert!(dominated(&rows, "6.12", 16, "default", 32));
        assert!(!dominated(&rows, "6.12", 16, "lpj=7", 32));
        assert!(!dominated(&rows, "6.12", 16, "cpuhp.parallel=0", 32));
        assert!(
            !dominated(&rows, "6.12", 16, "default", 16),
            "small counts keep everything"
        );
        // Dropped before: stays dropped.
        assert!(dominated(&rows, "6.12", 16, "lpj=7 cpuhp.parallel=0", 32));
        // The other kernel's figures do not count.
        assert!(!dominated(&rows, "6.1", 16, "default", 32));
    }
}
