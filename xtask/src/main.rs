//! Host-side runner for rust_multicore: builds the kernel image and boots it in QEMU.
//!
//! ```text
//! cargo xtask build                 build the image (and its PVH-only twin)
//! cargo xtask run [options]         boot the demo in QEMU, serial on the terminal
//! cargo xtask qemu-test [filter]    the QEMU integration tests (each run has a timeout)
//! cargo xtask bench [--quick]       boot many times, tabulate bring-up vs the wake-up floor (--only sched|bringup|host-sched: one stage; --accel: one accelerator; --compare A,B: kernel images in one run)
//! cargo xtask linux-baseline        the same bring-up timed for stock Debian Linux guests
//! cargo xtask standin [options]     boot the stand-in host (issue 6) with a std program
//! ```
//! The environment variable `QEMU` names the qemu-system-x86_64 binary (default: from PATH).

mod bench;
mod build;
mod cases;
mod check;
mod linux_guest;
mod qemu;
mod runner;
mod standin;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build::kernel().map(|images| {
            println!("built {}", images.multiboot.display());
            println!("built {} (PVH-only twin)", images.pvh.display());
        }),
        Some("run") => run(&args[1..]),
        Some("qemu-test") => cases::run_all(args.get(1).map(String::as_str)),
        Some("bench") => bench_args(&args[1..]).and_then(bench::run),
        Some("linux-baseline") => linux_baseline(&args[1..]),
        Some("standin") => standin::run(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  cargo xtask build
  cargo xtask run [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg] [--pvh]
                  [--append 'key=value ...'] [--gdb] [-- extra qemu args]
  cargo xtask qemu-test [name-filter]
  cargo xtask bench [--quick] [--out FILE] [--only sched|bringup [--boots N]] [--accel tcg|kvm]
  cargo xtask bench --compare IMG,IMG... [--cpus N,N...] [--boots N] [--accel tcg|kvm] [--out FILE]
  cargo xtask bench --only host-sched [--cpus N,N...] [--boots N] [--accel tcg|kvm] [--out FILE]
  cargo xtask linux-baseline [--smp N[,N...]] [--boots K] [--quick]
  cargo xtask standin [--smp N] [--machine pc|q35|microvm] [--accel auto|kvm|tcg] [--package P]
                      [--bin B] [--load 0x..] [--append 'host options'] [-- program args]";

/// `cargo xtask linux-baseline`: the Linux guest baseline on its own, Markdown on stdout.
/// Default: -smp 2,4,8,16,32,64, 3 boots per point. `--quick`: the smoke run's kernel and
/// configurations (with -smp 2 and 1 boot unless given).
fn linux_baseline(args: &[String]) -> Result<(), String> {
    let mut counts = None;
    let mut boots = None;
    let mut quick = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smp" => {
                let list = it.next().ok_or("--smp needs N[,N...]")?;
                let parsed: Option<Vec<u32>> = list
                    .split(',')
                    .map(|n| n.parse().ok().filter(|&n| n >= 2))
                    .collect();
                counts = Some(parsed.ok_or(format!(
                    "--smp wants CPU counts >= 2 like 2,4,64, not `{list}`"
                ))?);
            }
            "--boots" => {
                let k = it.next().and_then(|k| k.parse().ok()).filter(|&k| k >= 1);
                boots = Some(k.ok_or("--boots needs a number >= 1")?);
            }
            "--quick" => quick = true,
            other => return Err(format!("unknown linux-baseline option `{other}`\n{USAGE}")),
        }
    }
    let (default_counts, default_boots) = if quick {
        (vec![2], 1)
    } else {
        (vec![2, 4, 8, 16, 32, 64], 3)
    };
    let counts = counts.unwrap_or(default_counts);
    let qemu = qemu::Qemu::detect()?;
    let started = std::time::Instant::now();
    let rows = linux_guest::run(
        &qemu,
        &counts,
        boots.unwrap_or(default_boots),
        quick,
        &mut |status| eprint!("\rlinux-baseline: {status:<70}"),
    )?;
    eprintln!();
    print!("{}", linux_guest::render(&rows));
    let boots: usize = rows.iter().map(|r| r.samples_ms.len()).sum();
    eprintln!(
        "linux-baseline: {boots} boots in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench_args(args: &[String]) -> Result<bench::BenchOptions, String> {
    let mut options = bench::BenchOptions {
        quick: false,
        out: None,
        only: None,
        accel: None,
        compare: Vec::new(),
        cpus: Vec::new(),
        boots: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => options.out = Some(it.next().ok_or("--out needs a file")?.into()),
            "--only" => options.only = Some(it.next().ok_or("--only needs a stage")?.clone()),
            "--accel" => {
                options.accel = Some(match it.next().map(String::as_str) {
                    Some("tcg") => qemu::Accel::Tcg,
                    Some("kvm") => qemu::Accel::Kvm,
                    _ => return Err("--accel needs `tcg` or `kvm`".into()),
                })
            }
            "--compare" => {
                let list = it.next().ok_or("--compare needs kernel images (A,B,...)")?;
                options.compare = list.split(',').map(Into::into).collect();
            }
            "--cpus" => {
                let list = it.next().ok_or("--cpus needs CPU counts (2,64,...)")?;
                options.cpus = list
                    .split(',')
                    .map(|n| match n.parse::<u32>() {
                        Ok(n) if (1..=1024).contains(&n) => Ok(n),
                        _ => Err(format!("--cpus: `{n}` is not a CPU count (1..=1024)")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--boots" => {
                let n = it.next().ok_or("--boots needs a number")?;
                options.boots = Some(
                    n.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--boots: `{n}` is not a positive number"))?,
                );
            }
            other => return Err(format!("unknown bench option `{other}`\n{USAGE}")),
        }
    }
    if !options.compare.is_empty() && (options.quick || options.only.is_some()) {
        return Err("--compare is a run of its own: not with --quick or --only".into());
    }
    let host_sched = options.only.as_deref() == Some("host-sched");
    if options.compare.is_empty() && !host_sched && !options.cpus.is_empty() {
        return Err("--cpus goes with --compare or --only host-sched".into());
    }
    if options.boots.is_some()
        && options.compare.is_empty()
        && !host_sched
        && options.only.as_deref() != Some("bringup")
    {
        return Err("--boots goes with --compare, --only bringup or --only host-sched".into());
    }
    if host_sched && options.quick {
        return Err("--only host-sched has no --quick run".into());
    }
    Ok(options)
}

/// `cargo xtask run`: the demo on the terminal. Exits 0 when the kernel reports success.
fn run(args: &[String]) -> Result<(), String> {
    let mut smp = "4".to_string();
    let mut machine = "pc".to_string();
    let mut accel = "auto".to_string();
    let mut append = String::new();
    let mut pvh = false;
    let mut gdb = false;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--smp" => smp = value("--smp")?,
            "--machine" => machine = value("--machine")?,
            "--accel" => accel = value("--accel")?,
            "--append" => append = value("--append")?,
            "--pvh" => pvh = true,
            "--gdb" => gdb = true,
            "--" => {
                extra.extend(it.by_ref().cloned());
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let images = build::kernel()?;
    let qemu = qemu::Qemu::detect()?;
    let accel = match accel.as_str() {
        "auto" => qemu.default_accel(),
        "kvm" => qemu::Accel::Kvm,
        "tcg" => qemu::Accel::Tcg,
        other => return Err(format!("--accel must be auto, kvm or tcg, not `{other}`")),
    };
    let image = if pvh { &images.pvh } else { &images.multiboot };
    let mut cmd = qemu.command(&qemu::Boot {
        accel,
        machine: &machine,
        kernel: image,
        smp: &smp,
        initrd: None,
        append: &append,
    });
    if gdb {
        cmd.args(["-s", "-S"]);
        eprintln!("QEMU waits for gdb on localhost:1234. In another terminal:");
        eprintln!(
            "  gdb {} -ex 'target remote :1234' -ex 'hbreak kmain' -ex c",
            images.multiboot.display()
        );
    }
    cmd.args(&extra);
    eprintln!(
        "booting {} on QEMU {} ({}, -M {machine}, -smp {smp})",
        image.display(),
        qemu.version_string(),
        accel.name()
    );
    let out = runner::run(cmd, &runner::Watch::new(runner::INTERACTIVE_TIMEOUT).echo())?;
    match out.exit {
        Some(33) => Ok(()),
        Some(35) => Err("the kernel reported a failure (isa-debug-exit 0x11)".into()),
        Some(code) => Err(format!("QEMU exited with status {code}")),
        None if out.timed_out() => Err("QEMU was stopped after 24 hours".into()),
        None => Err("QEMU was killed by a signal".into()),
    }
}
