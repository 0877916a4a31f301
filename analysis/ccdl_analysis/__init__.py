"""ccdl_analysis: figures and tables from ccdl traces (docs/analysis.md).

Modules: traces (reading traces strictly), frames (the notebook API: load() gives pandas
DataFrames of runs, steps, epochs and phases), figures (per-run and overlay PNGs), tables
(mean +- std and 95% CI over seeds, paired differences, Markdown and CSV), stats (t
quantiles, confidence intervals, pairing runs with baselines), cost (the network cost
model), topology (spectral-gap table, consensus figure), cli (the `ccdl-analyze` command). Needs h5py, numpy, matplotlib (pandas for load only):
run with /usr/bin/python3.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("ccdl_sweep") is None:
    # the HDF5 safety and JSON helpers are ccdl-sweep's: installed, ccdl_sweep sits next to
    # this package; in the source tree it is tools/ccdl_sweep, next to analysis/ (found
    # here, so that a notebook needs only analysis/ on sys.path)
    _tools = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
                          "tools")
    if os.path.isfile(os.path.join(_tools, "ccdl_sweep", "__init__.py")):
        sys.path.append(_tools)

from .frames import Frames, load  # noqa: E402
from .traces import TraceError  # noqa: E402

__all__ = ["Frames", "TraceError", "load"]
