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
//! Configurations (kernel command line on top of `console=ttyS0 panic=-1`):
//! - `default`: nothing else. Every AP then calibrates its delay loop (under TCG there is no
//!   invariant TSC to trust, so Linux measures each CPU: ~100 ms per AP);
//! - `lpj=N`: the loops-per-jiffy value preset, which skips that calibration. N is the value
//!   the same kernel printed for its BSP on its first default boot (`Calibrating delay loop
//!   (skipped), value calculated using timer frequency.. (lpj=N)`, i.e. TSC kHz × 1000 / HZ),
//!   or, if that line is missing, computed from `tsc: Detected X MHz processor` and the
//!   kernel's CONFIG_HZ the same way;
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
//! One flaw of that machine shows under TCG on a loaded host: Linux calibrates the TSC against
//! the PIT, and when the vCPU thread is preempted during that, it gives up (`tsc: Unable to
//! calibrate against PIT`), finds no HPET or ACPI PM timer to fall back on (microvm has
//! neither) and hangs for good, its clock stuck at 0. One boot in eight did that in a full
//! run here, more while the host was busy.
//! Such a boot is recognised at once by its `could not calculate TSC khz` line, stopped and
//! repeated; the repeats are counted in the results.

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
/// The line after which a boot hangs forever (see the module documentation).
const DOOMED: &str = "could not calculate TSC khz";

/// How many boots of one sample may hang in their TSC calibration before that sample is
/// given up (a row left with no sample at all ends the run). One boot in eight hung in a full
/// run here; with the host busy with other work, five in a row happened.
const DOOMED_BOOTS: usize = 10;

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
    /// Boots that were repeated, and why (a TSC-calibration hang, a timeout, ...).
    pub repeats: Vec<String>,
    /// Where the `lpj=` value came from, for configurations that preset it.
    pub lpj_from: Option<String>,
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
/// (no backports suite needed), its default configuration (which also gives the `lpj=`
/// value) and `lpj=`. It proves fetching, booting, timing and parsing work end to end; its
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
    /// The configurations a kernel is measured with, `default` first: its first boot gives
    /// the `lpj=` value the others need.
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

    /// What it adds to the command line (`default` for nothing).
    fn label(self, lpj: Option<u64>) -> String {
        let mut words = Vec::new();
        if self.lpj {
            words.push(lpj.map_or("lpj=?".to_string(), |v| format!("lpj={v}")));
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

/// The `lpj=` value of a kernel and how it was obtained.
struct Lpj {
    value: u64,
    from: String,
}

/// The `lpj=` value, if known yet.
fn lpj_value(lpj: &Option<Lpj>) -> Option<u64> {
    lpj.as_ref().map(|l| l.value)
}

fn run_plan(
    qemu: &Qemu,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LinuxRow>, String> {
    progress("fetching the kernels");
    let kernels = fetch(plan.suites)?;
    let names: Vec<String> = kernels
        .iter()
        .map(|k| format!("{} ({})", k.version, k.suite))
        .collect();
    progress(&format!("kernels {}", names.join(", ")));
    let mut counts = plan.cpu_counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    // Per kernel, found on its first default boot.
    let mut lpj: Vec<Option<Lpj>> = kernels.iter().map(|_| None).collect();
    let mut rows: Vec<LinuxRow> = Vec::new();
    let configs_of = |k: &Kernel| Config::all(k, plan.all_configs);
    let total =
        kernels.iter().map(|k| configs_of(k).len()).sum::<usize>() * counts.len() * plan.boots;
    let mut done = 0;
    for (n_index, &cpus) in counts.iter().enumerate() {
        for (kernel, lpj) in kernels.iter().zip(lpj.iter_mut()) {
            let configs = configs_of(kernel);
            let active: Vec<Config> = configs
                .iter()
                .copied()
                .filter(|c| {
                    let previous = n_index.checked_sub(1).map(|i| counts[i]);
                    let drop = plan.drop_dominated
                        && !c.lpj
                        && previous.is_some_and(|prev| {
                            let label = c.label(lpj_value(lpj));
                            dominated(&rows, &kernel.version, prev, &label, cpus)
                        });
                    !drop
                })
                .collect();
            done += (configs.len() - active.len()) * plan.boots;
            let first_row = rows.len();
            rows.extend(active.iter().map(|_| LinuxRow {
                kernel: kernel.version.clone(),
                config: String::new(), // labelled below, once the lpj= value is known
                cpus,
                samples_ms: Vec::new(),
                repeats: Vec::new(),
                lpj_from: None,
            }));
            // Boots go round the configurations (boot 1 of each, then boot 2 of each...), so
            // that a burst of load from elsewhere on the host spreads over all of them.
            for boot in 1..=plan.boots {
                for (row, &config) in rows[first_row..].iter_mut().zip(&active) {
                    done += 1;
                    progress(&format!(
                        "boot {done}/{total}: {} -smp {cpus} {} (#{boot})",
                        kernel.version,
                        config.label(lpj_value(lpj))
                    ));
                    // Config::all puts `default` first, so the value is known by now, unless
                    // that boot's sample was given up.
                    let preset = match (config.lpj, lpj_value(lpj)) {
                        (false, _) => None,
                        (true, Some(value)) => Some(value),
                        (true, None) => {
                            row.repeats.push("no lpj= value yet, boot skipped".into());
                            continue;
                        }
                    };
                    let Some(lines) = measure(qemu, kernel, cpus, config, preset, row)? else {
                        continue;
                    };
                    if lpj.is_none() && !config.lpj {
                        let (value, how) = lpj_of_boot(&lines, kernel.hz).ok_or_else(|| {
                            format!(
                                "{}: no lpj= value in its boot log (no `Calibrating delay loop \
                                 ... lpj=` line, no `tsc: Detected ... MHz` with a known CONFIG_HZ)",
                                kernel.version
                            )
                        })?;
                        let from = format!("{how} (first default boot, -smp {cpus})");
                        *lpj = Some(Lpj { value, from });
                    }
                }
            }
            for (row, &config) in rows[first_row..].iter_mut().zip(&active) {
                if row.samples_ms.is_empty() {
                    return Err(format!(
                        "Linux {} -smp {cpus} {}: no boot got through: {}",
                        kernel.version,
                        config.label(lpj_value(lpj)),
                        row.repeats.join("; ")
                    ));
                }
                row.config = config.label(lpj_value(lpj));
                if config.lpj {
                    row.lpj_from = lpj.as_ref().map(|l| l.from.clone());
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

/// Boots `kernel` until one boot gives a sample, adds it to `row` and returns that boot's
/// serial lines. A boot that hung in its TSC calibration is repeated (it costs a few seconds);
/// after [`DOOMED_BOOTS`] of them the sample is given up (`None`, noted in `row.repeats`).
/// Any other failure (a timeout, QEMU or Linux dying) is repeated once, then ends the run, and
/// so does a bring-up that ends without every CPU.
fn measure(
    qemu: &Qemu,
    kernel: &Kernel,
    cpus: u32,
    config: Config,
    lpj: Option<u64>,
    row: &mut LinuxRow,
) -> Result<Option<Vec<String>>, String> {
    let mut append = String::from("console=ttyS0 panic=-1");
    if let Some(lpj) = lpj {
        let _ = write!(append, " lpj={lpj}");
    }
    if config.parallel_off {
        append.push_str(" cpuhp.parallel=0");
    }
    let (mut doomed, mut other) = (0, 0);
    loop {
        let cmd = command(qemu, kernel, cpus, &append);
        let out = qemu::run_until(cmd, timeout(cpus), &|l| {
            l.contains(DONE) || l.contains(DOOMED)
        })?;
        let why = match bringup_ms(&out.timed_lines, cpus) {
            Ok(ms) => {
                row.samples_ms.push(ms);
                return Ok(Some(out.timed_lines.into_iter().map(|(_, l)| l).collect()));
            }
            // Linux finished its bring-up without some CPUs: that is an answer, not a fluke.
            Err(Failure::WrongCount(why)) => {
                return Err(format!(
                    "Linux {} -smp {cpus} `{append}`: {why}\n{}",
                    kernel.version, out.serial
                ))
            }
            Err(Failure::Doomed(why)) => {
                doomed += 1;
                why
            }
            Err(Failure::Incomplete(why)) => {
                other += 1;
                if out.timed_out {
                    format!(
                        "no `{}` within {} s ({why})",
                        DONE.trim_end(),
                        timeout(cpus).as_secs()
                    )
                } else {
                    format!("{why}, QEMU exit status {:?}", out.exit)
                }
            }
        };
        if doomed == DOOMED_BOOTS {
            row.repeats
                .push(format!("{why}; sample given up after {doomed} such boots"));
            return Ok(None);
        }
        if other == 2 {
            let tail: Vec<&str> = out.serial.lines().rev().take(15).collect();
            return Err(format!(
                "Linux {} -smp {cpus} `{append}`: {} boots failed, the last: {why}\n\
                 last serial lines:\n{}\n{}",
                kernel.version,
                doomed + other,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                out.stderr
            ));
        }
        row.repeats.push(why);
    }
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
/// A boot that is merely slow is not a hang here: the hang we know of is caught at once.
fn timeout(cpus: u32) -> Duration {
    Duration::from_secs(120) + Duration::from_secs(5) * cpus
}

/// Why a boot gave no sample.
#[derive(Debug, PartialEq)]
enum Failure {
    /// It hung calibrating the TSC (see the module documentation): repeat it.
    Doomed(String),
    /// It did not get through its bring-up otherwise (timeout, crash): worth one repeat.
    Incomplete(String),
    /// The bring-up ended with fewer (or more) CPUs than asked for.
    WrongCount(String),
}

/// The bring-up time of one boot, in ms, from its timed serial lines; checks that all `cpus`
/// CPUs came up.
fn bringup_ms(lines: &[(Duration, String)], cpus: u32) -> Result<f64, Failure> {
    if lines.iter().any(|(_, l)| l.contains(DOOMED)) {
        return Err(Failure::Doomed(
            "TSC calibration failed, Linux hangs (`tsc: ... could not calculate TSC khz`)".into(),
        ));
    }
    let find = |what: &str| {
        lines
            .iter()
            .find(|(_, l)| l.contains(what))
            .ok_or_else(|| Failure::Incomplete(format!("no `{}` line", what.trim_end())))
    };
    let start = find(START)?;
    let done = find(DONE)?;
    match cpus_brought_up(&done.1) {
        Some(online) if online == cpus => Ok(done.0.saturating_sub(start.0).as_secs_f64() * 1e3),
        Some(online) => Err(Failure::WrongCount(format!(
            "Linux brought up {online} of {cpus} CPUs: `{}`",
            done.1
        ))),
        None => Err(Failure::WrongCount(format!(
            "cannot read the CPU count in `{}`",
            done.1
        ))),
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

/// The `lpj=` value a boot log gives, and how: the BSP's own `Calibrating delay loop ...
/// (lpj=N)` line (not a preset one), else TSC kHz × 1000 / HZ from `tsc: Detected X MHz`,
/// which is how Linux derives it when it trusts the TSC.
fn lpj_of_boot(lines: &[String], hz: Option<u64>) -> Option<(u64, String)> {
    let printed = lines
        .iter()
        .filter(|l| l.contains("Calibrating delay") && !l.contains("preset"))
        .find_map(|l| number_after(l, "lpj="));
    if let Some(v) = printed {
        return Some((
            v,
            "printed by the kernel: `Calibrating delay loop ... (lpj=N)`".into(),
        ));
    }
    let khz = lines.iter().find_map(|l| tsc_khz(l))?;
    let hz = hz.filter(|&hz| hz > 0)?;
    Some((
        khz * 1000 / hz,
        format!("computed: `tsc: Detected` {khz} kHz × 1000 / CONFIG_HZ {hz}"),
    ))
}

/// The decimal number right after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `tsc: Detected 2445.426 MHz processor` → 2445426 (Linux prints kHz as MHz with three
/// decimals, so this is exact).
fn tsc_khz(line: &str) -> Option<u64> {
    let rest = &line[line.find("tsc: Detected ")? + "tsc: Detected ".len()..];
    let mhz = rest
        .strip_suffix(" MHz processor")
        .or_else(|| rest.split(" MHz").next())?;
    let (whole, frac) = mhz.split_once('.').unwrap_or((mhz, "0"));
    let frac = format!("{frac:0<3}");
    Some(whole.trim().parse::<u64>().ok()? * 1000 + frac.get(..3)?.parse::<u64>().ok()?)
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
    let _ = writeln!(
        s,
        "Bring-up timed on the host as the serial lines arrive, from `{START}` to \
         `smp: Brought up 1 node, N CPUs` (N checked against `-smp`). Same machine as above: \
         `-M microvm -accel tcg -m 256M`, no initrd, `-append 'console=ttyS0 panic=-1'` plus the \
         configuration. TCG only: this machine's KVM emulates guest ring-0 code, under it Linux \
         is ~300× slower and does not reach the bring-up within minutes, so KVM is skipped.\n"
    );
    let _ = writeln!(
        s,
        "Configurations: `default`: each AP calibrates its delay loop (~100 ms under TCG); \
         `lpj=N` presets loops-per-jiffy and skips that; `cpuhp.parallel=0` turns 6.12's \
         parallel CPU bring-up off (one AP at a time, as 6.1 does).\n"
    );
    let _ = writeln!(
        s,
        "| kernel | config | CPUs | boots | min ms | median ms | max ms | repeated boots |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let min = r.samples_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.samples_ms.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            r.kernel,
            r.config,
            r.cpus,
            r.samples_ms.len(),
            if r.samples_ms.is_empty() { 0.0 } else { min },
            r.median_ms(),
            max,
            r.repeats.len()
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
    let repeats: usize = rows.iter().map(|r| r.repeats.len()).sum();
    if repeats > 0 {
        let mut why: Vec<&str> = rows
            .iter()
            .flat_map(|r| r.repeats.iter().map(String::as_str))
            .collect();
        why.sort_unstable();
        why.dedup();
        let _ = writeln!(
            s,
            "\n{repeats} boot(s) were repeated. Reasons: {}. (Under TCG on a busy host Linux \
             sometimes fails to calibrate the TSC against the PIT, and microvm has no HPET or \
             ACPI PM timer to fall back on: it then hangs before the bring-up.)",
            why.join("; ")
        );
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
            repeats: Vec::new(),
            lpj_from: None,
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
        let message = |f| match f {
            Failure::Doomed(m) => format!("doomed: {m}"),
            Failure::Incomplete(m) => format!("incomplete: {m}"),
            Failure::WrongCount(m) => format!("count: {m}"),
        };
        assert!(message(bringup_ms(&boot, 8).unwrap_err())
            .starts_with("count: Linux brought up 4 of 8"));
        assert_eq!(
            message(bringup_ms(&boot[..4], 4).unwrap_err()),
            "incomplete: no `smp: Brought up` line"
        );
        assert!(message(bringup_ms(&boot[2..], 4).unwrap_err()).contains("no `smp: Bringing up"));
        let doomed = timed(
            "[    0.000000] tsc: Unable to calibrate against PIT\n\
             [    0.000000] tsc: Marking TSC unstable due to could not calculate TSC khz",
        );
        assert!(message(bringup_ms(&doomed, 4).unwrap_err()).starts_with("doomed: TSC calibration"));
    }

    #[test]
    fn finds_lpj() {
        let printed = [
            "[    0.000000] tsc: Detected 2445.426 MHz processor".to_string(),
            "[    0.261861] Calibrating delay loop (skipped), value calculated using timer frequency.. 4890.85 BogoMIPS (lpj=9781704)".to_string(),
        ];
        let (v, how) = lpj_of_boot(&printed, Some(250)).unwrap();
        assert_eq!(v, 9781704);
        assert!(how.starts_with("printed"));
        // Without that line: TSC kHz × 1000 / HZ, which is what Linux printed above.
        let (v, how) = lpj_of_boot(&printed[..1], Some(250)).unwrap();
        assert_eq!(v, 9781704);
        assert!(how.starts_with("computed"));
        assert!(lpj_of_boot(&printed[..1], None).is_none());
        // A preset value is ours, not a measurement.
        let preset = [
            "Calibrating delay loop (skipped) preset value.. 4890.85 BogoMIPS (lpj=5)".to_string(),
        ];
        assert!(lpj_of_boot(&preset, Some(250)).is_none());
        assert_eq!(tsc_khz("tsc: Detected 2596.1 MHz processor"), Some(2596100));
        assert_eq!(tsc_khz("tsc: Detected 3000 MHz processor"), Some(3000000));
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
        assert_eq!(c(false, false).label(Some(7)), "default");
        assert_eq!(c(true, false).label(Some(7)), "lpj=7");
        assert_eq!(c(true, true).label(Some(7)), "lpj=7 cpuhp.parallel=0");
        assert_eq!(c(false, true).label(None), "cpuhp.parallel=0");
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
        assert!(table.contains("| 6.1 | `lpj=7` | 2 | 3 | 20 | 30 | 90 | 0 |"));
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
