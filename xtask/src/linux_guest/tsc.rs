//! The TSC rate every guest is given (`tsc_early_khz=`), measured on the host (see "The TSC
//! rate" in the module documentation), and the `lpj=` value derived from it.

use std::time::Duration;

/// The TSC rate the guests are given, and how it was obtained.
pub(super) struct TscRate {
    pub(super) khz: u64,
    pub(super) from: String,
}

/// The `lpj=` value Linux derives from a TSC rate for its boot CPU when it trusts the TSC
/// (`lpj_fine`, `tsc_khz * 1000 / HZ` rounded down): what its default boots print as
/// `Calibrating delay loop (skipped), value calculated using timer frequency.. (lpj=N)`.
pub(super) fn lpj_of(tsc_khz: u64, hz: u64) -> u64 {
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
pub(super) fn host_tsc_rate() -> Result<TscRate, String> {
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
pub(super) fn host_tsc_rate() -> Result<TscRate, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_rate_over_an_interval() {
        assert_eq!(lpj_of(2_600_000, 250), 10_400_000);
        assert_eq!(lpj_of(2_445_423, 250), 9_781_692);
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
}
