#!/usr/bin/env bash
# Installs what the tests and the bundled example need beyond Rust and Docker, when it is
# missing: Debian's busybox-static (the test images are FROM scratch + a static busybox)
# and bubblewrap (the apptainer stand-in, tests/apptainer/apptainer). Then checks that the
# Docker engine answers. The README's commands and .ci/run start with it.
#
# As root it runs apt-get directly; otherwise through sudo when there is one; otherwise it
# says what to install and exits 1. Installs nothing when all is there.
set -euo pipefail

# A dynamic busybox cannot run in an image without libc (see tests/images/build-image.sh).
static_busybox() {
  local busybox
  busybox=$(command -v busybox) || return 1
  case $(LC_ALL=C ldd "$(readlink -f "$busybox")" 2>&1 || true) in
    *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
    *) return 1 ;;
  esac
}

missing=()
static_busybox || missing+=(busybox-static)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "prepare.sh: missing ${missing[*]}; run as root (no sudo here): apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  command -v apt-get >/dev/null 2>&1 || {
    echo "prepare.sh: missing ${missing[*]} and there is no apt-get; install them (Debian package names) with your package manager" >&2
    exit 1
  }
  # Another apt or dpkg (unattended-upgrades, a second CI job) may hold the dpkg lock: apt
  # waits for it (DPkg::Lock::Timeout, apt 1.9.11+, Debian 11+) and says which process holds
  # it, instead of failing at once.
  lock_wait=300
  echo "prepare.sh: installing ${missing[*]} (waiting up to ${lock_wait}s for the dpkg lock if another apt or dpkg holds it)" >&2
  "${as_root[@]}" apt-get -o DPkg::Lock::Timeout="$lock_wait" update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$lock_wait" install -y -qq "${missing[@]}" >/dev/null
  static_busybox || { echo "prepare.sh: busybox is still not a static binary after installing busybox-static" >&2; exit 1; }
  command -v bwrap >/dev/null 2>&1 || { echo "prepare.sh: bwrap is still missing after installing bubblewrap" >&2; exit 1; }
fi

docker version --format 'prepare.sh: docker engine {{.Server.Version}}' >&2 || {
  echo "prepare.sh: the Docker engine does not answer (docker version); start it — the engine tests and the example need it" >&2
  exit 1
}
bash "$(dirname "${BASH_SOURCE[0]}")/setup/registry.sh"  # loopback registries for the registry tests
bash "$(dirname "${BASH_SOURCE[0]}")/setup/python3.sh"  # python3 + Jinja2 for the export tests
bash "$(dirname "${BASH_SOURCE[0]}")/setup/k8s.sh"  # kubectl + kubernetes-validate for the Kubernetes tests
bash "$(dirname "${BASH_SOURCE[0]}")/setup/slurm.sh"  # the single-node Slurm cluster of tests/cli/slurm.rs
