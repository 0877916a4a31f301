"""`ccdl-sweep`: command line (docs/sweeps.md)."""

import argparse
import os
import sys
import warnings

from . import SweepError, commands, dirlock

USAGE = """\
ccdl-sweep expand SWEEP.json [--out DIR] [--ccdl BIN] [--no-validate | --no-binary] [--set KEY=VALUE]...
ccdl-sweep submit SWEEP.json|DIR [--out DIR] [--ranks P] [--time T] [--partition P]
                  [--account A] [--throttle M] [--ccdl BIN] [--set KEY=VALUE]... [--dry-run]
ccdl-sweep status DIR [--unfinished]
ccdl-sweep local DIR [--ranks P] [--ccdl BIN] [--dry-run]"""

DESCRIPTION = """\
Expand a sweep file (a base spec plus grid axes) into one spec per run, submit the runs
to Slurm as array jobs (reference runs first, controlled runs after them), report which
runs completed, failed or are missing, and resubmit only the unfinished ones.
Exit codes: 0 ok (status: every run completed), 1 some run unfinished, 2 bad input.
See docs/sweeps.md."""


def default_out(sweep_path):
    return os.path.join("runs", os.path.splitext(os.path.basename(sweep_path))[0])


def main(argv=None):
    """Every failure ends in one line on stderr: exit 2 for bad input (a SweepError naming the
    file), 1 with "internal error" for a bug (never expected), 130 for Ctrl-C."""
    for stream in (sys.stdout, sys.stderr):
        try:  # names and messages quote file contents: never fail to print them
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    warnings.simplefilter("ignore")  # numpy's, on odd attribute values: the errors say it all
    try:
        return _main(argv)
    except SweepError as err:
        print(f"ccdl-sweep: {err.line()}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the sweep directory, moving a stale trace, ...
        where = f"{err.filename}: " if err.filename else ""
        print(f"ccdl-sweep: {where}{err.strerror or err}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 (the last resort: one line, no traceback)
        text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        print(f"ccdl-sweep: internal error: {text}", file=sys.stderr)
        return 1


def _main(argv):
    p = argparse.ArgumentParser(prog="ccdl-sweep", usage=USAGE, description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp, sets=True):
        sp.add_argument("--ccdl", help="ccdl binary (default: $CCDL, ccdl on PATH, ./ccdl)")
        if sets:
            sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a base-spec key (VALUE is JSON, or a bare string)")
            sp.add_argument("--out", help="sweep directory (default: runs/<sweep file stem>)")
            sp.add_argument("--no-validate", action="store_true",
                            help="skip `ccdl validate` (key paths are still checked)")
            sp.add_argument("--no-binary", action="store_true",
                            help="do not run ccdl at all: no key checks, built-in defaults")

    e = sub.add_parser("expand", help="write DIR/specs/*.json and DIR/manifest.{json,tsv}")
    e.add_argument("sweep")
    common(e)
    s = sub.add_parser("submit", help="sbatch the unfinished runs (expanding SWEEP first)")
    s.add_argument("target", metavar="SWEEP|DIR")
    common(s)
    s.add_argument("--ranks", type=int, help="MPI ranks per run (--ntasks)")
    s.add_argument("--time", help="time limit per run, e.g. 02:00:00")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--throttle", type=int, help="at most M tasks of each array at once (%%M)")
    s.add_argument("--cpus-per-task", type=int)
    s.add_argument("--signal-margin", type=int,
                   help="seconds before the time limit to ask ccdl to checkpoint (SIGUSR1; 0: none)")
    s.add_argument("--dry-run", action="store_true", help="print the sbatch commands only")
    st = sub.add_parser("status", help="per run: completed / failed / killed / stale / missing")
    st.add_argument("dir")
    st.add_argument("--unfinished", action="store_true", help="list only runs not completed")
    lo = sub.add_parser("local", help="run the unfinished runs here, one after another")
    lo.add_argument("dir")
    common(lo, sets=False)
    lo.add_argument("--ranks", type=int, help="mpiexec -n P (default: the sweep's slurm.ranks)")
    lo.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    if args.command == "expand":
        commands.expand(args.sweep, args.out or default_out(args.sweep), args.ccdl,
                        not (args.no_validate or args.no_binary), args.set, not args.no_binary)
        return 0
    if args.command == "submit":
        overrides = {k: getattr(args, k) for k in
                     ("ranks", "time", "partition", "account", "throttle", "cpus_per_task",
                      "signal_margin")
                     if getattr(args, k) is not None}
        directory = args.target
        if not os.path.isfile(args.target) and (args.set or args.out):
            raise SweepError("--set and --out apply to a sweep file, not to a sweep directory")
        if os.path.isfile(args.target):
            directory = args.out or default_out(args.target)
        # taken at the expansion's first write (or by submit), held to the end of the submission
        lock = dirlock.DirLock(directory, "submit")
        try:
            if os.path.isfile(args.target):
                commands.expand(args.target, directory, args.ccdl, not (args.no_validate or args.no_binary),
                                args.set, not args.no_binary, lock=lock)
            return commands.submit(directory, overrides, args.ccdl, args.dry_run, lock=lock)
        finally:
            lock.release()
    if args.command == "status":
        return commands.status(args.dir, args.unfinished)
    if args.command == "local":
        return commands.local(args.dir, args.ranks, args.ccdl, dry_run=args.dry_run)
    p.print_usage(sys.stderr)
    return 2
