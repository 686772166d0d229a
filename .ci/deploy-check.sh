#!/usr/bin/env bash
# Checks the deployment files without deploying anything, offline once the tools are
# installed. Installs what it needs (Debian packages, and pinned Python packages into
# a venv under target/), so it runs on a clean clone:
#   - deploy/edgebot.service: systemd-analyze verify, and a security exposure ceiling
#   - deploy/k8s/*.yaml: Kubernetes schemas (kubernetes-validate, schemas bundled)
#   - deploy/docker-compose.yml: the Compose specification (check-jsonschema)
#   - every YAML file: yamllint
#   - deploy/prometheus/edgebot-alerts.yml: promtool check rules (promtool unpacked from
#     Debian's prometheus package)
#   - deploy/grafana/edgebot-dashboard.json: parses as JSON
#     (tests/deploy_metrics.rs checks that both name only metrics edgebot exports)
#   - deploy/Dockerfile: parsed by BuildKit's own parser (the `dockerfile` package),
#     then the image's contract: final stage FROM scratch, non-root USER, VOLUME
#     /data, HEALTHCHECK running `edgebot health`
#   - flake.nix: nix-instantiate --parse (syntax and unbound variables)
# Usage: bash .ci/deploy-check.sh   (from anywhere)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pinned so that a new schema or lint rule never turns CI red on its own.
KUBERNETES_VALIDATE=1.37.0
CHECK_JSONSCHEMA=0.39.0
YAMLLINT=1.38.0
DOCKERFILE=3.4.0
# Kubernetes version whose schemas the manifests must satisfy.
K8S_VERSION=1.33

say() { printf 'deploy-check: %s\n' "$*"; }
fail() {
    printf 'deploy-check: FAILED: %s\n' "$*" >&2
    exit 1
}

apt_updated=
apt_update() {
    if [ "$(id -u)" -ne 0 ]; then fail "missing $*; installing it needs root"; fi
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}
apt_install() {
    apt_update "$@"
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- systemd -----------------------------------------------------------------------
command -v systemd-analyze >/dev/null || apt_install systemd
unit=deploy/edgebot.service
# verify insists that every command exists and is executable: point the unit at a
# stand-in binary, changing nothing else.
printf '#!/bin/sh\nexit 0\n' >"$work/edgebot"
chmod +x "$work/edgebot"
sed "s#/usr/local/bin/edgebot#$work/edgebot#g" "$unit" >"$work/edgebot.service"
say "systemd-analyze verify $unit"
out=$(systemd-analyze verify "$work/edgebot.service" 2>&1) || fail "systemd-analyze verify: $out"
# verify exits 0 on some problems (unknown keys are "ignored"): any output is one.
[ -z "$out" ] || fail "systemd-analyze verify: $out"
# Exposure is 0-10 (lower is better); the threshold is in tenths. The unit scores 1.2:
# fail when a change loosens the sandbox past 2.0.
say "systemd-analyze security --offline=yes --threshold=20 $unit"
systemd-analyze security --offline=yes --threshold=20 --no-pager "$work/edgebot.service" |
    tail -n 1 | sed 's/^/deploy-check: /' ||
    fail "the unit's exposure rose above 2.0 (see systemd-analyze security)"

# --- Python tools --------------------------------------------------------------------
venv="${CARGO_TARGET_DIR:-target}/deploy-check-venv"
want="kubernetes-validate==$KUBERNETES_VALIDATE check-jsonschema==$CHECK_JSONSCHEMA yamllint==$YAMLLINT dockerfile==$DOCKERFILE"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]; then
    command -v python3 >/dev/null || apt_install python3
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        apt_install python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    say "pip install $want"
    # shellcheck disable=SC2086 # $want is a list of requirements
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want
    printf '%s' "$want" >"$venv/.pins"
fi

# --- Kubernetes ----------------------------------------------------------------------
# kustomization.yaml is kustomize's, not an API object: no schema to check it against.
manifests=()
for f in deploy/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
say "kubernetes-validate --strict -k $K8S_VERSION ${manifests[*]}"
"$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}" ||
    fail "Kubernetes manifests do not match the $K8S_VERSION schemas"
# Every file the kustomization names must exist.
while read -r res; do
    [ -f "deploy/k8s/$res" ] || fail "kustomization.yaml lists missing $res"
done < <(sed -n 's/^  - \(.*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml)

# --- Compose -------------------------------------------------------------------------
say "check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml >/dev/null ||
    fail "docker-compose.yml does not match the Compose specification"

# --- YAML ----------------------------------------------------------------------------
say "yamllint deploy/"
"$venv/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 110}, document-start: disable, comments: {min-spaces-from-content: 1}}}' \
    deploy/docker-compose.yml deploy/k8s/ deploy/prometheus/ || fail "yamllint"

# --- Monitoring ----------------------------------------------------------------------
rules=deploy/prometheus/edgebot-alerts.yml
# promtool ships in Debian's prometheus package, whose installation would also set up and
# start a Prometheus server: unpack the package and keep promtool alone.
promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
    promtool="${CARGO_TARGET_DIR:-target}/deploy-check-promtool/promtool"
    if [ ! -x "$promtool" ]; then
        apt_update promtool
        say "unpacking promtool from Debian's prometheus package"
        (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root prometheus) ||
            fail "apt-get download prometheus"
        dpkg-deb -x "$work"/prometheus_*.deb "$work/prometheus"
        install -D -m 0755 "$work/prometheus/usr/bin/promtool" "$promtool"
    fi
fi
say "promtool check rules $rules"
"$promtool" check rules "$rules" >/dev/null || fail "$rules: promtool check rules"
dashboard=deploy/grafana/edgebot-dashboard.json
say "python3 -m json.tool $dashboard"
"$venv/bin/python" -m json.tool "$dashboard" >/dev/null || fail "$dashboard is not JSON"

# --- Dockerfile ----------------------------------------------------------------------
say "Dockerfile: parse deploy/Dockerfile and check the image's contract"
"$venv/bin/python" - deploy/Dockerfile <<'PY' || fail "deploy/Dockerfile"
import sys
import dockerfile

path = sys.argv[1]
commands = dockerfile.parse_file(path)
stages = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
final = commands[stages[-1]:]


def values(cmd):
    return [c.value for c in final if c.cmd == cmd]


problems = []
if commands[stages[-1]].value[0] != "scratch":
    problems.append("the final stage is not FROM scratch")
users = values("USER")
if not users or users[-1][0].split(":")[0] in ("0", "root"):
    problems.append("the final stage does not switch to a non-root USER")
if ("/data",) not in values("VOLUME"):
    problems.append("no VOLUME /data")
if not any("health" in v for v in values("HEALTHCHECK")):
    problems.append("no HEALTHCHECK running `edgebot health`")
if not values("EXPOSE"):
    problems.append("no EXPOSE")
for problem in problems:
    print(f"{path}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# --- Nix -----------------------------------------------------------------------------
command -v nix-instantiate >/dev/null || apt_install nix-bin
say "nix-instantiate --parse flake.nix"
nix-instantiate --parse flake.nix >/dev/null || fail "flake.nix does not parse"
# Without nixpkgs (not reachable here) only the flake's own top level evaluates.
inputs=$(nix-instantiate --eval --strict -E 'builtins.attrNames (import ./flake.nix).inputs') ||
    fail "flake.nix does not evaluate"
[ "$inputs" = '[ "nixpkgs" ]' ] || fail "flake.nix inputs are $inputs"

say "ok"
