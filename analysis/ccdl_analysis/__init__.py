"""ccdl_analysis: figures and tables from ccdl traces (docs/analysis.md).

Modules: traces (reading traces strictly), figures (per-run and overlay PNGs), tables
(mean +- std over seeds, Markdown and CSV), topology (spectral-gap table, consensus figure),
cli (the `ccdl-analyze` command). Needs h5py, numpy, matplotlib: run with /usr/bin/python3.
"""
