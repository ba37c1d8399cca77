//! The eBPF object's toolchain, as `datapath-ebpf/rust-toolchain.toml`
//! names it (the one place), and what that toolchain says of itself.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::cmd;

/// The toolchain file, relative to the workspace root.
pub const FILE: &str = "datapath-ebpf/rust-toolchain.toml";

/// `[toolchain]` of the file.
#[derive(Debug, serde::Deserialize)]
pub struct File {
    pub channel: String,
    #[serde(default)]
    pub components: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Document {
    toolchain: File,
}

impl File {
    pub fn read(workspace: &Path) -> anyhow::Result<Self> {
        let path = workspace.join(FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let file = toml::from_str::<Document>(text)?.toolchain;
        // A floating channel is what broke fresh machines: it moves to a new
        // LLVM under a linker built for the old one.
        if !is_dated(&file.channel) {
            bail!(
                "channel `{}` is not a dated nightly (nightly-YYYY-MM-DD): a floating channel \
                 changes its LLVM under bpf-linker",
                file.channel
            );
        }
        Ok(file)
    }
}

fn is_dated(channel: &str) -> bool {
    channel.strip_prefix("nightly-").is_some_and(|d| {
        let parts: Vec<&str> = d.split('-').collect();
        parts.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&parts)
                .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The pinned nightly as `rustc -vV` describes it.
pub struct EbpfToolchain {
    pub channel: String,
    /// `rustc 1.97.0-nightly (7c3c88f42 2026-05-14)`.
    pub release: String,
    /// `22.1.4`.
    pub llvm: String,
}

impl EbpfToolchain {
    pub fn probe(channel: &str) -> anyhow::Result<Self> {
        let verbose = cmd::stdout(cmd::new("rustup").args(["run", channel, "rustc", "-vV"]));
        let field = |name: &str| {
            verbose
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_owned)
        };
        let (Some(release), Some(llvm)) = (field("release:"), field("LLVM version:")) else {
            bail!("`rustup run {channel} rustc -vV` did not run or named no LLVM version");
        };
        let hash = field("commit-hash:").unwrap_or_default();
        let date = field("commit-date:").unwrap_or_default();
        Ok(Self {
            channel: channel.to_owned(),
            release: format!("rustc {release} ({} {date})", hash.get(..9).unwrap_or("?")),
            llvm,
        })
    }

    pub fn llvm_major(&self) -> anyhow::Result<u32> {
        crate::setup::parse_major(&self.llvm)
            .with_context(|| format!("LLVM version `{}` of {}", self.llvm, self.channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dated_nightly_is_accepted() {
        let f = File::parse(
            "[toolchain]\nchannel = \"nightly-2026-05-15\"\ncomponents = [\"rust-src\"]\n",
        )
        .unwrap();
        assert_eq!(f.channel, "nightly-2026-05-15");
        assert_eq!(f.components, ["rust-src"]);
        for floating in ["nightly", "stable", "nightly-2026-5-15", "1.95"] {
            let text = format!("[toolchain]\nchannel = \"{floating}\"\n");
            assert!(File::parse(&text).is_err(), "{floating} was accepted");
        }
    }

    /// The project's own file parses, and the README names the same
    /// toolchain, so the docs cannot drift from what the build uses.
    #[test]
    fn the_pinned_toolchain_is_the_one_the_readme_names() {
        let root = cmd::workspace_root();
        let file = File::read(&root).unwrap();
        assert!(file.components.iter().any(|c| c == "rust-src"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(
            readme.contains(&file.channel) && readme.contains(FILE),
            "README.md should name {} and {FILE}",
            file.channel
        );
    }
}
