//! Links the kernel image with its own linker script (load address, one PT_LOAD segment for
//! multiboot's address fields, and the PT_NOTE that carries the PVH entry).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=src/boot/entry.S");
}
