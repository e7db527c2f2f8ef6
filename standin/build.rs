//! Links the stand-in host with its own linker script (loaded at 1 MiB as one PT_LOAD segment
//! for multiboot's address fields; section bounds page-aligned so that each section gets its
//! own page rights).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
    for asm in ["src/boot/entry.S", "src/trap.S", "src/syscall/entry.S"] {
        println!("cargo:rerun-if-changed={asm}");
    }
}
