#!/usr/bin/env bash
# Installs what the `pipeline export --to kaapana` tests need beyond Rust: python3 (the
# generated DAG must compile, `python3 -m py_compile`) and Jinja2 (Kaapana's workflow-api
# renders the DAG with Jinja2 before Airflow reads it; the tests render it the same way).
# Debian packages python3 and python3-jinja2; installs nothing when both are there.
set -euo pipefail

have() { command -v python3 >/dev/null 2>&1 && python3 -c 'import jinja2' >/dev/null 2>&1; }
have && exit 0

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup/python3.sh: missing python3 or Jinja2; run as root: apt-get install -y python3 python3-jinja2" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "setup/python3.sh: missing python3 or Jinja2 and there is no apt-get; install python3 and Jinja2 (pip install jinja2)" >&2
  exit 1
}
lock_wait=300
echo "setup/python3.sh: installing python3 python3-jinja2 (waiting up to ${lock_wait}s for the dpkg lock)" >&2
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout="$lock_wait" update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$lock_wait" install -y -qq python3 python3-jinja2 >/dev/null
have || { echo "setup/python3.sh: python3 with Jinja2 is still missing after installing" >&2; exit 1; }
