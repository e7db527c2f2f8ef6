//! `bench --only host-sched`: where the vCPU threads' host time goes during the bring-up.
//!
//! The guest's phase stamps (phases.rs) say how long each AP took, not why: on a host with
//! fewer cores than vCPUs, an AP whose thread is runnable but waits in a host run queue (behind
//! the BSP's spinning thread, say) looks exactly like one that is working. Each boot here runs
//! under `perf record -a` with the scheduler's switch and wake-up events and the serial
//! console's `writev` calls. The write of the newline that ends `Starting N APs in parallel`
//! (printed just before the bring-up's clock starts) places the guest's clock on the host's:
//! under TCG the guest's TSC is the host's. Each AP's SIPI → check-in is then split into the
//! time its vCPU thread ran, waited runnable (queued), and slept (blocked: halted until QEMU
//! took the SIPI, or waiting for a lock), and the BSP's thread likewise over the whole
//! bring-up. One untraced boot is interleaved with each traced one, to show what tracing costs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::bringup::{self, median_u64};
use super::phases::{self, ApStamps};
use super::{floor_boot, floor_command, now_utc};
use crate::qemu::{Accel, Qemu};
use crate::runner::{self, Watch};

/// A scheduler or console event of the trace, at a host time in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// `prev` left host CPU `cpu` (still runnable: preempted) and `next` got it.
    Switch {
        cpu: u32,
        prev: u32,
        prev_runnable: bool,
        next: u32,
    },
    /// `tid` was woken.
    Waking { tid: u32 },
    /// `tid` began a `writev` to fd 1 (the serial console).
    ConsoleWrite { tid: u32 },
    /// `tid`'s `writev` returned `bytes`.
    WriteDone { tid: u32, bytes: u64 },
}

/// A parsed `perf script` of one boot.
#[derive(Debug, Default)]
struct Trace {
    /// Every event in time order (ns).
    events: Vec<(u64, Event)>,
    /// vCPU threads by thread id: their CPU index (`CPU 3/TCG` is 3).
    vcpus: HashMap<u32, u32>,
    /// Each thread's name and process, by thread id, as the trace gives them.
    comms: HashMap<u32, String>,
    processes: HashMap<u32, u32>,
}

/// The CPU index of a QEMU vCPU thread's name (`-name ...,debug-threads=on`): `CPU 3/TCG`.
fn vcpu_index(comm: &str) -> Option<u32> {
    comm.strip_prefix("CPU ")?.split_once('/')?.0.parse().ok()
}

/// `secs.nanos` (perf script --ns) as ns.
fn parse_time(text: &str) -> Option<u64> {
    let (secs, frac) = text.trim_end_matches(':').split_once('.')?;
    if frac.len() != 9 {
        return None;
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000_000 + frac.parse::<u64>().ok()?)
}

/// The text between `key` and ` after` in `rest` (thread names hold spaces).
fn between<'a>(rest: &'a str, key: &str, after: &str) -> Option<&'a str> {
    let start = rest.find(key)? + key.len();
    let len = rest[start..].find(after)?;
    Some(&rest[start..start + len])
}

fn number_after(rest: &str, key: &str) -> Option<u32> {
    let start = rest.find(key)? + key.len();
    rest[start..].split_whitespace().next()?.parse().ok()
}

/// The `perf script` fields [`parse_trace`] reads.
const SCRIPT_FIELDS: &str = "pid,tid,cpu,time,event,trace";

/// Reads `perf script --ns -F pid,tid,cpu,time,event,trace` output. Lines of other events are
/// skipped; a line of a known event that does not read is an error.
fn parse_trace(text: &str) -> Result<Trace, String> {
    let mut trace = Trace::default();
    fn name(comm: &str, tid: u32, trace: &mut Trace) {
        if let Some(i) = vcpu_index(comm) {
            trace.vcpus.insert(tid, i);
        }
        trace.comms.entry(tid).or_insert_with(|| comm.to_string());
    }
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(task), Some(cpu), Some(time), Some(event)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let known = [
            "sched:sched_switch:",
            "sched:sched_waking:",
            "syscalls:sys_enter_writev:",
            "syscalls:sys_exit_writev:",
        ];
        if !known.contains(&event) {
            continue;
        }
        let bad = || format!("perf script: cannot read `{line}`");
        // `pid/tid` of the running task; perf prints -1 for some switch events' task, which
        // carry their own pids.
        let (pid, tid) = task.split_once('/').ok_or_else(bad)?;
        let (pid, tid): (i64, i64) = (
            pid.parse().map_err(|_| bad())?,
            tid.parse().map_err(|_| bad())?,
        );
        if let (Ok(pid), Ok(tid)) = (u32::try_from(pid), u32::try_from(tid)) {
            trace.processes.insert(tid, pid);
        }
        let cpu: u32 = cpu
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        let time = parse_time(time).ok_or_else(bad)?;
        let rest = line[line.find(event).expect("found above") + event.len()..].trim();
        let parsed = match event {
            "sched:sched_switch:" => {
                let prev_comm = between(rest, "prev_comm=", " prev_pid=").ok_or_else(bad)?;
                let next_comm = between(rest, "next_comm=", " next_pid=").ok_or_else(bad)?;
                let prev = number_after(rest, "prev_pid=").ok_or_else(bad)?;
                let next = number_after(rest, "next_pid=").ok_or_else(bad)?;
                let state = between(rest, "prev_state=", " ").ok_or_else(bad)?;
                name(prev_comm, prev, &mut trace);
                name(next_comm, next, &mut trace);
                Event::Switch {
                    cpu,
                    prev,
                    prev_runnable: state.starts_with('R'),
                    next,
                }
            }
            "sched:sched_waking:" => {
                let comm = between(rest, "comm=", " pid=").ok_or_else(bad)?;
                let woken = number_after(rest, " pid=").ok_or_else(bad)?;
                name(comm, woken, &mut trace);
                Event::Waking { tid: woken }
            }
            "syscalls:sys_enter_writev:" => {
                if !rest.starts_with("fd: 0x00000001,") {
                    continue;
                }
                Event::ConsoleWrite {
                    tid: u32::try_from(tid).map_err(|_| bad())?,
                }
            }
            _ => {
                let hex = rest.strip_prefix("0x").ok_or_else(bad)?;
                Event::WriteDone {
                    tid: u32::try_from(tid).map_err(|_| bad())?,
                    bytes: u64::from_str_radix(hex, 16).unwrap_or(0),
                }
            }
        };
        trace.events.push((time, parsed));
    }
    trace.events.sort_by_key(|(t, _)| *t);
    Ok(trace)
}

/// Where a thread's time went over a window (ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub running: u64,
    /// Runnable, waiting for a host CPU.
    pub queued: u64,
    /// Asleep: halted, or waiting for a lock.
    pub blocked: u64,
}

/// Who ran on a host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The BSP's vCPU thread.
    Bsp,
    /// Another vCPU thread (an AP's).
    OtherVcpu,
    /// QEMU's other threads (its main loop, RCU, workers).
    Qemu,
    /// The tracer.
    Perf,
    /// Any other host task (kernel threads, the bench itself).
    OtherTask,
    /// No task: the CPU was idle.
    Idle,
}

const WHO: [(Who, &str); 6] = [
    (Who::Bsp, "BSP"),
    (Who::OtherVcpu, "other APs"),
    (Who::Qemu, "QEMU's other threads"),
    (Who::Perf, "perf"),
    (Who::OtherTask, "other host tasks"),
    (Who::Idle, "idle"),
];

/// ns per [`Who`], indexed by it, and the other host tasks' ns by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders([u64; 6], HashMap<String, u64>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Queued,
    Blocked,
}

impl Trace {
    /// The state `tid` was in before its first event, as that event tells: running if it
    /// leaves a CPU, runnable if it gets one, asleep if it is woken (or has no event).
    fn first_state(&self, tid: u32) -> State {
        for &(_, event) in &self.events {
            match event {
                Event::Switch { prev, .. } if prev == tid => return State::Running,
                Event::Switch { next, .. } if next == tid => return State::Queued,
                Event::Waking { tid: woken } if woken == tid => return State::Blocked,
                _ => {}
            }
        }
        State::Blocked
    }

    /// Thread `tid`'s states over `from..to` (host ns), as (state, start, end) in time order.
    /// A thread that leaves a CPU without having been seen to get it (`perf record -a` loses
    /// an idle CPU's switch to a woken thread now and then) counts as running since that
    /// CPU's previous switch.
    fn states(&self, tid: u32, from: u64, to: u64) -> Vec<(State, u64, u64)> {
        let mut spans = Vec::new();
        let mut state = self.first_state(tid);
        let mut since = from;
        let mut close = |state: State, a: u64, b: u64| {
            let (a, b) = (a.max(from), b.min(to));
            if b > a {
                spans.push((state, a, b));
            }
        };
        let mut last_switch: HashMap<u32, u64> = HashMap::new();
        // Past `to` as well: a switch lost before `to` shows in the thread's next switch out.
        for &(t, event) in &self.events {
            if t >= to && state == State::Running {
                break;
            }
            let next = match event {
                Event::Switch {
                    cpu,
                    prev,
                    prev_runnable,
                    ..
                } if prev == tid => {
                    if state != State::Running {
                        let ran_from = last_switch.get(&cpu).copied().unwrap_or(since).max(since);
                        close(state, since, ran_from);
                        state = State::Running;
                        since = ran_from;
                    }
                    Some(if prev_runnable {
                        State::Queued
                    } else {
                        State::Blocked
                    })
                }
                Event::Switch { next, .. } if next == tid => Some(State::Running),
                Event::Waking { tid: woken } if woken == tid && state == State::Blocked => {
                    Some(State::Queued)
                }
                _ => None,
            };
            if let Event::Switch { cpu, .. } = event {
                last_switch.insert(cpu, t);
            }
            if let Some(next) = next {
                close(state, since, t);
                state = next;
                since = t;
            }
        }
        close(state, since, to);
        spans
    }

    /// How thread `tid` spent `from..to` (host ns).
    fn split(&self, tid: u32, from: u64, to: u64) -> Split {
        let mut split = Split::default();
        for (state, a, b) in self.states(tid, from, to) {
            match state {
                State::Running => split.running += b - a,
                State::Queued => split.queued += b - a,
                State::Blocked => split.blocked += b - a,
            }
        }
        split
    }

    /// Who held the host CPUs during `spans` (host ns), summed over the CPUs: ns per [`Who`].
    fn holders(&self, spans: &[(u64, u64)], vcpu_process: Option<u32>) -> Holders {
        let mut held = Holders::default();
        if spans.is_empty() {
            return held;
        }
        let mut on_cpu: HashMap<u32, (u32, u64)> = HashMap::new();
        let add = |tid: u32, a: u64, b: u64, held: &mut Holders| {
            let who = self.who(tid, vcpu_process);
            for &(from, to) in spans {
                let (x, y) = (a.max(from), b.min(to));
                if y > x {
                    held.0[who as usize] += y - x;
                    if who == Who::OtherTask {
                        let name = self.comms.get(&tid).map_or("?", String::as_str);
                        // kworker/1:2 and kworker/0:1 are one kind of task.
                        let kind = name.split(['/', ':']).next().unwrap_or(name);
                        *held.1.entry(kind.to_string()).or_default() += y - x;
                    }
                }
            }
        };
        for &(t, event) in &self.events {
            if let Event::Switch {
                cpu, prev, next, ..
            } = event
            {
                // Before a CPU's first switch its task is unknown: counted from there only.
                if let Some((_, since)) = on_cpu.insert(cpu, (next, t)) {
                    add(prev, since, t, &mut held);
                }
            }
        }
        let end = spans.iter().map(|&(_, b)| b).max().unwrap_or(0);
        for (_, (tid, since)) in on_cpu {
            add(tid, since, end, &mut held);
        }
        held
    }

    fn who(&self, tid: u32, vcpu_process: Option<u32>) -> Who {
        if tid == 0 {
            return Who::Idle;
        }
        if vcpu_process.is_some() && self.processes.get(&tid).copied() == vcpu_process {
            return match self.vcpus.get(&tid) {
                Some(0) => Who::Bsp,
                Some(_) => Who::OtherVcpu,
                None => Who::Qemu,
            };
        }
        match self.comms.get(&tid).map(String::as_str) {
            Some("perf") => Who::Perf,
            _ => Who::OtherTask,
        }
    }

    /// The host time at which the console write holding byte `offset` of the serial output
    /// began, and the thread that wrote it.
    fn console_byte(&self, offset: u64) -> Option<(u64, u32)> {
        let mut written = 0;
        let mut open: HashMap<u32, u64> = HashMap::new();
        for &(t, event) in &self.events {
            match event {
                Event::ConsoleWrite { tid } => {
                    open.insert(tid, t);
                }
                Event::WriteDone { tid, bytes } => {
                    let Some(began) = open.remove(&tid) else {
                        continue;
                    };
                    if (written..written + bytes).contains(&offset) {
                        return Some((began, tid));
                    }
                    written += bytes;
                }
                _ => {}
            }
        }
        None
    }

    /// The thread of vCPU `cpu` in QEMU process `process` (the trace is system-wide: other
    /// QEMU processes may show up in it).
    fn tid_of(&self, cpu: u32, process: u32) -> Option<u32> {
        self.vcpus
            .iter()
            .find(|&(t, &i)| i == cpu && self.processes.get(t) == Some(&process))
            .map(|(&t, _)| t)
    }
}

/// One traced boot: the guest's figures and where each AP's SIPI → check-in went on the host.
#[derive(Debug, Clone)]
pub struct TracedBoot {
    pub floor_us: u64,
    pub bringup_us: u64,
    /// Per AP (CPU 1 first): its SIPI → check-in window and how its thread spent it.
    pub aps: Vec<(u64, Split)>,
    /// The BSP's thread over the whole bring-up.
    pub bsp: Split,
    /// Who held the host CPUs while an AP was queued (each AP's queued spans, summed).
    pub while_queued: Holders,
}

/// The byte offset of the newline that ends the `Starting N APs in parallel` line.
fn start_marker(serial: &str) -> Option<u64> {
    let mut offset = 0;
    for line in serial.split_inclusive('\n') {
        if line.starts_with("Starting ")
            && line.contains(" APs in parallel")
            && line.ends_with('\n')
        {
            return Some((offset + line.len() - 1) as u64);
        }
        offset += line.len();
    }
    None
}

/// Splits one boot's APs from its trace, serial output and phase stamps.
fn attribute(
    trace: &Trace,
    serial: &str,
    aps: &[ApStamps],
    sample: &bringup::Sample,
) -> Result<TracedBoot, String> {
    let marker = start_marker(serial).ok_or("no `Starting N APs in parallel` line")?;
    let (t0, writer) = trace
        .console_byte(marker)
        .ok_or("the trace has no console write of the bring-up's start line")?;
    if trace.vcpus.get(&writer) != Some(&0) {
        // QEMU wrote it later from another thread (the console was backed up): its time is
        // not the BSP's.
        return Err("the start line was not written by the BSP's thread".into());
    }
    let bsp = writer;
    let process = *trace
        .processes
        .get(&bsp)
        .ok_or("the BSP's thread has no process in the trace")?;
    let mut splits = Vec::new();
    let mut queued = Vec::new();
    for (i, ap) in aps.iter().enumerate() {
        let cpu = i as u32 + 1;
        let (Some(sipi), Some(arrived)) = (phases::stamp(ap, "sipi"), phases::stamp(ap, "arrived"))
        else {
            return Err(format!("CPU {cpu} has no sipi or arrived stamp"));
        };
        let tid = trace
            .tid_of(cpu, process)
            .ok_or(format!("no thread named `CPU {cpu}/...` in QEMU's process"))?;
        let (from, to) = (t0 + sipi.max(0) as u64, t0 + arrived.max(0) as u64);
        splits.push((to.saturating_sub(from), trace.split(tid, from, to)));
        queued.extend(
            trace
                .states(tid, from, to)
                .into_iter()
                .filter(|(state, ..)| *state == State::Queued)
                .map(|(_, a, b)| (a, b)),
        );
    }
    Ok(TracedBoot {
        floor_us: sample.floor_us,
        bringup_us: sample.bringup_us,
        aps: splits,
        bsp: trace.split(bsp, t0, t0 + sample.bringup_us * 1000),
        while_queued: trace.holders(&queued, Some(process)),
    })
}

/// One `bench=floor` boot of `image` under `perf record`, attributed. A boot that fails (or
/// whose trace does not line up) is repeated once.
fn traced_boot(
    qemu: &Qemu,
    image: &Path,
    accel: Accel,
    cpus: u32,
    data: &Path,
) -> Result<TracedBoot, String> {
    let mut last_error = String::new();
    for _ in 0..2 {
        let guest = floor_command(qemu, image, accel, cpus, ("parallel", "fast"));
        let mut cmd = Command::new("perf");
        cmd.args(["record", "-a", "-q", "-o"]).arg(data);
        for event in [
            "sched:sched_switch",
            "sched:sched_waking",
            "syscalls:sys_enter_writev",
            "syscalls:sys_exit_writev",
        ] {
            cmd.args(["-e", event]);
        }
        cmd.arg("--")
            .arg(guest.get_program())
            .args(guest.get_args());
        cmd.args(["-name", "bench,debug-threads=on"]);
        let out = runner::run(cmd, &Watch::new(Duration::from_secs(180)))?;
        if out.exit != Some(33) {
            last_error = format!("exit status {:?}: {}", out.exit, out.stderr.trim());
            continue;
        }
        let script = Command::new("perf")
            .args(["script", "--ns", "-F", SCRIPT_FIELDS, "-i"])
            .arg(data)
            .output()
            .map_err(|e| format!("perf script: {e}"))?;
        let attributed = bringup::parse_sample(&out.timed_lines, cpus).and_then(|sample| {
            let trace = parse_trace(&String::from_utf8_lossy(&script.stdout))?;
            let aps = phases::parse(&out.serial)?;
            attribute(&trace, &out.serial, &aps, &sample)
        });
        match attributed {
            Ok(boot) => return Ok(boot),
            Err(why) => last_error = why,
        }
    }
    Err(format!(
        "host-sched: -smp {cpus}: two boots failed, the last: {last_error}"
    ))
}

/// Whether `perf` can record scheduler tracepoints system-wide here.
fn perf_usable() -> Result<(), String> {
    let probe = Command::new("perf")
        .args([
            "record",
            "-a",
            "-q",
            "-o",
            "/dev/null",
            "-e",
            "sched:sched_switch",
        ])
        .args(["--", "true"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "bench --only host-sched: `perf record -a -e sched:sched_switch` failed (root, or \
             kernel.perf_event_paranoid=-1, is needed): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "bench --only host-sched needs perf (Debian: apt-get install linux-perf): {e}"
        )),
    }
}

/// What the run measured at one CPU count.
pub struct Row {
    pub cpus: u32,
    pub traced: Vec<TracedBoot>,
    /// Bring-up µs of the untraced boots interleaved with the traced ones.
    pub untraced_us: Vec<u64>,
}

/// `boots` traced and `boots` untraced boots at each of `cpus`, interleaved.
pub fn measure(
    qemu: &Qemu,
    image: &Path,
    accel: Accel,
    cpus: &[u32],
    boots: usize,
) -> Result<Vec<Row>, String> {
    perf_usable()?;
    let data = std::env::temp_dir().join(format!("host-sched-{}.data", std::process::id()));
    let mut rows = Vec::new();
    for &n in cpus {
        let mut row = Row {
            cpus: n,
            traced: Vec::new(),
            untraced_us: Vec::new(),
        };
        let mut failures = Vec::new();
        for boot in 0..boots {
            eprint!(
                "\rbench --only host-sched: -smp {n} boot {}/{boots}        ",
                boot + 1
            );
            row.traced.push(traced_boot(qemu, image, accel, n, &data)?);
            let (sample, _) =
                floor_boot(qemu, image, accel, n, ("parallel", "fast"), &mut failures)?;
            row.untraced_us.push(sample.bringup_us);
        }
        rows.push(row);
    }
    eprintln!();
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(data.with_extension("data.old"));
    Ok(rows)
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.0}%", 100.0 * part as f64 / whole as f64)
}

/// The boot's AP with the longest SIPI → check-in: its window and split.
fn longest_ap(boot: &TracedBoot) -> (u64, Split) {
    boot.aps
        .iter()
        .copied()
        .max_by_key(|(window, _)| *window)
        .unwrap_or_default()
}

/// The results table.
pub fn render(qemu: &Qemu, accel: Accel, rows: &[Row], boots: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Host scheduling of the vCPU threads during the bring-up\n\n{} · QEMU {} · `-M \
         microvm` · {} · parallel/fast · {boots} traced boots and {boots} untraced ones per CPU \
         count, interleaved · host: {} cores\n",
        now_utc(),
        qemu.version_string(),
        accel.name(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    s.push_str(
        "Each AP's SIPI → check-in (its `sipi` to its `arrived` stamp) split into the time its \
         vCPU thread ran on a host core, waited runnable in a host run queue (queued), and \
         slept (blocked: halted until QEMU took the SIPI, or waiting for a lock); the BSP's \
         thread likewise over the whole bring-up. \"Longest AP\": each boot's AP with the longest \
         SIPI → check-in, the median of that time and the shares of its three parts summed over \
         the boots; \"all APs\": the shares summed over every AP of every boot; the BSP: the \
         median of its queued time, and its share of the bring-ups summed.\n\n",
    );
    s.push_str(
        "| CPUs | floor µs | bring-up µs (traced / untraced) | longest AP: SIPI → check-in µs \
         | its running / queued / blocked | all APs: running / queued / blocked | BSP queued µs \
         (share) |\n|---:|---:|---|---:|---|---|---|\n",
    );
    for row in rows {
        let t = &row.traced;
        let med = |f: &dyn Fn(&TracedBoot) -> u64| median_u64(t.iter().map(f).collect());
        let shares = |aps: &mut dyn Iterator<Item = (u64, Split)>| {
            let (mut window, mut sum) = (0, Split::default());
            for (w, split) in aps {
                window += w;
                sum.running += split.running;
                sum.queued += split.queued;
                sum.blocked += split.blocked;
            }
            format!(
                "{} / {} / {}",
                percent(sum.running, window),
                percent(sum.queued, window),
                percent(sum.blocked, window)
            )
        };
        let bsp_total: u64 = t.iter().map(|b| b.bringup_us * 1000).sum();
        let bsp_queued: u64 = t.iter().map(|b| b.bsp.queued).sum();
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {} | {} | {} | {} ({}) |",
            row.cpus,
            med(&|b| b.floor_us),
            med(&|b| b.bringup_us),
            median_u64(row.untraced_us.clone()),
            us(med(&|b| longest_ap(b).0)),
            shares(&mut t.iter().map(longest_ap)),
            shares(&mut t.iter().flat_map(|b| b.aps.iter().copied())),
            us(med(&|b| b.bsp.queued)),
            percent(bsp_queued, bsp_total),
        );
    }
    s.push_str(
        "\nWhile an AP was queued, what ran on the host's CPUs instead: the host CPU time of \
         every queued stretch of every AP (summed over the CPUs, over the boots), by who held \
         the CPU. \"Idle\" is time an AP waited in one CPU's run queue while another CPU had \
         nothing to run.\n\n| CPUs |",
    );
    for (_, name) in WHO {
        let _ = write!(s, " {name} |");
    }
    s.push_str(" the other host tasks that held most |\n|---:|");
    s.push_str(&"---:|".repeat(WHO.len()));
    s.push_str("---|\n");
    for row in rows {
        let mut sum = Holders::default();
        for boot in &row.traced {
            for (total, part) in sum.0.iter_mut().zip(boot.while_queued.0) {
                *total += part;
            }
            for (name, ns) in &boot.while_queued.1 {
                *sum.1.entry(name.clone()).or_default() += ns;
            }
        }
        let whole: u64 = sum.0.iter().sum();
        let _ = write!(s, "| {} |", row.cpus);
        for (who, _) in WHO {
            let _ = write!(s, " {} |", percent(sum.0[who as usize], whole));
        }
        let mut others: Vec<(&String, &u64)> = sum.1.iter().collect();
        others.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = others
            .iter()
            .take(3)
            .map(|(name, ns)| format!("{name} {}", percent(**ns, whole)))
            .collect();
        let _ = writeln!(s, " {} |", top.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU is process 99: the BSP's thread 100 and CPU 1's 201; perf is 300.
    const SCRIPT: &str = "\
 99/100  [000] 1.000000000:         sched:sched_waking: comm=CPU 1/TCG pid=201 prio=120 target_cpu=000
 99/100  [000] 1.000001000:         sched:sched_switch: prev_comm=CPU 0/TCG prev_pid=100 prev_prio=120 prev_state=R ==> next_comm=CPU 1/TCG next_pid=201 next_prio=120
 99/201  [000] 1.000004000:         sched:sched_switch: prev_comm=CPU 1/TCG prev_pid=201 prev_prio=120 prev_state=S ==> next_comm=CPU 0/TCG next_pid=100 next_prio=120
 99/100  [000] 1.000005000: syscalls:sys_enter_writev: fd: 0x00000001, vec: 0x7f0000000000, vlen: 0x00000001
 99/100  [000] 1.000005500:  syscalls:sys_exit_writev: 0x3
 99/100  [000] 1.000006000: syscalls:sys_enter_writev: fd: 0x00000002, vec: 0x7f0000000000, vlen: 0x00000001
 99/100  [000] 1.000006500:  syscalls:sys_exit_writev: 0x20
 99/100  [000] 1.000007000: syscalls:sys_enter_writev: fd: 0x00000001, vec: 0x7f0000000000, vlen: 0x00000001
 99/100  [000] 1.000007500:  syscalls:sys_exit_writev: 0x1
 300/300 [001] 1.000007600:         sched:sched_switch: prev_comm=perf prev_pid=300 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
    0/0  [001] 1.000008000:         sched:sched_waking: comm=CPU 1/TCG pid=201 prio=120 target_cpu=001
   -1/-1 [001] 1.000010000:         sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=CPU 1/TCG next_pid=201 next_prio=120
    0/0  [001] 1.000010000:      sched:sched_stat_runtime: comm=CPU 1/TCG pid=201 runtime=1 [ns]
";

    #[test]
    fn reads_a_trace() {
        let trace = parse_trace(SCRIPT).unwrap();
        assert_eq!(trace.vcpus.get(&100), Some(&0));
        assert_eq!(trace.vcpus.get(&201), Some(&1));
        assert_eq!(trace.processes.get(&201), Some(&99));
        assert_eq!(trace.comms.get(&300).map(String::as_str), Some("perf"));
        assert_eq!(trace.events.len(), 11);
        assert_eq!(trace.events[0], (1_000_000_000, Event::Waking { tid: 201 }));
        assert_eq!(
            trace.events[10].1,
            Event::Switch {
                cpu: 1,
                prev: 0,
                prev_runnable: true,
                next: 201
            }
        );
        assert!(parse_trace(" 1/1 [000] 2.5: sched:sched_waking: comm=x pid=3").is_err());
        assert!(parse_trace(" 1/1 000 1.000000000: sched:sched_waking: comm=x pid=3").is_err());
    }

    #[test]
    fn splits_a_thread_into_running_queued_and_blocked() {
        let trace = parse_trace(SCRIPT).unwrap();
        let base = 1_000_000_000;
        // CPU 1: asleep until woken at 0 µs, queued 0-1, running 1-4, blocked 4-8, queued 8-10,
        // running 10-12.
        assert_eq!(
            trace.split(201, base, base + 12_000),
            Split {
                running: 5_000,
                queued: 3_000,
                blocked: 4_000
            }
        );
        // CPU 0: running until preempted at 1 µs, queued until 4 µs, then running.
        assert_eq!(
            trace.split(100, base + 500, base + 6_000),
            Split {
                running: 2_500,
                queued: 3_000,
                blocked: 0
            }
        );
    }

    #[test]
    fn places_serial_bytes_on_the_host_clock() {
        let trace = parse_trace(SCRIPT).unwrap();
        // fd 2's write is not the console's: byte 3 is the second console write's.
        assert_eq!(trace.console_byte(0), Some((1_000_005_000, 100)));
        assert_eq!(trace.console_byte(2), Some((1_000_005_000, 100)));
        assert_eq!(trace.console_byte(3), Some((1_000_007_000, 100)));
        assert_eq!(trace.console_byte(4), None);
    }

    #[test]
    fn a_lost_switch_in_still_counts_as_running() {
        // CPU 1 is woken, then seen leaving CPU 0 without the switch that gave it the CPU:
        // it ran since CPU 0's previous switch (at 2 µs).
        let script = "\
 99/100 [000] 1.000000000: sched:sched_waking: comm=CPU 1/TCG pid=201 prio=120 target_cpu=000
 99/100 [000] 1.000002000: sched:sched_switch: prev_comm=CPU 0/TCG prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=x next_pid=7 next_prio=120
 99/201 [000] 1.000005000: sched:sched_switch: prev_comm=CPU 1/TCG prev_pid=201 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
";
        let trace = parse_trace(script).unwrap();
        let base = 1_000_000_000;
        assert_eq!(
            trace.split(201, base, base + 6_000),
            Split {
                running: 3_000,
                queued: 2_000,
                blocked: 1_000
            }
        );
    }

    #[test]
    fn a_lost_switch_in_is_found_past_the_window() {
        // Woken at 0 µs on an idle CPU 1 (its last switch at 1 µs: to idle), seen leaving it at
        // 9 µs only: running since 1 µs, although the window ends at 5 µs.
        let script = "\
 99/100 [000] 1.000000000: sched:sched_waking: comm=CPU 1/TCG pid=201 prio=120 target_cpu=001
    0/0 [001] 1.000001000: sched:sched_switch: prev_comm=x prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
 99/201 [001] 1.000009000: sched:sched_switch: prev_comm=CPU 1/TCG prev_pid=201 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
";
        let trace = parse_trace(script).unwrap();
        let base = 1_000_000_000;
        assert_eq!(
            trace.split(201, base, base + 5_000),
            Split {
                running: 4_000,
                queued: 1_000,
                blocked: 0
            }
        );
    }

    #[test]
    fn names_who_held_the_cpus() {
        let trace = parse_trace(SCRIPT).unwrap();
        let base = 1_000_000_000;
        let held = trace.holders(&[(base, base + 12_000)], Some(99));
        let mut want = Holders::default();
        // CPU 0: CPU 1's thread 1-4 µs, the BSP's 4-12 (its holder before 1 µs is unknown);
        // CPU 1: perf until 7.6 µs (from its first switch only: none before), idle 7.6-10,
        // CPU 1's thread 10-12.
        want.0[Who::OtherVcpu as usize] = 3_000 + 2_000;
        want.0[Who::Bsp as usize] = 8_000;
        want.0[Who::Idle as usize] = 2_400;
        assert_eq!(held, want);
        assert_eq!(trace.who(300, Some(99)), Who::Perf);
        assert_eq!(trace.who(100, Some(99)), Who::Bsp);
    }

    #[test]
    fn finds_the_start_line() {
        let serial = "a\nStarting CPU 1...\nStarting 3 APs in parallel\nx\n";
        assert_eq!(start_marker(serial), Some(46));
        assert_eq!(&serial[46..47], "\n");
        assert_eq!(start_marker("Starting 3 APs in parallel"), None);
    }

    #[test]
    fn attributes_each_ap_from_its_stamps() {
        let short = "Starting 1 APs in parallel\n";
        assert_eq!(start_marker(short), Some(26));
        let mut ap: ApStamps = [None; 9];
        let at = |name| phases::STAMPS.iter().position(|s| *s == name).unwrap();
        ap[at("sipi")] = Some(1_000);
        ap[at("arrived")] = Some(4_000);
        let sample = bringup::Sample {
            floor_us: 1,
            floor_sipis_us: 1,
            bringup_us: 4,
            first_line_ms: 0.0,
            all_started_ms: 0.0,
        };
        // A trace whose console bytes reach the marker: 27 bytes, the last written at t0.
        let mut long = String::new();
        long.push_str(" 99/100 [000] 0.999000000: syscalls:sys_enter_writev: fd: 0x00000001, v\n");
        long.push_str(" 99/100 [000] 0.999000100:  syscalls:sys_exit_writev: 0x1a\n");
        long.push_str(" 99/100 [000] 1.000007000: syscalls:sys_enter_writev: fd: 0x00000001, v\n");
        long.push_str(" 99/100 [000] 1.000007100:  syscalls:sys_exit_writev: 0x1\n");
        long.push_str(
            SCRIPT
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
                .as_str(),
        );
        long.push('\n');
        long.push_str(&SCRIPT.lines().skip(9).collect::<Vec<_>>().join("\n"));
        let trace = parse_trace(&long).unwrap();
        let boot = attribute(&trace, short, &[ap], &sample).unwrap();
        // t0 = 1.000007 s: CPU 1's window is 1.000008-1.000011 s: queued 8-10, running 10-11.
        assert_eq!(
            boot.aps,
            vec![(
                3_000,
                Split {
                    running: 1_000,
                    queued: 2_000,
                    blocked: 0
                }
            )]
        );
        // A start line written by another thread is refused.
        let other = long.replace(" 99/100 [000] 1.000007", " 99/201 [000] 1.000007");
        let trace = parse_trace(&other).unwrap();
        assert!(attribute(&trace, short, &[ap], &sample).is_err());
    }
}
