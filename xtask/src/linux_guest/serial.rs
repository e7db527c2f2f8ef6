//! What one boot's serial lines say: the bring-up time, the CPU count Linux brought up, and
//! whether it ran its TSC at the rate it was given.

use std::time::Duration;

use super::{DONE, DOOMED, START};

/// The bring-up time of one boot, in ms, from its timed serial lines; checks that all `cpus`
/// CPUs came up.
pub(super) fn bringup_ms(lines: &[(Duration, String)], cpus: u32) -> Result<f64, String> {
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
pub(super) fn tsc_check(
    lines: &[&str],
    khz: u64,
    derived_lpj: Option<u64>,
) -> Result<Option<u64>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(text: &str) -> Vec<(Duration, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (Duration::from_millis(1000 + 250 * i as u64), l.to_string()))
            .collect()
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
}
