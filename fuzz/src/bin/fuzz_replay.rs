//! Runs one target on input files, stable toolchain: `fuzz_replay <target> <file>...` (a
//! property that fails panics with its message, as under libFuzzer).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().and_then(|n| fuzz_targets::target(n)) else {
        let names: Vec<_> = fuzz_targets::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: fuzz_replay <target> <file>...; targets: {}",
            names.join(" ")
        );
        std::process::exit(2);
    };
    for file in &args[1..] {
        let input = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        (target.run)(&input);
        println!("{file}: ok");
    }
}
