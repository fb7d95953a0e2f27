//! Link the binary against the whole of libtorch.
//!
//! `ld --as-needed` drops `libtorch_cuda.so` from a binary that references none of its
//! symbols, and CUDA then reports as absent at run time. tch's own build script cannot fix
//! this for us: link arguments do not propagate to downstream binaries. So the binary crate
//! adds `--no-as-needed -ltorch` itself, and an rpath to the libtorch it was built against
//! (pip's `torch/lib`), so that no `LD_LIBRARY_PATH` is needed.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        println!("cargo:rustc-link-search=native={lib}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
