//! The `bench=runtime` boots: what the kernel measured (latency distributions, then lock and
//! allocation throughputs at 1, 2 and all CPUs), parsed from its `bench:` lines and tabulated.

use std::fmt::Write as _;

use super::field;
use crate::qemu::Accel;

/// One `bench: name=...` line: a latency distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub name: String,
    pub samples: u64,
    pub p50_cycles: u64,
    pub p99_cycles: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

impl Latency {
    pub fn parse(line: &str) -> Result<Latency, String> {
        let get = |key: &str| field(line, key).ok_or(format!("no {key}= in `{line}`"));
        Ok(Latency {
            name: word(line, "name").ok_or(format!("no name= in `{line}`"))?,
            samples: get("samples")?,
            p50_cycles: get("p50_cycles")?,
            p99_cycles: get("p99_cycles")?,
            p50_ns: get("p50_ns")?,
            p99_ns: get("p99_ns")?,
        })
    }
}

/// One `bench: throughput=...` line: `working` CPUs ran an operation for `ticks` TSC ticks
/// and completed `ops` of them in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    pub name: String,
    pub working: u32,
    pub ops: u64,
    pub ticks: u64,
}

impl Throughput {
    pub fn parse(line: &str) -> Result<Throughput, String> {
        let get = |key: &str| field(line, key).ok_or(format!("no {key}= in `{line}`"));
        Ok(Throughput {
            name: word(line, "throughput").ok_or(format!("no throughput= in `{line}`"))?,
            working: get("cpus")? as u32,
            ops: get("ops")?,
            ticks: get("ticks")?,
        })
    }

    /// Millions of operations per second, all working CPUs together.
    pub fn mops(&self, tsc_hz: u64) -> f64 {
        if self.ticks == 0 {
            return 0.0;
        }
        self.ops as f64 / (self.ticks as f64 / tsc_hz as f64) / 1e6
    }

    /// Time one CPU spends per operation, in nanoseconds (each working CPU was busy all along).
    pub fn ns_per_op(&self, tsc_hz: u64) -> f64 {
        if self.ops == 0 {
            return f64::INFINITY;
        }
        self.ticks as f64 * self.working as f64 / self.ops as f64 * 1e9 / tsc_hz as f64
    }
}

/// The value of `key=` as a word.
fn word(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// Everything one `bench=runtime` boot printed.
#[derive(Debug, Clone)]
pub struct RuntimeBoot {
    pub accel: Accel,
    /// vCPUs of the VM.
    pub cpus: u32,
    pub tsc_hz: u64,
    pub latencies: Vec<Latency>,
    pub throughputs: Vec<Throughput>,
}

impl RuntimeBoot {
    /// Reads a boot's serial output; every figure the kernel prints must be there.
    pub fn parse(accel: Accel, cpus: u32, serial: &str) -> Result<RuntimeBoot, String> {
        let mut boot = RuntimeBoot {
            accel,
            cpus,
            tsc_hz: 0,
            latencies: Vec::new(),
            throughputs: Vec::new(),
        };
        for line in serial.lines() {
            let Some(rest) = line.strip_prefix("bench: ") else {
                continue;
            };
            if rest.starts_with("name=") {
                boot.latencies.push(Latency::parse(line)?);
            } else if rest.starts_with("throughput=") {
                boot.throughputs.push(Throughput::parse(line)?);
            } else if let Some(hz) = field(line, "tsc_hz") {
                boot.tsc_hz = hz;
            }
        }
        if boot.tsc_hz == 0 {
            return Err("no `bench: tsc_hz=` line".into());
        }
        if boot.throughputs.is_empty() {
            return Err("no throughput figures".into());
        }
        if cpus > 1 && !boot.latencies.iter().any(|l| l.name == "ipi_round_trip") {
            return Err("no IPI round-trip figures".into());
        }
        Ok(boot)
    }

    pub fn latency(&self, name: &str) -> Option<&Latency> {
        self.latencies.iter().find(|l| l.name == name)
    }

    pub fn throughput(&self, name: &str, working: u32) -> Option<&Throughput> {
        self.throughputs
            .iter()
            .find(|t| t.name == name && t.working == working)
    }
}

/// The latency table.
pub fn render_latencies(boots: &[RuntimeBoot]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Runtime latencies (`bench=runtime`, from CPU 0 to the highest CPU index)\n\n\
         `ipi_round_trip`: PING to the target, which is halted (`sti; hlt`, the runtime's idle), PONG \
         back; `ipi_round_trip_polling`: the same while the target spins with interrupts on. \
         `run_on_empty`: an empty closure run on the target and waited for; `run_on_all_empty`: \
         on every CPU.\n\n\
         | accel | CPUs | measure | samples | p50 cycles | p99 cycles | p50 µs | p99 µs |\n\
         |---|---:|---|---:|---:|---:|---:|---:|"
    );
    for b in boots {
        for l in &b.latencies {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                b.accel.name(),
                b.cpus,
                l.name,
                l.samples,
                l.p50_cycles,
                l.p99_cycles,
                l.p50_ns as f64 / 1e3,
                l.p99_ns as f64 / 1e3
            );
        }
    }
    s
}

/// The throughput table: lock kinds and allocation, per VM size and working CPUs.
pub fn render_throughputs(boots: &[RuntimeBoot]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Lock and allocation throughput (`bench=runtime`, 100 ms per figure)\n\n\
         The first `working` CPUs run the operation at once on one shared lock (with 1: the \
         uncontended cost), or allocate and free 64-byte blocks (4 at a time); `alloc_shared` \
         sends every allocation to the one shared pool instead of the CPU's own arena. \
         ns/op: time one CPU spends per operation.\n\n\
         | accel | CPUs | measure | working | Mops/s (all) | ns/op (per CPU) |\n\
         |---|---:|---|---:|---:|---:|"
    );
    for b in boots {
        for t in &b.throughputs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.3} | {:.0} |",
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

#[cfg(test)]
mod tests {
    use super::*;

    const SERIAL: &str = "Runtime: 2 CPUs joined\n\
        bench: tsc_hz=2000000000\n\
        bench: name=two_cpuid_exits target=0 samples=2000 p50_cycles=100 p99_cycles=120 p50_ns=50 p99_ns=60\n\
        bench: name=ipi_round_trip target=1 samples=2000 p50_cycles=44382 p99_cycles=106236 p50_ns=17075 p99_ns=40872\n\
        bench: throughput=alloc_per_cpu cpus=1 ops=1000 ticks=40000000\n\
        bench: throughput=alloc_per_cpu cpus=2 ops=1900 ticks=40000000\n";

    #[test]
    fn reads_a_runtime_boot() {
        let b = RuntimeBoot::parse(Accel::Tcg, 2, SERIAL).unwrap();
        assert_eq!(b.tsc_hz, 2_000_000_000);
        assert_eq!(b.latencies.len(), 2);
        let l = b.latency("ipi_round_trip").unwrap();
        assert_eq!((l.samples, l.p50_cycles, l.p99_ns), (2000, 44382, 40872));
        let one = b.throughput("alloc_per_cpu", 1).unwrap();
        let two = b.throughput("alloc_per_cpu", 2).unwrap();
        // 1000 ops in 20 ms = 0.05 Mops/s; one CPU busy 20 ms for 1000 ops = 20 µs per op.
        assert!((one.mops(b.tsc_hz) - 0.05).abs() < 1e-9);
        assert!((one.ns_per_op(b.tsc_hz) - 20_000.0).abs() < 1e-6);
        assert!((two.mops(b.tsc_hz) / one.mops(b.tsc_hz) - 1.9).abs() < 1e-9);
        let table = render_latencies(std::slice::from_ref(&b));
        assert!(
            table.contains("| TCG | 2 | ipi_round_trip | 2000 | 44382 | 106236 | 17.07 | 40.87 |")
        );
        let table = render_throughputs(&[b]);
        assert!(table.contains("| TCG | 2 | alloc_per_cpu | 2 | 0.095 | 21053 |"));
    }

    #[test]
    fn refuses_incomplete_boots() {
        assert!(RuntimeBoot::parse(Accel::Tcg, 2, "bench: tsc_hz=1\n").is_err());
        let no_ipi = "bench: tsc_hz=1\nbench: throughput=lock_spin cpus=1 ops=1 ticks=1\n";
        assert!(RuntimeBoot::parse(Accel::Tcg, 2, no_ipi).is_err());
        assert!(RuntimeBoot::parse(Accel::Tcg, 1, no_ipi).is_ok());
        assert!(Latency::parse("bench: name=x samples=1").is_err());
        assert!(Throughput::parse("bench: throughput=x cpus=1").is_err());
    }
}
