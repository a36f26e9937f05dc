#!/usr/bin/env bash
# Checks, against a real Apptainer, the behaviours tapir's apptainer mode relies on that
# its test stand-in (./apptainer) can only imitate. Run it on the cluster where tasks will
# run, ideally inside a batch job (that is where limits and GPUs differ):
#
#   bash site-checks.sh IMAGE            (or: tapir doctor --mode apptainer --deep IMAGE)
#
# IMAGE: a SIF file, sandbox folder or docker-daemon:REF:TAG with a POSIX shell and the
# usual tools (sh, cat, echo, sleep, sed); e.g. `apptainer build busybox.sif
# docker://busybox:1.36` on a node with network.
# APPTAINER: the binary to check (default: `apptainer` on PATH).
#
# stdout: one line per check, "RESULT<TAB>CHECK<TAB>WHAT HAPPENED", where RESULT is
#   ok    apptainer behaves as tapir assumes,
#   note  it behaves differently in a way tapir handles or reports (the text says how),
#   FAIL  it behaves in a way that breaks tapir's runs here.
# exit: 0 when no check FAILed, 1 otherwise, 2 when the checks cannot start.
# SC2016: the single-quoted $VARs are meant for the container's shell.
# shellcheck disable=SC2016
set -uo pipefail

apptainer=${APPTAINER:-apptainer}
image=${1:-}
[[ -n $image ]] || { echo "usage: site-checks.sh IMAGE" >&2; exit 2; }
command -v "$apptainer" >/dev/null 2>&1 || { echo "site-checks: $apptainer not found" >&2; exit 2; }
tmp=$(mktemp -d) || exit 2
trap 'rm -rf -- "$tmp"' EXIT
failed=0

report() {  # report RESULT CHECK TEXT
  printf '%s\t%s\t%s\n' "$1" "$2" "$3"
  [[ $1 != FAIL ]] || failed=1
}

# ax ARGS...: apptainer -q exec --containall ARGS, with a 120 s deadline; sets RC, OUT, ERR.
ax() {
  timeout 120 "$apptainer" -q exec --containall "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  RC=$?
  OUT=$(<"$tmp/out") ERR=$(<"$tmp/err")
}

ax "$image" echo ready
if [[ $RC != 0 || $OUT != ready ]]; then
  report FAIL "runs at all" "exec --containall $image echo ready: exit $RC: ${ERR:0:300}"
  exit 1
fi
report ok "runs at all" "exec --containall works with $image"

# 1. --no-eval exists, and values stay literal with it.
if "$apptainer" exec --help 2>/dev/null | grep -q -- --no-eval; then
  APPTAINERENV_V='$(echo evaluated)' ax --no-eval "$image" sh -c 'printf %s "$V"'
  if [[ $OUT == '$(echo evaluated)' ]]; then
    report ok "--no-eval" "a value with \$(…) arrives literally"
  else
    report FAIL "--no-eval" "a value with \$(…) arrived as '$OUT'"
  fi
else
  APPTAINERENV_V='$(echo evaluated)' ax "$image" sh -c 'printf %s "$V"'
  report note "--no-eval" "missing (apptainer < 1.1): values are shell-evaluated (here: '$OUT'); tapir escapes \$, \` and \\ in values"
fi

# 2. --env splits a value with several '=' as CSV (tapir sends such values as APPTAINERENV_).
ax --no-eval --env 'A=x=1,B=2' "$image" sh -c 'echo "[$A][$B]"'
if [[ $OUT == '[x=1][2]' ]]; then
  report ok "--env parsing" "'A=x=1,B=2' becomes A=x=1 and B=2, as tapir assumes"
else
  report note "--env parsing" "'A=x=1,B=2' gave '$OUT' (tapir sends values with '=' and ',' as APPTAINERENV_ anyway)"
fi

# 3. Memory/CPU limits in this environment, and without a user D-Bus session.
ax --memory 64M --memory-swap 64M --cpus 1 "$image" true
if [[ $RC == 0 ]]; then
  report ok "limits here" "--memory/--cpus work in this environment (uid $(id -u))"
else
  report note "limits here" "--memory/--cpus fail here (exit $RC: ${ERR:0:200}); tapir must leave them out: check that \`tapir run\` warns 'limits are NOT enforced'"
fi
if [[ $(id -u) != 0 ]]; then
  (unset DBUS_SESSION_BUS_ADDRESS; ax --memory 64M "$image" true; printf '%s\n%s\n' "$RC" "$ERR" >"$tmp/nodbus")
  { read -r RC; ERR=$(cat); } <"$tmp/nodbus"
  if [[ $RC == 255 ]]; then
    report ok "limits without D-Bus" "fatal (exit 255) as tapir assumes: ${ERR:0:160}"
  else
    report note "limits without D-Bus" "exit $RC (tapir assumes a fatal error and leaves limits out in such jobs)"
  fi
fi
cpus=$(($(nproc) + 1))
ax --cpus "$cpus" "$image" true
if [[ $RC != 0 ]]; then
  report ok "--cpus above the usable CPUs" "refused (exit $RC), as tapir assumes: it caps --cpus at $(nproc)"
else
  report note "--cpus above the usable CPUs" "--cpus $cpus was accepted here (tapir caps it at $(nproc) anyway)"
fi

# 4. docker-daemon: without a tag.
ax docker-daemon:tapir-site-check-untagged true
if [[ $ERR == *"neither a tag nor a digest"* ]]; then
  report ok "docker-daemon: untagged" "refused, as tapir assumes (it adds the tag or converts to a SIF itself)"
else
  report note "docker-daemon: untagged" "exit $RC: ${ERR:0:200}"
fi

# 5. --bind with '^' in a path (apptainer's bind parser splits on it) vs --mount.
mkdir -p "$tmp/a^b" && echo caret >"$tmp/a^b/f"
ax --bind "$tmp/a^b:/probe:ro" "$image" cat /probe/f
bind_result="exit $RC, '${OUT:0:40}'"
ax --mount "type=bind,src=$tmp/a^b,dst=/probe,ro" "$image" cat /probe/f
if [[ $OUT == caret ]]; then
  report ok "paths with ^" "--mount delivers them (tapir uses --mount for them); --bind gave $bind_result"
else
  report FAIL "paths with ^" "--mount did not deliver $tmp/a^b (exit $RC: ${ERR:0:200})"
fi

# 6. --workdir is honoured (ignored with a warning under `user bind control = no`).
mkdir -p "$tmp/wd"
ax --workdir "$tmp/wd" "$image" sh -c 'echo x >/tmp/probe'
if [[ -e $tmp/wd/tmp/probe ]]; then
  report ok "--workdir" "the run's /tmp is in the --workdir folder"
else
  report FAIL "--workdir" "ignored (user bind control = no?): tapir's scratch space, binds and outputs would not work: ${ERR:0:200}"
fi

# 7. --net --network none as this user.
ax --net --network none "$image" sh -c 'sed -n "3,\$ s/^ *\([^:]*\):.*/\1/p" /proc/net/dev'
if [[ $RC == 0 && $OUT == lo ]]; then
  report ok "--network none" "only the loopback device"
else
  report note "--network none" "exit $RC, devices '${OUT//$'\n'/ }': ${ERR:0:200}"
fi

# 8. What passes through a clean environment.
TERM=site-check-term https_proxy=http://proxy.invalid:3128 ax "$image" sh -c 'echo "$TERM|$https_proxy|$LANG"'
report note "passed-through variables" "TERM, https_proxy, LANG inside: '$OUT' (tapir documents this; set them with --env to override)"

# 9. SIGTERM: to apptainer alone (what tapir sends) vs to its process group.
count_terms() {  # count_terms group|pid -> number of SIGTERMs the payload saw
  rm -f "$tmp/sig/"*
  mkdir -p "$tmp/sig"
  # (no `timeout` here: it would relay the signal to its whole process group)
  setsid "$apptainer" -q exec --containall --bind "$tmp/sig:/sig" "$image" sh -c \
    'n=0; trap "n=\$((n+1)); echo \$n >/sig/n" TERM; touch /sig/ready; while [ ! -e /sig/stop ]; do sleep 0.1; done' \
    </dev/null >/dev/null 2>&1 &
  local pid=$! i
  for ((i = 0; i < 300; i++)); do [[ -e $tmp/sig/ready ]] && break; sleep 0.1; done
  if [[ $1 == group ]]; then kill -TERM -- "-$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
  sleep 1
  touch "$tmp/sig/stop"
  wait "$pid" 2>/dev/null
  local n
  n=$(cat "$tmp/sig/n" 2>/dev/null)
  echo "${n:-0}"
}
to_pid=$(count_terms pid)
to_group=$(count_terms group)
if [[ $to_pid == 1 ]]; then
  report ok "SIGTERM forwarding" "a SIGTERM to apptainer reaches the task once (to the whole group: $to_group times)"
else
  report FAIL "SIGTERM forwarding" "a SIGTERM to apptainer reached the task $to_pid times (tapir relies on apptainer forwarding it once)"
fi

# 10. exec vs run: only run applies the image's ENTRYPOINT (runscript).
ax "$image" echo probe
exec_out=$OUT
timeout 120 "$apptainer" -q run --containall "$image" echo probe >"$tmp/out" 2>"$tmp/err" </dev/null
run_out=$(<"$tmp/out")
if [[ $exec_out == "$run_out" ]]; then
  report ok "runscript" "exec and run give the same output for this image (no ENTRYPOINT, or it passes arguments on)"
else
  report note "runscript" "run adds the image's ENTRYPOINT: exec gave '${exec_out:0:60}', run gave '${run_out:0:60}' (tapir uses run when it cannot read the ENTRYPOINT)"
fi

exit "$failed"
