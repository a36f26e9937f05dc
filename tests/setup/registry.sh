#!/usr/bin/env bash
# Starts two local image registries for the registry tests (`run --pull`, remote
# `inspect`, `validate --image`, `images --registry`), on loopback only:
#   127.0.0.1:5117  open (no credentials)
#   127.0.0.1:5118  with basic auth: user tapir-test, password tapir-test-password
#                   (a throwaway test credential, not a secret)
# Debian's docker-registry package (the CNCF Distribution registry, v2 API) serves both,
# each with its own config and storage under $TAPIR_REGISTRY_DIR (default
# /var/tmp/tapir-registry). Docker pushes to and pulls from 127.0.0.0/8 over plain HTTP
# without configuration (loopback is an insecure registry by default).
#
# Idempotent: installs docker-registry and apache2-utils (htpasswd, for the bcrypt hash
# the registry needs) only when missing, starts an instance only when its port does not
# answer; every wait is bounded. Exit 0 when both answer, 1 otherwise.
set -euo pipefail

dir=${TAPIR_REGISTRY_DIR:-/var/tmp/tapir-registry}
open_port=5117 auth_port=5118
user=tapir-test password=tapir-test-password

say() { echo "registry.sh: $*" >&2; }

# The HTTP status of GET /v2/ on 127.0.0.1:PORT, or nothing (bash's /dev/tcp: no curl needed).
status_of() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
    printf "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    read -r _ code _ <&3 && echo "$code"' 2>/dev/null || true
}

missing=()
command -v docker-registry >/dev/null 2>&1 || [[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then as_root=(); elif command -v sudo >/dev/null 2>&1; then as_root=(sudo); else
    say "missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"; exit 1
  fi
  say "installing ${missing[*]}"
  "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi
registry=$(command -v docker-registry || echo /usr/bin/docker-registry)

# start NAME PORT EXPECTED_STATUS [AUTH]
start() {
  local name=$1 port=$2 expected=$3 auth=${4:-} here="$dir/$1"
  if [[ $(status_of "$port") == "$expected" ]]; then
    say "$name registry already answers on 127.0.0.1:$port"; return 0
  fi
  mkdir -p "$here/storage"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $here/storage}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [[ -n $auth ]]; then
      echo "auth:"
      echo "  htpasswd: {realm: tapir-test, path: $here/htpasswd}"
    fi
  } > "$here/config.yml"
  if [[ -n $auth ]]; then
    htpasswd -Bbn "$user" "$password" > "$here/htpasswd"
  fi
  # setsid: the registry outlives this script and the shell that ran it.
  setsid "$registry" serve "$here/config.yml" >"$here/registry.log" 2>&1 < /dev/null &
  echo $! > "$here/pid"
  for _ in $(seq 1 60); do
    [[ $(status_of "$port") == "$expected" ]] && { say "$name registry started on 127.0.0.1:$port"; return 0; }
    sleep 0.5
  done
  say "the $name registry did not answer on 127.0.0.1:$port within 30 s; its log:"
  tail -20 "$here/registry.log" >&2 || true
  return 1
}

start open "$open_port" 200
start auth "$auth_port" 401 htpasswd
