//! The run's data as CSV files beside the results, and PNG plots drawn from them by
//! scripts/plot_bench.py (matplotlib, installed into target/bench-venv by
//! scripts/bench-setup.sh: a Rust plotting crate would need a font stack for its text; Python's
//! matplotlib brings its own).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::bringup::Point;
use super::runtime::RuntimeBoot;
use super::sched::{self, SchedResults};
use crate::build;
use crate::linux_guest::{self, LinuxRow};

/// Writes `<stem>-bringup.csv`, `<stem>-linux.csv`, `<stem>-throughput.csv` and
/// `<stem>-sched.csv` in `dir` and draws `<stem>-bringup.png`, `<stem>-throughput.png` and
/// `<stem>-sched.png`; returns the plots' paths.
pub fn write(
    dir: &Path,
    stem: &str,
    points: &[Point],
    runtime: &[RuntimeBoot],
    linux: &[LinuxRow],
    sched: &SchedResults,
) -> Result<Vec<PathBuf>, String> {
    let prefix = dir.join(stem);
    let file = |suffix: &str| PathBuf::from(format!("{}-{suffix}", prefix.display()));
    save(file("bringup.csv"), bringup_csv(points))?;
    save(file("linux.csv"), linux_csv(linux))?;
    save(file("throughput.csv"), throughput_csv(runtime))?;
    save(file("sched.csv"), sched::csv(sched))?;
    draw(&prefix, &[])?;
    let plots = vec![
        file("bringup.png"),
        file("throughput.png"),
        file("sched.png"),
    ];
    check_written(&plots)?;
    Ok(plots)
}

/// The scheduler stage alone (`cargo xtask bench --only sched`): `<stem>-sched.csv` and
/// `<stem>-sched.png`.
pub fn write_sched(dir: &Path, stem: &str, sched: &SchedResults) -> Result<Vec<PathBuf>, String> {
    let prefix = dir.join(stem);
    let file = |suffix: &str| PathBuf::from(format!("{}-{suffix}", prefix.display()));
    save(file("sched.csv"), sched::csv(sched))?;
    draw(&prefix, &["--only", "sched"])?;
    let plots = vec![file("sched.png")];
    check_written(&plots)?;
    Ok(plots)
}

fn save(path: PathBuf, text: String) -> Result<(), String> {
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn check_written(plots: &[PathBuf]) -> Result<(), String> {
    for plot in plots {
        if !plot.is_file() {
            return Err(format!("plots: {} was not written", plot.display()));
        }
    }
    Ok(())
}

/// Runs scripts/plot_bench.py on the CSVs at `prefix` (matplotlib set up first).
fn draw(prefix: &Path, args: &[&str]) -> Result<(), String> {
    let setup = build::root().join("scripts/bench-setup.sh");
    let out = Command::new("bash")
        .arg(&setup)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", setup.display()))?;
    if !out.status.success() {
        return Err(format!(
            "plots: {} failed:\n{}",
            setup.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let script = build::root().join("scripts/plot_bench.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(prefix)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "plots: {} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn bringup_csv(points: &[Point]) -> String {
    let mut s = String::from("accel,cpus,strategy,delays,min_us,median_us,max_us,floor_us\n");
    for p in points.iter().filter(|p| !p.samples.is_empty()) {
        let bring = p.samples.iter().map(|x| x.bringup_us);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            p.accel.name(),
            p.cpus,
            p.strategy,
            p.delays,
            bring.clone().min().unwrap_or(0),
            p.median_us(),
            bring.max().unwrap_or(0),
            p.floor_us()
        );
    }
    s
}

/// Linux's best configuration per N (it runs under TCG only, see linux_guest/mod.rs).
fn linux_csv(rows: &[LinuxRow]) -> String {
    let mut s = String::from("accel,cpus,kernel,config,median_ms\n");
    for (cpus, row) in linux_guest::best(rows) {
        let _ = writeln!(
            s,
            "TCG,{cpus},{},\"{}\",{:.3}",
            row.kernel,
            row.config,
            row.median_ms()
        );
    }
    s
}

fn throughput_csv(boots: &[RuntimeBoot]) -> String {
    let mut s = String::from("accel,vm_cpus,name,working,mops,ns_per_op\n");
    for b in boots {
        for t in &b.throughputs {
            let _ = writeln!(
                s,
                "{},{},{},{},{:.6},{:.1}",
                b.accel.name(),
                b.cpus,
                t.name,
                t.working,
                t.mops(b.tsc_hz),
                t.ns_per_op(b.tsc_hz)
            );
        }
    }
    s
}

/// Markdown images for the results file (paths relative to it: the plots sit beside it).
pub fn render_links(plots: &[PathBuf]) -> String {
    let mut s = String::from("\n## Plots\n\n");
    for plot in plots {
        let name = plot
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let _ = writeln!(s, "![{name}]({name})\n");
    }
    s
}
