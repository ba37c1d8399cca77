//! `weir monitor`: drop events, live, one line each.

use std::{io::Write as _, path::Path, process::ExitCode};

use super::output::JsonFlag;
use crate::{api::client::Client, monitor::MonitorEvent};

pub async fn exec(socket: &Path, flag: JsonFlag) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    Client::new(socket)
        .stream("/v1/monitor", |event: MonitorEvent| {
            if flag.json {
                serde_json::to_writer(&mut out, &event)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{event}")?;
            }
            out.flush()
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
