//! `bench --compare A B ...`: the bring-up of several kernel images measured in one run, for the
//! before and after of a change. The images' boots are interleaved (A, B, A, B, ...) so that
//! the host's drift over the run falls on each alike; each is a `bench=floor` boot, the floor
//! and the bring-up measured in the same boot.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::bringup::{median_u64, Sample};
use super::phases::{self, ApStamps};
use super::{floor_boot, now_utc};
use crate::qemu::{Accel, Qemu};

/// One image at one CPU count.
pub struct Compared {
    pub image: PathBuf,
    pub cpus: u32,
    pub samples: Vec<Sample>,
    pub phases: Vec<Vec<ApStamps>>,
    pub failures: Vec<String>,
}

/// Boots every image `boots` times at each of `cpus` (parallel/fast), interleaved.
pub fn measure(
    qemu: &Qemu,
    images: &[PathBuf],
    accel: Accel,
    cpus: &[u32],
    boots: usize,
) -> Result<Vec<Compared>, String> {
    let mut rows = Vec::new();
    for &n in cpus {
        let first = rows.len();
        for image in images {
            rows.push(Compared {
                image: image.clone(),
                cpus: n,
                samples: Vec::new(),
                phases: Vec::new(),
                failures: Vec::new(),
            });
        }
        for boot in 0..boots {
            for row in &mut rows[first..] {
                eprint!(
                    "\rbench --compare: -smp {n} boot {}/{boots}: {}        ",
                    boot + 1,
                    row.image.display()
                );
                let (sample, aps) = floor_boot(
                    qemu,
                    &row.image,
                    accel,
                    n,
                    ("parallel", "fast"),
                    &mut row.failures,
                )?;
                row.samples.push(sample);
                row.phases.push(aps);
            }
        }
    }
    eprintln!();
    Ok(rows)
}

/// Quartiles of the boots' own ratios, bring-up / floor.
fn ratio_quartiles(samples: &[Sample]) -> [f64; 3] {
    let mut r: Vec<f64> = samples
        .iter()
        .filter(|s| s.floor_us > 0)
        .map(|s| s.bringup_us as f64 / s.floor_us as f64)
        .collect();
    if r.is_empty() {
        return [0.0; 3];
    }
    r.sort_by(|a, b| a.total_cmp(b));
    [r.len() / 4, r.len() / 2, 3 * r.len() / 4].map(|i| r[i])
}

pub fn render(qemu: &Qemu, accel: Accel, rows: &[Compared], boots: usize) -> String {
    let mut s = format!(
        "# Bring-up compared: kernel images in one run\n\n{} · QEMU {} · `-M microvm` · {} · \
         parallel/fast · {boots} boots per image and CPU count, interleaved\n\n",
        now_utc(),
        qemu.version_string(),
        accel.name()
    );
    s.push_str(
        "Each boot measures the floor and then the bring-up (`bench=floor`). \"× floor\" is the \
         median bring-up over the median floor of the same image's boots, as issue 13's \
         targets read; the quartiles are of each boot's own ratio. Phase columns: median over \
         every AP of every boot (µs); \"last SIPI\": median over boots of when the last AP was \
         sent its SIPI.\n\n",
    );
    s.push_str(
        "| image | CPUs | floor µs | bring-up µs | × floor | boots' ratios p25 / p50 / p75 | \
         last SIPI µs | SIPI → first instruction | real → checked in |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for r in rows {
        let floor = median_u64(r.samples.iter().map(|x| x.floor_us).collect());
        let bringup = median_u64(r.samples.iter().map(|x| x.bringup_us).collect());
        let [q1, q2, q3] = ratio_quartiles(&r.samples);
        let _ = writeln!(
            s,
            "| {} | {} | {floor} | {bringup} | {:.2} | {q1:.2} / {q2:.2} / {q3:.2} | {:.0} | {:.1} | {:.1} |",
            r.image.display(),
            r.cpus,
            bringup as f64 / floor.max(1) as f64,
            phases::last(&r.phases, "sipi") as f64 / 1000.0,
            phases::segment(&r.phases, "sipi", "real").0 as f64 / 1000.0,
            phases::segment(&r.phases, "real", "arrived").0 as f64 / 1000.0,
        );
    }
    for r in rows.iter().filter(|r| !r.failures.is_empty()) {
        let _ = writeln!(
            s,
            "\nRepeated boots of {} at {} CPUs: {}",
            r.image.display(),
            r.cpus,
            r.failures.join("; ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(floor_us: u64, bringup_us: u64) -> Sample {
        Sample {
            floor_us,
            floor_sipis_us: 0,
            bringup_us,
            first_line_ms: 0.0,
            all_started_ms: 0.0,
        }
    }

    #[test]
    fn quartiles_of_the_boots_ratios() {
        let s: Vec<_> = [(100, 150), (100, 200), (100, 100), (200, 500)]
            .map(|(f, b)| sample(f, b))
            .into();
        assert_eq!(ratio_quartiles(&s), [1.5, 2.0, 2.5]);
        assert_eq!(ratio_quartiles(&[sample(0, 5)]), [0.0; 3]);
    }
}
