#!/usr/bin/env bash
# Installs kubectl (Debian's kubernetes-client, when no kubectl is there) for the unit
# test that runs every kubectl call tapir renders against a closed loopback port, and
# kubernetes-validate (PyPI), which bundles the official Kubernetes JSON schemas
# and checks manifests offline, for tests/cli/k8s.rs: every golden manifest of
# tests/golden/k8s is checked against them. Idempotent: does nothing when the pinned
# version is installed. Puts it in its own virtualenv and links it onto PATH.
#
# As root: /opt/tapir-kubernetes-validate, linked from /usr/local/bin. Otherwise:
# ~/.local/share/tapir/kubernetes-validate, linked from ~/.local/bin.
set -euo pipefail

if ! command -v kubectl >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "k8s.sh: kubectl is missing; as root: apt-get install -y kubernetes-client" >&2
    exit 1
  fi
  echo "k8s.sh: installing kubernetes-client (kubectl; waiting up to 300s for the dpkg lock)" >&2
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq kubernetes-client >/dev/null
fi

version=1.37.0
if [[ $(id -u) -eq 0 ]]; then
  venv=/opt/tapir-kubernetes-validate
  bin_dir=/usr/local/bin
else
  venv=${XDG_DATA_HOME:-$HOME/.local/share}/tapir/kubernetes-validate
  bin_dir=$HOME/.local/bin
fi

if [[ $("$venv/bin/kubernetes-validate" --version 2>/dev/null || true) != "$version" ]]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "k8s.sh: python3 with venv is missing; as root: apt-get install -y python3 python3-venv" >&2
      exit 1
    fi
    echo "k8s.sh: installing python3 and python3-venv (waiting up to 300s for the dpkg lock)" >&2
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3 python3-venv >/dev/null
  fi
  echo "k8s.sh: installing kubernetes-validate $version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version"
fi
mkdir -p "$bin_dir"
ln -sf "$venv/bin/kubernetes-validate" "$bin_dir/kubernetes-validate"
"$venv/bin/kubernetes-validate" --version >/dev/null
echo "k8s.sh: kubernetes-validate $version at $venv" >&2
