//! Link flags of the agent's binaries.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Relative relocations as DT_RELR (glibc 2.36, Debian 12 and the distroless base):
        // a few KiB instead of 24 bytes for each of the ~37,000 pointers a position-independent
        // binary relocates at start, which the loader reads and which then stay resident.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
