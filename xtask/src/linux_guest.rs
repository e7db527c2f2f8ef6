//! The Linux guest baseline: how long stock Debian kernels take to bring up their CPUs in the
//! same QEMU machine as our benchmark, so our figures have something to be compared with.
//!
//! Kernels: bookworm's `linux-image-cloud-amd64` (6.1, one AP at a time) and the 6.12 one from
//! bookworm-backports (parallel CPU bring-up, `CONFIG_HOTPLUG_PARALLEL`), fetched and unpacked
//! by `scripts/fetch-linux-guest.sh` into `target/linux-guest/`. Each is booted without an
//! initrd (it panics later, unable to mount a root file system; we stop QEMU long before).
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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::build;
use crate::qemu::{self, Qemu};

/// The line Linux prints just before it starts the first AP.
const START: &str = "smp: Bringing up secondary CPUs";
/// The line Linux prints once every AP is online: `smp: Brought up 1 node, 4 CPUs`.
const DONE: &str = "smp: Brought up ";
/// The line after which a boot hangs forever: Linux found no TSC rate (see the module
/// documentation). With `tsc_early_khz=` it cannot happen; if it does, the option was not
/// taken, and the boot is stopped at once instead of waiting for the timeout.
const DOOMED: &str = "could not calculate TSC khz";

/// What Linux prints when it dies; such a boot is repeated (see [`measure`]).
const PANIC: &str = "Kernel panic - not syncing";
/// Boots of one sample that may die before one gets through.
const CRASHED_BOOTS: usize = 3;

/// A fetched kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The Debian suite it came from: `bookworm` or `bookworm-backports`.
    pub suite: String,
    /// Its release, as `uname -r` would say: `6.1.0-28-cloud-amd64`.
    pub version: String,
    /// The bzImage.
    pub image: PathBuf,
    /// CONFIG_HZ, from the kernel's config file beside the image (for computing `lpj=`).
    pub hz: Option<u64>,
    /// Built with CONFIG_HOTPLUG_PARALLEL: `cpuhp.parallel=0` means something to it.
    pub parallel_bringup: bool,
}

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

/// Fetches the kernels of `suites` (nothing is downloaded when they are already unpacked).
pub fn fetch(suites: &[&str]) -> Result<Vec<Kernel>, String> {
    let script = build::root().join("scripts/fetch-linux-guest.sh");
    // The script's messages (what it downloads, or what to install by hand) go straight to
    // the terminal; its stdout is one `kernel SUITE VERSION PATH` line per suite.
    let out = Command::new("bash")
        .arg(&script)
        .args(suites)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed (its messages above say what to install by hand)",
            script.display()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut kernels = Vec::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        let (Some("kernel"), Some(suite), Some(version), Some(path)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let image = PathBuf::from(path);
        let config = kernel_config(&image, version);
        kernels.push(Kernel {
            suite: suite.to_string(),
            version: version.to_string(),
            hz: config_value(&config, "CONFIG_HZ").and_then(|v| v.parse().ok()),
            parallel_bringup: config_value(&config, "CONFIG_HOTPLUG_PARALLEL") == Some("y"),
            image,
        });
    }
    if kernels.len() != suites.len() {
        return Err(format!(
            "{} printed {} kernel(s) for {} suite(s):\n{text}",
            script.display(),
            kernels.len(),
            suites.len()
        ));
    }
    Ok(kernels)
}

/// The text of `boot/config-VERSION` beside `boot/vmlinuz-VERSION` (empty if missing).
fn kernel_config(image: &Path, version: &str) -> String {
    let path = image.with_file_name(format!("config-{version}"));
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `CONFIG_X=value` → `value`.
fn config_value<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A configuration: which of the two knobs it turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Config {
    lpj: bool,
    parallel_off: bool,
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

/// The TSC rate the guests are given, and how it was obtained.
struct TscRate {
    khz: u64,
    from: String,
}

/// The `lpj=` value Linux derives from a TSC rate for its boot CPU when it trusts the TSC
/// (`lpj_fine`, `tsc_khz * 1000 / HZ` rounded down): what its default boots print as
/// `Calibrating delay loop (skipped), value calculated using timer frequency.. (lpj=N)`.
fn lpj_of(tsc_khz: u64, hz: u64) -> u64 {
    tsc_khz * 1000 / hz
}

/// How many intervals the host's TSC rate is measured over, and how long each is.
const TSC_INTERVALS: usize = 5;
const TSC_INTERVAL: Duration = Duration::from_millis(100);
/// A reading of both clocks counts only if the two TSC reads around the monotonic clock's are
/// at most this far apart: the thread was not preempted in between. ~2 µs at 2.6 GHz (a
/// reading takes ~70 cycles here, the vDSO's clock_gettime), so each end of an interval is
/// off by at most ~1 µs, ±20 ppm of the rate.
const TSC_READ_WIDTH: u64 = 5_000;
/// The intervals' rates must agree this closely, in parts per million, or the TSC is not a
/// steady clock on this host and no one rate describes it.
const TSC_SPREAD_PPM: u64 = 500;

/// The host's TSC rate, which is the guest's under TCG: QEMU answers the guest's RDTSC with
/// `cpu_get_host_ticks()`, the host's own RDTSC (plus an offset), and its PIT runs on the
/// host's monotonic clock. So RDTSC against that clock here measures what Linux's PIT
/// calibration measures in the guest, without the guest's exposure to preemption.
#[cfg(target_arch = "x86_64")]
fn host_tsc_rate() -> Result<TscRate, String> {
    use std::time::Instant;
    // The monotonic clock and the TSC at (nearly) the same moment: the TSC half-way between
    // two reads that bracket the clock's, retried until the bracket is narrow.
    fn reading() -> Result<(Instant, u64), String> {
        for _ in 0..10_000 {
            // SAFETY: RDTSC only reads the time-stamp counter; every x86_64 CPU has it.
            let before = unsafe { core::arch::x86_64::_rdtsc() };
            let now = Instant::now();
            // SAFETY: as above.
            let after = unsafe { core::arch::x86_64::_rdtsc() };
            let width = after.wrapping_sub(before);
            if width <= TSC_READ_WIDTH {
                return Ok((now, before + width / 2));
            }
        }
        Err(format!(
            "cannot read the TSC and the monotonic clock within {TSC_READ_WIDTH} cycles of \
             each other (10000 tries)"
        ))
    }
    let mut rates = Vec::new();
    for _ in 0..TSC_INTERVALS {
        let (t0, c0) = reading()?;
        std::thread::sleep(TSC_INTERVAL);
        let (t1, c1) = reading()?;
        rates.push(khz_over(c1.wrapping_sub(c0), t1 - t0));
    }
    let khz = steady_rate(&rates)?;
    Ok(TscRate {
        khz,
        from: format!(
            "measured on the host by the runner: RDTSC against the monotonic clock, median of \
             {TSC_INTERVALS} intervals of {} ms ({}–{} kHz)",
            TSC_INTERVAL.as_millis(),
            rates.iter().min().unwrap_or(&0),
            rates.iter().max().unwrap_or(&0)
        ),
    })
}

/// The guest's TSC is the host's only where QEMU reads it with RDTSC: on x86_64 hosts.
#[cfg(not(target_arch = "x86_64"))]
fn host_tsc_rate() -> Result<TscRate, String> {
    Err(
        "the Linux guest baseline needs an x86_64 host: it gives Linux the host's TSC rate \
         (`tsc_early_khz=`), which QEMU's TCG passes on only there"
            .into(),
    )
}

/// `cycles` over `elapsed`, in kHz, rounded to the nearest.
fn khz_over(cycles: u64, elapsed: Duration) -> u64 {
    let ns = elapsed.as_nanos().max(1);
    ((u128::from(cycles) * 1_000_000 + ns / 2) / ns) as u64
}

/// The median of `rates` (kHz), if they agree within [`TSC_SPREAD_PPM`].
fn steady_rate(rates: &[u64]) -> Result<u64, String> {
    let mut sorted = rates.to_vec();
    sorted.sort_unstable();
    let (Some(&min), Some(&max)) = (sorted.first(), sorted.last()) else {
        return Err("no TSC rate measured".into());
    };
    let median = sorted[sorted.len() / 2];
    if median == 0 || (max - min) * 1_000_000 > TSC_SPREAD_PPM * median {
        return Err(format!(
            "the host's TSC rate is not steady: {min}–{max} kHz over {} intervals of {} ms \
             (more than {TSC_SPREAD_PPM} ppm apart), so no tsc_early_khz= fits the guest",
            rates.len(),
            TSC_INTERVAL.as_millis()
        ));
    }
    Ok(median)
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
                    measure(qemu, kernel, cpus, config, &tsc, lpj, row)?;
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

/// Boots `kernel` until one boot gives its bring-up time, and adds it to `row`. A boot in
/// which Linux itself dies (`Kernel panic`) is repeated, at most [`CRASHED_BOOTS`] times, and
/// listed in the results: seen once in a full run, 6.12 at `-smp 4` under QEMU 7.2's TCG, a
/// page fault in the slab allocator's `cmpxchg16b` fast path at 0.5 s, before the bring-up —
/// the emulator, not the measured window. Every other failure ends the run with the boot's
/// last serial lines: a timeout, QEMU dying, a bring-up without every CPU, or a TSC rate other
/// than the one given (see `tsc_check`).
fn measure(
    qemu: &Qemu,
    kernel: &Kernel,
    cpus: u32,
    config: Config,
    tsc: &TscRate,
    lpj: u64,
    row: &mut LinuxRow,
) -> Result<(), String> {
    for _ in 0..CRASHED_BOOTS {
        match boot_once(qemu, kernel, cpus, config, tsc, lpj, row)? {
            None => return Ok(()),
            Some(crash) => row.crashed.push(crash),
        }
    }
    Err(format!(
        "Linux {} -smp {cpus} `{}`: the guest kernel died in {CRASHED_BOOTS} boots in a row: {}",
        kernel.version,
        row.config,
        row.crashed.join("; ")
    ))
}

/// One boot: `Ok(None)` with its figures added to `row`, `Ok(Some(where))` if Linux died.
fn boot_once(
    qemu: &Qemu,
    kernel: &Kernel,
    cpus: u32,
    config: Config,
    tsc: &TscRate,
    lpj: u64,
    row: &mut LinuxRow,
) -> Result<Option<String>, String> {
    let mut append = format!("console=ttyS0 panic=-1 tsc_early_khz={}", tsc.khz);
    if config.lpj {
        let _ = write!(append, " lpj={lpj}");
    }
    if config.parallel_off {
        append.push_str(" cpuhp.parallel=0");
    }
    let cmd = command(qemu, kernel, cpus, &append);
    let out = qemu::run_until(cmd, timeout(cpus), &|l| {
        l.contains(DONE) || l.contains(DOOMED)
    })?;
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
            let how = if out.timed_out {
                format!("stopped after {} s", timeout(cpus).as_secs())
            } else if out.stopped {
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

/// The bring-up time of one boot, in ms, from its timed serial lines; checks that all `cpus`
/// CPUs came up.
fn bringup_ms(lines: &[(Duration, String)], cpus: u32) -> Result<f64, String> {
    if let Some((_, line)) = lines.iter().find(|(_, l)| l.contains(DOOMED)) {
        return Err(format!(
            "Linux found no TSC rate and hangs (`{line}`): tsc_early_khz= was not taken"
        ));
    }
    let find = |what: &str| {
        lines
            .iter()
            .find(|(_, l)| l.contains(what))
            .ok_or_else(|| format!("no `{}` line", what.trim_end()))
    };
    let start = find(START)?;
    let done = find(DONE)?;
    match cpus_brought_up(&done.1) {
        Some(online) if online == cpus => Ok(done.0.saturating_sub(start.0).as_secs_f64() * 1e3),
        Some(online) => Err(format!(
            "Linux brought up {online} of {cpus} CPUs: `{}`",
            done.1
        )),
        None => Err(format!("cannot read the CPU count in `{}`", done.1)),
    }
}

/// `[    0.62] smp: Brought up 1 node, 4 CPUs` → 4 (also `2 nodes, 1 CPU`).
fn cpus_brought_up(line: &str) -> Option<u32> {
    let rest = &line[line.find(DONE)? + DONE.len()..];
    let (_nodes, cpus) = rest.split_once(", ")?;
    let mut words = cpus.split_whitespace();
    let n = words.next()?.parse().ok()?;
    words.next()?.starts_with("CPU").then_some(n)
}

/// Checks that Linux runs its TSC at the rate given (`tsc_early_khz=`) and, for a boot
/// without `lpj=` (`derived_lpj` is then the value it should derive), that its boot CPU's
/// loops-per-jiffy came from that rate. Returns what the guest's own PIT calibration gave,
/// when it printed that apart.
///
/// Linux still runs its quick PIT calibration with the option, but only for `cpu_khz`: it
/// prints `tsc: Detected P MHz processor` (P from the PIT), then `tsc: Detected T MHz TSC`
/// (T the rate given) when the two differ. A PIT figure more than 10% off, or none (the
/// calibration failed), is replaced by T, and only the `processor` line is printed, with T.
fn tsc_check(lines: &[&str], khz: u64, derived_lpj: Option<u64>) -> Result<Option<u64>, String> {
    let detected = |what: &str| lines.iter().find_map(|l| detected_khz(l, what));
    let processor = detected("processor");
    let used = detected("TSC").or(processor).ok_or(
        "no `tsc: Detected ... MHz` line: cannot check the TSC rate Linux used".to_string(),
    )?;
    if used != khz {
        return Err(format!(
            "Linux runs its TSC at {used} kHz, not the tsc_early_khz={khz} given"
        ));
    }
    if let Some(want) = derived_lpj {
        let printed = lines
            .iter()
            .filter(|l| l.contains("Calibrating delay loop (skipped), value calculated"))
            .find_map(|l| number_after(l, "lpj="));
        if printed != Some(want) {
            return Err(format!(
                "the boot CPU's loops-per-jiffy is {printed:?}, not the {want} derived from \
                 tsc_early_khz={khz} (the value the `lpj=` configurations preset)"
            ));
        }
    }
    Ok(processor.filter(|&p| p != used))
}

/// `tsc: Detected 2445.426 MHz processor` with `what` "processor" → 2445426 (Linux prints kHz
/// as MHz with three decimals, so this is exact); `what` "TSC" reads `... MHz TSC`.
fn detected_khz(line: &str, what: &str) -> Option<u64> {
    const KEY: &str = "tsc: Detected ";
    let rest = &line[line.find(KEY)? + KEY.len()..];
    let (mhz, after) = rest.split_once(" MHz")?;
    if after.split_whitespace().next() != Some(what) {
        return None;
    }
    let (whole, frac) = mhz.split_once('.').unwrap_or((mhz, "0"));
    let frac = format!("{frac:0<3}");
    Some(whole.trim().parse::<u64>().ok()? * 1000 + frac.get(..3)?.parse::<u64>().ok()?)
}

/// The decimal number right after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The median as the main table computes it: the middle sample, the upper one of the two
/// middles for an even count. 0 for no samples.
fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// For each CPU count, the row with the lowest median (any kernel, any configuration).
pub fn best(rows: &[LinuxRow]) -> Vec<(u32, &LinuxRow)> {
    best_by(rows, |_| true)
}

/// For each CPU count, the row with the lowest median among the rows `keep` accepts.
fn best_by(rows: &[LinuxRow], keep: impl Fn(&LinuxRow) -> bool) -> Vec<(u32, &LinuxRow)> {
    let mut counts: Vec<u32> = rows.iter().map(|r| r.cpus).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .filter_map(|n| {
            rows.iter()
                .filter(|r| r.cpus == n && !r.samples_ms.is_empty() && keep(r))
                .min_by(|a, b| a.median_ms().total_cmp(&b.median_ms()))
                .map(|r| (n, r))
        })
        .collect()
}

/// The Markdown section: every kernel × configuration × CPU count, then the best per count.
pub fn render(rows: &[LinuxRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Linux guest baseline (stock Debian cloud kernels)\n"
    );
    let tsc = rows.first().map_or(0, |r| r.tsc_khz);
    let _ = writeln!(
        s,
        "Bring-up timed on the host as the serial lines arrive, from `{START}` to \
         `smp: Brought up 1 node, N CPUs` (N checked against `-smp`). Same machine as above: \
         `-M microvm -accel tcg -m 256M`, no initrd, \
         `-append 'console=ttyS0 panic=-1 tsc_early_khz={tsc}'` plus the configuration. TCG \
         only: this machine's KVM emulates guest ring-0 code, under it Linux is ~300× slower \
         and does not reach the bring-up within minutes, so KVM is skipped.\n"
    );
    let _ = writeln!(s, "{}\n", tsc_note(rows));
    let _ = writeln!(
        s,
        "Configurations: `default`: each AP calibrates its delay loop (~100 ms under TCG); \
         `lpj=N` presets loops-per-jiffy and skips that; `cpuhp.parallel=0` turns 6.12's \
         parallel CPU bring-up off (one AP at a time, as 6.1 does).\n"
    );
    let _ = writeln!(
        s,
        "| kernel | config | CPUs | boots | min ms | median ms | max ms |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let min = r.samples_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.samples_ms.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {:.0} | {:.0} | {:.0} |",
            r.kernel,
            r.config,
            r.cpus,
            r.samples_ms.len(),
            if r.samples_ms.is_empty() { 0.0 } else { min },
            r.median_ms(),
            max
        );
    }

    let crashed: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.crashed
                .iter()
                .map(move |c| format!("- {} `{}` -smp {}: {c}", r.kernel, r.config, r.cpus))
        })
        .collect();
    if !crashed.is_empty() {
        let _ = writeln!(
            s,
            "\nBoots repeated because the guest kernel died before its bring-up (QEMU's TCG, see \
             `measure`), where it died:\n{}",
            crashed.join("\n")
        );
    }

    // Cells not measured: configurations dropped once clearly beaten.
    let mut counts: Vec<u32> = rows.iter().map(|r| r.cpus).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut kernels: Vec<&str> = Vec::new();
    for r in rows {
        if !kernels.contains(&r.kernel.as_str()) {
            kernels.push(&r.kernel);
        }
    }
    let mut missing = Vec::new();
    for &kernel in &kernels {
        let mut configs: Vec<String> = Vec::new();
        for r in rows.iter().filter(|r| r.kernel == kernel) {
            let base = config_kind(&r.config);
            if !configs.contains(&base) {
                configs.push(base);
            }
        }
        for config in configs {
            let absent: Vec<String> = counts
                .iter()
                .filter(|&&n| {
                    !rows.iter().any(|r| {
                        r.kernel == kernel && r.cpus == n && config_kind(&r.config) == config
                    })
                })
                .map(|n| n.to_string())
                .collect();
            if !absent.is_empty() {
                missing.push(format!("{kernel} `{config}` at {} CPUs", absent.join(", ")));
            }
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "\nNot booted, to keep the run short (no `lpj=`, so every AP calibrates its delay \
             loop, and a median more than twice the kernel's best at the previous CPU count): {}.",
            missing.join("; ")
        );
    }

    let mut lpj_notes: Vec<String> = Vec::new();
    for r in rows {
        if let Some(from) = &r.lpj_from {
            let note = format!("{}: `{}` {from}", r.kernel, lpj_word(&r.config));
            if !lpj_notes.contains(&note) {
                lpj_notes.push(note);
            }
        }
    }
    if !lpj_notes.is_empty() {
        let _ = writeln!(s, "\n`lpj=` values: {}.", lpj_notes.join("; "));
    }
    let _ = writeln!(s, "\nBest configuration per CPU count (lowest median):\n");
    let mut header = String::from("| CPUs |");
    let mut rule = String::from("|---:|");
    for kernel in &kernels {
        let _ = write!(header, " {kernel} |");
        rule.push_str("---|");
    }
    header.push_str(" best |");
    rule.push_str("---|");
    let _ = writeln!(s, "{header}\n{rule}");
    let per_kernel: Vec<Vec<(u32, &LinuxRow)>> = kernels
        .iter()
        .map(|k| best_by(rows, |r| r.kernel == *k))
        .collect();
    for (n, overall) in best(rows) {
        let mut line = format!("| {n} |");
        for per in &per_kernel {
            match per.iter().find(|(c, _)| *c == n) {
                Some((_, r)) => {
                    let _ = write!(line, " `{}` {:.0} ms |", r.config, r.median_ms());
                }
                None => line.push_str(" – |"),
            }
        }
        let _ = write!(
            line,
            " {} `{}` {:.0} ms |",
            overall.kernel,
            overall.config,
            overall.median_ms()
        );
        let _ = writeln!(s, "{line}");
    }
    s
}

/// The paragraph on the TSC rate the boots were given: where it came from, why, what it
/// changes, and how the guests' own PIT calibrations compare with it.
fn tsc_note(rows: &[LinuxRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let khz = first.tsc_khz;
    let mut s = format!(
        "TSC rate: every boot is given `tsc_early_khz={khz}`, {}; under TCG the guest's TSC \
         is the host's (QEMU answers RDTSC with the host's RDTSC). Without it Linux takes the \
         rate from a PIT calibration, which fails when the vCPU thread is preempted on a busy \
         host, and then, microvm having no HPET or ACPI PM timer to fall back on, hangs \
         before the bring-up. That calibration is over before the timed window starts, and \
         A/B boots with and without the option (unloaded; 6.1 and 6.12, -smp 2 and 8, every \
         pair within the other's spread, medians moving both ways: e.g. 6.1 `lpj=` 30 vs 33 ms \
         at -smp 2, 59 vs 55 ms at -smp 8; the table is in xtask/src/linux_guest.rs) show it \
         changes which boots get through, not what is timed.",
        first.tsc_from
    );
    let pit: Vec<u64> = rows
        .iter()
        .flat_map(|r| r.pit_khz.iter().copied())
        .collect();
    let boots: usize = rows.iter().map(|r| r.samples_ms.len()).sum();
    if let (Some(&min), Some(&max)) = (pit.iter().min(), pit.iter().max()) {
        let ppm = |v: u64| (v as f64 - khz as f64) / khz as f64 * 1e6;
        let _ = write!(
            s,
            " Linux still runs its quick PIT calibration, for `cpu_khz` only, and prints it \
             (`tsc: Detected P MHz processor`): in {} of {boots} boots it gave {min}–{max} kHz, \
             {:+.0} to {:+.0} ppm from the rate given (the others printed only the rate given: \
             their calibration failed, or was more than 10% off, or agreed to the kHz).",
            pit.len(),
            ppm(min),
            ppm(max)
        );
    }
    s
}

/// A configuration label with the lpj value taken out (`lpj=9781704 cpuhp.parallel=0` →
/// `lpj= cpuhp.parallel=0`), to compare configurations across kernels and boots.
fn config_kind(config: &str) -> String {
    config
        .split_whitespace()
        .map(|w| if w.starts_with("lpj=") { "lpj=" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `lpj=N` word of a configuration label.
fn lpj_word(config: &str) -> &str {
    config
        .split_whitespace()
        .find(|w| w.starts_with("lpj="))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str) -> Vec<(Duration, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (Duration::from_millis(1000 + 250 * i as u64), l.to_string()))
            .collect()
    }

    fn row(kernel: &str, config: &str, cpus: u32, samples: &[f64]) -> LinuxRow {
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
    fn reads_the_brought_up_line() {
        assert_eq!(
            cpus_brought_up("[    0.624231] smp: Brought up 1 node, 4 CPUs"),
            Some(4)
        );
        assert_eq!(
            cpus_brought_up("smp: Brought up 2 nodes, 64 CPUs"),
            Some(64)
        );
        assert_eq!(cpus_brought_up("smp: Brought up 1 node, 1 CPU"), Some(1));
        assert_eq!(cpus_brought_up("smp: Brought up nothing"), None);
        assert_eq!(cpus_brought_up("smpboot: Max logical packages: 1"), None);
    }

    #[test]
    fn times_a_boot_from_line_to_line() {
        let boot = timed(
            "[    0.2] rcu: Hierarchical SRCU implementation.\n\
             [    0.3] smp: Bringing up secondary CPUs ...\n\
             [    0.3] x86: Booting SMP configuration:\n\
             [    0.4] .... node  #0, CPUs:      #1 #2 #3\n\
             [    0.6] smp: Brought up 1 node, 4 CPUs",
        );
        assert_eq!(bringup_ms(&boot, 4), Ok(750.0));
        assert!(bringup_ms(&boot, 8)
            .unwrap_err()
            .starts_with("Linux brought up 4 of 8"));
        assert_eq!(
            bringup_ms(&boot[..4], 4).unwrap_err(),
            "no `smp: Brought up` line"
        );
        assert!(bringup_ms(&boot[2..], 4)
            .unwrap_err()
            .contains("no `smp: Bringing up"));
        let doomed = timed(
            "[    0.000000] tsc: Unable to calibrate against PIT\n\
             [    0.000000] tsc: Marking TSC unstable due to could not calculate TSC khz",
        );
        assert!(bringup_ms(&doomed, 4)
            .unwrap_err()
            .contains("tsc_early_khz= was not taken"));
    }

    #[test]
    fn checks_the_tsc_rate_linux_used() {
        // Given 2600000 kHz, its PIT calibration said 2599.87 MHz: both lines.
        let boot = [
            "[    0.000000] tsc: Fast TSC calibration using PIT",
            "[    0.000000] tsc: Detected 2599.870 MHz processor",
            "[    0.000000] tsc: Detected 2600.000 MHz TSC",
            "[    0.261861] Calibrating delay loop (skipped), value calculated using timer frequency.. 5200.00 BogoMIPS (lpj=10400000)",
        ];
        assert_eq!(
            tsc_check(&boot, 2_600_000, Some(10_400_000)),
            Ok(Some(2_599_870))
        );
        // With `lpj=` the kernel prints the preset value: nothing to compare.
        assert_eq!(tsc_check(&boot[..3], 2_600_000, None), Ok(Some(2_599_870)));
        // The PIT calibration failed (or was 10% off): only the given rate, as `processor`.
        let failed = [
            "tsc: Fast TSC calibration failed",
            "tsc: Detected 2600.000 MHz processor",
        ];
        assert_eq!(tsc_check(&failed, 2_600_000, None), Ok(None));
        // The option not taken: Linux runs on its own figure.
        let ignored = ["tsc: Detected 2599.870 MHz processor"];
        assert!(tsc_check(&ignored, 2_600_000, None)
            .unwrap_err()
            .contains("2599870 kHz, not the tsc_early_khz=2600000"));
        assert!(tsc_check(&boot, 2_600_000, Some(10_399_999))
            .unwrap_err()
            .contains("Some(10400000), not the 10399999"));
        assert!(tsc_check(&boot[2..3], 2_600_000, Some(10_400_000))
            .unwrap_err()
            .contains("None"));
        assert!(tsc_check(&[], 2_600_000, None).is_err());
        assert_eq!(lpj_of(2_600_000, 250), 10_400_000);
        assert_eq!(lpj_of(2_445_423, 250), 9_781_692);
        assert_eq!(
            detected_khz("tsc: Detected 2596.1 MHz processor", "processor"),
            Some(2_596_100)
        );
        assert_eq!(
            detected_khz("tsc: Detected 3000 MHz processor", "processor"),
            Some(3_000_000)
        );
        assert_eq!(
            detected_khz("tsc: Detected 3000 MHz processor", "TSC"),
            None
        );
        assert_eq!(
            detected_khz("tsc: Detected 2600.000 MHz TSC", "TSC"),
            Some(2_600_000)
        );
    }

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

    #[test]
    fn measures_a_rate_over_an_interval() {
        assert_eq!(khz_over(260_000_000, Duration::from_millis(100)), 2_600_000);
        assert_eq!(khz_over(2_600_001_499, Duration::from_secs(1)), 2_600_001);
        assert_eq!(khz_over(2_600_001_500, Duration::from_secs(1)), 2_600_002);
        assert_eq!(khz_over(5, Duration::ZERO), 5_000_000);
        assert_eq!(
            steady_rate(&[2_600_010, 2_599_990, 2_600_000, 2_600_400, 2_599_900]),
            Ok(2_600_000)
        );
        // 2600 kHz apart is 1000 ppm: not one rate.
        assert!(steady_rate(&[2_600_000, 2_602_600, 2_600_001])
            .unwrap_err()
            .contains("not steady"));
        assert!(steady_rate(&[]).is_err());
        assert!(steady_rate(&[0]).is_err());
    }

    /// Sources scripts/apt-backports.sh (what fetch-linux-guest.sh does for the 6.12 kernel)
    /// over a fake apt directory holding `files`, runs `add_bookworm_backports` and returns
    /// its status, its message and the source it wrote.
    fn add_backports(name: &str, files: &[(&str, &str)]) -> (String, String, String) {
        let dir =
            std::env::temp_dir().join(format!("rust-multicore-apt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        for (path, text) in files {
            std::fs::write(dir.join(path), text).unwrap();
        }
        let script = build::root().join("scripts/apt-backports.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -euo pipefail
                say() { echo "$*"; }
                as_root() { "$@"; }
                . "$1"
                status=0; add_bookworm_backports || status=$?
                echo "status $status""#,
            )
            .arg("bash")
            .arg(&script)
            .env("APT_BACKPORTS_ETC", &dir)
            .output()
            .unwrap();
        let written = dir.join("sources.list.d/bookworm-backports.sources");
        let written = std::fs::read_to_string(written).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (said, status) = text.trim_end().rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().to_string(), said.to_string(), written)
    }

    #[test]
    fn backports_come_from_the_bookworm_mirror() {
        let uris = |written: &str| {
            written
                .lines()
                .find_map(|l| l.strip_prefix("URIs: "))
                .map(str::to_string)
        };
        // This machine's layout: deb822, bookworm beside -updates, -security apart, a disabled
        // file apt does not read.
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
            URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
            Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n\
            Suites: bookworm-security\nComponents: main\n";
        let (status, said, written) = add_backports(
            "deb822",
            &[
                ("sources.list.d/debian.sources", deb822),
                (
                    "sources.list.d/old.list.disabled",
                    "deb http://disabled.example/debian bookworm main\n",
                ),
            ],
        );
        assert_eq!(status, "status 0");
        assert!(said.contains("from the mirror of bookworm in"), "{said}");
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert!(written.contains("Suites: bookworm-backports\n"));

        // A disabled paragraph, a deb-src one and a value on continuation lines.
        let (_, _, written) = add_backports(
            "continued",
            &[(
                "sources.list.d/a.sources",
                "Types: deb\nURIs: http://off.example/\nSuites: bookworm\nEnabled: no\n\n\
                 Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n\n\
                 types: deb\nURIs:\n  http://second.example/debian\n  http://third.example/\n\
                 Suites: bookworm-updates\n  bookworm\n",
            )],
        );
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://second.example/debian")
        );

        // One-line entries: options in brackets; comments and deb-src lines do not count.
        let (status, _, written) = add_backports(
            "one-line",
            &[(
                "sources.list",
                "# deb http://commented.example/ bookworm main\n\
                 deb-src http://src.example/ bookworm main\n\
                 deb http://security.example/ bookworm-security main\n\
                 deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian/ bookworm main\n",
            )],
        );
        assert_eq!(status, "status 0");
        assert_eq!(
            uris(&written).as_deref(),
            Some("https://one.example/debian/")
        );

        // No bookworm source: deb.debian.org, and it says so.
        let (status, said, written) = add_backports(
            "none",
            &[(
                "sources.list.d/other.list",
                "deb https://packages.example/apt cloud-sdk-bookworm main\n",
            )],
        );
        assert_eq!(status, "status 0");
        assert!(said.contains("no apt source names bookworm"), "{said}");
        assert_eq!(
            uris(&written).as_deref(),
            Some("http://deb.debian.org/debian")
        );

        // Already there (not in a comment): nothing written.
        let (status, _, written) = add_backports(
            "present",
            &[
                ("sources.list.d/debian.sources", deb822),
                (
                    "sources.list",
                    "# deb http://x/ bookworm-backports main\n\
                     deb http://mirror.example/debian bookworm-backports main\n",
                ),
            ],
        );
        assert_eq!((status.as_str(), written.as_str()), ("status 1", ""));
    }

    #[test]
    fn reads_kernel_configs() {
        let config = "# comment\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HOTPLUG_PARALLEL=y\n";
        assert_eq!(config_value(config, "CONFIG_HZ"), Some("250"));
        assert_eq!(config_value(config, "CONFIG_HOTPLUG_PARALLEL"), Some("y"));
        assert_eq!(config_value(config, "CONFIG_SMP"), None);
    }

    #[test]
    fn labels_configurations() {
        let c = |lpj, parallel_off| Config { lpj, parallel_off };
        assert_eq!(c(false, false).label(7), "default");
        assert_eq!(c(true, false).label(7), "lpj=7");
        assert_eq!(c(true, true).label(7), "lpj=7 cpuhp.parallel=0");
        assert_eq!(c(false, true).label(7), "cpuhp.parallel=0");
        assert_eq!(
            config_kind("lpj=7 cpuhp.parallel=0"),
            "lpj= cpuhp.parallel=0"
        );
        assert_eq!(lpj_word("lpj=7 cpuhp.parallel=0"), "lpj=7");
    }

    #[test]
    fn medians_and_best() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0]), 4.0);
        assert_eq!(median(&[]), 0.0);
        let rows = vec![
            row("6.1", "default", 2, &[110.0, 100.0, 120.0]),
            row("6.1", "lpj=7", 2, &[30.0, 20.0, 90.0]),
            row("6.12", "lpj=7", 2, &[25.0, 26.0, 27.0]),
            row("6.1", "default", 4, &[300.0]),
            row("6.12", "lpj=7 cpuhp.parallel=0", 4, &[50.0]),
            row("6.12", "lpj=7", 4, &[]),
        ];
        let best = best(&rows);
        assert_eq!(best.len(), 2);
        assert_eq!((best[0].0, best[0].1.kernel.as_str()), (2, "6.12"));
        assert_eq!(
            (best[1].0, best[1].1.config.as_str()),
            (4, "lpj=7 cpuhp.parallel=0")
        );
        let table = render(&rows);
        assert!(table.contains("| 6.1 | `lpj=7` | 2 | 3 | 20 | 30 | 90 |"));
        assert!(table.contains("`tsc_early_khz=2600000`, measured;"));
        assert!(table.contains("| 2 | `lpj=7` 30 ms | `lpj=7` 26 ms | 6.12 `lpj=7` 26 ms |"));
        assert!(table.contains("| 4 | `default` 300 ms | `lpj=7 cpuhp.parallel=0` 50 ms |"));
        assert!(table.contains("6.1 `lpj=` at 4 CPUs"));
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
