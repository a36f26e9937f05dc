#!/usr/bin/env bash
# Make a tiny sandbox-directory image for the apptainer stand-in (./apptainer): a static
# busybox with a symlink per applet in /bin, the usual empty mount points, a minimal
# /etc/passwd and /etc/group, /.singularity.d with a runscript like an OCI image's with
# CMD /bin/sh and no ENTRYPOINT (arguments replace CMD), and
# optionally a processing-container.json at the image's root.
#
# usage: make-sandbox.sh DIR [PC_JSON]
#
# Idempotent: running it again with the same arguments leaves the same image (an existing
# /processing-container.json is removed when PC_JSON is not given). Needs no network.
# stdout: nothing. exit: 0 done, 1 failure (message on stderr), 2 usage error.
set -euo pipefail

die()   { echo "make-sandbox.sh: $*" >&2; exit 1; }
usage() { echo "usage: make-sandbox.sh DIR [PC_JSON]" >&2; exit 2; }

[[ $# -ge 1 && $# -le 2 ]] || usage
dir=$1 pc=${2-}
[[ -n $dir ]] || usage
[[ $# -lt 2 || -n $pc ]] || usage
if [[ -n $pc ]]; then
  [[ -f $pc ]] || die "processing-container.json not found: $pc"
fi

# A static busybox: a dynamic one cannot run in an image that has no libc.
busybox=$(command -v busybox) || die "busybox not found; install Debian's busybox-static"
busybox=$(readlink -f -- "$busybox")
case $(LC_ALL=C ldd "$busybox" 2>&1 || true) in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) die "$busybox is dynamically linked; install busybox-static instead of busybox" ;;
esac

[[ ! -e $dir || -d $dir ]] || die "$dir exists and is not a directory"
mkdir -p -- "$dir" || die "cannot create $dir"
mkdir -p -- "$dir/bin" "$dir/etc" "$dir/proc" "$dir/dev" "$dir/tmp" "$dir/var/tmp" \
  "$dir/.singularity.d/env" || die "cannot create the directories of $dir"
chmod 1777 "$dir/tmp" "$dir/var/tmp" || die "cannot set the mode of $dir/tmp"

# Copy busybox only when it differs, through a temporary name: replacing a binary that a
# running container executes in place would fail with "text file busy".
if ! cmp -s -- "$busybox" "$dir/bin/busybox"; then
  if ! { cp -- "$busybox" "$dir/bin/.busybox.new" && chmod 0755 "$dir/bin/.busybox.new" \
    && mv -f -- "$dir/bin/.busybox.new" "$dir/bin/busybox"; }; then
    rm -f -- "$dir/bin/.busybox.new"
    die "cannot copy $busybox into $dir/bin"
  fi
fi

# `busybox --install -s DIR` would point the links at the host's busybox path; these are
# relative, so they resolve inside the image.
applets=$("$dir/bin/busybox" --list) || die "$dir/bin/busybox --list failed"
while IFS= read -r applet; do
  [[ -n $applet && $applet != busybox && $applet != */* ]] || continue
  if [[ $(readlink -- "$dir/bin/$applet" 2>/dev/null || true) != busybox ]]; then
    ln -sfn busybox "$dir/bin/$applet" || die "cannot link $dir/bin/$applet"
  fi
done <<<"$applets"

write_file() {  # write_file PATH MODE CONTENT: replace PATH only if its content differs
  local path=$1 mode=$2 content=$3
  if [[ ! -f $path ]] || [[ $(<"$path") != "$content" ]]; then
    if ! { printf '%s\n' "$content" >"$path.new" && mv -f -- "$path.new" "$path"; }; then
      rm -f -- "$path.new"
      die "cannot write $path"
    fi
  fi
  chmod "$mode" "$path" || die "cannot set the mode of $path"
}

write_file "$dir/etc/passwd" 0644 'root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false'
write_file "$dir/etc/group" 0644 'root:x:0:
nogroup:x:65534:'
# shellcheck disable=SC2016  # "$@" is for the runscript, not for this script
write_file "$dir/.singularity.d/runscript" 0755 '#!/bin/sh
# The runscript apptainer writes for an OCI image without ENTRYPOINT whose CMD is
# /bin/sh: the arguments of `apptainer run` replace CMD.
if [ "$#" -gt 0 ]; then exec "$@"; fi
exec /bin/sh'

if [[ -n $pc ]]; then
  if ! cmp -s -- "$pc" "$dir/processing-container.json"; then
    if ! { cp -- "$pc" "$dir/processing-container.json.new" \
      && mv -f -- "$dir/processing-container.json.new" "$dir/processing-container.json"; }; then
      rm -f -- "$dir/processing-container.json.new"
      die "cannot copy $pc into $dir"
    fi
  fi
  chmod 0644 "$dir/processing-container.json" || die "cannot set the mode of $dir/processing-container.json"
else
  rm -f -- "$dir/processing-container.json" || die "cannot remove $dir/processing-container.json"
fi
