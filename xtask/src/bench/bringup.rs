//! The bring-up table: every boot's `floor:` and `bringup:` lines and host-side times, per
//! accelerator × CPU count × strategy × delay policy, with min / median / max and the ratio to
//! the wake-up floor measured in the same boots.

use std::fmt::Write as _;
use std::time::Duration;

use super::{field, now_utc};
use crate::qemu::{Accel, Qemu};

/// What one boot measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub floor_us: u64,
    /// The floor's SIPI loop: first INIT to the last AP's SIPI sent.
    pub floor_sipis_us: u64,
    pub bringup_us: u64,
    pub first_line_ms: f64,
    pub all_started_ms: f64,
}

/// One row of the table: a configuration and its samples.
pub struct Point {
    pub accel: Accel,
    pub cpus: u32,
    pub strategy: &'static str,
    pub delays: &'static str,
    pub samples: Vec<Sample>,
    /// Each boot's per-AP phase stamps (phases.rs), where the boot printed them.
    pub phases: Vec<Vec<super::phases::ApStamps>>,
    /// Boots that failed and were repeated (each is reported under the table).
    pub failures: Vec<String>,
}

impl Point {
    /// Median bring-up time, µs.
    pub fn median_us(&self) -> u64 {
        median_u64(self.samples.iter().map(|x| x.bringup_us).collect())
    }

    /// Median time the floor's BSP took to send every AP its SIPI, µs.
    pub fn floor_sipis_us(&self) -> u64 {
        median_u64(self.samples.iter().map(|x| x.floor_sipis_us).collect())
    }

    /// Median floor measured in the same boots, µs.
    pub fn floor_us(&self) -> u64 {
        median_u64(self.samples.iter().map(|x| x.floor_us).collect())
    }
}

/// Reads one boot's figures from its serial lines; `None` if the boot did not complete.
pub fn parse_sample(lines: &[(Duration, String)], cpus: u32) -> Result<Sample, String> {
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
        floor_sipis_us: field(&floor.1, "sipis_sent_us").ok_or("floor: sipis_sent_us")?,
        bringup_us: field(&bringup.1, "time_us").ok_or("bringup: time_us")?,
        first_line_ms: first.0.as_secs_f64() * 1e3,
        all_started_ms: started.0.as_secs_f64() * 1e3,
    })
}

/// `value / base` with one decimal, for the tables' "×" columns; "–" without a base.
pub fn ratio(value: u64, base: u64) -> String {
    if base > 0 {
        format!("{:.1}", value as f64 / base as f64)
    } else {
        "–".into()
    }
}

pub fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

pub fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn render(qemu: &Qemu, points: &[Point], boots: usize) -> String {
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
        let ratio = ratio(median, floor);
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
            "Rust Multicore Boot Starting...\nfloor: cpus=4 arrived=4 time_us=354 sipis_sent_us=80 delays=fast\n\
             All CPUs started!\nbringup: cpus=4 online=4 time_us=8561 strategy=parallel delays=fast",
        );
        let s = parse_sample(&boot, 4).unwrap();
        assert_eq!(
            (s.floor_us, s.floor_sipis_us, s.bringup_us),
            (354, 80, 8561)
        );
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
    fn medians() {
        assert_eq!(median_u64(vec![5, 1, 3]), 3);
        assert_eq!(median_f64(vec![2.0, 9.0, 1.0]), 2.0);
    }
}
