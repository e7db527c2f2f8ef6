//! Running QEMU with the stand-in host: serial output, a hard timeout, and stopping at once
//! when KVM reports an emulation failure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::KVM_FAILURE;

/// What a watched QEMU run produced.
pub struct Run {
    /// Serial output (QEMU's stdout).
    pub serial: String,
    /// QEMU's own messages.
    pub stderr: String,
    /// Exit status (`None`: killed).
    pub exit: Option<i32>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// Stopped because KVM could not emulate an instruction (QEMU pauses the VM then).
    pub kvm_failure: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// "KVM internal error ... emulation failure at RIP 0x.. (code 0f 57 c0), after the program
    /// started" from QEMU's register dump, for skip reasons.
    pub fn kvm_failure_summary(&self) -> String {
        let rip = self
            .stderr
            .split_whitespace()
            .find_map(|w| w.strip_prefix("RIP="))
            .map(|r| format!(" at RIP 0x{}", r.trim_start_matches('0')))
            .unwrap_or_default();
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
        let when = if self.serial.contains("standin: running ") {
            ", after the program started in ring 0"
        } else {
            ", while the host itself ran"
        };
        format!("QEMU stopped with `KVM internal error ... emulation failure`{rip}{code}{when}")
    }
}

/// Runs `cmd` with stdin closed, collecting stdout (the serial console) and stderr, echoing
/// both when `echo`. Kills QEMU after `timeout`, and right after a KVM emulation failure has
/// been reported (QEMU would sit paused).
pub fn watch(mut cmd: Command, timeout: Duration, echo: bool) -> Result<Run, String> {
    enum Line {
        Out(String),
        Err(String),
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx_err = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                if tx
                    .send(Line::Out(String::from_utf8_lossy(&line).into()))
                    .is_err()
                {
                    break;
                }
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
                if tx_err
                    .send(Line::Err(String::from_utf8_lossy(&line).into()))
                    .is_err()
                {
                    break;
                }
            }
        }),
    ];
    let mut run = Run {
        serial: String::new(),
        stderr: String::new(),
        exit: None,
        timed_out: false,
        kvm_failure: false,
        elapsed: Duration::ZERO,
    };
    // After the failure, QEMU dumps the registers and pauses: read the dump, then stop.
    let mut failure_deadline: Option<Instant> = None;
    loop {
        let deadline = failure_deadline.unwrap_or(start + timeout);
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Line::Out(line)) => {
                let line = line.trim_end_matches('\r');
                if echo {
                    println!("{line}");
                }
                run.serial.push_str(line);
                run.serial.push('\n');
            }
            Ok(Line::Err(line)) => {
                if echo {
                    eprintln!("{line}");
                }
                if line.contains(KVM_FAILURE) {
                    run.kvm_failure = true;
                    failure_deadline = Some(Instant::now() + Duration::from_secs(2));
                }
                let dump_done = run.kvm_failure && line.starts_with("Code=");
                run.stderr.push_str(&line);
                run.stderr.push('\n');
                if dump_done {
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    run.timed_out = failure_deadline.is_none();
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    for reader in readers {
        let _ = reader.join();
    }
    for line in rx.try_iter() {
        match line {
            Line::Out(l) => {
                run.serial.push_str(l.trim_end_matches('\r'));
                run.serial.push('\n');
            }
            Line::Err(l) => {
                run.stderr.push_str(&l);
                run.stderr.push('\n');
            }
        }
    }
    run.exit = status.code();
    run.elapsed = start.elapsed();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_failure_summary_reads_qemu_dump() {
        let run = Run {
            serial: "standin: running /standin_hello in ring 0, interrupts on\n".into(),
            stderr: "KVM internal error. Suberror: 1\nemulation failure\nRAX=0000000000001000 RBX=0\nRIP=0000001000029d63 RFL=00000202\nCode=29 0f <0f> 57 c0 90 45\n".into(),
            exit: None,
            timed_out: false,
            kvm_failure: true,
            elapsed: Duration::ZERO,
        };
        let s = run.kvm_failure_summary();
        assert!(s.contains("at RIP 0x1000029d63"), "{s}");
        assert!(s.contains("(instruction bytes 0f 57 c0)"), "{s}");
        assert!(s.contains("after the program started"), "{s}");
    }
}
