"""ccdl_sweep: expand sweep files into runs, submit them to Slurm, report their state.

Modules: specjson (strict JSON, key paths, the `ccdl spec-keys` schema), grid (expansion,
naming, reference linking; pure, no binary needed), ccdlbin (the ccdl binary), traces
(run state read from a trace, h5py or h5dump), manifest (the expanded sweep on disk),
slurm (sbatch/squeue), dirlock (one ccdl-sweep command per sweep directory), cli (the
`ccdl-sweep` command). Standard library only.
"""


class SweepError(Exception):
    """Bad input: the command prints `<file>: <message>` on one line and exits 2."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path

    def line(self):
        text = f"{self.path}: {self}" if self.path else str(self)
        return " ".join(text.splitlines())  # one line, whatever a message quotes
