//! The one judge: what a run must have shown, for the demo kernel and the stand-in host alike.
//! Pure functions of the transcript ([`Outcome`]), unit-tested on samples.

use std::fmt;
use std::time::Duration;

use crate::runner::Outcome;

/// The local APIC mode the BSP line must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// "x2APIC enabled on BSP".
    X2Apic,
    /// "xAPIC enabled on BSP ...".
    XApic,
}

/// A successful bring-up of the demo kernel, as the serial output must show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootExpect {
    /// "Found N CPUs".
    pub found: u32,
    /// APIC IDs by CPU index (index 0 = BSP); these CPUs must be online.
    pub apic_ids: Vec<u32>,
    /// The mode the BSP must report.
    pub apic_mode: ApicMode,
    /// "strategy=" in the bringup line.
    pub strategy: String,
    /// "delays=" in the bringup line.
    pub delays: String,
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
    "check scheduler:",
];

/// A runtime check that cannot run in some bring-ups: the exact line it prints instead of its
/// `: ok`, and in which bring-ups that is right. Anywhere else the line is a failure.
struct RuntimeSkip {
    check: &'static str,
    line: &'static str,
    why: &'static str,
    applies: fn(&BootExpect) -> bool,
}

/// Every legitimate skip (kernel/src/checks.rs): two CPUs calling each other need two CPUs.
const RUNTIME_SKIPS: &[RuntimeSkip] = &[RuntimeSkip {
    check: "check mutual calls:",
    line: "check mutual calls: skipped (one CPU)",
    why: "it needs two CPUs and this bring-up starts one",
    applies: |e| e.apic_ids.len() == 1,
}];

/// How QEMU must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exits with this status: 33 or 35 through isa-debug-exit, 0 when Unikraft powers off.
    Exit(i32),
    /// The guest never exits (no exit device): the runner stops QEMU at the first serial line
    /// containing this text, which must come.
    StopAt(String),
}

/// One thing the serial output must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The demo kernel's whole bring-up and every runtime check (see [`boot_problems`]).
    Boot(BootExpect),
    /// This text somewhere in the output.
    Prints(String),
    /// A line that is exactly this text, once.
    Line(String),
    /// A line that ends with this text (a number at the end matches only itself).
    Ends(String),
    /// This text nowhere in the output.
    Absent(String),
    /// "hello: timer ticked N times" with N at least this.
    TimerTicked(u64),
    /// "hello_cpus: timer interrupts on the BSP during the bring-up: N" with N at least this.
    BringupTicks(u64),
    /// "hello: main at 0x..." (or hello_cpus') within 16 MiB above this load base.
    LoadedAt(u64),
    /// "hello: STANDIN_LOWMEM_FREE=" exactly this.
    LowFree(String),
    /// "hello: CR3 0x...; physical: main 0x..., stack 0x..., a Box 0x..." laid out as the
    /// program's memory is on Unikraft: code and stack above 1 MiB, the heap in a low frame
    /// (between the dead boot stack and the legacy area).
    UnikraftLayout,
}

/// Everything a run must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// How QEMU ends.
    pub ending: Ending,
    /// What the serial output shows.
    pub checks: Vec<Check>,
}

/// Everything wrong with a run (empty: it passed), `timeout` being the limit it ran with.
pub fn problems(expect: &Expect, timeout: Duration, out: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if out.kvm_failure {
        problems.push(out.kvm_failure_summary());
    }
    if out.timed_out() {
        problems.push(format!("timed out after {} s", timeout.as_secs()));
    }
    match &expect.ending {
        Ending::Exit(want) if out.exit != Some(*want) => {
            let why = match want {
                33 => " (isa-debug-exit success)",
                35 => " (isa-debug-exit failure)",
                _ => "",
            };
            problems.push(format!("exit status {:?}, want {want}{why}", out.exit));
        }
        Ending::Exit(_) => {}
        Ending::StopAt(line) if !out.stopped() => {
            problems.push(format!("no line with `{line}` came"))
        }
        Ending::StopAt(_) => {}
    }
    for check in &expect.checks {
        problems.extend(check_problems(check, &out.serial));
    }
    problems
}

fn check_problems(check: &Check, serial: &str) -> Vec<String> {
    let one = |problem: Option<String>| problem.into_iter().collect();
    match check {
        Check::Boot(expect) => boot_problems(serial, expect),
        Check::Prints(text) => one((!serial.contains(text.as_str()))
            .then(|| format!("expected output containing `{text}`"))),
        Check::Line(line) => one((count_lines(serial, line) != 1)
            .then(|| format!("expected the line `{line}` exactly once"))),
        Check::Ends(text) => one((!serial
            .lines()
            .any(|l| l.trim_end().ends_with(text.as_str())))
        .then(|| format!("expected a line ending with `{text}`"))),
        Check::Absent(text) => one(serial
            .contains(text.as_str())
            .then(|| format!("printed `{text}`"))),
        Check::TimerTicked(min) => one(at_least(
            rest_of_line(serial, "hello: timer ticked ")
                .and_then(|rest| rest.split(' ').next()?.parse().ok()),
            *min,
            "the timer ticked {n} times during the busy loop",
            "no `hello: timer ticked N times` line",
        )),
        Check::BringupTicks(min) => one(at_least(
            rest_of_line(
                serial,
                "hello_cpus: timer interrupts on the BSP during the bring-up: ",
            )
            .and_then(|rest| rest.trim().parse().ok()),
            *min,
            "{n} timer interrupts during the bring-up",
            "no `timer interrupts ... during the bring-up` line",
        )),
        Check::LoadedAt(base) => one(
            match hex_after(serial, "hello: main at ")
                .or_else(|| hex_after(serial, "hello_cpus: main at "))
            {
                Some(main) if (*base..base + (16 << 20)).contains(&main) => None,
                Some(main) => Some(format!(
                    "main at {main:#x}, want it within 16 MiB above the load base {base:#x}"
                )),
                None => Some("no `hello: main at 0x...` line".into()),
            },
        ),
        Check::LowFree(ranges) => {
            let line = format!("hello: STANDIN_LOWMEM_FREE={ranges}");
            one((!serial.lines().any(|l| l == line)).then(|| format!("missing the line `{line}`")))
        }
        Check::UnikraftLayout => one(unikraft_layout_problem(serial)),
    }
}

/// `None` if `found` is at least `min`; else what is wrong (`{n}` in `low` is the count).
fn at_least(found: Option<u64>, min: u64, low: &str, absent: &str) -> Option<String> {
    match found {
        Some(n) if n >= min => None,
        Some(n) => Some(format!(
            "{}, want at least {min}",
            low.replace("{n}", &n.to_string())
        )),
        None => Some(absent.to_string()),
    }
}

/// The rest of the first line that starts with `prefix`.
fn rest_of_line<'a>(serial: &'a str, prefix: &str) -> Option<&'a str> {
    serial.lines().find_map(|l| l.strip_prefix(prefix))
}

/// The hexadecimal number (`0x` optional) right after `prefix` on the first line that has it.
fn hex_after(serial: &str, prefix: &str) -> Option<u64> {
    let rest = serial.lines().find_map(|l| l.split(prefix).nth(1))?;
    let digits: String = rest
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

fn unikraft_layout_problem(serial: &str) -> Option<String> {
    use standin_core::layout::{LEGACY_AREA_START, LOW_FRAMES_START, ONE_MIB};
    let low = LOW_FRAMES_START..LEGACY_AREA_START;
    let line = serial
        .lines()
        .find(|l| l.starts_with("hello: CR3 ") && l.contains("; physical: "))
        .unwrap_or("");
    let at = |what: &str| hex_after(line, what);
    match (at("main "), at("stack "), at("a Box ")) {
        (Some(main), Some(stack), Some(heap))
            if main >= ONE_MIB && stack >= ONE_MIB && low.contains(&heap) =>
        {
            None
        }
        (Some(main), Some(stack), Some(heap)) => Some(format!(
            "main at physical {main:#x}, stack {stack:#x}, a Box {heap:#x}: want code and stack above 1 MiB, the heap in a low frame ({:#x}-{:#x})",
            low.start, low.end
        )),
        _ => Some(
            "no `hello: CR3 ...; physical: main 0x..., stack 0x..., a Box 0x...` line".into(),
        ),
    }
}

/// How many lines are exactly `wanted` (trailing white space ignored).
fn count_lines(serial: &str, wanted: &str) -> usize {
    serial.lines().filter(|l| l.trim_end() == wanted).count()
}

/// Checks a successful bring-up of the demo kernel; returns every problem found.
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
    problems.extend(runtime_problems(serial, expect));
    problems.extend(
        serial
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("PANIC"))
            .map(|l| format!("unexpected `{l}`")),
    );
    problems
}

/// Each runtime check must end its line with `: ok`, or, where it cannot run in this
/// bring-up, print exactly its skip line. A skip anywhere else is a failure.
fn runtime_problems(serial: &str, expect: &BootExpect) -> Vec<String> {
    let mut problems = Vec::new();
    for check in RUNTIME_CHECKS {
        let lines: Vec<&str> = serial.lines().filter(|l| l.starts_with(check)).collect();
        let skip = RUNTIME_SKIPS
            .iter()
            .find(|s| s.check == *check && (s.applies)(expect));
        match skip {
            Some(skip) if !lines.iter().any(|l| l.trim_end() == skip.line) => {
                problems.push(format!("expected the line `{}` ({})", skip.line, skip.why))
            }
            Some(_) => {}
            None if lines.iter().any(|l| l.ends_with(": ok")) => {}
            None => problems.push(match lines.iter().find(|l| l.contains("skipped")) {
                Some(line) => format!("`{line}`: this check may not skip in this bring-up"),
                None => format!("expected a line `{check}...: ok`"),
            }),
        }
    }
    problems
}

impl fmt::Display for ApicMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            ApicMode::X2Apic => "x2apic",
            ApicMode::XApic => "xapic",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Ended;

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
check scheduler: ...: ok
All checks passed
";

    fn expect() -> BootExpect {
        BootExpect {
            found: 3,
            apic_ids: vec![0, 1, 4],
            apic_mode: ApicMode::X2Apic,
            strategy: "parallel".into(),
            delays: "fast".into(),
        }
    }

    pub(crate) fn outcome(serial: &str, exit: Option<i32>, ended: Ended) -> Outcome {
        Outcome {
            serial: serial.into(),
            exit,
            ended: Some(ended),
            ..Outcome::default()
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

    #[test]
    fn a_runtime_check_skips_only_where_it_must_and_with_its_reason() {
        // Three CPUs: no check may skip, whatever the reason given.
        for skipped in [
            "check mutual calls: skipped (one CPU)",
            "check timer: skipped (no TSC-deadline)",
        ] {
            let check = skipped.split(" skipped").next().unwrap();
            let line = GOOD.lines().find(|l| l.starts_with(check)).unwrap();
            let bad = GOOD.replace(line, skipped);
            assert_eq!(
                boot_problems(&bad, &expect()),
                vec![format!(
                    "`{skipped}`: this check may not skip in this bring-up"
                )]
            );
        }
        // One CPU: the mutual calls must skip, saying why, and nothing else may.
        let one = "Rust Multicore Boot Starting...
x2APIC enabled on BSP
Found 1 CPUs
All CPUs started!
bringup: cpus=1 online=1 time_us=3 strategy=parallel delays=fast
check heap: 1 CPUs ...: ok
check cross-call: ...: ok
check ipi wake: woke 0/0 halted CPUs in 1 us: ok
check lock spin: ...: ok
check lock ticket: ...: ok
check lock rwlock: ...: ok
check lock irq-safe: ...: ok
check timer: ...: ok
check mutual calls: skipped (one CPU)
check scheduler: ...: ok
All checks passed
";
        let alone = BootExpect {
            found: 1,
            apic_ids: vec![0],
            ..expect()
        };
        assert_eq!(boot_problems(one, &alone), Vec::<String>::new());
        let other_reason = one.replace("skipped (one CPU)", "skipped (no peer)");
        assert_eq!(
            boot_problems(&other_reason, &alone),
            vec!["expected the line `check mutual calls: skipped (one CPU)` (it needs two CPUs and this bring-up starts one)".to_string()]
        );
        let timer = one.replace("check timer: ...: ok", "check timer: skipped (one CPU)");
        assert_eq!(boot_problems(&timer, &alone).len(), 1);
    }

    #[test]
    fn exact_lines_and_endings() {
        let serial = "Found 2 CPUs\n6 disabled CPU entries ignored\n";
        let line = |l: &str| Check::Line(l.into());
        assert!(check_problems(&line("6 disabled CPU entries ignored"), serial).is_empty());
        // The old expectation `6 ` matched any line with a 6 and a space in it.
        assert!(!check_problems(&line("16 disabled CPU entries ignored"), serial).is_empty());
        assert!(!check_problems(&line("6 disabled CPU entries"), serial).is_empty());
        let doubled = format!("{serial}6 disabled CPU entries ignored\n");
        assert!(!check_problems(&line("6 disabled CPU entries ignored"), &doubled).is_empty());

        let stop = Expect {
            ending: Ending::StopAt("bringup:".into()),
            checks: vec![Check::Prints("Found 2".into())],
        };
        let limit = Duration::from_secs(60);
        assert!(problems(&stop, limit, &outcome(serial, None, Ended::Stopped)).is_empty());
        assert_eq!(
            problems(&stop, limit, &outcome(serial, None, Ended::TimedOut)),
            ["timed out after 60 s", "no line with `bringup:` came"]
        );
        let exit = Expect {
            ending: Ending::Exit(35),
            checks: vec![Check::Absent("PANIC".into())],
        };
        assert_eq!(
            problems(&exit, limit, &outcome("PANIC\n", Some(33), Ended::Exited)),
            [
                "exit status Some(33), want 35 (isa-debug-exit failure)",
                "printed `PANIC`"
            ]
        );
    }
}
