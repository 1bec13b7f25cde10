//! External client tools (Grafana's logcli and promtail) and the tests that could not run
//! without them.

use std::io::Write;
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

/// Reports that `test` (e.g. `logcli::real_logcli_against_skald_when_on_path`) did not run, and
/// why: prints `NOT RUN: <test>: <why>`, and appends that line to the file `SKALD_NOT_RUN_FILE`
/// names, when set (`scripts/test.sh` sets it and lists those lines after the test summary), so
/// that a missing tool never looks like a pass.
pub fn not_run(test: &str, why: &str) {
    let line = format!("NOT RUN: {test}: {why}");
    println!("{line}");
    let Some(path) = std::env::var_os("SKALD_NOT_RUN_FILE") else { return };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
    // One write per line: tests in other processes append to the same file.
    if let Err(e) = file.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes())) {
        panic!("cannot record `{line}` in {}: {e}", std::path::Path::new(&path).display());
    }
}
