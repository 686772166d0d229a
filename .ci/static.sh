#!/usr/bin/env bash
# Builds the release artifact, a statically linked edgebot, and proves it is one:
# static per `file` and `ldd`, runs with an empty environment, runs inside an empty
# root (as in a FROM scratch image) when allowed to chroot, answers a scripted chat.
# Prints the path and size. Usage: bash .ci/static.sh   (from anywhere)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=x86_64-unknown-linux-gnu
profile=dist
say() { printf 'static: %s\n' "$*"; }
fail() {
    printf 'static: FAILED: %s\n' "$*" >&2
    exit 1
}

# `file` is not in every minimal image; ldd comes with libc-bin.
if ! command -v file >/dev/null; then
    say "installing file"
    if [ "$(id -u)" -ne 0 ]; then fail "'file' is missing and installing it needs root"; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq file >/dev/null
fi
if command -v rustup >/dev/null; then
    rustup target add "$target" >/dev/null 2>&1 || true
fi

# An explicit --target keeps RUSTFLAGS away from build scripts and proc-macros, which
# must stay dynamic for the host to load them.
say "building: RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --profile $profile --target $target"
start=$(date +%s)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --profile "$profile" --target "$target"
say "built in $(($(date +%s) - start)) s"

bin="${CARGO_TARGET_DIR:-target}/$target/$profile/edgebot"
[ -x "$bin" ] || fail "no binary at $bin"
# Absolute, since the runs below start from other directories.
bin="$(cd "$(dirname "$bin")" && pwd)/edgebot"

# Rust links glibc statically as static-pie, which `file` names "static-pie linked"
# and ldd "statically linked"; a plain static executable reads "statically linked"
# and "not a dynamic executable". Anything else needs a loader.
file_says=$(file -b "$bin")
say "file: $file_says"
case "$file_says" in
*"statically linked"* | *"static-pie linked"*) ;;
*) fail "file does not call $bin static" ;;
esac
ldd_says=$(ldd "$bin" 2>&1 || true)
say "ldd: $(echo "$ldd_says" | tr -s '[:space:]' ' ')"
case "$ldd_says" in
*"not a dynamic executable"* | *"statically linked"*) ;;
*) fail "ldd lists shared libraries for $bin" ;;
esac

# glibc's NSS is what a static binary cannot use (getaddrinfo, getpwnam dlopen shared
# modules). Its loader's strings in the binary mean some code path can reach it: not
# an error (the Bot API client resolves through PureResolver), but worth knowing.
if grep -q -a 'libnss_' "$bin"; then
    say "note: glibc NSS code is linked in; no name lookup may go through libc"
fi

version=$(env -i "$bin" --version)
say "version: $version"
case "$version" in
"edgebot "*) ;;
*) fail "--version printed '$version'" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The scripted chat, with an empty environment and from an empty directory, so that no
# EDGEBOT_* variable or edgebot.toml of the caller changes the outcome.
check_chat() {
    local out="$1"
    printf '%s\n' "$out" | sed 's/^/static: chat> /'
    grep -q 'Ada' <<<"$out" || fail "the chat's greeting does not contain 'Ada'"
}
mkdir -p "$work/cwd"
say "chat: printf '/start\\n/help\\n/profile\\n' | edgebot --data-dir \$(mktemp -d) chat --name Ada"
out=$(cd "$work/cwd" && printf '/start\n/help\n/profile\n' |
    env -i "$bin" --data-dir "$(mktemp -d -p "$work")" chat --name Ada 2>&1) ||
    fail "chat exited non-zero: $out"
check_chat "$out"

# The FROM scratch case: nothing but the binary in the root. Needs root for chroot.
if [ "$(id -u)" -eq 0 ] && chroot=$(command -v chroot); then
    root="$work/root"
    mkdir -p "$root/data"
    cp "$bin" "$root/edgebot"
    say "empty root: chroot with only the binary and /data"
    env -i "$chroot" "$root" /edgebot --version >/dev/null || fail "--version fails in an empty root"
    out=$(printf '/start\n/help\n/profile\n' |
        env -i "$chroot" "$root" /edgebot --data-dir /data chat --name Ada 2>&1) ||
        fail "chat fails in an empty root: $out"
    check_chat "$out"
else
    say "skipped the empty-root run (needs root and chroot)"
fi

size=$(stat -c %s "$bin")
say "binary: $bin"
say "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))"
say "ok"
