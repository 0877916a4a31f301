"""Thin wrappers over sbatch and squeue."""

import os
import shutil
import subprocess

from . import SweepError

try:  # installed: `make install` wrote where it put the job scripts
    from .installdirs import JOBS_DIR
except ImportError:  # the source tree: jobs/ beside tools/
    JOBS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "jobs")
JOB_SCRIPT = os.path.join(JOBS_DIR, "ccdl-array.sbatch")
MAX_ARRAY_INDEX = 1000  # Slurm's default MaxArraySize is 1001


def array_spec(indices, throttle=None):
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8" (plus "%M" to run at most M tasks at once)."""
    parts, start, prev = [], None, None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts) + (f"%{throttle}" if throttle else "")


def sbatch_command(directory, sweep, indices, settings, ccdl, role, dependency=None):
    d = os.path.abspath(directory)
    if max(indices) > MAX_ARRAY_INDEX:
        raise SweepError(f"run index {max(indices)} exceeds Slurm's default MaxArraySize; split the sweep")
    cmd = ["sbatch", "--parsable", f"--job-name=ccdl-{sweep}" + ("-dep" if role == "dependent" else ""),
           f"--array={array_spec(indices, settings.get('throttle'))}",
           f"--ntasks={settings['ranks']}", f"--cpus-per-task={settings['cpus_per_task']}",
           f"--time={settings['time']}", f"--chdir={d}", "--output=logs/%A_%a.out",
           "--open-mode=append",  # a requeued task's log keeps the lines of its earlier runs
           f"--export=ALL,CCDL_SWEEP_DIR={d},CCDL={ccdl}"]
    if settings.get("signal_margin"):
        # to the batch script (B:), which passes it on to the ranks through srun
        cmd.append(f"--signal=B:USR1@{settings['signal_margin']}")
    if settings.get("requeue", True):
        cmd.append("--requeue")
    if settings.get("partition"):
        cmd.append(f"--partition={settings['partition']}")
    if settings.get("account"):
        cmd.append(f"--account={settings['account']}")
    if dependency:
        cmd += [f"--dependency={dependency}", "--kill-on-invalid-dep=yes"]
    cmd += list(settings.get("extra") or [])
    cmd.append(JOB_SCRIPT)
    return cmd


def sbatch(cmd):
    if shutil.which(cmd[0]) is None:
        raise SweepError("sbatch not found: is Slurm installed here? (use `ccdl-sweep local` to run without it)")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SweepError(f"sbatch failed: {out.stderr.strip() or out.returncode}")
    job = out.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise SweepError(f"sbatch printed {out.stdout.strip()!r}, expected a job id")
    return job


def queued_tasks(jobs):
    """{array index: (job_task, state)} of the given array jobs' tasks still pending or running,
    or None when squeue cannot tell (not installed, no controller)."""
    if not jobs:
        return {}
    if shutil.which("squeue") is None:
        return None
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(jobs)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        # squeue fails when every listed job has left the queue ("Invalid job id specified")
        return {} if "Invalid job id" in out.stderr else None
    tasks = {}
    for line in out.stdout.split():
        job_task, _, st = line.partition("|")
        job, _, task = job_task.partition("_")
        if job in jobs and task.isdigit():
            tasks[int(task)] = (job_task, st)
    return tasks
