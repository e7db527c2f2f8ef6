//! `cargo xtask bench`: boots the release image many times and tabulates the bring-up.
//!
//! Each boot runs with `bench=floor`: the kernel first measures the wake-up floor (a minimal
//! probe started with the same IPIs, see multicore/src/boot/floor.rs), then brings the CPUs up,
//! prints both figures as `floor:` and `bringup:` lines and exits. The runner also times, on the
//! host, QEMU start to the kernel's first line and to `All CPUs started!`. Every point is
//! booted several times; the table gives min / median / max and the ratio to the floor.
//!
//! Then, per accelerator, a boot with `bench=runtime` gives latency distributions measured by
//! the kernel (two VM exits, IPI round trip, empty `run_on`, empty `run_on_all`).
//!
//! Not in this runner yet (issue 5 asks for them): the Linux guest baseline, lock and
//! allocation figures, and plots.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::build;
use crate::qemu::{self, Accel, Qemu};

/// What one boot measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    floor_us: u64,
    bringup_us: u64,
    first_line_ms: f64,
    all_started_ms: f64,
}

/// One row of the table: a configuration and its samples.
struct Point {
    accel: Accel,
    cpus: u32,
    strategy: &'static str,
    delays: &'static str,
    samples: Vec<Sample>,
    /// Boots that failed and were repeated (each is reported under the table).
    failures: Vec<String>,
}

/// The value of `key=` in `line` (`key=123 other=...`).
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Reads one boot's figures from its serial lines; `None` if the boot did not complete.
fn parse_sample(lines: &[(Duration, String)], cpus: u32) -> Result<Sample, String> {
    let find = |prefix: &str| lines.iter().find(|(_, l)| l.starts_with(prefix));
    let floor = find("floor:").ok_or("no floor: line")?;
    let bringup = find("bringup:").ok_or("no bringup: line")?;
    let first = lines.first().ok_or("no output")?;
    let started = find("All CPUs started!").ok_or("no `All CPUs started!`")?;
    let want = Some(cpus as u64);
    if field(&floor.1, "arrived") != want || field(&bringup.1, "online") != want {
        return Err(format!(
            "not every CPU came: `{}` / `{}`",
            floor.1, bringup.1
        ));
    }
    Ok(Sample {
        floor_us: field(&floor.1, "time_us").ok_or("floor: time_us")?,
        bringup_us: field(&bringup.1, "time_us").ok_or("bringup: time_us")?,
        first_line_ms: first.0.as_secs_f64() * 1e3,
        all_started_ms: started.0.as_secs_f64() * 1e3,
    })
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The options of a run.
pub struct BenchOptions {
    /// The smoke run: few points, few boots.
    pub quick: bool,
    /// Where the Markdown results go.
    pub out: Option<PathBuf>,
}

/// Runs the benchmark and writes the results file.
pub fn run(options: BenchOptions) -> Result<(), String> {
    let images = build::kernel()?;
    let qemu = Qemu::detect()?;
    let mut accels = vec![Accel::Tcg];
    if qemu.kvm_unusable.is_none() {
        accels.insert(0, Accel::Kvm);
    }
    let (cpu_counts, combos, boots): (&[u32], &[(&str, &str)], usize) = if options.quick {
        (&[2, 4], &[("parallel", "fast"), ("sequential", "spec")], 2)
    } else {
        (
            &[2, 4, 8, 16, 32, 64, 128],
            &[
                ("parallel", "fast"),
                ("parallel", "spec"),
                ("sequential", "fast"),
                ("sequential", "spec"),
            ],
            5,
        )
    };
    let mut points = Vec::new();
    for &accel in &accels {
        for &cpus in cpu_counts {
            for &(strategy, delays) in combos {
                points.push(Point {
                    accel,
                    cpus,
                    strategy,
                    delays,
                    samples: Vec::new(),
                    failures: Vec::new(),
                });
            }
        }
    }
    let total = points.len() * boots;
    let mut done = 0;
    for point in &mut points {
        for boot in 0..boots {
            done += 1;
            eprint!(
                "\rbench: boot {done}/{total}: {} -smp {} {} {} (#{})        ",
                point.accel.name(),
                point.cpus,
                point.strategy,
                point.delays,
                boot + 1
            );
            // A failed boot is repeated once and reported in the results; a second failure
            // of the same boot ends the run.
            let mut attempt = 0;
            loop {
                let mut cmd = qemu.base_command(point.accel, "microvm", &images.multiboot);
                cmd.args(["-smp", &point.cpus.to_string()]);
                cmd.args([
                    "-append",
                    &format!(
                        "bringup={} delays={} bench=floor",
                        point.strategy, point.delays
                    ),
                ]);
                let out = qemu::run(cmd, Duration::from_secs(180), None)?;
                let sample = if out.exit == Some(33) {
                    parse_sample(&out.timed_lines, point.cpus)
                } else {
                    Err(format!("exit status {:?}", out.exit))
                };
                match sample {
                    Ok(sample) => {
                        point.samples.push(sample);
                        break;
                    }
                    Err(why) if attempt == 0 => {
                        let last = out
                            .serial
                            .lines()
                            .rev()
                            .find(|l| !l.is_empty())
                            .unwrap_or("");
                        point.failures.push(format!("{why}; last line: `{last}`"));
                        attempt += 1;
                    }
                    Err(why) => {
                        return Err(format!(
                            "\nboot failed twice for {} -smp {} {} {}: {why}\n{}{}",
                            point.accel.name(),
                            point.cpus,
                            point.strategy,
                            point.delays,
                            out.serial,
                            out.stderr
                        ))
                    }
                }
            }
        }
    }
    eprintln!();
    let mut runtime = Vec::new();
    let runtime_cpus: &[u32] = if options.quick { &[2] } else { &[4, 64] };
    for &accel in &accels {
        for &cpus in runtime_cpus {
            eprint!(
                "\rbench: runtime latencies, {} -smp {cpus}                    ",
                accel.name()
            );
            let mut cmd = qemu.base_command(accel, "microvm", &images.multiboot);
            cmd.args(["-smp", &cpus.to_string(), "-append", "bench=runtime"]);
            let out = qemu::run(cmd, Duration::from_secs(300), None)?;
            if out.exit != Some(33) {
                return Err(format!(
                    "\nbench=runtime boot failed ({:?}):\n{}{}",
                    out.exit, out.serial, out.stderr
                ));
            }
            for line in out.serial.lines().filter(|l| l.starts_with("bench: name=")) {
                runtime.push((accel, cpus, Latency::parse(line)?));
            }
        }
    }
    eprintln!();
    let mut report = render(&qemu, &points, boots);
    report.push_str(&render_runtime(&runtime));
    print!("{report}");
    let out = options
        .out
        .unwrap_or_else(|| build::root().join("bench/latest.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("bench: results written to {}", out.display());
    Ok(())
}

/// One `bench: name=...` line of the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Latency {
    name: String,
    samples: u64,
    p50_cycles: u64,
    p99_cycles: u64,
    p50_ns: u64,
    p99_ns: u64,
}

impl Latency {
    fn parse(line: &str) -> Result<Latency, String> {
        let get = |key: &str| field(line, key).ok_or(format!("no {key}= in `{line}`"));
        let name = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("name="))
            .ok_or(format!("no name= in `{line}`"))?
            .to_string();
        Ok(Latency {
            name,
            samples: get("samples")?,
            p50_cycles: get("p50_cycles")?,
            p99_cycles: get("p99_cycles")?,
            p50_ns: get("p50_ns")?,
            p99_ns: get("p99_ns")?,
        })
    }
}

fn render_runtime(rows: &[(Accel, u32, Latency)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Runtime latencies (`bench=runtime`, from CPU 0 to the highest CPU index)\n\n\
         | accel | CPUs | measure | samples | p50 cycles | p99 cycles | p50 µs | p99 µs |\n\
         |---|---:|---|---:|---:|---:|---:|---:|"
    );
    for (accel, cpus, l) in rows {
        let _ = writeln!(
            s,
            "| {} | {cpus} | {} | {} | {} | {} | {:.2} | {:.2} |",
            accel.name(),
            l.name,
            l.samples,
            l.p50_cycles,
            l.p99_cycles,
            l.p50_ns as f64 / 1e3,
            l.p99_ns as f64 / 1e3
        );
    }
    // Only under KVM is CPUID a VM exit; TCG emulates it inline, so no ratio is shown there.
    for (accel, cpus, l) in rows
        .iter()
        .filter(|(a, _, l)| *a == Accel::Kvm && l.name == "ipi_round_trip")
    {
        let exits = rows
            .iter()
            .find(|(a, c, e)| a == accel && c == cpus && e.name == "two_cpuid_exits")
            .map(|(_, _, e)| e.p50_cycles);
        if let Some(exits) = exits.filter(|&e| e > 0) {
            let _ = writeln!(
                s,
                "\nIPI round trip vs two VM exits (CPUID), {} -smp {cpus}: {:.1}× (median cycles {} vs {}).",
                accel.name(),
                l.p50_cycles as f64 / exits as f64,
                l.p50_cycles,
                exits
            );
        }
    }
    s
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

fn render(qemu: &Qemu, points: &[Point], boots: usize) -> String {
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = String::new();
    let _ = writeln!(s, "# rust_multicore bring-up benchmark\n");
    let _ = writeln!(
        s,
        "{} · QEMU {} · `-M microvm` · host CPUs: {host_cpus} · KVM: {} · {boots} boots per point\n",
        now_utc(),
        qemu.version_string(),
        qemu.kvm_unusable.as_deref().map_or("usable".to_string(), |why| format!("not usable ({why})"))
    );
    let _ = writeln!(
        s,
        "Bring-up: first INIT to the last AP check-in, TSC-timed in the guest. Floor: the same IPIs \
         starting a probe that only counts itself in (its second run in each boot; the first pays \
         one-time wake-up costs the bring-up after it no longer pays), median of the same boots. Host times: from \
         QEMU start to the kernel's first line, and to `All CPUs started!` (median).\n"
    );
    let _ = writeln!(
        s,
        "| accel | CPUs | strategy | delays | bring-up min µs | median µs | max µs | floor µs | × floor | first line ms | all started ms |"
    );
    let _ = writeln!(s, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let bring: Vec<u64> = p.samples.iter().map(|x| x.bringup_us).collect();
        let floor = median_u64(p.samples.iter().map(|x| x.floor_us).collect());
        let median = median_u64(bring.clone());
        let ratio = if floor > 0 {
            format!("{:.1}", median as f64 / floor as f64)
        } else {
            "–".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            p.accel.name(),
            p.cpus,
            p.strategy,
            p.delays,
            bring.iter().min().copied().unwrap_or(0),
            median,
            bring.iter().max().copied().unwrap_or(0),
            floor,
            ratio,
            median_f64(p.samples.iter().map(|x| x.first_line_ms).collect()),
            median_f64(p.samples.iter().map(|x| x.all_started_ms).collect()),
        );
    }
    let failures: Vec<String> = points
        .iter()
        .flat_map(|p| {
            p.failures.iter().map(move |f| {
                format!(
                    "- {} -smp {} {} {}: {f}",
                    p.accel.name(),
                    p.cpus,
                    p.strategy,
                    p.delays
                )
            })
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(
            s,
            "\nBoots that failed and were repeated ({}):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    let mut counts: Vec<u32> = points.iter().map(|p| p.cpus).collect();
    counts.sort_unstable();
    counts.dedup();
    let _ = writeln!(
        s,
        "\nComputed, not measured: the waits alone of a sequential 10 ms + 2 × 200 µs INIT/SIPI/SIPI \
         bring-up (the seed's sequence): {}.",
        counts
            .iter()
            .map(|&n| format!("{n} CPUs → {:.1} ms", (n - 1) as f64 * 10.4))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(Duration, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (Duration::from_millis(100 + i as u64), l.to_string()))
            .collect()
    }

    #[test]
    fn reads_a_boot() {
        let boot = lines(
            "Rust Multicore Boot Starting...\nfloor: cpus=4 arrived=4 time_us=354 delays=fast\n\
             All CPUs started!\nbringup: cpus=4 online=4 time_us=8561 strategy=parallel delays=fast",
        );
        let s = parse_sample(&boot, 4).unwrap();
        assert_eq!((s.floor_us, s.bringup_us), (354, 8561));
        assert_eq!(s.first_line_ms, 100.0);
        assert_eq!(s.all_started_ms, 102.0);
    }

    #[test]
    fn refuses_incomplete_boots() {
        let boot = lines("floor: cpus=4 arrived=3 time_us=354\nAll CPUs started!\nbringup: cpus=4 online=4 time_us=1");
        assert!(parse_sample(&boot, 4).is_err());
        assert!(parse_sample(&lines("floor: cpus=2 arrived=2 time_us=1"), 2).is_err());
    }

    #[test]
    fn reads_a_latency_line() {
        let l = Latency::parse(
            "bench: name=ipi_round_trip target=3 samples=2000 p50_cycles=44382 p99_cycles=106236 p50_ns=17075 p99_ns=40872",
        )
        .unwrap();
        assert_eq!(l.name, "ipi_round_trip");
        assert_eq!((l.samples, l.p50_cycles, l.p99_ns), (2000, 44382, 40872));
        assert!(Latency::parse("bench: name=x samples=1").is_err());
        let table = render_runtime(&[(Accel::Tcg, 4, l)]);
        assert!(
            table.contains("| TCG | 4 | ipi_round_trip | 2000 | 44382 | 106236 | 17.07 | 40.87 |")
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median_u64(vec![5, 1, 3]), 3);
        assert_eq!(median_f64(vec![2.0, 9.0, 1.0]), 2.0);
    }
}
