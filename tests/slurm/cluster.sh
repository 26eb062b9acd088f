#!/usr/bin/env bash
# A real Slurm on this one machine, for the tests of the Slurm executor (tests/slurm/) and for trying the
# paper profile's cluster path by hand: munge, one slurmctld and two slurmd (nodes n1 and n2, one CPU each).
#
#   bash tests/slurm/cluster.sh start     install (Debian's slurm-wlm and munge, as root) and start it
#   bash tests/slurm/cluster.sh stop      cancel its jobs and stop the daemons it started
#   bash tests/slurm/cluster.sh env       the line that points Slurm's commands at it (eval "$(... env)")
#
# Partitions: `quick` (the default, MaxTime 1 minute: every run of the demo goes on as a chain of jobs) and
# `long` (no limit). Everything it writes lives under $PSKD_SLURM_DIR (default /tmp/pskd-slurm), with its own
# ClusterName, so it never touches a Slurm that the machine has already.
# Exit code 3 (with one line saying why): Slurm cannot be had here (not root, no apt-get); the tests skip then.
set -euo pipefail
DIR="${PSKD_SLURM_DIR:-/tmp/pskd-slurm}"
CONF="$DIR/slurm.conf"
NODES=(n1 n2)

say() { printf '[slurm %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
unavailable() { echo "cluster.sh: $*" >&2; exit 3; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || unavailable "Slurm is not installed and this is not root (apt-get install slurm-wlm munge)"
    command -v apt-get >/dev/null || unavailable "Slurm is not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
        || unavailable "apt-get could not install slurm-wlm munge"
}

write_config() {
    local host; host="$(hostname)"
    mkdir -p "$DIR/ctld"
    cat >"$CONF" <<EOF
# Written by tests/slurm/cluster.sh: a two-node Slurm on one host.
ClusterName=pskd-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=17000
SlurmdPort=17001
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=17001 CPUs=1 State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=17002 CPUs=1 State=UNKNOWN
PartitionName=quick Nodes=n1,n2 Default=YES MaxTime=1 State=UP
PartitionName=long Nodes=n1,n2 MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    pgrep -x munged >/dev/null && return 0
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.ours"
}

start() {
    [ "$(id -u)" = 0 ] || unavailable "the test cluster's daemons run as root (SlurmUser=root)"
    install
    mkdir -p "$DIR"
    grep -qw n1 /etc/hosts || echo "127.0.0.1 n1 n2" >>/etc/hosts
    stop_daemons
    write_config
    start_munge
    export SLURM_CONF="$CONF"
    slurmctld -c
    for node in "${NODES[@]}"; do slurmd -N "$node"; done
    for _ in $(seq 60); do
        if [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" = "${#NODES[@]}" ]; then
            say "up: nodes ${NODES[*]} idle; partitions quick (1 min, default) and long; SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    echo "cluster.sh: the nodes did not become idle in 60 s; see $DIR/slurmctld.log and $DIR/slurmd-n1.log" >&2
    sinfo -N >&2 || true
    exit 1
}

stop_daemons() {
    if [ -f "$CONF" ] && pgrep -x slurmctld >/dev/null; then
        SLURM_CONF="$CONF" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    fi
    local pidfile
    for pidfile in "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid"; do
        [ -f "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    for _ in $(seq 20); do
        pgrep -f "slurmd -N n[12]|slurmctld -c" >/dev/null || return 0
        sleep 0.5
    done
    pkill -9 -f "slurmd -N n[12]|slurmctld -c" || true
}

stop() {
    stop_daemons
    if [ -f "$DIR/munged.ours" ]; then
        pkill -x munged || true
        rm -f "$DIR/munged.ours"
    fi
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: bash tests/slurm/cluster.sh start|stop|env" >&2; exit 2 ;;
esac
