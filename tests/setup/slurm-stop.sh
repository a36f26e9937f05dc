#!/usr/bin/env bash
# Stops the test cluster tests/setup/slurm.sh started: exactly the daemons in its pid
# files (each checked to still be that program), slurmd first, munged last, each waited
# for at most 10 s before SIGKILL.
set -uo pipefail
state=${TAPIR_SLURM_ROOT:-/tmp/tapir-slurm}/state
stop() { # PIDFILE PROGRAM
  local pid
  [[ -s $1 ]] || return 0
  pid=$(<"$1")
  if [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(</proc/$pid/comm) == "$2" ]]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    [[ -e /proc/$pid ]] && kill -KILL "$pid"
    echo "$2 ($pid) stopped"
  fi
  rm -f "$1"
}
stop "$state/run/slurmd.pid" slurmd
stop "$state/run/slurmctld.pid" slurmctld
stop "$state/munge/munged.pid" munged
