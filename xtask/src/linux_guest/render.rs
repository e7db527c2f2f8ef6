//! The baseline's results section: every kernel × configuration × CPU count, the cells not
//! booted, the `lpj=` values and the TSC rate used, then the best configuration per CPU count.

use std::fmt::Write as _;

use super::{LinuxRow, START};

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
         at -smp 2, 59 vs 55 ms at -smp 8; the table is in xtask/src/linux_guest/mod.rs) show it \
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
    use super::super::median;
    use super::super::tests::row;
    use super::*;

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
    fn names_configurations_across_kernels() {
        assert_eq!(
            config_kind("lpj=7 cpuhp.parallel=0"),
            "lpj= cpuhp.parallel=0"
        );
        assert_eq!(lpj_word("lpj=7 cpuhp.parallel=0"), "lpj=7");
    }
}
