#!/usr/bin/env bash
# A single-node Slurm cluster for the `--executor slurm` tests (tests/cli/slurm.rs), from
# Debian's slurm-wlm and munge, started without systemd or cgroups. Idempotent: installs
# the packages when missing (as root), writes $TAPIR_SLURM_ROOT/slurm.conf for this host,
# starts only the daemons that are not running (by their pid files) and waits, bounded,
# until the node takes jobs. Stop it with tests/setup/slurm-stop.sh.
#
# Clients (sbatch, squeue, the tests) find it through SLURM_CONF; the tests read it from
# $TAPIR_SLURM_ROOT/slurm.conf (default /tmp/tapir-slurm: the munge user must reach it).
set -euo pipefail
root=${TAPIR_SLURM_ROOT:-/tmp/tapir-slurm}
state=$root/state
conf=$root/slurm.conf
export SLURM_CONF=$conf
wait_seconds=${TAPIR_SLURM_START_TIMEOUT:-60}
say() { echo "setup/slurm.sh: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
    say "slurm-wlm and munge are missing; as root: apt-get install -y slurm-wlm munge"; exit 1
  fi
  say "installing slurm-wlm and munge (waiting up to 300s for the dpkg lock)"
  "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq slurm-wlm munge >/dev/null
fi
[[ $(id -u) -eq 0 ]] || { say "the test cluster's daemons run as root; run this as root"; exit 1; }

# running PIDFILE PROGRAM: the pid in PIDFILE is alive and is PROGRAM (a pid may be reused)
running() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(</proc/$pid/comm) == "$2" ]]
}

mkdir -p "$state"/{munge,run,log,ctld,slurmd}
chmod 0755 "$root" "$state"

# This host's CPUs, topology and memory, as slurmd sees them.
host=$(hostname -s)
hardware=$(slurmd -C | head -1)
cpus=$(grep -oE ' CPUs=[0-9]+' <<<"$hardware" | cut -d= -f2)
topology=$(grep -oE 'Boards=[0-9]+ SocketsPerBoard=[0-9]+ CoresPerSocket=[0-9]+ ThreadsPerCore=[0-9]+' <<<"$hardware")
memory=$(grep -oE 'RealMemory=[0-9]+' <<<"$hardware" | cut -d= -f2)
memory=$((memory * 9 / 10)) # room for the OS and the daemons

wanted=$(cat <<CONF
# Written by tests/setup/slurm.sh for host $host: one node, no systemd, no cgroups, no
# accounting database. State in $state.
ClusterName=tapirtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket.2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
MailProg=/bin/true
MpiDefault=none
# No cgroup plugin: processes tracked by their parentage (works inside a container).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Memory sampled each second; a step above its --mem is killed (no cgroups needed).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
SchedulerType=sched/backfill
# Start batch jobs at once (the default delay starts them on a 3 s cadence).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Ended jobs stay visible to squeue/scontrol for 10 minutes.
MinJobAge=600
# SIGTERM, then SIGKILL 5 s later (tapir's node-side grace must be shorter).
KillWait=5
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
SlurmdTimeout=60
SlurmctldTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus $topology RealMemory=$memory State=UNKNOWN
# OverSubscribe: up to 16 jobs share a core (the tests' jobs mostly sleep, many at once).
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=512 OverSubscribe=FORCE:16
PartitionName=other Nodes=$host Default=NO MaxTime=INFINITE State=UP DefMemPerCPU=512 OverSubscribe=FORCE:16
CONF
)
conf_changed=0
if [[ ! -f $conf || $(<"$conf") != "$wanted" ]]; then
  printf '%s\n' "$wanted" >"$conf.new" && mv "$conf.new" "$conf"
  chmod 0644 "$conf"
  conf_changed=1
fi

# munge: its own key and socket under $state (munged wants a private folder it owns).
chown munge:munge "$state/munge"
chmod 0700 "$state/munge"
if [[ ! -s $state/munge/munge.key ]]; then
  head -c 1024 /dev/urandom >"$state/munge/munge.key"
  chown munge:munge "$state/munge/munge.key"
  chmod 0400 "$state/munge/munge.key"
fi
if ! running "$state/munge/munged.pid" munged; then
  rm -f "$state/munge/munge.socket.2" "$state/munge/munge.socket.2.lock"
  # --force: munged refuses paths under a world-writable /tmp otherwise
  runuser -u munge -- munged --force --socket="$state/munge/munge.socket.2" \
    --key-file="$state/munge/munge.key" --pid-file="$state/munge/munged.pid" \
    --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
fi
munge_works() { munge -S "$state/munge/munge.socket.2" -n </dev/null 2>/dev/null | unmunge -S "$state/munge/munge.socket.2" >/dev/null 2>&1; }
for _ in $(seq 50); do munge_works && break; sleep 0.1; done
munge_works || { say "munged does not answer; see $state/munge/munged.log"; exit 1; }

# start PROGRAM ARGS...: starts PROGRAM unless it runs; waits (bounded) for its pid file.
controller_was_running=0
start() {
  local program=$1 pidfile=$state/run/$1.pid
  if running "$pidfile" "$program"; then
    [[ $program == slurmctld ]] && controller_was_running=1
    return 0
  fi
  "$@"
  for _ in $(seq 100); do running "$pidfile" "$program" && return 0; sleep 0.1; done
  say "$program did not start; the end of its log:"; tail -20 "$state/log/$program.log" >&2; exit 1
}
start slurmctld
start slurmd
# A changed slurm.conf needs the daemons restarted (reconfigure does not change every
# setting, e.g. SelectTypeParameters).
if ((conf_changed && controller_was_running)); then
  for program in slurmd slurmctld; do
    pidfile=$state/run/$program.pid
    running "$pidfile" "$program" || continue
    pid=$(<"$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    [[ -e /proc/$pid ]] && kill -KILL "$pid"
    rm -f "$pidfile"
  done
  start slurmctld
  start slurmd
fi

deadline=$((SECONDS + wait_seconds))
while :; do
  node=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -1 || true)
  case $node in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | *drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  ((SECONDS < deadline)) || { say "node $host is not up after ${wait_seconds}s (state: ${node:-none})"; sinfo -R >&2 || true; exit 1; }
  sleep 0.2
done
say "cluster up: node $host is $node (SLURM_CONF=$conf)"
