//! The bring-up's phase breakdown: each boot's `phases:` lines (one per AP: the TSC stamps of
//! multicore/src/boot/phases.rs in ns from the first INIT) turned into the time each phase
//! takes, median and p99 over every AP of every boot of a point, and where the last AP's time
//! went.

use std::fmt::Write as _;

use super::bringup::Point;

/// The stamps of a `phases:` line, in the order the kernel prints them.
pub const STAMPS: [&str; 9] = [
    "init", "sipi", "sipi2", "real", "long", "entry", "rust", "arrived", "online",
];

/// The phases as (from, to, what it is), in an AP's order (`sipi2` is not on the way).
const SEGMENTS: [(&str, &str, &str); 7] = [
    ("init", "sipi", "BSP: INIT sent → SIPI sent"),
    ("sipi", "real", "SIPI → first instruction (wake-up)"),
    ("real", "long", "real → 64-bit mode"),
    ("long", "entry", "64-bit → long-mode entry"),
    ("entry", "rust", "long-mode entry → Rust"),
    ("rust", "arrived", "Rust → checked in"),
    ("arrived", "online", "checked in → online"),
];

/// One AP's stamps (ns from the first INIT; `None`: not taken).
pub type ApStamps = [Option<i64>; 9];

/// Every `phases:` line of one boot's output. Each stamp of [`STAMPS`] must be there, once;
/// stamps of other names are skipped, so that kernels from before a phase was added or taken
/// out (`bench --compare` boots them beside this one) still read.
pub fn parse(serial: &str) -> Result<Vec<ApStamps>, String> {
    let mut aps = Vec::new();
    for line in serial
        .lines()
        .filter_map(|l| l.trim().strip_prefix("phases: "))
    {
        let mut stamps: [Option<Option<i64>>; 9] = [None; 9];
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.starts_with("cpu=")) {
            return Err(format!("`phases: {line}`: no cpu="));
        }
        for word in words {
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| format!("`phases: {line}`: `{word}` is not name=value"))?;
            let Some(i) = STAMPS.iter().position(|s| *s == name) else {
                continue;
            };
            let value = match value {
                "-" => None,
                v => Some(v.parse().map_err(|_| format!("`phases: {line}`: {word}"))?),
            };
            if stamps[i].replace(value).is_some() {
                return Err(format!("`phases: {line}`: {name} twice"));
            }
        }
        let mut ap: ApStamps = [None; 9];
        for (i, name) in STAMPS.iter().enumerate() {
            ap[i] = stamps[i].ok_or_else(|| format!("`phases: {line}`: no {name}"))?;
        }
        aps.push(ap);
    }
    Ok(aps)
}

/// `ap`'s stamp `name` (one of [`STAMPS`]), if taken.
pub fn stamp(ap: &ApStamps, name: &str) -> Option<i64> {
    ap[STAMPS.iter().position(|s| *s == name)?]
}

/// The `q` quantile (0..=1) of `v`, nearest rank; 0 for none.
fn quantile(v: &mut [i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Median and p99 (ns) of one segment over every AP of every boot.
pub fn segment(boots: &[Vec<ApStamps>], from: &str, to: &str) -> (i64, i64) {
    let mut v: Vec<i64> = boots
        .iter()
        .flatten()
        .filter_map(|ap| Some(stamp(ap, to)? - stamp(ap, from)?))
        .collect();
    (quantile(&mut v.clone(), 0.5), quantile(&mut v, 0.99))
}

/// Median over boots of the latest `name` stamp of the boot (when the last AP got there).
pub fn last(boots: &[Vec<ApStamps>], name: &str) -> i64 {
    let mut v: Vec<i64> = boots
        .iter()
        .filter_map(|b| b.iter().filter_map(|ap| stamp(ap, name)).max())
        .collect();
    quantile(&mut v, 0.5)
}

fn us(ns: i64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The breakdown tables for the points that have phase lines.
pub fn render(points: &[Point]) -> String {
    let points: Vec<&Point> = points.iter().filter(|p| !p.phases.is_empty()).collect();
    if points.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Where the bring-up's time goes (per-AP phase stamps)\n\n\
         Each AP stamps the TSC at each phase of its way up (multicore/src/boot/phases.rs) and the \
         BSP stamps its INIT and SIPI to it; per point, every AP of every boot: median / p99 of \
         each phase in µs. \"Last\" columns: when the last AP was sent its SIPI, woke and checked \
         in, µs from the first INIT (median over boots), against the floor of the same boots and the \
         time its BSP took to send every SIPI.\n"
    );
    let _ = write!(s, "| accel | CPUs | strategy | delays |");
    for (_, _, what) in SEGMENTS {
        let _ = write!(s, " {what} |");
    }
    let _ = writeln!(
        s,
        " last SIPI | last wake | last check-in | floor | floor: last SIPI |"
    );
    let _ = write!(s, "|---|---:|---|---|");
    for _ in SEGMENTS {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s, "---:|---:|---:|---:|---:|");
    for p in points {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            p.accel.name(),
            p.cpus,
            p.strategy,
            p.delays
        );
        for (from, to, _) in SEGMENTS {
            let (median, p99) = segment(&p.phases, from, to);
            let _ = write!(s, " {} / {} |", us(median), us(p99));
        }
        let _ = writeln!(
            s,
            " {} | {} | {} | {} | {} |",
            us(last(&p.phases, "sipi")),
            us(last(&p.phases, "real")),
            us(last(&p.phases, "arrived")),
            p.floor_us(),
            p.floor_sipis_us()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "floor: cpus=3 arrived=3 time_us=100\n\
        phases: cpu=1 init=10 sipi=40 sipi2=- real=100 long=110 entry=116 rust=118 arrived=122 online=130\n\
        phases: cpu=2 init=20 sipi=50 sipi2=900 real=200 long=212 entry=219 rust=222 arrived=230 online=-\n";

    #[test]
    fn reads_every_ap_line() {
        let aps = parse(BOOT).unwrap();
        assert_eq!(aps.len(), 2);
        assert_eq!(stamp(&aps[0], "sipi2"), None);
        assert_eq!(stamp(&aps[1], "sipi2"), Some(900));
        assert_eq!(stamp(&aps[1], "online"), None);
        assert_eq!(stamp(&aps[1], "arrived"), Some(230));
    }

    #[test]
    fn refuses_a_garbled_line() {
        assert!(parse("phases: cpu=1 init=10 sipi=x").is_err());
        assert!(parse("phases: cpu=1 init=10").is_err());
        assert!(parse("phases: init=10").is_err());
        assert!(parse("phases: cpu=1 init=10 init=11").is_err());
        // A stamp this bench does not know (an older kernel's) is skipped.
        let old = "phases: cpu=1 init=1 sipi=2 sipi2=- real=3 protected=4 long=5 entry=6 rust=7 arrived=8 online=9";
        assert_eq!(parse(old).unwrap()[0][4], Some(5));
    }

    #[test]
    fn segments_and_last_stamps() {
        let boots = vec![parse(BOOT).unwrap()];
        assert_eq!(segment(&boots, "sipi", "real"), (60, 150));
        assert_eq!(
            segment(&boots, "arrived", "online"),
            (8, 8),
            "missing stamps are left out"
        );
        assert_eq!(last(&boots, "arrived"), 230);
        assert_eq!(quantile(&mut [5, 1, 3, 2, 4], 0.5), 3);
        assert_eq!(quantile(&mut [], 0.99), 0);
    }
}
