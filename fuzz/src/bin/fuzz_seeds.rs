//! Writes the seed corpus: `fuzz_seeds <corpus dir> [<dump dir>]`. Built seeds go to
//! `<corpus>/<target>/<name>`; with a dump directory (from `fuzz/qemu_tables.sh`), every
//! `<machine>.low`/`<machine>.high` pair there adds `qemu-<machine>` seeds too.

use std::path::{Path, PathBuf};

fn write(corpus: &Path, target: &str, name: &str, input: &[u8]) -> std::io::Result<()> {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), input)
}

fn main() -> std::io::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some(corpus) = args.first() else {
        eprintln!("usage: fuzz_seeds <corpus dir> [<dump dir>]");
        std::process::exit(2);
    };
    for (target, name, input) in fuzz_targets::seeds::built() {
        write(corpus, target, &name, &input)?;
    }
    if let Some(dumps) = args.get(1) {
        let mut machines: Vec<_> = std::fs::read_dir(dumps)?
            .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
            .collect();
        machines.sort();
        machines.dedup();
        for machine in machines {
            let (Ok(low), Ok(high)) = (
                std::fs::read(dumps.join(format!("{machine}.low"))),
                std::fs::read(dumps.join(format!("{machine}.high"))),
            ) else {
                continue;
            };
            let dump = fuzz_targets::seeds::Dump {
                low: &low,
                high: &high,
            };
            for (target, input) in dump.seeds() {
                write(corpus, target, &format!("qemu-{machine}"), &input)?;
            }
        }
    }
    Ok(())
}
