//! Builds the eBPF object (`datapath-ebpf/`) with bpf-linker and the nightly
//! that `datapath-ebpf/rust-toolchain.toml` pins (the one place it is
//! named; `cargo xtask setup` installs it and a bpf-linker of the same LLVM
//! major), so that `src/datapath` can embed it from `OUT_DIR`.
//! `AYA_BUILD_SKIP=1` skips it (the agent then cannot load a datapath).
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

#[derive(serde::Deserialize)]
struct ToolchainFile {
    toolchain: Channel,
}

#[derive(serde::Deserialize)]
struct Channel {
    channel: String,
}

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "weir-ebpf")
        .ok_or_else(|| anyhow!("package weir-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let file = root_dir.join("rust-toolchain.toml");
    println!("cargo:rerun-if-changed={file}");
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let pinned: ToolchainFile = toml::from_str(&text).with_context(|| format!("parsing {file}"))?;
    println!(
        "cargo:rustc-env=WEIR_EBPF_TOOLCHAIN={}",
        pinned.toolchain.channel
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::Custom(&pinned.toolchain.channel),
    )
    .with_context(|| {
        format!(
            "building the eBPF object with {} (run `cargo xtask setup`: it installs that \
             toolchain and a bpf-linker of its LLVM)",
            pinned.toolchain.channel
        )
    })?;
    version_of_object()
}

/// Tells the crate the embedded object's SHA-256 (its first 16 hex
/// digits, for `weir --version`); `unbuilt` without one.
fn version_of_object() -> anyhow::Result<()> {
    use sha2::Digest as _;
    let out = std::env::var("OUT_DIR").context("OUT_DIR")?;
    let object = std::path::Path::new(&out).join("weir-datapath");
    let hash = match std::fs::read(&object) {
        Ok(bytes) => {
            sha2::Sha256::digest(&bytes)
                .iter()
                .take(8)
                .fold(String::new(), |mut hex, b| {
                    use std::fmt::Write as _;
                    let _ = write!(hex, "{b:02x}");
                    hex
                })
        }
        Err(_) => "unbuilt".to_owned(),
    };
    println!("cargo:rustc-env=WEIR_DATAPATH_SHA256={hash}");
    Ok(())
}
