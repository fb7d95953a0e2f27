//! The integration tests call the model side's library, so they load libtorch: give
//! them an rpath to the libtorch tch was built against (pip's `torch/lib`), as
//! `capstream-torch` has. The `capstream` binary gets nothing: it links no libtorch.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath={lib}");
    }
}
