#!/usr/bin/env bash
# Build a tiny test image for tapir: FROM scratch + a static busybox, optionally with a
# processing-container.json at /processing-container.json. Needs no registry and no
# network (this project's machines cannot pull anything).
#
# usage: build-image.sh TAG PC_JSON [--user UID[:GID]]
#        build-image.sh TAG --no-pc  [--user UID[:GID]]
#
# stdout: the image id (sha256:...), nothing else; progress and errors go to stderr.
# exit:   0 built (or already up to date), 1 build/environment failure, 2 usage error.
# Writes nothing outside a temporary build context (removed on exit) and the Docker engine.
set -euo pipefail

die()   { echo "build-image.sh: $*" >&2; exit 1; }
usage() { echo "usage: build-image.sh TAG (PC_JSON | --no-pc) [--user UID[:GID]]" >&2; exit 2; }

[[ $# -ge 2 ]] || usage
tag=$1 pc=$2 user=
shift 2
while [[ $# -gt 0 ]]; do
  case $1 in
    --user) [[ $# -ge 2 ]] || usage; user=$2; shift 2 ;;
    *) usage ;;
  esac
done
# Numeric ids only: a scratch image has no /etc/passwd to resolve names against.
[[ -z $user || $user =~ ^[0-9]+(:[0-9]+)?$ ]] || { echo "build-image.sh: --user must be UID or UID:GID (numbers), got '$user'" >&2; exit 2; }
[[ $user == 0 || $user == 0:* ]] && { echo "build-image.sh: --user is for a non-root user; omit it for root" >&2; exit 2; }
if [[ $pc != --no-pc ]]; then
  [[ -f $pc ]] || die "processing-container.json not found: $pc"
fi

# --- a static busybox (a dynamic one cannot run in an image without libc) ----------
if ! busybox=$(command -v busybox); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "build-image.sh: busybox missing; installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2 \
      || die "apt-get install busybox-static failed"
    busybox=$(command -v busybox) || die "busybox still missing after installing busybox-static"
  else
    die "busybox not found; install Debian's busybox-static (apt-get install busybox-static)"
  fi
fi
busybox=$(readlink -f "$busybox")
# glibc's ldd says "not a dynamic executable" (or "statically linked" for static-pie).
case $(LC_ALL=C ldd "$busybox" 2>&1 || true) in
  *"not a dynamic executable"*|*"statically linked"*) ;;
  *) die "$busybox is dynamically linked; install busybox-static instead of busybox" ;;
esac

# --- labels from the JSON (jq, else python3) ----------------------------------------
json_field() {  # json_field FILE KEY -> the string value, or empty
  if command -v jq >/dev/null; then
    jq -r --arg k "$2" '.[$k] // "" | tostring' "$1"
  elif command -v python3 >/dev/null; then
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
  else
    die "need jq or python3 to read $1"
  fi
}
title=tapir-test-image description="tapir test image without /processing-container.json"
if [[ $pc != --no-pc ]]; then
  title=$(json_field "$pc" name) || die "$pc is not valid JSON"
  description=$(json_field "$pc" description) || die "$pc is not valid JSON"
fi
# The JSON has no version field, so the image version is the tag part of TAG.
version=latest
[[ ${tag##*/} == *:* ]] && version=${tag##*:}

# --- build context -------------------------------------------------------------------
ctx=$(mktemp -d "${TMPDIR:-/tmp}/tapir-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
chmod 0755 "$ctx/busybox"
copy_pc=
if [[ $pc != --no-pc ]]; then
  cp "$pc" "$ctx/processing-container.json"
  chmod 0644 "$ctx/processing-container.json"
  copy_pc='COPY processing-container.json /processing-container.json'
fi

# Labels go last so that only they change between images: the busybox layers are shared
# (and cached) by every image this script builds. Values are written as JSON strings
# (Dockerfile double quotes), with `$` escaped so the builder does not expand it.
q() {
  set -- "${1//[$'\n\t']/ }"  # one line: Dockerfile quotes do not unescape \n
  if command -v jq >/dev/null; then jq -Rn --arg v "$1" '$v'
  else python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; fi | sed 's/\$/\\$/g'
}
{
  echo 'FROM scratch'
  echo 'COPY busybox /bin/busybox'
  # Exec form: there is no shell yet. One RUN = one layer for the applets and /tmp
  # (mkdir -p + chmod, in case a builder has already made /tmp).
  echo 'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp && chmod 1777 /tmp"]'
  echo 'ENV PATH=/bin'
  [[ -n $copy_pc ]] && echo "$copy_pc"
  echo "LABEL org.opencontainers.image.title=$(q "$title") \\"
  echo "      org.opencontainers.image.description=$(q "$description") \\"
  echo "      org.opencontainers.image.version=$(q "$version")"
  [[ -n $user ]] && echo "USER $user"
  echo 'CMD ["sh"]'
} > "$ctx/Dockerfile"

# BuildKit needs the buildx plugin in this CLI; without it DOCKER_BUILDKIT=1 is a hard
# error, so fall back to the legacy builder (the Dockerfile works with both).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
# -q: print only the image id. Cached steps make a re-run take well under a second.
# The builder's stderr is mostly the legacy builder's deprecation notice: show it only
# when the build fails.
if ! docker build -q -t "$tag" "$ctx" 2>"$ctx/build.err"; then
  cat "$ctx/build.err" >&2
  die "docker build of $tag failed"
fi
