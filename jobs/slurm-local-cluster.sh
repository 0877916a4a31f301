#!/usr/bin/env bash
# slurm-local-cluster.sh: a private one-node Slurm cluster on this machine (munged, slurmctld,
# slurmd), its config, state and logs under one directory, on free loopback ports. For tests
# (tests/slurm.sh sources it) and for running sweeps on a single machine:
#
#   bash jobs/slurm-local-cluster.sh start DIR   # prints the `export SLURM_CONF=...` to use
#   bash jobs/slurm-local-cluster.sh stop DIR
#
# Needs root, slurm-wlm and munge. The settings that work here: proctrack/linuxproc and
# task/none (with the default cgroup proctrack jobs "complete" with exit 0 and write nothing).
# cred_expire=10 (default 120) also sets how long a requeued job waits before it may start
# again: a resumed run continues after ~10 s instead of ~2 minutes.
# Sourced, it defines slurm_local_start DIR (exports SLURM_CONF, sets SLURM_LOCAL_INFO to
# "N CPUs, ports A/B", writes DIR/*.bgpid, returns non-zero if the node does not come up idle)
# and slurm_local_stop DIR.

slurm_local_start() {
    local S=$1 state="" ctld_port slurmd_port cpus mem
    export PATH="$PATH:/usr/sbin:/sbin"
    mkdir -p "$S/state" "$S/spool" "$S/munge"
    chmod 700 "$S/munge"
    if [ -r /etc/munge/munge.key ]; then
        cp /etc/munge/munge.key "$S/munge/munge.key"
    else
        dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 2> /dev/null
    fi
    chmod 400 "$S/munge/munge.key"
    setsid munged -F -f --key-file="$S/munge/munge.key" --socket="$S/munge/munge.sock" \
        --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" \
        --seed-file="$S/munge/munged.seed" > "$S/munged.out" 2>&1 < /dev/null &
    echo $! > "$S/munged.bgpid"
    read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    cpus=$(getconf _NPROCESSORS_ONLN) # not nproc: it honours OMP_NUM_THREADS
    [ "$cpus" -gt 2 ] && cpus=2
    mem=$(free -m | awk '/^Mem:/ {print int($2 / 2)}')
    : > "$S/plugstack.conf"
    cat > "$S/slurm.conf" <<EOC
ClusterName=ccdllocal
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
PlugStackConfig=$S/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MaxArraySize=1001
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOC
    export SLURM_CONF="$S/slurm.conf"
    for _ in $(seq 1 50); do [ -S "$S/munge/munge.sock" ] && break; sleep 0.1; done
    setsid slurmctld -D -i > "$S/slurmctld.out" 2>&1 < /dev/null &
    echo $! > "$S/slurmctld.bgpid"
    setsid slurmd -D -N localhost > "$S/slurmd.out" 2>&1 < /dev/null &
    echo $! > "$S/slurmd.bgpid"
    for _ in $(seq 1 100); do
        state=$(sinfo -h -n localhost -o %T 2> /dev/null)
        if [ "$state" = idle ]; then
            SLURM_LOCAL_INFO="$cpus CPUs, ports $ctld_port/$slurmd_port"
            return 0
        fi
        sleep 0.2
    done
    echo "slurm-local-cluster: node state '$state'"
    tail -5 "$S/slurmctld.log" "$S/slurmd.log" "$S/munged.out" 2> /dev/null
    return 1
}

slurm_local_stop() {
    local S=$1 f p
    for f in slurmd slurmctld munged; do # slurmd first: it talks to the others
        [ -f "$S/$f.bgpid" ] || continue
        p=$(cat "$S/$f.bgpid")
        kill "$p" 2> /dev/null
        for _ in $(seq 1 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
        kill -9 "$p" 2> /dev/null
        rm -f "$S/$f.bgpid"
    done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-} ${2:-}" in
    "start "?*)
        slurm_local_start "$2" || exit 1
        echo "export SLURM_CONF=$2/slurm.conf PATH=\$PATH:/usr/sbin"
        ;;
    "stop "?*) slurm_local_stop "$2" ;;
    *)
        echo "usage: $0 start|stop DIR" >&2
        exit 2
        ;;
    esac
fi
