//! Reading the case table (matrix.txt; its header lists the columns and words) into
//! [`Case`]s for one QEMU. Pure: the QEMU's version and whether KVM is usable are all it asks,
//! so the unit tests read the real table for QEMUs this machine does not have.

use std::time::Duration;

use super::presets::{self, Preset};
use super::{Case, Kernel};
use crate::check::{ApicMode, BootExpect, Check, Ending, Expect};
use crate::qemu::{Accel, Qemu};
use crate::standin::{self, Initrd};

/// The matrix every `cargo xtask qemu-test` runs.
pub const MATRIX: &str = include_str!("matrix.txt");

/// The accelerator column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccelChoice {
    Fixed(Accel),
    /// KVM when usable, else TCG.
    Auto,
}

/// The words of the expect column, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Exit(i32),
    StopAt(String),
    Boot,
    Found(u32),
    Ids(Vec<u32>),
    Apic(ApicChoice),
    Check(Check),
    Preset(Preset),
    Without(String),
    LowFree(String),
    Needs(Need, String),
}

/// `apic=` (on a TCG row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApicChoice {
    Mode(ApicMode),
    /// x2APIC where QEMU's TCG emulates it (QEMU >= 8.0), else the xAPIC fallback.
    TcgX2Apic,
}

/// What a case needs of this QEMU, or it is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// x2APIC under TCG (QEMU >= 8.0).
    TcgX2Apic,
}

/// One line of the table, as written.
#[derive(Debug, Clone)]
struct Row {
    line: usize,
    name: String,
    accel: AccelChoice,
    machine: String,
    smp: String,
    kernel: Kernel,
    append: String,
    qemu_args: Vec<String>,
    limit: Duration,
    terms: Vec<Term>,
}

/// Every case of `table` for `qemu`, in table order.
pub fn cases(table: &str, qemu: &Qemu) -> Result<Vec<Case>, String> {
    let rows = rows(table)?;
    rows.iter()
        .map(|row| resolve(row, qemu).map_err(|e| format!("matrix.txt line {}: {e}", row.line)))
        .collect()
}

/// The rows of `table`, checked for what does not need a QEMU to check.
fn rows(table: &str) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Row> = Vec::new();
    for (index, text) in table.lines().enumerate() {
        let line = index + 1;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let row = row(line, text).map_err(|e| format!("matrix.txt line {line}: {e}"))?;
        if let Some(twin) = rows
            .iter()
            .find(|r| r.name == row.name && r.accel == row.accel)
        {
            return Err(format!(
                "matrix.txt line {line}: `{}` with this accelerator is on line {} already",
                row.name, twin.line
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn row(line: usize, text: &str) -> Result<Row, String> {
    let cells = split_outside_quotes(text, '|')?;
    let [name, accel, machine, smp, kernel, append, qemu_args, limit, expect] = cells[..] else {
        return Err(format!("want 9 cells, found {}", cells.len()));
    };
    let accel = match accel {
        "kvm" => AccelChoice::Fixed(Accel::Kvm),
        "tcg" => AccelChoice::Fixed(Accel::Tcg),
        "auto" => AccelChoice::Auto,
        other => return Err(format!("accel `{other}`: want kvm, tcg or auto")),
    };
    let kernel = parse_kernel(kernel)?;
    if (machine == "-") != (kernel == Kernel::Seed) {
        return Err("machine `-` (none given) goes with the seed's command, and only there".into());
    }
    if first_number(smp).is_none() {
        return Err(format!("smp `{smp}` does not start with a CPU count"));
    }
    let limit = limit
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .ok_or(format!("limit `{limit}`: want seconds, like 60s"))?;
    let terms = terms(expect)?;
    check_terms(&terms, kernel)?;
    Ok(Row {
        line,
        name: name.to_string(),
        accel,
        machine: machine.to_string(),
        smp: smp.to_string(),
        kernel,
        append: append.to_string(),
        qemu_args: qemu_args.split_whitespace().map(String::from).collect(),
        limit,
        terms,
    })
}

fn parse_kernel(cell: &str) -> Result<Kernel, String> {
    let initrd = |name: &str| -> Result<Initrd, String> {
        Ok(match name {
            "hello" => Initrd::Hello,
            "hello_cpus" => Initrd::HelloCpus,
            "hello_c" => Initrd::HelloC,
            "none" => Initrd::Absent,
            "not-elf" => Initrd::NotElf,
            "dynamic" => Initrd::Dynamic,
            other => {
                return Err(format!(
                    "initrd `{other}`: want hello, hello_cpus, hello_c, none, not-elf or dynamic"
                ))
            }
        })
    };
    match cell.split_once(':') {
        None if cell == "demo" => Ok(Kernel::Demo),
        None if cell == "demo-pvh" => Ok(Kernel::DemoPvh),
        None if cell == "seed" => Ok(Kernel::Seed),
        Some(("standin", i)) => Ok(Kernel::Standin(initrd(i)?)),
        Some(("unikraft", i)) => Ok(Kernel::Unikraft(initrd(i)?)),
        _ => Err(format!(
            "kernel `{cell}`: want demo, demo-pvh, seed, standin:INITRD or unikraft:INITRD"
        )),
    }
}

/// A word of the expect column, or a quoted text.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Text(&'a str),
}

fn tokens(cell: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut rest = cell.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or(format!("no closing quote after `{rest}`"))?;
            tokens.push(Token::Text(&quoted[..end]));
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            if word.contains('"') {
                return Err(format!("a quote inside the word `{word}`"));
            }
            tokens.push(Token::Word(word));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

fn terms(cell: &str) -> Result<Vec<Term>, String> {
    let tokens = tokens(cell)?;
    let mut terms = Vec::new();
    let mut it = tokens.into_iter();
    while let Some(token) = it.next() {
        let word = match token {
            Token::Word(word) => word,
            Token::Text(text) => {
                return Err(format!(
                    "the text \"{text}\" follows no word that takes one"
                ))
            }
        };
        let mut text = || match it.next() {
            Some(Token::Text(text)) => Ok(text.to_string()),
            _ => Err(format!("`{word}` wants a quoted text after it")),
        };
        let number = |value: &str| -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("`{word}`: `{value}` is not a number"))
        };
        let term = match word.split_once(">=").or_else(|| word.split_once('=')) {
            None => match word {
                "boot" => Term::Boot,
                "hello" => Term::Preset(Preset::Hello),
                "hello_cpus" => Term::Preset(Preset::HelloCpus),
                "alone" => Term::Preset(Preset::Alone(text()?)),
                "prints" => Term::Check(Check::Prints(text()?)),
                "line" => Term::Check(Check::Line(text()?)),
                "ends" => Term::Check(Check::Ends(text()?)),
                "absent" => Term::Check(Check::Absent(text()?)),
                "without" => Term::Without(text()?),
                "stop-at" => Term::StopAt(text()?),
                other => return Err(format!("unknown word `{other}`")),
            },
            Some((key, value)) => match (key, word.contains(">=")) {
                ("exit", false) => Term::Exit(number(value)? as i32),
                ("found", false) => Term::Found(number(value)? as u32),
                ("ids", false) => Term::Ids(
                    value
                        .split(',')
                        .map(|id| number(id).map(|n| n as u32))
                        .collect::<Result<_, _>>()?,
                ),
                ("apic", false) => Term::Apic(match value {
                    "x2apic" => ApicChoice::Mode(ApicMode::X2Apic),
                    "xapic" => ApicChoice::Mode(ApicMode::XApic),
                    "tcg-x2apic" => ApicChoice::TcgX2Apic,
                    other => return Err(format!("apic={other}: want x2apic, xapic or tcg-x2apic")),
                }),
                ("lowfree", false) => Term::LowFree(value.to_string()),
                ("needs", false) if value == "tcg-x2apic" => Term::Needs(Need::TcgX2Apic, text()?),
                ("timer-ticks", true) => Term::Check(Check::TimerTicked(number(value)?)),
                ("bringup-ticks", true) => Term::Check(Check::BringupTicks(number(value)?)),
                _ => return Err(format!("unknown word `{word}`")),
            },
        };
        terms.push(term);
    }
    Ok(terms)
}

/// The rules the words keep among themselves.
fn check_terms(terms: &[Term], kernel: Kernel) -> Result<(), String> {
    let count = |f: fn(&Term) -> bool| terms.iter().filter(|t| f(t)).count();
    if count(|t| matches!(t, Term::Exit(_) | Term::StopAt(_))) != 1 {
        return Err("say how QEMU ends: one exit=N or stop-at \"...\"".into());
    }
    let boot = count(|t| matches!(t, Term::Boot));
    let presets = count(|t| matches!(t, Term::Preset(_)));
    let demo = matches!(kernel, Kernel::Demo | Kernel::DemoPvh);
    let program = matches!(kernel, Kernel::Standin(_) | Kernel::Unikraft(_));
    if boot > 1 || presets > 1 || (boot > 0 && !demo) || (presets > 0 && !program) {
        return Err(
            "at most one boot (demo kernels) or one preset (stand-in and Unikraft kernels)".into(),
        );
    }
    if boot == 0 && count(|t| matches!(t, Term::Found(_) | Term::Ids(_) | Term::Apic(_))) > 0 {
        return Err("found=, ids= and apic= describe a boot: add `boot`".into());
    }
    if presets == 0 && count(|t| matches!(t, Term::Without(_) | Term::LowFree(_))) > 0 {
        return Err("without and lowfree= change a preset: add hello or hello_cpus".into());
    }
    Ok(())
}

/// A row for one QEMU: the accelerator chosen, names and checks made exact, skips decided.
fn resolve(row: &Row, qemu: &Qemu) -> Result<Case, String> {
    let accel = match row.accel {
        AccelChoice::Fixed(accel) => accel,
        AccelChoice::Auto => qemu.default_accel(),
    };
    let mut name = format!("{} [{}]", row.name, accel.name());
    let mut skip = match (accel, &qemu.kvm_unusable) {
        (Accel::Kvm, Some(why)) => Some(format!("KVM not usable ({why})")),
        _ => None,
    };
    let cpus = first_number(&row.smp).expect("checked when read");
    let mut ending = None;
    let mut checks = Vec::new();
    let mut preset = None;
    let mut without = Vec::new();
    let mut low_free = None;
    let mut boot = BootExpect {
        found: cpus,
        apic_ids: Vec::new(),
        apic_mode: match accel {
            // Default CPU models: KVM's host CPU offers x2APIC here; QEMU's TCG default
            // (qemu64) does not.
            Accel::Kvm => ApicMode::X2Apic,
            Accel::Tcg => ApicMode::XApic,
        },
        strategy: option(&row.append, "bringup=")
            .unwrap_or("parallel")
            .to_string(),
        delays: option(&row.append, "delays=").unwrap_or("fast").to_string(),
    };
    let mut ids = None;
    let mut boot_at = None;
    for term in &row.terms {
        match term {
            Term::Exit(status) => ending = Some(Ending::Exit(*status)),
            Term::StopAt(text) => ending = Some(Ending::StopAt(text.clone())),
            Term::Boot => {
                boot_at = Some(checks.len());
            }
            Term::Found(n) => boot.found = *n,
            Term::Ids(list) => ids = Some(list.clone()),
            Term::Apic(ApicChoice::Mode(mode)) => boot.apic_mode = *mode,
            Term::Apic(ApicChoice::TcgX2Apic) if qemu.tcg_has_x2apic() => {
                boot.apic_mode = ApicMode::X2Apic
            }
            Term::Apic(ApicChoice::TcgX2Apic) => {
                boot.apic_mode = ApicMode::XApic;
                name += &format!(
                    " — x2APIC under TCG needs QEMU >= 8.0 (this is {}): checks the xAPIC fallback for {}",
                    qemu.version_string(),
                    row.qemu_args.join(" ")
                );
            }
            Term::Check(check) => checks.push(check.clone()),
            Term::Preset(p) => preset = Some(p.clone()),
            Term::Without(prefix) => without.push(prefix.clone()),
            Term::LowFree(ranges) => low_free = Some(ranges.clone()),
            Term::Needs(Need::TcgX2Apic, _) if qemu.tcg_has_x2apic() => {}
            Term::Needs(Need::TcgX2Apic, why) => {
                skip.get_or_insert(format!("{why} (this is QEMU {})", qemu.version_string()));
            }
        }
    }
    if let Some(at) = boot_at {
        boot.apic_ids = ids.unwrap_or_else(|| (0..boot.found).collect());
        checks.insert(at, Check::Boot(boot));
    }
    if let Some(preset) = preset {
        let on_unikraft = matches!(row.kernel, Kernel::Unikraft(_));
        let load_base = match option(host_options(&row.append), "load=") {
            Some(load) => standin_core::cmdline::parse_number(load)
                .ok_or(format!("load={load} is not a number"))?,
            None => standin_core::layout::DEFAULT_LOAD_BASE,
        };
        let mut preset_checks = presets::checks(&preset, cpus, load_base, on_unikraft);
        for prefix in &without {
            preset_checks.retain(|c| !matches!(c, Check::Prints(t) if t.starts_with(prefix)));
        }
        if let Some(ranges) = low_free {
            for check in &mut preset_checks {
                if let Check::LowFree(r) = check {
                    *r = ranges.clone();
                }
            }
        }
        checks.splice(0..0, preset_checks);
    }
    if matches!(row.kernel, Kernel::Unikraft(_)) {
        checks.push(Check::Absent(standin::UNIKRAFT_CRASH.into()));
    }
    Ok(Case {
        name,
        accel,
        machine: row.machine.clone(),
        smp: row.smp.clone(),
        kernel: row.kernel,
        append: row.append.clone(),
        qemu_args: row.qemu_args.clone(),
        timeout: row.limit,
        expect: Expect {
            ending: ending.expect("checked when read"),
            checks,
        },
        skip,
    })
}

/// The stand-in host's options: the append before `--` (the program's argv follows it).
fn host_options(append: &str) -> &str {
    match append.split_once("--") {
        Some((options, _)) => options,
        None => append,
    }
}

/// The value of the word `key...` in `words` (`key` includes its `=`).
fn option<'a>(words: &'a str, key: &str) -> Option<&'a str> {
    words.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// The number `smp` starts with: `6,sockets=2,cores=3` → 6.
fn first_number(smp: &str) -> Option<u32> {
    smp.split(',').next()?.parse().ok()
}

/// `text` cut at each `sep` that is not inside double quotes, each piece trimmed.
fn split_outside_quotes(text: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            pieces.push(text[start..i].trim());
            start = i + c.len_utf8();
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    pieces.push(text[start..].trim());
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu(version: (u32, u32), kvm: bool) -> Qemu {
        Qemu {
            binary: "qemu-system-x86_64".into(),
            version,
            kvm_unusable: (!kvm).then(|| "/dev/kvm: No such file or directory".into()),
        }
    }

    fn find<'a>(cases: &'a [Case], name: &str) -> &'a Case {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case `{name}`"))
    }

    #[test]
    fn the_matrix_reads_for_every_qemu() {
        for q in [qemu((7, 2), true), qemu((10, 0), true), qemu((7, 2), false)] {
            let cases = cases(MATRIX, &q).unwrap();
            assert_eq!(cases.len(), 103);
            assert!(cases.iter().all(|c| c.timeout >= Duration::from_secs(60)));
        }
    }

    #[test]
    fn a_row_becomes_its_case() {
        let cases = cases(MATRIX, &qemu((7, 2), true)).unwrap();
        let hotplug = find(&cases, "-smp 2,maxcpus=8 [KVM]");
        assert_eq!(
            (
                hotplug.machine.as_str(),
                hotplug.smp.as_str(),
                hotplug.kernel
            ),
            ("pc", "2,maxcpus=8", Kernel::Demo)
        );
        assert_eq!(hotplug.expect.ending, Ending::Exit(33));
        assert_eq!(
            hotplug.expect.checks,
            [
                Check::Boot(BootExpect {
                    found: 2,
                    apic_ids: vec![0, 1],
                    apic_mode: ApicMode::X2Apic,
                    strategy: "parallel".into(),
                    delays: "fast".into(),
                }),
                Check::Line("6 disabled CPU entries ignored".into()),
            ]
        );
        let capped = find(&cases, "maxcpus=2 on -smp 4 [KVM]");
        let Check::Boot(boot) = &capped.expect.checks[0] else {
            panic!()
        };
        assert_eq!((boot.found, boot.apic_ids.as_slice()), (4, &[0, 1][..]));
        let sequential = find(
            &cases,
            "microvm -smp 4 bringup=sequential delays=spec [TCG]",
        );
        let Check::Boot(boot) = &sequential.expect.checks[0] else {
            panic!()
        };
        assert_eq!(
            (boot.strategy.as_str(), boot.delays.as_str(), boot.apic_mode),
            ("sequential", "spec", ApicMode::XApic)
        );
        let seed = find(&cases, "the seed's QEMU command [KVM]");
        assert_eq!(seed.expect.ending, Ending::StopAt("bringup:".into()));
        assert_eq!(seed.qemu_args[..2], ["-cpu", "host,-arch-capabilities"]);
        let bad = find(&cases, "bad option [KVM]");
        assert_eq!(
            bad.expect.checks[1],
            Check::Prints("valid options: bringup=sequential|parallel".into())
        );
    }

    #[test]
    fn what_a_qemu_lacks_is_skipped_or_said() {
        let old = cases(MATRIX, &qemu((7, 2), true)).unwrap();
        let new = cases(MATRIX, &qemu((8, 0), true)).unwrap();
        let x2apic = "x2APIC (-cpu qemu64,+x2apic) [TCG]";
        let fallback = old.iter().find(|c| c.name.starts_with(x2apic)).unwrap();
        assert!(fallback
            .name
            .ends_with("(this is 7.2): checks the xAPIC fallback for -cpu qemu64,+x2apic"));
        assert!(
            matches!(&fallback.expect.checks[0], Check::Boot(b) if b.apic_mode == ApicMode::XApic)
        );
        let real = find(&new, x2apic);
        assert!(
            matches!(&real.expect.checks[0], Check::Boot(b) if b.apic_mode == ApicMode::X2Apic)
        );
        let big = "APIC ID 256 (-device ...,socket-id=2) [TCG]";
        assert_eq!(
            find(&old, big).skip.as_deref(),
            Some("APIC IDs above 255 need x2APIC, which TCG offers from QEMU 8.0; covered under KVM (this is QEMU 7.2)")
        );
        assert_eq!(find(&new, big).skip, None);
        // Without KVM: KVM rows skipped, auto rows under TCG.
        let no_kvm = cases(MATRIX, &qemu((7, 2), false)).unwrap();
        assert_eq!(
            find(&no_kvm, "pc -smp 1 [KVM]").skip.as_deref(),
            Some("KVM not usable (/dev/kvm: No such file or directory)")
        );
        assert!(no_kvm
            .iter()
            .any(|c| c.name == "bad option [TCG]" && c.skip.is_none()));
    }

    #[test]
    fn presets_expand_and_follow_the_row() {
        let cases = cases(MATRIX, &qemu((7, 2), true)).unwrap();
        let occupied = find(
            &cases,
            "standin-hello-microvm -smp 4 load=0x4000000000 occupy=0x8000 [TCG]",
        );
        assert!(occupied
            .expect
            .checks
            .contains(&Check::LoadedAt(0x40_0000_0000)));
        assert!(occupied
            .expect
            .checks
            .contains(&Check::LowFree("0x1000-0x8000,0x9000-0x11000".into())));
        let moved = find(&cases, "standin-cpus occupy=0x8000 [TCG]");
        let prints = |c: &Case, prefix: &str| -> Vec<String> {
            c.expect
                .checks
                .iter()
                .filter_map(|c| match c {
                    Check::Prints(t) if t.starts_with(prefix) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            prints(moved, "Boot trampoline"),
            ["Boot trampoline copied to 0x1000"]
        );
        // On Unikraft the preset drops what names the stand-in, and a crash report fails.
        let uk = find(&cases, "unikraft-cpus phys-offset=0 [TCG]");
        assert_eq!(uk.kernel, Kernel::Unikraft(Initrd::HelloCpus));
        assert_eq!(uk.expect.ending, Ending::Exit(0));
        assert!(prints(uk, "standin").is_empty());
        assert_eq!(uk.expect.checks.len(), 4);
        assert_eq!(
            uk.expect.checks.last(),
            Some(&Check::Absent("Unikraft Crash".into()))
        );
        let c = find(&cases, "standin-c hello_cpus.c -smp 4 [TCG]");
        assert_eq!(c.append, "-- /hello_cpus_c");
        assert_eq!(
            find(&cases, "unikraft-cpus -smp 4 [TCG]").append,
            r#"vfs.fstab=[ "initrd0:/:extract:::" ] -- /hello_cpus"#
        );
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let good = "x | tcg | pc | 1 | demo | | | 60s | exit=33 boot";
        assert!(rows(good).is_ok());
        for (row, error) in [
            ("x | tcg | pc | 1 | demo | | 60s | exit=33", "want 9 cells"),
            ("x | arm | pc | 1 | demo | | | 60s | exit=33", "accel `arm`"),
            (
                "x | tcg | pc | many | demo | | | 60s | exit=33",
                "CPU count",
            ),
            ("x | tcg | pc | 1 | demo | | | 60 | exit=33", "limit `60`"),
            ("x | tcg | pc | 1 | demo | | | 0s | exit=33", "limit `0s`"),
            (
                "x | tcg | pc | 1 | linux | | | 60s | exit=33",
                "kernel `linux`",
            ),
            (
                "x | tcg | pc | 1 | standin:bash | | | 60s | exit=33",
                "initrd `bash`",
            ),
            ("x | tcg | - | 1 | demo | | | 60s | exit=33", "machine `-`"),
            (
                "x | tcg | pc | 1 | demo | | | 60s | boot",
                "say how QEMU ends",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 exit=35",
                "say how QEMU ends",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 hello",
                "at most one boot",
            ),
            (
                "x | tcg | pc | 1 | standin:hello | | | 60s | exit=33 boot",
                "at most one boot",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 found=2",
                "add `boot`",
            ),
            (
                "x | tcg | pc | 1 | standin:hello | | | 60s | exit=33 lowfree=1",
                "add hello",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 prints",
                "wants a quoted text",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 \"loose\"",
                "follows no word",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 prints \"open",
                "not closed",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 boot ids=0,x",
                "`x` is not a number",
            ),
            (
                "x | tcg | pc | 1 | demo | | | 60s | exit=33 frobnicate",
                "unknown word",
            ),
        ] {
            let err = rows(&format!("# a comment\n\n{row}")).unwrap_err();
            assert!(
                err.starts_with("matrix.txt line 3: ") && err.contains(error),
                "{row}: {err}"
            );
        }
        let err = rows(&format!("{good}\n{good}")).unwrap_err();
        assert!(err.contains("on line 1 already"), "{err}");
        // The same name under another accelerator is another case.
        assert!(rows(&format!("{good}\n{}", good.replace("tcg", "kvm"))).is_ok());
    }

    #[test]
    fn cells_split_outside_quotes() {
        assert_eq!(
            split_outside_quotes(r#"a | b "x|y" | c"#, '|').unwrap(),
            ["a", r#"b "x|y""#, "c"]
        );
        assert_eq!(
            tokens(r#"exit=35 prints "a; b" line "" "#).unwrap(),
            [
                Token::Word("exit=35"),
                Token::Word("prints"),
                Token::Text("a; b"),
                Token::Word("line"),
                Token::Text(""),
            ]
        );
        assert_eq!(host_options("load=0x1 -- /p load=0x2"), "load=0x1 ");
        assert_eq!(option("a=1 load=0x2", "load="), Some("0x2"));
        assert_eq!(first_number("6,sockets=2,cores=3"), Some(6));
    }
}
