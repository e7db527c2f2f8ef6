//! What a run must have printed: pure checks over the serial text, unit-tested on samples.

/// The local APIC mode the BSP line must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// "x2APIC enabled on BSP".
    X2Apic,
    /// "xAPIC enabled on BSP ...".
    XApic,
}

/// A successful bring-up, as the serial output must show it.
#[derive(Debug, Clone)]
pub struct BootExpect {
    /// "Found N CPUs".
    pub found: u32,
    /// APIC IDs by CPU index (index 0 = BSP); these CPUs must be online.
    pub apic_ids: Vec<u32>,
    /// The mode the BSP must report.
    pub apic_mode: ApicMode,
    /// "strategy=" in the bringup line.
    pub strategy: &'static str,
    /// "delays=" in the bringup line.
    pub delays: &'static str,
}

/// The demo's runtime checks (kernel/src/checks.rs), each ending its line with ": ok".
pub const RUNTIME_CHECKS: &[&str] = &[
    "check heap:",
    "check cross-call:",
    "check ipi wake:",
    "check lock spin:",
    "check lock ticket:",
    "check lock rwlock:",
    "check lock irq-safe:",
    "check timer:",
    "check mutual calls:",
];

/// Lines every CPU line is judged by.
fn count_lines(serial: &str, wanted: &str) -> usize {
    serial.lines().filter(|l| l.trim_end() == wanted).count()
}

/// Checks a successful bring-up; returns every problem found.
pub fn boot_problems(serial: &str, expect: &BootExpect) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need_line = |line: String| {
        if count_lines(serial, &line) != 1 {
            problems.push(format!("expected the line `{line}` exactly once"));
        }
    };
    need_line("Rust Multicore Boot Starting...".into());
    need_line(format!("Found {} CPUs", expect.found));
    let n = expect.apic_ids.len();
    for (index, id) in expect.apic_ids.iter().enumerate().skip(1) {
        need_line(format!("Initialized CPU {index} (APIC ID {id})"));
        need_line(format!("CPU {index} online! APIC ID: {id}"));
    }
    if n > 1 {
        need_line("Relocations applied".into());
    }
    need_line("All CPUs started!".into());
    need_line("All checks passed".into());
    let bringup_prefix = format!("bringup: cpus={n} online={n} time_us=");
    let bringup_suffix = format!(" strategy={} delays={}", expect.strategy, expect.delays);
    let bringup: Vec<&str> = serial
        .lines()
        .filter(|l| l.starts_with("bringup:"))
        .collect();
    match bringup.as_slice() {
        [line] => {
            let ok = line
                .strip_prefix(&bringup_prefix)
                .and_then(|rest| rest.strip_suffix(&bringup_suffix))
                .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                problems.push(format!(
                    "bad bringup line `{line}`: want `{bringup_prefix}<T>{bringup_suffix}`"
                ));
            }
        }
        other => problems.push(format!(
            "expected one `bringup:` line, found {}",
            other.len()
        )),
    }
    let mode_ok = match expect.apic_mode {
        ApicMode::X2Apic => count_lines(serial, "x2APIC enabled on BSP") == 1,
        ApicMode::XApic => {
            serial
                .lines()
                .filter(|l| l.starts_with("xAPIC enabled on BSP"))
                .count()
                == 1
        }
    };
    if !mode_ok {
        problems.push(format!("expected the BSP to report {:?}", expect.apic_mode));
    }
    if n > 1 {
        for prefix in ["Boot trampoline copied to 0x", "Page table set: 0x"] {
            if !serial.lines().any(|l| l.starts_with(prefix)) {
                problems.push(format!("expected a line starting `{prefix}`"));
            }
        }
    }
    for check in RUNTIME_CHECKS {
        let ok = serial
            .lines()
            .any(|l| l.starts_with(check) && (l.ends_with(": ok") || l.contains("skipped")));
        if !ok {
            problems.push(format!("expected a line `{check}...: ok`"));
        }
    }
    problems.extend(
        serial
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("PANIC"))
            .map(|l| format!("unexpected `{l}`")),
    );
    problems
}

/// Lines (substrings) that must appear.
pub fn missing(serial: &str, needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| !serial.contains(n.as_str()))
        .map(|n| format!("expected output containing `{n}`"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Rust Multicore Boot Starting...
x2APIC enabled on BSP
Found 3 CPUs
Initialized CPU 1 (APIC ID 1)
Initialized CPU 2 (APIC ID 4)
Boot trampoline copied to 0x8000
Relocations applied
Page table set: 0x111000
CPU 2 online! APIC ID: 4
CPU 1 online! APIC ID: 1
All CPUs started!
bringup: cpus=3 online=3 time_us=120 strategy=parallel delays=fast
check heap: 3 CPUs ...: ok
check cross-call: ...: ok
check ipi wake: ...: ok
check lock spin: 3 CPUs x 1000 = 3000 in 5 us: ok
check lock ticket: ...: ok
check lock rwlock: ...: ok
check lock irq-safe: ...: ok
check timer: ...: ok
check mutual calls: ...: ok
All checks passed
";

    fn expect() -> BootExpect {
        BootExpect {
            found: 3,
            apic_ids: vec![0, 1, 4],
            apic_mode: ApicMode::X2Apic,
            strategy: "parallel",
            delays: "fast",
        }
    }

    #[test]
    fn a_good_run_passes() {
        assert_eq!(boot_problems(GOOD, &expect()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_or_doubled_cpu_fails() {
        let missing = GOOD.replace("CPU 2 online! APIC ID: 4\n", "");
        assert_eq!(boot_problems(&missing, &expect()).len(), 1);
        let doubled = GOOD.replace(
            "CPU 1 online! APIC ID: 1\n",
            "CPU 1 online! APIC ID: 1\nCPU 1 online! APIC ID: 1\n",
        );
        assert_eq!(boot_problems(&doubled, &expect()).len(), 1);
    }

    #[test]
    fn wrong_mode_counts_or_errors_fail() {
        let mut e = expect();
        e.apic_mode = ApicMode::XApic;
        assert!(!boot_problems(GOOD, &e).is_empty());
        let bad = GOOD.replace("online=3", "online=2");
        assert!(!boot_problems(&bad, &expect()).is_empty());
        let bad = GOOD.replace("time_us=120", "time_us=");
        assert!(!boot_problems(&bad, &expect()).is_empty());
        let bad = format!("{GOOD}error: something\n");
        assert!(!boot_problems(&bad, &expect()).is_empty());
        let bad = GOOD.replace("check timer: ...: ok", "check timer: late");
        assert_eq!(boot_problems(&bad, &expect()).len(), 1);
    }
}
