//! `weir completions SHELL` and `weir man DIR`: shell completions and man
//! pages, generated from the one clap definition of the command line (so
//! they can never disagree with it). `cargo xtask install` calls both.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};

use super::Cli;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// Writes the completion script to stdout (a reader that stops early,
    /// `| head`, is not an error).
    pub fn exec(&self) -> anyhow::Result<ExitCode> {
        use std::io::Write as _;
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut Cli::command(), "weir", &mut script);
        match std::io::stdout().write_all(&script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::new(e).context("writing the completion script"))
            }
            _ => Ok(ExitCode::SUCCESS),
        }
    }
}

#[derive(Args)]
pub struct ManArgs {
    /// The directory to write `weir.1` and a `weir-SUBCOMMAND.1` per
    /// subcommand into.
    dir: PathBuf,
}

impl ManArgs {
    pub fn exec(&self) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        clap_mangen::generate_to(Cli::command(), &self.dir)
            .with_context(|| format!("writing man pages into {}", self.dir.display()))?;
        Ok(ExitCode::SUCCESS)
    }
}
