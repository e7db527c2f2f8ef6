//! The one QEMU runner: every boot of every command (tests, benchmark, Linux baseline, the
//! interactive `run` and `standin`) goes through [`run`].
//!
//! A run spawns QEMU with stdin closed, reads its serial console (stdout) and its own messages
//! (stderr) line by line on two threads, and ends in one of four ways ([`Ended`]): QEMU exits;
//! a serial line meets the stop condition (runs whose guest never exits, or whose answer is
//! in by then); the timeout passes; or KVM reports an emulation failure, after which QEMU
//! would sit paused forever. In every way but the first QEMU is killed; then what the reader
//! threads still hold is drained into the transcript. Every run has a timeout and the timeout
//! is checked after each line too, so a guest that prints without end cannot hold a run open.
//!
//! The decisions (when to stop, when the deadline is) are made by [`Watcher`], which sees only
//! lines and times: the unit tests drive it without QEMU.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What QEMU prints (stderr) when KVM cannot emulate a guest instruction; it then dumps the
/// registers (ending with a `Code=` line) and pauses the VM.
pub const KVM_FAILURE: &str = "KVM internal error";

/// The limit of a run at the terminal (`cargo xtask run`, `standin`; a gdb session included):
/// long, but not forever.
pub const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How long the register dump after [`KVM_FAILURE`] may take to arrive before QEMU is killed.
const KVM_DUMP_GRACE: Duration = Duration::from_secs(2);

/// How a run is watched.
pub struct Watch<'a> {
    timeout: Duration,
    stop: Box<dyn Fn(&str) -> bool + 'a>,
    echo: bool,
}

impl<'a> Watch<'a> {
    /// Runs until QEMU exits, killing it after `timeout`.
    pub fn new(timeout: Duration) -> Watch<'a> {
        Watch {
            timeout,
            stop: Box::new(|_| false),
            echo: false,
        }
    }

    /// Also stops QEMU as soon as `stop` accepts a serial line.
    pub fn stop_when(mut self, stop: impl Fn(&str) -> bool + 'a) -> Watch<'a> {
        self.stop = Box::new(stop);
        self
    }

    /// Also stops QEMU as soon as a serial line contains `needle`.
    pub fn stop_after(self, needle: &'a str) -> Watch<'a> {
        self.stop_when(move |line| line.contains(needle))
    }

    /// Echoes the serial console to stdout and QEMU's messages to stderr as they come.
    pub fn echo(mut self) -> Watch<'a> {
        self.echo = true;
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited by itself (both its output streams closed).
    Exited,
    /// Killed because a serial line met the stop condition.
    Stopped,
    /// Killed because the timeout passed.
    TimedOut,
    /// Killed after KVM reported an emulation failure (QEMU would sit paused).
    KvmFailure,
}

/// Which of QEMU's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout: the guest's serial console.
    Serial,
    /// stderr: QEMU's own messages.
    Stderr,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Serial output, one `\n` per line (carriage returns dropped).
    pub serial: String,
    /// Each serial line with the time since QEMU was started when it was read.
    pub timed_lines: Vec<(Duration, String)>,
    /// QEMU's own messages (stderr).
    pub stderr: String,
    /// Exit status, `None` if killed.
    pub exit: Option<i32>,
    /// How the run ended (`None` only in an outcome not yet finished).
    pub ended: Option<Ended>,
    /// KVM reported an emulation failure (whether or not QEMU then exited by itself).
    pub kvm_failure: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl Outcome {
    /// Killed because the timeout passed.
    pub fn timed_out(&self) -> bool {
        self.ended == Some(Ended::TimedOut)
    }

    /// Killed because a serial line met the stop condition.
    pub fn stopped(&self) -> bool {
        self.ended == Some(Ended::Stopped)
    }

    /// "QEMU stopped with `KVM internal error ... emulation failure` at RIP 0x.. (instruction
    /// bytes 0f 57 c0), after the serial line `...`", from QEMU's register dump: for failure
    /// reports and skip reasons.
    pub fn kvm_failure_summary(&self) -> String {
        let rip = self
            .stderr
            .split_whitespace()
            .find_map(|w| w.strip_prefix("RIP="))
            .map(|r| format!(" at RIP 0x{}", r.trim_start_matches('0')))
            .unwrap_or_default();
        // The dump marks the faulting instruction's first byte as `<0f>`.
        let code = self
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("Code="))
            .and_then(|c| c.split('<').nth(1))
            .map(|c| {
                let bytes: Vec<&str> = c
                    .split(|ch: char| !ch.is_ascii_hexdigit())
                    .filter(|b| !b.is_empty())
                    .take(3)
                    .collect();
                format!(" (instruction bytes {})", bytes.join(" "))
            })
            .unwrap_or_default();
        let when = match self.serial.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!(", after the serial line `{last}`"),
            None => ", before any serial output".to_string(),
        };
        format!("QEMU stopped with `KVM internal error ... emulation failure`{rip}{code}{when}")
    }

    fn push(&mut self, stream: Stream, at: Duration, line: &str) {
        match stream {
            Stream::Serial => {
                let line = line.trim_end_matches('\r');
                self.serial.push_str(line);
                self.serial.push('\n');
                self.timed_lines.push((at, line.to_string()));
            }
            Stream::Stderr => {
                self.stderr.push_str(line);
                self.stderr.push('\n');
            }
        }
    }
}

/// The decisions of a run, from its lines and their times alone (no process, no clock).
pub struct Watcher<'w, 'a> {
    watch: &'w Watch<'a>,
    /// When KVM reported its emulation failure.
    kvm_failure_at: Option<Duration>,
    outcome: Outcome,
}

impl<'w, 'a> Watcher<'w, 'a> {
    /// A run about to start.
    pub fn new(watch: &'w Watch<'a>) -> Watcher<'w, 'a> {
        Watcher {
            watch,
            kvm_failure_at: None,
            outcome: Outcome::default(),
        }
    }

    /// Time since the start after which QEMU is killed: the timeout, or shortly after a KVM
    /// emulation failure (long enough for the register dump).
    pub fn deadline(&self) -> Duration {
        match self.kvm_failure_at {
            Some(at) => (at + KVM_DUMP_GRACE).min(self.watch.timeout),
            None => self.watch.timeout,
        }
    }

    /// Takes a line read `at` after the start; `Some` when QEMU is to be killed now.
    pub fn line(&mut self, stream: Stream, at: Duration, line: &str) -> Option<Ended> {
        self.outcome.push(stream, at, line);
        match stream {
            Stream::Serial if (self.watch.stop)(line.trim_end_matches('\r')) => {
                return Some(Ended::Stopped)
            }
            Stream::Serial => {}
            Stream::Stderr => {
                if line.contains(KVM_FAILURE) && self.kvm_failure_at.is_none() {
                    self.kvm_failure_at = Some(at);
                    self.outcome.kvm_failure = true;
                }
                // The dump is complete: nothing more will come from a paused VM.
                if self.kvm_failure_at.is_some() && line.starts_with("Code=") {
                    return Some(Ended::KvmFailure);
                }
            }
        }
        self.expired(at)
    }

    /// `Some` if the deadline has passed at `now`.
    pub fn expired(&self, now: Duration) -> Option<Ended> {
        if now < self.deadline() {
            None
        } else if self.kvm_failure_at.is_some() {
            Some(Ended::KvmFailure)
        } else {
            Some(Ended::TimedOut)
        }
    }

    /// Takes a line read after QEMU was killed or exited (no decision left to make).
    pub fn drained(&mut self, stream: Stream, at: Duration, line: &str) {
        self.outcome.push(stream, at, line);
    }

    /// The transcript and how the run ended.
    pub fn finish(mut self, ended: Ended, exit: Option<i32>, elapsed: Duration) -> Outcome {
        self.outcome.ended = Some(ended);
        self.outcome.exit = exit;
        self.outcome.elapsed = elapsed;
        self.outcome
    }
}

/// One line from a reader thread: its stream, when it was read, its text.
type Line = (Stream, Instant, String);

/// Reads `from` line by line into `tx` until it closes (or the receiver is gone).
fn reader(stream: Stream, from: impl Read + Send + 'static, tx: mpsc::Sender<Line>) {
    for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
        let text = String::from_utf8_lossy(&line).into_owned();
        if tx.send((stream, Instant::now(), text)).is_err() {
            break;
        }
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr read by the runner) as `watch` says.
pub fn run(mut cmd: Command, watch: &Watch) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU ({:?}): {e}", cmd.get_program()))?;
    let (tx, rx) = mpsc::channel::<Line>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tx_err = tx.clone();
    let readers = [
        std::thread::spawn(move || reader(Stream::Serial, stdout, tx)),
        std::thread::spawn(move || reader(Stream::Stderr, stderr, tx_err)),
    ];
    let mut watcher = Watcher::new(watch);
    let ended = loop {
        let left = watcher.deadline().saturating_sub(start.elapsed());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok((stream, at, text)) => {
                if watch.echo {
                    match stream {
                        Stream::Serial => println!("{}", text.trim_end_matches('\r')),
                        Stream::Stderr => eprintln!("{text}"),
                    }
                }
                let at = at.saturating_duration_since(start);
                if let Some(ended) = watcher.line(stream, at, &text) {
                    break ended;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ended::Exited,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(ended) = watcher.expired(start.elapsed()) {
                    break ended;
                }
            }
        }
    };
    let status = if ended == Ended::Exited {
        // Both streams closed: QEMU is exiting. Still bounded, by the deadline or (if that
        // has just passed) a second, enough to reap a process that has closed its output.
        let deadline = (start + watcher.deadline()).max(Instant::now() + Duration::from_secs(1));
        wait_until(&mut child, deadline)?
    } else {
        let _ = child.kill();
        child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?
    };
    // The pipes are closed now (QEMU is gone), so the readers end; keep what they still had.
    for reader in readers {
        let _ = reader.join();
    }
    for (stream, at, text) in rx.try_iter() {
        watcher.drained(stream, at.saturating_duration_since(start), &text);
    }
    Ok(watcher.finish(ended, status.code(), start.elapsed()))
}

/// Waits for `child` to exit, killing it if it has not by `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<std::process::ExitStatus, String> {
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for QEMU: {e}"))?
        {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return child.wait().map_err(|e| format!("waiting for QEMU: {e}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_stop_condition_ends_the_run_at_its_line() {
        let watch = Watch::new(ms(1000)).stop_after("bringup:");
        let mut w = Watcher::new(&watch);
        assert_eq!(w.line(Stream::Serial, ms(1), "All CPUs started!\r"), None);
        // QEMU's messages never meet the stop condition.
        assert_eq!(w.line(Stream::Stderr, ms(2), "bringup: on stderr"), None);
        assert_eq!(
            w.line(Stream::Serial, ms(3), "bringup: cpus=2 online=2\r"),
            Some(Ended::Stopped)
        );
        w.drained(Stream::Serial, ms(4), "after the kill");
        let out = w.finish(Ended::Stopped, None, ms(5));
        assert!(out.stopped() && !out.timed_out());
        assert_eq!(
            out.serial,
            "All CPUs started!\nbringup: cpus=2 online=2\nafter the kill\n"
        );
        assert_eq!(
            out.timed_lines[1],
            (ms(3), "bringup: cpus=2 online=2".into())
        );
        assert_eq!(out.stderr, "bringup: on stderr\n");
    }

    #[test]
    fn without_a_stop_condition_only_the_deadline_ends_the_run() {
        let watch = Watch::new(ms(100));
        let mut w = Watcher::new(&watch);
        assert_eq!(w.line(Stream::Serial, ms(99), "anything"), None);
        assert_eq!(w.expired(ms(99)), None);
        assert_eq!(w.expired(ms(100)), Some(Ended::TimedOut));
        // A guest that keeps printing is stopped at the deadline all the same.
        assert_eq!(
            w.line(Stream::Serial, ms(150), "more"),
            Some(Ended::TimedOut)
        );
    }

    #[test]
    fn a_kvm_failure_ends_the_run_after_the_register_dump() {
        let watch = Watch::new(ms(60_000));
        let mut w = Watcher::new(&watch);
        assert_eq!(
            w.line(Stream::Stderr, ms(500), "KVM internal error. Suberror: 1"),
            None
        );
        assert_eq!(w.deadline(), ms(2500));
        assert_eq!(
            w.line(Stream::Stderr, ms(510), "RIP=0000001000029d63"),
            None
        );
        assert_eq!(
            w.line(Stream::Stderr, ms(520), "Code=29 0f <0f> 57 c0 90"),
            Some(Ended::KvmFailure)
        );
        // Without the dump's last line, the grace period ends it, not as a timeout.
        let mut w = Watcher::new(&watch);
        w.line(Stream::Stderr, ms(500), "KVM internal error. Suberror: 1");
        assert_eq!(w.expired(ms(2499)), None);
        assert_eq!(w.expired(ms(2500)), Some(Ended::KvmFailure));
        let out = w.finish(Ended::KvmFailure, None, ms(2500));
        assert!(out.kvm_failure && !out.timed_out());
    }

    #[test]
    fn kvm_failure_summary_reads_the_register_dump() {
        let out = Outcome {
            serial: "standin: running /standin_hello in ring 0, interrupts on\n".into(),
            stderr: "KVM internal error. Suberror: 1\nemulation failure\nRAX=0000000000001000 RBX=0\nRIP=0000001000029d63 RFL=00000202\nCode=29 0f <0f> 57 c0 90 45\n".into(),
            kvm_failure: true,
            ..Outcome::default()
        };
        let s = out.kvm_failure_summary();
        assert!(s.contains("at RIP 0x1000029d63"), "{s}");
        assert!(s.contains("(instruction bytes 0f 57 c0)"), "{s}");
        assert!(
            s.ends_with(
                "after the serial line `standin: running /standin_hello in ring 0, interrupts on`"
            ),
            "{s}"
        );
        let quiet = Outcome {
            stderr: "KVM internal error. Suberror: 1\n".into(),
            ..Outcome::default()
        };
        assert!(quiet
            .kvm_failure_summary()
            .ends_with("failure`, before any serial output"));
    }

    #[test]
    fn runs_a_process_to_its_exit_and_kills_one_that_hangs() {
        // Not QEMU, but the same plumbing: a shell that prints, and one that never ends.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo two >&2; echo three; exit 3"]);
        let out = run(cmd, &Watch::new(Duration::from_secs(20))).unwrap();
        assert_eq!(out.ended, Some(Ended::Exited));
        assert_eq!(
            (out.serial.as_str(), out.stderr.as_str()),
            ("one\nthree\n", "two\n")
        );
        assert_eq!(out.exit, Some(3));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; exec sleep 30"]);
        let out = run(cmd, &Watch::new(ms(300))).unwrap();
        assert!(out.timed_out() && out.exit.is_none(), "{out:?}");
        assert!(out.elapsed < Duration::from_secs(10));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ready; exec sleep 30"]);
        let out = run(
            cmd,
            &Watch::new(Duration::from_secs(20)).stop_after("ready"),
        )
        .unwrap();
        assert!(out.stopped() && out.elapsed < Duration::from_secs(10));
    }
}
