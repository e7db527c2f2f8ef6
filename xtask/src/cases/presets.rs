//! The table's presets: what a whole successful run of a stand-in program shows, written once
//! here instead of on every row (the words `hello`, `hello_cpus` and `alone` of matrix.txt).

use crate::check::Check;

/// A preset word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preset {
    /// `hello`: the stand-in's hello program.
    Hello,
    /// `hello_cpus`: the multicore example starting every CPU.
    HelloCpus,
    /// `alone "E"`: the example refusing to start the CPUs with error E.
    Alone(String),
}

/// The checks of `preset` for a run with `cpus` CPUs of a program loaded at `load_base`. On
/// the real Unikraft kernel the checks that name the stand-in (its messages, its uname, where
/// it loads programs) are left out: Unikraft says none of that.
pub fn checks(preset: &Preset, cpus: u32, load_base: u64, on_unikraft: bool) -> Vec<Check> {
    let mut checks = match preset {
        Preset::Hello => hello(load_base),
        Preset::HelloCpus => hello_cpus(cpus, load_base),
        Preset::Alone(error) => alone(error),
    };
    if on_unikraft {
        checks.retain(|c| match c {
            Check::Prints(t) => !t.starts_with("standin: ") && !t.contains("~standin"),
            Check::LoadedAt(_) => false,
            _ => true,
        });
    }
    checks
}

fn prints(lines: &[&str]) -> Vec<Check> {
    lines.iter().map(|l| Check::Prints(l.to_string())).collect()
}

/// The hello program succeeding: ring 0, Unikraft's uname, the page-table root and the
/// program's code in low memory, the STANDIN_* variables, std's collections, the timer
/// ticking, a clean exit with the dead boot stack intact.
fn hello(load_base: u64) -> Vec<Check> {
    let mut checks = prints(&[
        "standin: running /standin_hello in ring 0, interrupts on",
        "hello: CS=0x8 (ring 0), CR0=0x8001",
        "hello: uname Unikraft standin 5.15.148-Kiviuq 0.20.0~standin x86_64",
        " CR3 0x11000 APIC_BASE ",
        "hello: CR3 0x11000; physical: main 0x",
        "hello: STANDIN_PHYS_OFFSET=0xffffff8000000000",
        "hello: STANDIN_RSDP=0x",
        "hello: STANDIN_TIMER_HZ=1000",
        "hello: Vec sum 5050, HashMap 100 entries (7² = 49), thread_local 3",
        "hello: exiting with status 0",
        "standin: /standin_hello exited with status 0 after",
        "standin: system calls: ",
        "standin: low memory intact: dead boot stack at 0x1000-0x10fff",
    ]);
    checks.extend([
        Check::TimerTicked(5),
        Check::LoadedAt(load_base),
        Check::LowFree("0x1000-0x11000".into()),
        Check::UnikraftLayout,
    ]);
    checks
}

/// The multicore example succeeding: every AP greets and runs main's closure, `N/N CPUs
/// online`, the dead boot stack intact (every page the library borrowed given back as it was).
fn hello_cpus(cpus: u32, load_base: u64) -> Vec<Check> {
    let mut checks = prints(&[
        "standin: running /hello_cpus in ring 0, interrupts on",
        "hello_cpus: main runs on the BSP",
        "hello_cpus: host Unikraft 0.20.0~standin (5.15.148-Kiviuq): the library's Unikraft (x86_64) layout",
    ]);
    checks.push(Check::Prints(format!(
        "hello_cpus: {cpus}/{cpus} CPUs online"
    )));
    checks.push(Check::Prints(format!(
        "hello_cpus: {} APs ran the closure",
        cpus - 1
    )));
    checks.extend(prints(&[
        "BSP's own TLS counter: 0",
        "standin: /hello_cpus exited with status 0 after",
        "standin: low memory intact: dead boot stack at 0x1000-0x10fff",
    ]));
    checks.push(Check::LoadedAt(load_base));
    if cpus > 1 {
        // The preset's free range is the dead boot stack, all of it usable; the tables go into
        // the library's own memory (the program's heap, below 4 GiB here).
        checks.extend(prints(&[
            "Low memory: 16 pages named free below 1 MiB, 0 refused",
            "Boot trampoline copied to 0x8000",
            "(in the library's memory)",
        ]));
    }
    for cpu in 1..cpus {
        checks.push(Check::Prints(format!(
            "Hello World from CPU {cpu} (APIC ID "
        )));
    }
    checks.push(Check::Prints(
        "hello_cpus: CPU identities: BSP Some((0, HostedBsp)), 0 AP(s) misidentified".into(),
    ));
    if cpus > 1 {
        // main's parallel sum on the scheduler, equal to the sequential one (the example's exit
        // status says so too); its speedup is the benchmark's business.
        checks.push(Check::Prints(format!(
            "hello_cpus: parallel sum of 20000 leaves on {cpus} workers = 0x5b8f7f38e84b9f17 (sequential 0x5b8f7f38e84b9f17)"
        )));
    }
    checks
}

/// A wrong setting: an error naming it, main going on alone, the host intact.
fn alone(error: &str) -> Vec<Check> {
    let mut checks = vec![Check::Prints(format!(
        "hello_cpus: cannot start the other CPUs: {error}"
    ))];
    checks.extend(prints(&[
        "hello_cpus: main goes on alone: 1/1 CPUs online",
        "standin: /hello_cpus exited with status 2 after",
        "standin: low memory intact: dead boot stack at 0x1000-0x10fff",
    ]));
    checks
}
