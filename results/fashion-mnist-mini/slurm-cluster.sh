#!/bin/bash
# private one-node Slurm cluster, copied from /work/main/tests/slurm.sh (daemon part)
export PATH="$PATH:/usr/sbin:/sbin"
S=${SLURM_DIR:-/tmp/results-slurm/c}
mkdir -p "$S/state" "$S/spool" "$S/munge"; chmod 700 "$S/munge"
if [ -r /etc/munge/munge.key ]; then cp /etc/munge/munge.key "$S/munge/munge.key"; else dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 2>/dev/null; fi
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
cpus=$(getconf _NPROCESSORS_ONLN); [ "$cpus" -gt 2 ] && cpus=2
mem=$(free -m | awk '/^Mem:/ {print int($2 / 2)}')
: > "$S/plugstack.conf"
cat > "$S/slurm.conf" <<EOC
ClusterName=ccdlresults
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.sock
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
    state=$(sinfo -h -n localhost -o %T 2>/dev/null); [ "$state" = idle ] && break; sleep 0.2
done
echo "state=$state ports $ctld_port/$slurmd_port cpus=$cpus"
