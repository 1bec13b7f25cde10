//! External client tools: Grafana's logcli and promtail.

use std::path::PathBuf;
use std::process::Command;

/// A Grafana command-line tool (`logcli`, `promtail`) on PATH, if one is there and its
/// `--version` names it (`<name>, version ...`), so that another program of the same name is
/// not mistaken for it.
pub fn grafana_tool_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let bin = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())?;
    let out = Command::new(&bin).arg("--version").output().ok()?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.contains(&format!("{name}, version")).then_some(bin)
}
