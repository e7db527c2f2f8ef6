//! The stable half of the fuzzing: every target gets the committed corpus (`fuzz/corpus/`,
//! seeds and every input libFuzzer found a bug with), the built seeds, then mutations of them
//! and pseudo-random inputs from a fixed seed, so a run is the same every time. A failing input
//! is written under the test's temporary directory and named in the failure message; turn it
//! into a corpus file and a unit test of the parser once it is fixed.

use fuzz_targets::mutate::{mutate, Rng};
use fuzz_targets::{seeds, target};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Mutated inputs per target (spread over its seeds).
const MUTATIONS: usize = 3000;
/// Random inputs per target.
const RANDOM: usize = 500;
/// Largest seed that is mutated: bigger ones (machine images built to make a parser work
/// hard) are replayed once, or their mutations would take most of the test's time.
const MAX_MUTATED_SEED: usize = 16 << 10;

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let input = std::fs::read(&p).expect("corpus file");
            (p.file_name().unwrap().to_string_lossy().into_owned(), input)
        })
        .collect()
}

fn run_one(name: &str, what: &str, input: &[u8]) {
    let run = target(name).expect("known target").run;
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-failure"));
        std::fs::write(&path, input).expect("write the failing input");
        panic!(
            "target {name} failed on {what} ({} bytes, saved to {}); replay it with \
             `cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer {name} {}`",
            input.len(),
            path.display(),
            path.display()
        );
    }
}

fn replay(name: &str) {
    let mut inputs = corpus(name);
    assert!(!inputs.is_empty(), "no corpus for {name}");
    inputs.extend(
        seeds::built()
            .into_iter()
            .filter(|(t, _, _)| *t == name)
            .map(|(_, n, input)| (format!("built seed {n}"), input)),
    );
    for (what, input) in &inputs {
        run_one(name, what, input);
    }
    inputs.retain(|(_, input)| input.len() <= MAX_MUTATED_SEED);
    // The target's name picks the stream, so adding a target leaves the others' inputs alone.
    let mut rng = Rng::new(name.bytes().fold(0xC0FF_EE00, |h: u64, b| {
        h.wrapping_mul(31).wrapping_add(b.into())
    }));
    for i in 0..MUTATIONS {
        let (what, seed) = &inputs[i % inputs.len()];
        let mut input = mutate(&mut rng, seed);
        // Every fourth input stacks a second round of edits.
        if i % 4 == 3 {
            input = mutate(&mut rng, &input);
        }
        run_one(name, &format!("mutation {i} of {what}"), &input);
    }
    for i in 0..RANDOM {
        let len = rng.below(1024);
        let input = rng.bytes(len);
        run_one(name, &format!("random input {i}"), &input);
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            for t in fuzz_targets::TARGETS {
                assert!(tested.contains(&t.name), "{} has no replay test", t.name);
            }
        }
    };
}

replay_tests!(
    acpi_rsdp,
    acpi_sdt,
    acpi_madt,
    mp_tables,
    topology,
    pvh,
    multiboot,
    demo_options,
    standin_elf,
    standin_cpio,
    standin_cmdline,
    standin_rsdp,
);
