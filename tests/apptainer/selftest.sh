#!/usr/bin/env bash
# Exercise the apptainer stand-in (./apptainer) and ./make-sandbox.sh by hand, without
# cargo: flags in both spellings, refusals, exit codes, mounts, environment, namespaces
# and signals. Works in a mktemp directory that it removes on exit.
#
# usage: bash tests/apptainer/selftest.sh
# stdout: one line per failed check ("FAIL: ...") and a summary.
# exit:   0 when every check passed, 1 otherwise (2 when it cannot even start).
# SC2016: the single-quoted $VARs are meant for the container's shell.
# SC2317: the helpers are called through `check`, which shellcheck cannot follow.
# shellcheck disable=SC2016,SC2317
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
A=$here/apptainer
MAKE=$here/make-sandbox.sh
PC_JSON=$here/../fixtures/valid/docs-processing-container.json

for tool in bwrap busybox setsid; do
  command -v "$tool" >/dev/null || { echo "selftest: $tool is not installed" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || echo "selftest: not root; some checks assume root (HOME=/root, uid 0)" >&2

tmp=$(mktemp -d) || exit 2
bg_pids=()
cleanup() {
  local p f
  for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # If the stand-in is broken, contained processes may outlive it: every process this
  # script started has the unique $tmp in its command line (bwrap's pid-1 helper included,
  # and killing that ends its whole PID namespace).
  for f in /proc/[0-9]*/cmdline; do
    p=${f#/proc/} p=${p%/cmdline}
    [[ $p != "$BASHPID" ]] || continue
    if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "$tmp"; then kill -KILL "$p" 2>/dev/null; fi
  done
  rm -rf -- "$tmp"
}
trap cleanup EXIT
img=$tmp/img

checks=0 failures=0
RC=0 OUT='' ERR=''

# sa ARGS...: run the stand-in; sets RC, OUT (stdout) and ERR (stderr).
sa() {
  "$A" "$@" >"$tmp/stdout" 2>"$tmp/stderr" </dev/null
  RC=$?
  OUT=$(<"$tmp/stdout") ERR=$(<"$tmp/stderr")
}

# check NAME COMMAND...: COMMAND must succeed.
check() {
  local name=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    failures=$((failures + 1))
    printf 'FAIL: %s\n' "$name"
    printf '      last run: rc=%s\n      stdout: %s\n      stderr: %s\n' "$RC" "${OUT:0:400}" "${ERR:0:400}"
  fi
}

rc_is()       { [[ $RC == "$1" ]]; }
ok_out()      { [[ $RC == 0 && $OUT == "$1" ]]; }              # success with exactly this stdout
refused()     { [[ $RC == 255 && -z $OUT && $ERR == *"$1"* ]]; } # 255, nothing on stdout, message
contains()    { [[ $1 == *"$2"* ]]; }
lacks()       { [[ $1 != *"$2"* ]]; }

# expect_ok NAME EXPECTED_STDOUT ARGS...
expect_ok() { local name=$1 want=$2; shift 2; sa "$@"; check "$name" ok_out "$want"; }
# expect_refused NAME MESSAGE_PART ARGS...
expect_refused() { local name=$1 msg=$2; shift 2; sa "$@"; check "$name" refused "$msg"; }

# procs_with TOKEN: is any process's command line still holding TOKEN?
procs_with() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    [[ $f == "/proc/$BASHPID/cmdline" ]] && continue
    if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "$1"; then return 0; fi
  done
  return 1
}
# gone TOKEN: wait up to 5 s for every process holding TOKEN to end.
gone() {
  local i
  for ((i = 0; i < 50; i++)); do procs_with "$1" || return 0; sleep 0.1; done
  return 1
}
# wait_file PATH: wait up to 10 s for PATH to appear.
wait_file() {
  local i
  for ((i = 0; i < 100; i++)); do [[ -e $1 ]] && return 0; sleep 0.1; done
  return 1
}

# ---------------------------------------------------------------------------------------
# make-sandbox.sh
"$MAKE" >/dev/null 2>&1; RC=$?
check "make-sandbox: no argument is a usage error (2)" rc_is 2
"$MAKE" "$tmp/x" "$tmp/none.json" >/dev/null 2>&1; RC=$?
check "make-sandbox: missing PC_JSON fails (1)" rc_is 1
OUT=$("$MAKE" "$img" "$PC_JSON" 2>&1); RC=$?
check "make-sandbox: builds quietly" ok_out ''
check "make-sandbox: busybox copied" test -x "$img/bin/busybox"
check "make-sandbox: applet links point at busybox" test "$(readlink "$img/bin/sh")" = busybox
check "make-sandbox: a link for every applet" \
  test "$(busybox --list | grep -cvx busybox)" = "$(find "$img/bin" -type l | wc -l)"
check "make-sandbox: /tmp is 1777" test "$(stat -c %a "$img/tmp")" = 1777
check "make-sandbox: mount points and /etc files" \
  test -d "$img/var/tmp" -a -d "$img/proc" -a -d "$img/dev" -a -s "$img/etc/passwd" -a -s "$img/etc/group" -a -d "$img/.singularity.d/env"
check "make-sandbox: runscript" test -x "$img/.singularity.d/runscript"
check "make-sandbox: processing-container.json copied" cmp -s "$PC_JSON" "$img/processing-container.json"
OUT=$("$MAKE" "$img" "$PC_JSON" 2>&1); RC=$?
check "make-sandbox: second run is quiet and succeeds" ok_out ''
"$MAKE" "$tmp/img2" 2>/dev/null; RC=$?
check "make-sandbox: without PC_JSON" test "$RC" = 0 -a ! -e "$tmp/img2/processing-container.json" -a -x "$tmp/img2/bin/busybox"

# a fingerprint of the image, to show that no run changes it
fingerprint() { find "$img" -printf '%p %y %m %s %T@ %l\n' | LC_ALL=C sort | cksum; }
img_before=$(fingerprint)

# ---------------------------------------------------------------------------------------
# version and help
expect_ok "--version" "apptainer version 1.3.4-tapir-standin" --version
sa exec --help
check "exec --help exits 0" rc_is 0
for f in --containall -C --no-eval --workdir -W --pwd --bind -B --mount --env; do
  check "exec --help lists $f" contains "$OUT" "$f"
done
for f in --memory --memory-swap --memory-reservation --cpus --net --network --nv --rocm; do
  check "exec --help lists $f" contains "$OUT" "$f"
done
check "exec --help prints nothing on stderr" test -z "$ERR"
sa run --help
check "run --help exits 0 and shows run" test "$RC" = 0 -a -n "$OUT"
contains "$OUT" "apptainer run" || check "run --help shows the run synopsis" false

# ---------------------------------------------------------------------------------------
# refusals: exit 255, nothing on stdout, a message on stderr
expect_refused "no --containall"                  "only supports contained runs" exec "$img" true
OUT=$(TAPIR_STANDIN_AS_UID=1000 "$A" exec -C --memory 1G "$img" true 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--memory as a non-root user without systemd/D-Bus is fatal" refused "while applying cgroups config"
OUT=$(TAPIR_STANDIN_AS_UID=1000 "$A" exec -C --cpus 1 "$img" true 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--cpus as a non-root user without systemd/D-Bus is fatal" refused "while applying cgroups config"
OUT=$(TAPIR_STANDIN_AS_UID=0 "$A" exec -C --memory 64M --memory-swap 64M --memory-reservation 32M --cpus 0.5 "$img" echo limited 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "limits as root are accepted" ok_out limited
expect_refused "--cpus above the usable CPUs"     "range is 0.01 to $(nproc)" exec -C --cpus "$(($(nproc) + 1))" "$img" true
expect_refused "--cpus below 0.01"                "range is 0.01" exec -C --cpus 0.001 "$img" true
expect_refused "unknown flag --cleanenv"          "unknown or unsupported flag: --cleanenv" exec -C --cleanenv "$img" true
expect_refused "unknown flag -c"                  "unknown or unsupported flag: -c" exec -C -c "$img" true
expect_refused "unknown flag --writable-tmpfs"    "unknown or unsupported flag: --writable-tmpfs" exec -C --writable-tmpfs "$img" true
expect_refused "bool flag with a value"           "unknown or unsupported flag: --containall=true" exec --containall=true "$img" true
expect_refused "unknown global flag"              "unknown or unsupported flag: --debug" --debug exec -C "$img" true
expect_refused "unsupported command"              "unsupported command: shell" shell "$img"
expect_refused "--network other than none"        "models only --network none" exec -C --network bridge "$img" true
expect_refused "--net alone (bridge)"             "models only --network none" exec -C --net "$img" true
expect_refused "docker:// image"                  "runs only sandbox directories" exec -C docker://busybox true
expect_refused "docker-daemon: image"             "runs only sandbox directories" exec -C docker-daemon:busybox:latest true
expect_refused "docker-daemon: without a tag"     "has neither a tag nor a digest" exec -C docker-daemon:busybox true
expect_refused "build from docker-daemon: without a tag" "has neither a tag nor a digest" build "$tmp/b.sif" docker-daemon:example/busybox
expect_refused "oras:// image"                    "runs only sandbox directories" exec -C oras://example/x:1 true
expect_refused "SIF image"                        "runs only sandbox directories" exec -C "$tmp/x.sif" true
expect_refused "image not a directory"            "runs only sandbox directories" exec -C "$tmp/missing" true
expect_refused "missing image"                    "missing the image" exec -C
expect_refused "missing command"                  "missing the command" exec -C "$img"
expect_refused "flag without its value"           "needs an argument" exec -C --pwd
expect_refused "comma-separated --bind"           "comma-separated bind lists are not supported" exec -C --bind "$tmp:/a,$tmp:/b" "$img" true
expect_refused "--bind source missing"            "bind source does not exist" exec -C --bind "$tmp/nothere:/x" "$img" true
expect_refused "--mount source missing"           "bind source does not exist" exec -C --mount "type=bind,src=$tmp/nothere,dst=/x" "$img" true
expect_refused "--bind bad option"                "unsupported bind option" exec -C --bind "$tmp:/x:noexec" "$img" true
expect_refused "--bind relative destination"      "absolute" exec -C --bind "$tmp:rel" "$img" true
expect_refused "--mount type=tmpfs"               "only type=bind" exec -C --mount "type=tmpfs,dst=/x" "$img" true
expect_refused "--mount unknown key"              "unsupported mount option" exec -C --mount "type=bind,src=$tmp,dst=/x,bind-propagation=shared" "$img" true
expect_refused "--mount broken quoting"           "not a valid comma-separated list" exec -C --mount "type=bind,\"src=$tmp,dst=/x" "$img" true
expect_refused "--env invalid name"               "not a valid environment variable name" exec -C --env "1BAD=x" "$img" true
expect_refused "--env invalid name (dash)"        "not a valid environment variable name" exec -C --env "A-B=x" "$img" true
expect_refused "--env without ="                  "NAME=VALUE" exec -C --env "NOVALUE" "$img" true
expect_refused "--env value apptainer would split" "APPTAINERENV_X" exec -C --env "X=a=b,c" "$img" true
expect_refused "--env HOME"                       "HOME cannot be set" exec -C --env HOME=/x "$img" true
expect_refused "--pwd relative"                   "absolute" exec -C --pwd rel "$img" true
expect_refused "--pwd missing"                    "not a directory in the container" exec -C --pwd /nowhere "$img" true
expect_refused "--workdir missing"                "not an existing directory" exec -C --workdir "$tmp/nowd" "$img" true
expect_refused "command not in PATH"              "executable file not found in \$PATH" exec -C "$img" no-such-command
expect_refused "command path missing"             "no such file" exec -C "$img" /bin/no-such-command
expect_refused "command not executable"           "permission denied" exec -C "$img" /etc/passwd
expect_refused "command is a directory"           "is a directory" exec -C "$img" /etc
OUT=$(APPTAINER_BIND="$tmp:/x" "$A" exec -C "$img" true 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "APPTAINER_BIND in the environment is refused" refused "APPTAINER_BIND is set"
OUT=$(SINGULARITYENV_X=1 "$A" exec -C "$img" true 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "SINGULARITYENV_ in the environment is refused" refused "SINGULARITYENV_X is set"

# ---------------------------------------------------------------------------------------
# exit codes, stdout and stderr
expect_ok "exit 0 passes through" "" exec -C "$img" true
sa exec -C "$img" false;                  check "exit 1 passes through" rc_is 1
sa exec -C "$img" sh -c 'exit 42';        check "exit 42 passes through" rc_is 42
sa exec --containall "$img" sh -c 'exit 255'; check "exit 255 of the command passes through" rc_is 255
sa exec -C "$img" sh -c 'kill -TERM $$'; check "death by SIGTERM is 143" rc_is 143
sa exec -C "$img" sh -c 'echo out; echo err >&2'
check "stdout and stderr stay apart" test "$RC" = 0 -a "$OUT" = out -a "$ERR" = err
sa exec -C "$img" sh -c 'cat' ; check "stdin is passed (here /dev/null)" ok_out ''
expect_ok "arguments arrive unchanged" $'a b\n"c"\n$HOME\n*' exec -C "$img" sh -c 'printf "%s\n" "$@"' sh 'a b' '"c"' '$HOME' '*'
expect_ok "-- ends the flags" "x" exec -C -- "$img" echo x
expect_ok "run executes the runscript with its arguments" "from-run" run -C "$img" sh -c 'echo from-run'
sa run -C "$img" sh -c 'exit 7';         check "run passes the exit code through" rc_is 7
expect_ok "-q before the subcommand" "quiet" -q exec -C "$img" echo quiet
expect_ok "inspect --runscript prints the runscript" "$(cat "$img/.singularity.d/runscript")" inspect --runscript "$img"
expect_refused "inspect other than --runscript"   "only inspect --runscript" inspect --labels "$img"
expect_ok "relative command path is resolved from --pwd" "hi" exec -C --pwd /bin "$img" ./echo hi

# ---------------------------------------------------------------------------------------
# environment
expected_env_names=$'APPTAINER_CONTAINER\nAPPTAINER_NAME\nHOME\nLANG\nPATH\nPWD\nUSER'
env -u TERM -u http_proxy -u https_proxy -u no_proxy -u all_proxy -u ftp_proxy \
  -u HTTP_PROXY -u HTTPS_PROXY -u NO_PROXY -u ALL_PROXY -u FTP_PROXY \
  "$A" exec -C "$img" env -0 >"$tmp/stdout" 2>"$tmp/stderr"; RC=$? OUT='(env -0)' ERR=$(<"$tmp/stderr")
names=$(tr '\0' '\n' <"$tmp/stdout" | sed -n 's/=.*//p' | LC_ALL=C sort)
check "only the container's own variables, nothing from the host" test "$names" = "$expected_env_names"
export LEAKY_HOST_VARIABLE=leak
sa exec -C "$img" env
check "an exported host variable does not leak" lacks "$OUT" LEAKY_HOST_VARIABLE
unset LEAKY_HOST_VARIABLE
OUT=$(TERM=tapir-term https_proxy=http://proxy.invalid:3128 NO_PROXY=.local "$A" exec -C "$img" sh -c 'echo "$TERM $https_proxy $NO_PROXY $LANG"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "TERM and the proxy variables pass through; LANG=C" ok_out "tapir-term http://proxy.invalid:3128 .local C"
OUT=$(https_proxy=http://proxy.invalid:3128 "$A" exec -C --env https_proxy= "$img" sh -c 'echo "[$https_proxy]"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--env https_proxy= blanks a passed-through proxy" ok_out "[]"
expect_ok "default PATH" "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" exec -C "$img" sh -c 'echo "$PATH"'
expect_ok "HOME" "/root" exec -C "$img" sh -c 'echo "$HOME"'
expect_ok "USER" "$(id -un)" exec -C "$img" sh -c 'echo "$USER"'
expect_ok "APPTAINER_CONTAINER and APPTAINER_NAME" "$img img" exec -C "$img" sh -c 'echo "$APPTAINER_CONTAINER $APPTAINER_NAME"'
expect_ok "--env NAME=VALUE" "v1 v2" exec -C --env A=v1 --env=B=v2 "$img" sh -c 'echo "$A $B"'
expect_ok "--env: the later one wins" "2" exec -C --env A=1 --env A=2 "$img" sh -c 'echo "$A"'
expect_ok "--env value with a comma and spaces" "a, b c" exec -C --env "A=a, b c" "$img" sh -c 'echo "$A"'
expect_ok "--env empty value" "[]" exec -C --env A= "$img" sh -c 'echo "[$A]"'
expect_ok "--env PATH" "/bin" exec -C --env PATH=/bin "$img" sh -c 'echo "$PATH"'
odd=$'sp ace, "quote" =eq\nnewline $dollar'
OUT=$(APPTAINERENV_SECRET=$odd "$A" exec -C "$img" sh -c 'printf %s "$SECRET"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "APPTAINERENV_ value arrives intact (spaces, commas, quotes, newline)" ok_out "$odd"
OUT=$(APPTAINERENV_A=from-env "$A" exec -C --env A=from-flag "$img" sh -c 'echo "$A"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--env wins over APPTAINERENV_" ok_out from-flag
OUT=$(APPTAINERENV_PATH=/sbin:/bin "$A" exec -C "$img" sh -c 'echo "$PATH"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "APPTAINERENV_PATH replaces the default PATH" ok_out /sbin:/bin
OUT=$(APPTAINERENV_HOME=/x "$A" exec -C "$img" true 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "APPTAINERENV_HOME is refused" refused "HOME cannot be set"

# the secret never appears in a command line
secret=topsecret-$RANDOM$RANDOM
mkdir -p "$tmp/sig"
APPTAINERENV_TOKEN=$secret "$A" exec -C -B "$tmp/sig:/sig" "$img" sh -c 'touch /sig/ready-secret; sleep 30' >/dev/null 2>&1 &
secret_pid=$!
bg_pids+=("$secret_pid")
if wait_file "$tmp/sig/ready-secret"; then
  check "bwrap runs as the stand-in's child" \
    grep -qxF "$(readlink -f "$(command -v bwrap)")" < <(for c in $(cat "/proc/$secret_pid/task/$secret_pid/children"); do readlink "/proc/$c/exe"; done)
  check "APPTAINERENV_ value is in no process's command line" eval '! procs_with "$secret"'
else
  check "container for the command-line check started" false
fi
kill -KILL "$secret_pid" 2>/dev/null
{ wait "$secret_pid"; } 2>/dev/null

# ---------------------------------------------------------------------------------------
# file system: read-only image, binds, /tmp, /var/tmp, home, --pwd, --workdir
sa exec -C "$img" sh -c 'touch /newfile'
check "the image root is read-only" test "$RC" -ne 0 -a ! -e "$img/newfile"
sa exec -C "$img" sh -c 'touch /bin/newfile'
check "image directories are read-only" test "$RC" -ne 0 -a ! -e "$img/bin/newfile"
mkdir -p "$tmp/in" "$tmp/out" "$tmp/with,comma" "$tmp/with:colon" "$tmp/with space"
echo input >"$tmp/in/f"
echo comma >"$tmp/with,comma/f"
echo colon >"$tmp/with:colon/f"
echo space >"$tmp/with space/f"
expect_ok "--bind SRC:DST:ro is readable" input exec -C --bind "$tmp/in:/mnt/in:ro" "$img" cat /mnt/in/f
sa exec -C --bind "$tmp/in:/mnt/in:ro" "$img" sh -c 'echo x > /mnt/in/g'
check "--bind :ro is read-only" test "$RC" -ne 0 -a ! -e "$tmp/in/g"
sa exec -C -B "$tmp/out:/mnt/out" "$img" sh -c 'echo written > /mnt/out/r'
check "-B SRC:DST is writable and reaches the host" test "$RC" = 0 -a "$(cat "$tmp/out/r" 2>/dev/null)" = written
sa exec -C -B="$tmp/out:/mnt/out:rw" "$img" sh -c 'echo again > /mnt/out/r2'
check "-B=SRC:DST:rw is writable" test "$RC" = 0 -a -s "$tmp/out/r2"
expect_ok "--bind SRC alone binds at the same path" input exec -C --bind "$tmp/in" "$img" cat "$tmp/in/f"
expect_ok "--bind a single file" input exec -C --bind "$tmp/in/f:/etc/input.txt:ro" "$img" cat /etc/input.txt
expect_ok "--bind into an image directory keeps its entries" "input root:x:0:" \
  exec -C --bind "$tmp/in:/etc/extra/in:ro" "$img" sh -c 'echo "$(cat /etc/extra/in/f) $(head -n1 /etc/group)"'
expect_ok "--mount type=bind,src,dst,ro" input exec -C --mount "type=bind,src=$tmp/in,dst=/kaapana/mounted/in,ro" "$img" cat /kaapana/mounted/in/f
sa exec -C --mount "type=bind,source=$tmp/in,destination=/m,readonly" "$img" sh -c 'echo x > /m/h'
check "--mount readonly is read-only" test "$RC" -ne 0 -a ! -e "$tmp/in/h"
sa exec -C --mount="type=bind,source=$tmp/out,target=/m" "$img" sh -c 'echo m > /m/viamount'
check "--mount=... (rw) is writable" test "$RC" = 0 -a -s "$tmp/out/viamount"
expect_ok "--mount with a colon in the path" colon exec -C --mount "type=bind,src=$tmp/with:colon,dst=/data/with:colon" "$img" cat /data/with:colon/f
expect_ok "--mount with a comma in the path (CSV-quoted)" comma exec -C --mount "type=bind,\"src=$tmp/with,comma\",dst=/data/c" "$img" cat /data/c/f
expect_ok "--bind with a space in the path" space exec -C --bind "$tmp/with space:/data/with space" "$img" cat "/data/with space/f"
expect_ok "default working directory is HOME" /root exec -C "$img" pwd
expect_ok "--pwd" /etc exec -C --pwd /etc "$img" pwd
expect_ok "--pwd=... into a bind" /mnt/out exec -C --pwd=/mnt/out --bind "$tmp/out:/mnt/out" "$img" pwd
expect_ok "--pwd a directory made for a mount" /a exec -C --pwd /a --bind "$tmp/in:/a/b/c" "$img" pwd
expect_ok "/tmp, /var/tmp and HOME are writable" ok exec -C "$img" sh -c 'echo 1 > /tmp/t && echo 1 > /var/tmp/t && echo 1 > ~/t && echo ok'
expect_ok "/tmp, /var/tmp and HOME start empty in each run" "" exec -C "$img" find /tmp /var/tmp /root -mindepth 1
expect_ok "/tmp is sticky and world-writable" 1777 exec -C "$img" stat -c %a /tmp
mkdir -p "$tmp/wd"
sa exec -C --workdir "$tmp/wd" "$img" sh -c 'echo t > /tmp/t; echo v > /var/tmp/v; echo h > "$HOME/h"'
check "--workdir: /tmp, /var/tmp and HOME come from DIR/tmp, DIR/var_tmp, DIR/home" \
  test "$RC" = 0 -a -s "$tmp/wd/tmp/t" -a -s "$tmp/wd/var_tmp/v" -a -s "$tmp/wd/home/h"
expect_ok "-W=DIR keeps the files of an earlier run" "t v h" exec -C -W="$tmp/wd" "$img" sh -c 'echo "$(cat /tmp/t) $(cat /var/tmp/v) $(cat ~/h)"'
expect_ok "-W DIR" "t" exec -C -W "$tmp/wd" "$img" cat /tmp/t

# ---------------------------------------------------------------------------------------
# namespaces, /dev and /proc
host_pidns=$(readlink /proc/self/ns/pid) host_ipcns=$(readlink /proc/self/ns/ipc)
sa exec -C "$img" readlink /proc/self/ns/pid
check "own PID namespace" test "$RC" = 0 -a -n "$OUT" -a "$OUT" != "$host_pidns"
sa exec -C "$img" readlink /proc/self/ns/ipc
check "own IPC namespace" test "$RC" = 0 -a -n "$OUT" -a "$OUT" != "$host_ipcns"
sa exec -C "$img" sh -c 'ls /proc | grep -c "^[0-9]"'
check "/proc shows only the container's processes" test "$RC" = 0 -a "${OUT:-99}" -le 4
expect_ok "/dev is a fresh minimal /dev" "ok" exec -C "$img" sh -c 'test -c /dev/null && test -c /dev/zero && test ! -e /dev/vda && test ! -e /dev/sda && echo ok'
expect_ok "runs as the invoking user" "$(id -u)" exec -C "$img" id -u
expect_ok "--net --network none: only the loopback device" "lo" \
  exec -C --net --network none "$img" sh -c 'sed -n "3,\$ s/^ *\([^:]*\):.*/\1/p" /proc/net/dev'
expect_ok "--network none implies --net" "lo" \
  exec -C --network=none "$img" sh -c 'sed -n "3,\$ s/^ *\([^:]*\):.*/\1/p" /proc/net/dev'

# GPUs (modelled as device files)
OUT=$(TAPIR_STANDIN_HOST_GPUS=3 CUDA_VISIBLE_DEVICES=1 "$A" exec -C --nv "$img" sh -c 'echo $(ls /dev/nvidia*) "[${CUDA_VISIBLE_DEVICES-unset}]"' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--nv under --containall exposes every GPU and drops CUDA_VISIBLE_DEVICES" ok_out "/dev/nvidia0 /dev/nvidia1 /dev/nvidia2 [unset]"
OUT=$(TAPIR_STANDIN_HOST_GPUS=3 TAPIR_STANDIN_NVCCLI=1 "$A" exec -C --nv "$img" sh -c 'ls /dev/nvidia* 2>/dev/null | wc -l' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "nvccli without NVIDIA_VISIBLE_DEVICES exposes no GPU, with a warning" \
  test "$RC" = 0 -a "$OUT" = 0 -a -n "$(grep 'NVIDIA_VISIBLE_DEVICES must be set' "$tmp/stderr")"
OUT=$(TAPIR_STANDIN_HOST_GPUS=3 TAPIR_STANDIN_NVCCLI=1 NVIDIA_VISIBLE_DEVICES=0,2 "$A" exec -C --nv "$img" sh -c 'echo $(ls /dev/nvidia*)' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "nvccli exposes the GPUs NVIDIA_VISIBLE_DEVICES names" ok_out "/dev/nvidia0 /dev/nvidia2"
OUT=$(TAPIR_STANDIN_HOST_GPUS=2 "$A" exec -C --rocm "$img" sh -c 'echo $(ls /dev/kfd /dev/dri)' 2>"$tmp/stderr"); RC=$?; ERR=$(<"$tmp/stderr")
check "--rocm exposes /dev/kfd and /dev/dri" ok_out "/dev/kfd /dev/dri: renderD128 renderD129"
sa exec -C --nv "$img" true
check "--nv without GPUs warns and runs" test "$RC" = 0 -a -n "$(grep 'Could not find any nv files' "$tmp/stderr")"
mkdir -p "$tmp/img2/root"   # img2 has every mount point, so no underlay is needed
expect_ok "an image with every mount point is bound read-only at /" "ro" \
  exec -C "$tmp/img2" sh -c 'awk "\$2 == \"/\" { split(\$4, o, \",\"); print o[1] }" /proc/mounts | tail -n1'
expect_ok "... and it is the image itself, not a tmpfs" "0" \
  exec -C "$tmp/img2" sh -c 'grep -c "^tmpfs / " /proc/mounts; true'

# ---------------------------------------------------------------------------------------
# signals: nothing may outlive the stand-in
tok=tapir-selftest-$RANDOM$RANDOM
rm -f "$tmp/sig/"*
setsid "$A" exec -C -B "$tmp/sig:/sig" "$img" sh -c 'trap "" TERM; touch /sig/ready1; sleep 300; :' "$tok-1" >/dev/null 2>&1 &
pid=$!
bg_pids+=("$pid")
if wait_file "$tmp/sig/ready1"; then
  kill -TERM -- "-$pid"
  wait "$pid"; RC=$?
  check "SIGTERM to the process group: exit 143" rc_is 143
  check "SIGTERM to the process group ends everything (even a command ignoring TERM)" gone "$tok-1"
else
  check "container for the SIGTERM check started" false
fi

"$A" exec -C -B "$tmp/sig:/sig" "$img" sh -c 'n=0; trap "n=\$((n+1)); echo \$n >/sig/terms" TERM; touch /sig/ready4; while [ ! -e /sig/stop4 ]; do sleep 0.1; done; exit 3' >/dev/null 2>&1 &
pid=$!
bg_pids+=("$pid")
if wait_file "$tmp/sig/ready4"; then
  kill -TERM "$pid"
  wait_file "$tmp/sig/terms"
  touch "$tmp/sig/stop4"
  wait "$pid"; RC=$?
  check "SIGTERM to the stand-in alone reaches the command once (forwarded)" test "$RC" = 3 -a "$(cat "$tmp/sig/terms")" = 1
else
  check "container for the forwarding check started" false
fi

"$A" exec -C -B "$tmp/sig:/sig" "$img" sh -c 'trap "" TERM; touch /sig/ready2; sleep 300; :' "$tok-2" >/dev/null 2>&1 &
pid=$!
bg_pids+=("$pid")
if wait_file "$tmp/sig/ready2"; then
  kill -KILL "$pid"
  { wait "$pid"; } 2>/dev/null; RC=$?
  check "SIGKILL to the stand-in alone: exit 137" rc_is 137
  check "SIGKILL to the stand-in alone ends the contained processes" gone "$tok-2"
else
  check "container for the SIGKILL check started" false
fi

bash -c '"$1" exec -C -B "$2:/sig" "$3" sh -c "touch /sig/ready3; sleep 300; :" "$4" & wait' \
  _ "$A" "$tmp/sig" "$img" "$tok-3" >/dev/null 2>&1 &
pid=$!
bg_pids+=("$pid")
if wait_file "$tmp/sig/ready3"; then
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  check "death of the stand-in's parent ends the container (--die-with-parent)" gone "$tok-3"
else
  check "container for the parent-death check started" false
fi

# ---------------------------------------------------------------------------------------
check "no run changed the image" test "$(fingerprint)" = "$img_before"

if ((failures == 0)); then
  printf 'selftest: all %d checks passed\n' "$checks"
  exit 0
fi
printf 'selftest: %d of %d checks FAILED\n' "$failures" "$checks"
exit 1
