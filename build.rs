//! Build script: records the git revision for `--version`,
//! `regate_build_info` and the start log. `REGATE_REVISION` in the
//! environment wins (container builds without `.git`); otherwise
//! `git rev-parse`; otherwise "unknown". Never touches the network.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=REGATE_REVISION");
    let revision = std::env::var("REGATE_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            // rebuild when HEAD moves (also in a git worktree)
            for p in ["HEAD", "logs/HEAD"] {
                if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=REGATE_REVISION={revision}");
}
