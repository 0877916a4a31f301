# slurm_lib.sh: shared by the tests that start a one-node Slurm cluster (sourced after
# lib.sh): skips without root or the Slurm and munge binaries (exit 77), then sets S (the
# cluster's directory), stops the cluster on exit, and defines sweep().
export PYTHONDONTWRITEBYTECODE=1 CCDL PATH="$PATH:/usr/sbin:/sbin"
if [ -n "${CCDL_SKIP_SLURM:-}" ]; then # tools/test.sh: make check ran these; distcheck need not
    echo "skip: CCDL_SKIP_SLURM is set"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: starting slurmctld, slurmd and munged needs root"
    exit 77
fi
for b in munged slurmctld slurmd sbatch squeue sinfo srun scontrol; do
    command -v "$b" > /dev/null || { echo "skip: $b not installed (tools/setup.sh installs slurm-wlm and munge)"; exit 77; }
done
work=$(cd "$work" && pwd)
S="$work/slurm"
. "$top_srcdir/jobs/slurm-local-cluster.sh"
trap 'slurm_local_stop "$S"' EXIT
sweep() { "$PYTHON" "$top_srcdir/tools/ccdl-sweep" "$@"; }
