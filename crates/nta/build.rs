//! Embeds the git commit the binary was built from, for `nta_build_info{git_commit}`:
//! `NTA_GIT_COMMIT` when set (a package built from a source tarball), else what `git` says, else
//! nothing ("unknown" at run time). No dependency: a build without git still works.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NTA_GIT_COMMIT");
    if let Some(commit) = std::env::var("NTA_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        println!("cargo:rustc-env=NTA_GIT_COMMIT={commit}");
        return;
    }
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else { return };
    // Rebuilt when HEAD moves: HEAD itself (checkout), the branch it names (commit) and
    // packed-refs (gc); `--git-path` finds them in a worktree too.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|b| b.starts_with("refs/")) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    // A path that does not exist would make cargo rerun this script on every build.
    for path in watched.into_iter().flatten().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rustc-env=NTA_GIT_COMMIT={commit}");
}
