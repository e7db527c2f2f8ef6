//! Building the stand-in host, the programs it runs (musl static-pie) and the C example.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cargo, HOST_PACKAGE, PROGRAM_TARGET};
use crate::build;

/// Builds the stand-in host (release, x86_64-unknown-none); returns its image.
pub fn build_host() -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        HOST_PACKAGE,
        "--target",
        "x86_64-unknown-none",
    ])?;
    Ok(build::target_dir()
        .join("x86_64-unknown-none/release")
        .join(HOST_PACKAGE))
}

/// Builds binary `bin` of workspace package `package` for x86_64-unknown-linux-musl (release;
/// .cargo/config.toml makes it static-pie) and checks it with the host's own ELF rules, so that
/// a program the host would refuse is refused here, with the same message.
pub fn build_program(package: &str, bin: &str) -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        package,
        "--bin",
        bin,
        "--target",
        PROGRAM_TARGET,
    ])?;
    let path = build::target_dir()
        .join(PROGRAM_TARGET)
        .join("release")
        .join(bin);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    standin_core::elf::parse(&bytes).map_err(|e| {
        format!(
            "{}: {e} (RUSTFLAGS in the environment replace the musl rustflags of .cargo/config.toml)",
            path.display()
        )
    })?;
    Ok(path)
}

/// Builds the C example (capi/example/hello_cpus.c) against the library's static library and
/// C header (capi/: `libmulticore.a`, `include/multicore.h`) as a musl static-pie program.
/// Debian's musl-gcc cannot link static-pie itself (its specs file knows only static and
/// dynamic), so it compiles and `ld` links with musl's self-relocating start file (rcrt1.o).
pub fn build_c_example() -> Result<PathBuf, String> {
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        "multicore_capi",
        "--target",
        PROGRAM_TARGET,
    ])?;
    let root = build::root();
    let release = build::target_dir().join(PROGRAM_TARGET).join("release");
    let object = release.join("hello_cpus_c.o");
    let out = release.join("hello_cpus_c");
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {what}: {e} (install musl-tools: `make setup`)"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed"))
        }
    };
    run(
        Command::new("musl-gcc")
            .args(["-O2", "-fPIE", "-Wall", "-Werror", "-c", "-o"])
            .arg(&object)
            .arg("-I")
            .arg(root.join("capi/include"))
            .arg(root.join("capi/example/hello_cpus.c")),
        "musl-gcc",
    )?;
    let musl = Path::new("/usr/lib/x86_64-linux-musl");
    let gcc = Command::new("gcc")
        .arg("-print-libgcc-file-name")
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    let libgcc = PathBuf::from(String::from_utf8_lossy(&gcc.stdout).trim());
    let gcc_dir = libgcc.parent().map(Path::to_path_buf).unwrap_or_default();
    run(
        Command::new("ld")
            .args([
                "-static",
                "-pie",
                "--no-dynamic-linker",
                "-z",
                "text",
                "--gc-sections",
            ])
            .arg("-o")
            .arg(&out)
            .arg(musl.join("rcrt1.o"))
            .arg(musl.join("crti.o"))
            .arg(gcc_dir.join("crtbeginS.o"))
            .arg(&object)
            .arg(release.join("libmulticore.a"))
            .arg(musl.join("libc.a"))
            .arg(&libgcc)
            .arg(gcc_dir.join("crtendS.o"))
            .arg(musl.join("crtn.o")),
        "ld (static-pie link of the C example)",
    )?;
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    standin_core::elf::parse(&bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}
