//! The demo kernel's command line: how it brings the CPUs up, and which test or benchmark it runs.
//!
//! The command line is a whitespace-separated list of `key=value` tokens:
//!
//! - `bringup=sequential|parallel`: start the APs one after another or all together
//!   (default `parallel`);
//! - `delays=spec|fast`: the INIT-SIPI-SIPI waits prescribed for physical hardware, or short
//!   ones suited to a VM (default `fast`);
//! - `maxcpus=N`: bring up at most N CPUs, the BSP included, 1..=4096 (default 1024);
//! - `apstack=SIZE`: stack size of each AP in bytes, optionally suffixed `K`/`KiB` or
//!   `M`/`MiB` (any case), a multiple of 4 KiB from 8 KiB to 1 MiB (default `16K`);
//! - `test=NAME`: a fault or load injected for the integration tests (none by default):
//!   `absent-ap` adds an AP with an APIC ID no CPU has (the start path's timeout, retry and
//!   error), `panic-ap` panics on CPU 1, `fault-ap` makes CPU 1 touch unmapped memory, and
//!   `lock-torture` runs the lock checks with many more iterations, and `task-panic` makes a
//!   scheduler task panic on an AP;
//! - `bench=runtime`: after the runtime starts, measure VM-exit, IPI round-trip and cross-CPU
//!   call latencies and stop there;
//! - `bench=floor`: measure the wake-up floor first (a minimal real-mode probe started with the
//!   same IPIs, which only counts itself in and halts), then bring the CPUs up and stop there,
//!   printing both figures for the benchmark runner;
//! - `bench=sched`, `bench=sched-small`, `bench=sched-tiny`: after the runtime starts, the
//!   scheduler benchmarks (fork-join workloads timed on every CPU, the cost of an empty `join`,
//!   the wake latency of a halted CPU) and stop there; `small` is the smoke run's size, `tiny`
//!   the size for a VM whose ring-0 code is emulated (this machine's KVM).
//!
//! Parsing is strict, because a typo silently falling back to a default would make a test run
//! measure something other than intended: unknown keys, malformed or out-of-range values and
//! repeated keys are all errors, and the error message lists the valid options.
#![cfg_attr(not(test), no_std)]

use core::fmt;

pub use multicore::boot::{DelayPolicy, Strategy};

/// Highest accepted `maxcpus`.
pub const MAX_SUPPORTED_CPUS: u32 = 4096;
/// `maxcpus` when the command line does not set it.
pub const DEFAULT_MAX_CPUS: u32 = 1024;
/// AP stack size when the command line does not set `apstack`.
pub const DEFAULT_AP_STACK_SIZE: usize = multicore::boot::DEFAULT_AP_STACK_SIZE;
/// Smallest accepted `apstack`: two pages; less leaves too little room for Rust code on an AP.
pub const MIN_AP_STACK_SIZE: usize = 8 * KIB;
/// Largest accepted `apstack`: bounds the total (`maxcpus` × stack size) to 4 GiB.
pub const MAX_AP_STACK_SIZE: usize = MIB;
/// `apstack` must be a whole number of 4 KiB pages, the unit stacks are allocated and mapped in.
pub const AP_STACK_GRANULE: usize = 4 * KIB;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A fault the integration tests ask the kernel to inject (`test=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCase {
    /// Add an AP whose APIC ID no CPU has: it never answers INIT/SIPI.
    AbsentAp,
    /// Panic on CPU 1 once the runtime runs.
    PanicAp,
    /// Page fault on CPU 1 once the runtime runs.
    FaultAp,
    /// Lock checks with many iterations on every CPU.
    LockTorture,
    /// A scheduler task panics on an AP.
    TaskPanic,
}

impl TestCase {
    /// The command line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AbsentAp => "absent-ap",
            Self::PanicAp => "panic-ap",
            Self::FaultAp => "fault-ap",
            Self::LockTorture => "lock-torture",
            Self::TaskPanic => "task-panic",
        }
    }
}

/// A measurement the benchmark runner asks for (`bench=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    /// The wake-up floor probe, then the bring-up, then exit.
    Floor,
    /// Runtime latencies (VM exit, IPI round trip, cross-CPU calls), then exit.
    Runtime,
    /// The scheduler benchmarks at the full size (TCG), then exit.
    Sched,
    /// The scheduler benchmarks at the smoke run's size, then exit.
    SchedSmall,
    /// The scheduler benchmarks at the size for emulated ring-0 code, then exit.
    SchedTiny,
}

impl BenchMode {
    /// The command line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Runtime => "runtime",
            Self::Sched => "sched",
            Self::SchedSmall => "sched-small",
            Self::SchedTiny => "sched-tiny",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `bringup=`: sequential or parallel AP start-up.
    pub strategy: Strategy,
    /// `delays=`: specification or fast INIT-SIPI delays.
    pub delays: DelayPolicy,
    /// `maxcpus=`: upper bound on the CPUs brought up, the BSP included.
    pub max_cpus: u32,
    /// `apstack=`: stack size of each AP in bytes.
    pub ap_stack_size: usize,
    /// `test=`: a fault to inject, for the integration tests.
    pub test: Option<TestCase>,
    /// `bench=`: a measurement for the benchmark runner.
    pub bench: Option<BenchMode>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            delays: DelayPolicy::default(),
            max_cpus: DEFAULT_MAX_CPUS,
            ap_stack_size: DEFAULT_AP_STACK_SIZE,
            test: None,
            bench: None,
        }
    }
}

/// Prints the options as a command line that [`parse`] turns back into the same value.
impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bringup={} delays={} maxcpus={} apstack=",
            self.strategy.as_str(),
            self.delays.as_str(),
            self.max_cpus
        )?;
        let size = self.ap_stack_size;
        if size.is_multiple_of(MIB) {
            write!(f, "{}M", size / MIB)
        } else if size.is_multiple_of(KIB) {
            write!(f, "{}K", size / KIB)
        } else {
            write!(f, "{size}")
        }?;
        if let Some(test) = self.test {
            write!(f, " test={}", test.as_str())?;
        }
        match self.bench {
            Some(bench) => write!(f, " bench={}", bench.as_str()),
            None => Ok(()),
        }
    }
}

/// A command line token that was rejected. Each variant carries the whole offending token,
/// borrowed from the parsed string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// A token without `=`.
    NotKeyValue {
        /// The token.
        token: &'a str,
    },
    /// A key that is not one of the options.
    UnknownOption {
        /// The token.
        token: &'a str,
    },
    /// `key=` with nothing after the `=`.
    EmptyValue {
        /// The token.
        token: &'a str,
    },
    /// A value that is not one of the allowed words or not a number (with a valid suffix).
    InvalidValue {
        /// The token.
        token: &'a str,
    },
    /// A number outside the option's range.
    OutOfRange {
        /// The token.
        token: &'a str,
    },
    /// An `apstack` size that is not a multiple of 4 KiB.
    Misaligned {
        /// The token.
        token: &'a str,
    },
    /// A key given a second time.
    Repeated {
        /// The second occurrence.
        token: &'a str,
    },
}

impl<'a> CmdlineError<'a> {
    /// The offending token.
    pub fn token(&self) -> &'a str {
        match *self {
            Self::NotKeyValue { token }
            | Self::UnknownOption { token }
            | Self::EmptyValue { token }
            | Self::InvalidValue { token }
            | Self::OutOfRange { token }
            | Self::Misaligned { token }
            | Self::Repeated { token } => token,
        }
    }
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.token();
        match self {
            Self::NotKeyValue { .. } => write!(f, "option `{token}` is not of the form key=value"),
            Self::UnknownOption { .. } => write!(f, "unknown option `{token}`"),
            Self::EmptyValue { .. } => write!(f, "option `{token}` has an empty value"),
            Self::InvalidValue { .. } => write!(f, "invalid value in option `{token}`"),
            Self::OutOfRange { .. } => write!(f, "value out of range in option `{token}`"),
            Self::Misaligned { .. } => write!(
                f,
                "option `{token}` is not a multiple of {}K",
                AP_STACK_GRANULE / KIB
            ),
            Self::Repeated { .. } => {
                let key = token.split('=').next().unwrap_or(token);
                write!(f, "option `{token}` repeats an earlier `{key}=`")
            }
        }?;
        write!(
            f,
            "; valid options: bringup=sequential|parallel, delays=spec|fast, maxcpus=1..{}, \
             apstack={}K..{}M (multiple of {}K), test=absent-ap|panic-ap|fault-ap|lock-torture|task-panic, bench=floor|runtime|sched|sched-small|sched-tiny",
            MAX_SUPPORTED_CPUS,
            MIN_AP_STACK_SIZE / KIB,
            MAX_AP_STACK_SIZE / MIB,
            AP_STACK_GRANULE / KIB
        )
    }
}

impl core::error::Error for CmdlineError<'_> {}

/// The option keys, indexing the "already seen" array.
#[derive(Clone, Copy)]
enum Key {
    Bringup,
    Delays,
    MaxCpus,
    ApStack,
    Test,
    Bench,
}

const KEY_COUNT: usize = 6;

/// Parses a command line. An empty (or all-whitespace) line gives [`Options::default`].
pub fn parse(s: &str) -> Result<Options, CmdlineError<'_>> {
    let mut options = Options::default();
    let mut seen = [false; KEY_COUNT];
    for token in s.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            return Err(CmdlineError::NotKeyValue { token });
        };
        let key = match key {
            "bringup" => Key::Bringup,
            "delays" => Key::Delays,
            "maxcpus" => Key::MaxCpus,
            "apstack" => Key::ApStack,
            "test" => Key::Test,
            "bench" => Key::Bench,
            _ => return Err(CmdlineError::UnknownOption { token }),
        };
        if core::mem::replace(&mut seen[key as usize], true) {
            return Err(CmdlineError::Repeated { token });
        }
        if value.is_empty() {
            return Err(CmdlineError::EmptyValue { token });
        }
        let invalid = CmdlineError::InvalidValue { token };
        match key {
            Key::Bringup => {
                options.strategy = match value {
                    "sequential" => Strategy::Sequential,
                    "parallel" => Strategy::Parallel,
                    _ => return Err(invalid),
                }
            }
            Key::Delays => {
                options.delays = match value {
                    "spec" => DelayPolicy::Spec,
                    "fast" => DelayPolicy::Fast,
                    _ => return Err(invalid),
                }
            }
            Key::MaxCpus => {
                let n = parse_decimal(value).ok_or(invalid)?;
                options.max_cpus = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_SUPPORTED_CPUS).contains(n))
                    .ok_or(CmdlineError::OutOfRange { token })?;
            }
            Key::ApStack => options.ap_stack_size = parse_stack_size(token, value)?,
            Key::Bench => {
                options.bench = match value {
                    "floor" => Some(BenchMode::Floor),
                    "runtime" => Some(BenchMode::Runtime),
                    "sched" => Some(BenchMode::Sched),
                    "sched-small" => Some(BenchMode::SchedSmall),
                    "sched-tiny" => Some(BenchMode::SchedTiny),
                    _ => return Err(invalid),
                }
            }
            Key::Test => {
                options.test = match value {
                    "absent-ap" => Some(TestCase::AbsentAp),
                    "panic-ap" => Some(TestCase::PanicAp),
                    "fault-ap" => Some(TestCase::FaultAp),
                    "lock-torture" => Some(TestCase::LockTorture),
                    "task-panic" => Some(TestCase::TaskPanic),
                    _ => return Err(invalid),
                }
            }
        }
    }
    Ok(options)
}

/// Parses a non-empty string of ASCII digits; `None` if it has anything else (a sign, spaces,
/// hex). Overflow saturates to `u64::MAX`, which every range check then rejects as too large.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parses an `apstack` value: digits, then nothing, `K`/`KiB` or `M`/`MiB` (any case).
fn parse_stack_size<'a>(token: &'a str, value: &str) -> Result<usize, CmdlineError<'a>> {
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, suffix) = value.split_at(digits_end);
    let number = parse_decimal(digits).ok_or(CmdlineError::InvalidValue { token })?;
    let is = |s: &str| suffix.eq_ignore_ascii_case(s);
    let multiplier = if suffix.is_empty() {
        1
    } else if is("k") || is("kib") {
        KIB as u64
    } else if is("m") || is("mib") {
        MIB as u64
    } else {
        return Err(CmdlineError::InvalidValue { token });
    };
    let size = number
        .checked_mul(multiplier)
        .filter(|s| (MIN_AP_STACK_SIZE as u64..=MAX_AP_STACK_SIZE as u64).contains(s))
        .ok_or(CmdlineError::OutOfRange { token })?;
    if !size.is_multiple_of(AP_STACK_GRANULE as u64) {
        return Err(CmdlineError::Misaligned { token });
    }
    // In range, so at most 1 MiB: fits any usize.
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "valid options: bringup=sequential|parallel, delays=spec|fast, \
                         maxcpus=1..4096, apstack=8K..1M (multiple of 4K), \
                         test=absent-ap|panic-ap|fault-ap|lock-torture|task-panic, bench=floor|runtime|sched|sched-small|sched-tiny";

    #[test]
    fn defaults() {
        let expected = Options {
            strategy: Strategy::Parallel,
            delays: DelayPolicy::Fast,
            max_cpus: 1024,
            ap_stack_size: 16 * 1024,
            test: None,
            bench: None,
        };
        assert_eq!(Options::default(), expected);
        assert_eq!(parse(""), Ok(expected));
        assert_eq!(parse("  \t\n "), Ok(expected));
    }

    #[test]
    fn each_option() {
        let o = parse("bringup=sequential").unwrap();
        assert_eq!(o.strategy, Strategy::Sequential);
        assert_eq!(
            parse("bringup=parallel").unwrap().strategy,
            Strategy::Parallel
        );
        assert_eq!(parse("delays=spec").unwrap().delays, DelayPolicy::Spec);
        assert_eq!(parse("delays=fast").unwrap().delays, DelayPolicy::Fast);
        assert_eq!(parse("maxcpus=1").unwrap().max_cpus, 1);
        assert_eq!(parse("maxcpus=4096").unwrap().max_cpus, 4096);
        assert_eq!(parse("maxcpus=007").unwrap().max_cpus, 7);
        assert_eq!(parse("apstack=65536").unwrap().ap_stack_size, 65536);
    }

    #[test]
    fn all_options_together() {
        let o = parse(" bringup=sequential\tdelays=spec  maxcpus=6 apstack=32K\n").unwrap();
        assert_eq!(
            o,
            Options {
                strategy: Strategy::Sequential,
                delays: DelayPolicy::Spec,
                max_cpus: 6,
                ap_stack_size: 32 * 1024,
                test: None,
                bench: None,
            }
        );
    }

    #[test]
    fn bench_modes_round_trip() {
        for mode in [
            BenchMode::Floor,
            BenchMode::Runtime,
            BenchMode::Sched,
            BenchMode::SchedSmall,
            BenchMode::SchedTiny,
        ] {
            let o = parse(&token(mode)).unwrap();
            assert_eq!(o.bench, Some(mode));
            assert!(o.to_string().ends_with(&token(mode)));
        }
        assert!(parse("bench=sched-huge").is_err());
    }

    fn token(mode: BenchMode) -> String {
        format!("bench={}", mode.as_str())
    }

    #[test]
    fn test_option() {
        assert_eq!(
            parse("test=absent-ap").unwrap().test,
            Some(TestCase::AbsentAp)
        );
        assert_eq!(
            parse("test=absent-ap").unwrap().to_string(),
            "bringup=parallel delays=fast maxcpus=1024 apstack=16K test=absent-ap"
        );
        assert!(matches!(
            parse("test=panic"),
            Err(CmdlineError::InvalidValue { .. })
        ));
    }

    #[test]
    fn stack_size_suffixes() {
        for (value, bytes) in [
            ("8K", 8 * 1024),
            ("8k", 8 * 1024),
            ("12KiB", 12 * 1024),
            ("12kib", 12 * 1024),
            ("20KIB", 20 * 1024),
            ("1M", 1024 * 1024),
            ("1m", 1024 * 1024),
            ("1MiB", 1024 * 1024),
            ("1024K", 1024 * 1024),
            ("8192", 8192),
            ("1048576", 1024 * 1024),
        ] {
            let line = format!("apstack={value}");
            assert_eq!(parse(&line).unwrap().ap_stack_size, bytes, "{line}");
        }
    }

    #[test]
    fn as_str() {
        assert_eq!(Strategy::Sequential.as_str(), "sequential");
        assert_eq!(Strategy::Parallel.as_str(), "parallel");
        assert_eq!(DelayPolicy::Spec.as_str(), "spec");
        assert_eq!(DelayPolicy::Fast.as_str(), "fast");
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(
            Options::default().to_string(),
            "bringup=parallel delays=fast maxcpus=1024 apstack=16K"
        );
        for line in [
            "bringup=sequential delays=spec maxcpus=4096 apstack=1M",
            "bringup=parallel delays=fast maxcpus=1 apstack=8K",
            "bringup=sequential delays=fast maxcpus=6 apstack=1020K",
        ] {
            let o = parse(line).unwrap();
            assert_eq!(o.to_string(), line);
            assert_eq!(parse(&o.to_string()), Ok(o));
        }
    }

    #[test]
    fn not_key_value() {
        let err = parse("maxcpus=2 quiet").unwrap_err();
        assert_eq!(err, CmdlineError::NotKeyValue { token: "quiet" });
        assert_eq!(
            err.to_string(),
            format!("option `quiet` is not of the form key=value; {VALID}")
        );
    }

    #[test]
    fn unknown_option() {
        let err = parse("foo=1").unwrap_err();
        assert_eq!(err, CmdlineError::UnknownOption { token: "foo=1" });
        assert_eq!(err.to_string(), format!("unknown option `foo=1`; {VALID}"));
        // Keys are case-sensitive.
        for line in ["MAXCPUS=2", "=2", "Test=absent-ap", "maxcpu=2"] {
            assert!(
                matches!(parse(line), Err(CmdlineError::UnknownOption { .. })),
                "{line}"
            );
        }
    }

    #[test]
    fn empty_value() {
        for (line, token) in [
            ("bringup=", "bringup="),
            ("maxcpus=", "maxcpus="),
            ("apstack=", "apstack="),
            ("delays=", "delays="),
        ] {
            assert_eq!(parse(line), Err(CmdlineError::EmptyValue { token }));
        }
        assert_eq!(
            parse("maxcpus=").unwrap_err().to_string(),
            format!("option `maxcpus=` has an empty value; {VALID}")
        );
    }

    #[test]
    fn invalid_values() {
        for token in [
            "bringup=fast",
            "bringup=Parallel",
            "delays=slow",
            "maxcpus=abc",
            "maxcpus=-1",
            "maxcpus=+4",
            "maxcpus=0x10",
            "maxcpus=4k",
            "apstack=K",
            "apstack=16KB",
            "apstack=16G",
            "apstack=1.5M",
            "apstack=-16K",
            "bringup=parallel=1",
        ] {
            assert_eq!(
                parse(token),
                Err(CmdlineError::InvalidValue { token }),
                "{token}"
            );
        }
        // A space splits the token: the suffix becomes a token of its own.
        assert_eq!(
            parse("apstack=16K K"),
            Err(CmdlineError::NotKeyValue { token: "K" })
        );
        assert_eq!(
            parse("delays=slow").unwrap_err().to_string(),
            format!("invalid value in option `delays=slow`; {VALID}")
        );
    }

    #[test]
    fn out_of_range() {
        for token in [
            "maxcpus=0",
            "maxcpus=4097",
            "maxcpus=4294967296",
            "maxcpus=99999999999999999999999",
            "apstack=4K",
            "apstack=0",
            "apstack=2M",
            "apstack=1028K",
            "apstack=99999999999999999999999M",
            "apstack=18446744073709551615K",
        ] {
            assert_eq!(
                parse(token),
                Err(CmdlineError::OutOfRange { token }),
                "{token}"
            );
        }
        assert_eq!(
            parse("maxcpus=0").unwrap_err().to_string(),
            format!("value out of range in option `maxcpus=0`; {VALID}")
        );
    }

    #[test]
    fn misaligned_stack_size() {
        for token in ["apstack=10K", "apstack=8193", "apstack=12289"] {
            assert_eq!(
                parse(token),
                Err(CmdlineError::Misaligned { token }),
                "{token}"
            );
        }
        assert_eq!(
            parse("apstack=10K").unwrap_err().to_string(),
            format!("option `apstack=10K` is not a multiple of 4K; {VALID}")
        );
    }

    #[test]
    fn repeated_key() {
        let err = parse("maxcpus=2 bringup=parallel maxcpus=4").unwrap_err();
        assert_eq!(err, CmdlineError::Repeated { token: "maxcpus=4" });
        assert_eq!(err.token(), "maxcpus=4");
        assert_eq!(
            err.to_string(),
            format!("option `maxcpus=4` repeats an earlier `maxcpus=`; {VALID}")
        );
        // Even with the same value.
        assert!(matches!(
            parse("delays=fast delays=fast"),
            Err(CmdlineError::Repeated {
                token: "delays=fast"
            })
        ));
    }

    #[test]
    fn error_borrows_from_input() {
        let line = String::from("bringup=sideways");
        let err = parse(&line).unwrap_err();
        assert!(core::ptr::eq(err.token().as_ptr(), line.as_ptr()));
    }
}
