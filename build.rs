//! Build metadata for `edgebot --version`.
//!
//! Sets four compile-time environment variables, read with `env!` by the CLI:
//!
//! - `EDGEBOT_GIT_COMMIT`: `git rev-parse --short=12 HEAD`, or `unknown` when git or the
//!   repository is absent (a tarball, a Nix build, a Docker context without `.git`).
//!   A value already set in the build environment wins, so packagers that know the
//!   commit but ship no `.git` (the flake, the Dockerfile) can still pass it in.
//! - `EDGEBOT_FEATURES`: the enabled cargo features, sorted, comma-separated, spelled as
//!   in `Cargo.toml` (`embedded-models`), without the `default` alias, or `none`.
//! - `EDGEBOT_TARGET`: the target triple.
//! - `EDGEBOT_PROFILE`: the cargo profile (`debug`, `release`, `dist`, …).
//!
//! Deliberately dependency-free: it runs before anything else compiles.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // Without any rerun-if line cargo would rerun this script whenever any file of
    // the package changes; with them it reruns only for what is watched below.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EDGEBOT_GIT_COMMIT");

    let commit = env::var("EDGEBOT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(git_commit);
    println!("cargo:rustc-env=EDGEBOT_GIT_COMMIT={commit}");

    println!("cargo:rustc-env=EDGEBOT_FEATURES={}", features());
    println!(
        "cargo:rustc-env=EDGEBOT_TARGET={}",
        env::var("TARGET").unwrap_or_else(|_| "unknown".into())
    );
    println!("cargo:rustc-env=EDGEBOT_PROFILE={}", profile());
}

/// Runs git in the package directory; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let dir = env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The short commit hash, watching HEAD and the ref it points to so that a commit or
/// a checkout reruns this script, and nothing else does.
fn git_commit() -> String {
    watch_git_head();
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

fn watch_git_head() {
    // `--git-path` resolves worktrees and `$GIT_DIR` the way git itself does.
    let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]).map(absolute) else {
        return;
    };
    watch(&head);
    let Ok(head_text) = std::fs::read_to_string(&head) else {
        return;
    };
    // A detached HEAD holds the hash itself: watching HEAD is then enough.
    let Some(reference) = head_text.trim().strip_prefix("ref: ") else {
        return;
    };
    if let Some(ref_path) = git(&["rev-parse", "--git-path", reference]).map(absolute) {
        if ref_path.exists() {
            watch(&ref_path);
        } else if let Some(dir) = ref_path.parent().filter(|d| d.exists()) {
            // Before the first commit (or when the ref lives only in packed-refs) the
            // loose ref file does not exist; a missing watched path would make cargo
            // rerun this script on every build, so watch the folder it will appear in.
            watch(dir);
        }
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]).map(absolute)
        && packed.exists()
    {
        watch(&packed);
    }
}

/// git prints paths relative to the directory it ran in, which is the package root.
fn absolute(path: String) -> PathBuf {
    let path = PathBuf::from(path);
    match env::var_os("CARGO_MANIFEST_DIR") {
        Some(root) if path.is_relative() => Path::new(&root).join(path),
        _ => path,
    }
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// Cargo sets `CARGO_FEATURE_<NAME>` (upper case, `-` turned to `_`) per enabled feature.
fn features() -> String {
    let mut names: Vec<String> = env::vars_os()
        .filter_map(|(key, _)| {
            let key = key.into_string().ok()?;
            let name = key.strip_prefix("CARGO_FEATURE_")?;
            // `default` is only the name of a set of features, never one itself.
            (name != "DEFAULT").then_some(())?;
            Some(name.to_ascii_lowercase().replace('_', "-"))
        })
        .collect();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// `PROFILE` only says `debug` or `release`, even for `--profile dist`; the profile's
/// real name is the output folder: `target/[<triple>/]<profile>/build/<pkg>-<hash>/out`.
fn profile() -> String {
    env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .and_then(|out| {
            out.ancestors()
                .nth(3)
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .or_else(|| env::var("PROFILE").ok())
        .unwrap_or_else(|| "unknown".into())
}
