//! Writes include/multicore.h from the `extern "C"` items of src/lib.rs (cbindgen): the header
//! C programs include is always the one of this build.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml"))
        .expect("capi/cbindgen.toml is valid");
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads capi/src/lib.rs")
        .write_to_file(format!("{dir}/include/multicore.h"));
}
