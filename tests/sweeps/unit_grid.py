"""Unit tests of sweep expansion (tools/ccdl_sweep/grid.py) without the ccdl binary: naming,
reference linking, ordering, errors. The schema is a stand-in for `ccdl spec-keys` that
already has the consensus-control keys. Run: python3 unit_grid.py TOP_SRCDIR."""

import copy
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(sys.argv.pop(1) if len(sys.argv) > 1 else ".", "tools"))
from ccdl_sweep import SweepError, grid  # noqa: E402
from ccdl_sweep.specjson import Schema, get_path  # noqa: E402

TABLE = """\
| key | type | default | allowed | meaning |
|---|---|---|---|---|
| `name` | string | `"ccdl"` |  | experiment name |
| `seed` | integer | `1` | | |
| `workers` | integer | `8` | | |
| `data.path` | string | `"/usr/share/datasets/fashion-mnist"` | | |
| `model.kind` | string | `"mlp"` | | |
| `model.hidden` | array of integers | `[256]` | | |
| `schedule.epochs` | integer | `10` | | |
| `schedule.decay_factor` | number | `0.1` | | |
| `topology.kind` | string | `"ring"` | | |
| `communication.mode` | string | `"gossip"` | | |
| `communication.dec_phase` | integer | `0` | | |
| `communication.phases` | array of strings | `[]` | | |
| `communication.local_steps` | integer | `1` | | |
| `communication.control.metric` | string | `"exact"` | | |
| `communication.control.target` | string | `"constant"` | | |
| `communication.control.factor` | number | `1.0` | | |
| `communication.control.value` | number | `0.0` | | |
| `communication.control.reference` | string | `""` | | |
| `communication.control.ema` | number | `0.9` | | |
| `communication.control.max_rounds` | integer | `1000` | | |
| `trace.path` | string | `"<name>.h5"` | | |
"""
SCHEMA = Schema.from_table(TABLE)
BASE = {"workers": 16, "communication": {"mode": "controlled"}}


def run_sweep(grid_axes, base=None, schema=SCHEMA, name="t", sets=()):
    sweep = {"name": name, "grid": grid_axes if isinstance(grid_axes, list) else [grid_axes],
             "slurm": dict(grid.SLURM_DEFAULTS)}
    return grid.expand(sweep, copy.deepcopy(BASE if base is None else base), schema, sets)


def names(runs):
    return [r.name for r in runs]


class Naming(unittest.TestCase):
    def test_paper_style_names_and_order(self):
        runs = run_sweep({"topology.kind": ["ring"], "workers": [32, 64], "communication.dec_phase": [1, 2],
                          "communication.control.factor": [1, 0.25], "seed": [1, 2]})
        # topology is single-valued: not in the name; independent (factor 1) runs come first
        self.assertEqual(names(runs)[:4], ["n32-dec1-f1-s1", "n32-dec1-f1-s2", "n32-dec2-f1-s1", "n32-dec2-f1-s2"])
        self.assertIn("n64-dec2-f0.25-s2", names(runs))
        self.assertEqual([r.index for r in runs], list(range(16)))
        self.assertTrue(all(r.reference is None for r in runs[:8]))
        self.assertTrue(all(r.reference is not None for r in runs[8:]))

    def test_example_name_from_the_issue(self):
        runs = run_sweep({"topology.kind": ["ring", "complete"], "workers": [32, 64], "communication.dec_phase": [1, 2],
                          "communication.control.factor": [0.25], "seed": [2, 3]})
        self.assertIn("ring-n32-dec1-f0.25-s2", names(runs))
        self.assertIn("ring-n32-dec1-f1-s2", names(runs))  # its added reference
        self.assertEqual(len(runs), 32)

    def test_short_names_and_fallback(self):
        runs = run_sweep({"communication.mode": ["allreduce", "local"], "communication.local_steps": [4],
                          "model.hidden": [[64, 64]], "schedule.decay_factor": [0.1, 0.5]},
                         base={"model": {"hidden": [32]}, "communication": {"local_steps": 2}})
        self.assertEqual(names(runs), ["ar-decayfactor0.1", "ar-decayfactor0.5", "local-decayfactor0.1",
                                       "local-decayfactor0.5"])
        runs = run_sweep({"model.hidden": [[64, 64], [128]], "communication.phases": [["controlled", "gossip", "gossip"]],
                          "communication.control.factor": [0.5]})
        self.assertEqual(names(runs)[0], "f1-h64x64")
        self.assertIn("f0.5-h128", names(runs))

    def test_keys_set_by_some_runs_only(self):
        # dec_phase and metric take one value where set: not needed to tell runs apart
        runs = run_sweep([{"communication.mode": ["allreduce"], "seed": [1, 2]},
                          {"communication.dec_phase": [1], "communication.control.metric": ["exact"],
                           "communication.control.factor": [0.5], "seed": [1, 2]}])
        self.assertEqual(names(runs), ["ar-s1", "ar-s2", "ctrl-f1-s1", "ctrl-f1-s2", "ctrl-f0.5-s1", "ctrl-f0.5-s2"])
        # ... unless they are: then keys some runs do not set join the names
        runs = run_sweep([{"workers": [16], "communication.local_steps": [4]}, {"workers": [16], "seed": [1, 2]}])
        self.assertEqual(names(runs), ["H4", "s1", "s2"])
        runs = run_sweep([{"communication.local_steps": [4]}, {"seed": [2]}], name="x")
        self.assertEqual(names(runs), ["H4", "s2"])

    def test_single_run_takes_the_sweep_name(self):
        self.assertEqual(names(run_sweep({"seed": [3]}, name="one")), ["one"])

    def test_deterministic(self):
        axes = {"workers": [16, 32], "communication.control.factor": [0.5, 0.25], "seed": [1, 2, 3]}
        a = [(r.name, json.dumps(r.spec, sort_keys=True)) for r in run_sweep(axes)]
        b = [(r.name, json.dumps(r.spec, sort_keys=True)) for r in run_sweep(dict(axes))]
        self.assertEqual(a, b)


class References(unittest.TestCase):
    def test_links_to_existing_factor_one_run(self):
        runs = run_sweep({"communication.dec_phase": [1, 2], "communication.control.factor": [1, 0.5, 0.25]})
        self.assertEqual(len(runs), 6)
        self.assertFalse(any(r.auto for r in runs))
        by = {r.name: r for r in runs}
        for r in runs:
            f = get_path(r.spec, "communication.control.factor")
            dec = get_path(r.spec, "communication.dec_phase")
            if f == 1:
                self.assertIsNone(r.reference)
                self.assertIsNone(get_path(r.spec, "communication.control.reference"))
            else:
                self.assertEqual(r.reference.name, f"dec{dec}-f1")
                self.assertEqual(get_path(r.spec, "communication.control.reference"), f"traces/dec{dec}-f1.h5")
                self.assertIs(by[r.reference.name], r.reference)
        for r in runs:
            self.assertEqual(r.spec["name"], r.name)
            self.assertEqual(r.spec["trace"]["path"], f"traces/{r.name}.h5")

    def test_adds_missing_references_once(self):
        runs = run_sweep({"workers": [16, 32], "communication.control.factor": [0.5, 0.25], "seed": [1, 2]})
        auto = [r for r in runs if r.auto]
        self.assertEqual(len(runs), 8 + 4)
        self.assertEqual(sorted(names(auto)), ["n16-f1-s1", "n16-f1-s2", "n32-f1-s1", "n32-f1-s2"])
        for r in runs:
            if not r.auto:
                self.assertEqual(r.reference.spec["workers"], r.spec["workers"])
                self.assertEqual(r.reference.spec["seed"], r.spec["seed"])
                self.assertEqual(get_path(r.reference.spec, "communication.control.factor"), 1)

    def test_reference_matches_through_defaults(self):
        # the factor-1 run spells out default values the controlled runs leave implicit
        runs = run_sweep([{"communication.control.factor": [1], "communication.control.metric": ["exact"],
                           "communication.control.target": ["constant"]},
                          {"communication.control.factor": [0.5]}])
        self.assertEqual(len(runs), 2)
        self.assertIs(runs[1].reference, runs[0])

    def test_without_schema_uses_paper_defaults(self):
        runs = run_sweep({"communication.control.factor": [0.5]}, schema=None)
        self.assertEqual(len(runs), 2)
        self.assertTrue(runs[0].auto)

    def test_no_reference_needed(self):
        cases = [
            {"communication.control.factor": [0.5], "communication.control.target": ["adaptive"]},
            {"communication.control.factor": [0.5], "communication.control.value": [0.02]},
            {"communication.control.factor": [1]},
            {"communication.control.factor": [0.5], "communication.control.reference": ["/data/ref.h5"]},
            {"communication.control.factor": [0.5], "communication.mode": ["gossip", "allreduce", "local"]},
            {"communication.control.factor": [0.5], "communication.phases": [["gossip", "allreduce", "gossip"]]},
        ]
        for axes in cases:
            runs = run_sweep(axes)
            self.assertTrue(all(r.reference is None and not r.auto for r in runs), axes)

    def test_phases_policy_list_needs_reference(self):
        runs = run_sweep({"communication.phases": [["controlled", "gossip", "gossip"]],
                          "communication.control.factor": [0.25]}, base={"workers": 16})
        self.assertEqual(len(runs), 2)
        self.assertEqual(runs[1].reference, runs[0])
        self.assertEqual(get_path(runs[0].spec, "communication.phases"), ["controlled", "gossip", "gossip"])

    def test_object_path_axis_merges(self):
        runs = run_sweep({"communication.control": [{"factor": 0.5, "metric": "estimate"}, {"factor": 0.25}],
                          "communication.control.max_rounds": [50]},
                         base={"communication": {"mode": "controlled", "control": {"ema": 0.5}}})
        mains = [r for r in runs if not r.auto]
        self.assertEqual(mains[0].spec["communication"]["control"],
                         {"factor": 0.5, "metric": "estimate", "ema": 0.5, "max_rounds": 50,
                          "reference": f"traces/{mains[0].reference.name}.h5"})
        self.assertEqual(len([r for r in runs if r.auto]), 2)  # estimate and exact references


class Errors(unittest.TestCase):
    def expect(self, axes, text, base=None):
        with self.assertRaises(SweepError) as cm:
            run_sweep(axes, base=base)
        self.assertIn(text, str(cm.exception))

    def test_errors(self):
        self.expect({"communication.control.facter": [0.5]}, "communication.control.facter: unknown key path")
        self.expect({"workers": []}, "workers: empty axis")
        self.expect({"workers": 16}, "an axis is a list")
        self.expect({"name": ["a", "b"]}, "set by ccdl-sweep")
        self.expect({"communication.control": [0.5]}, "an object path takes objects")
        self.expect({"communication.control": [{"facter": 1}]}, "unknown key path")
        self.expect({"seed": [1, 1.0]}, "is the same run as")
        self.expect([{"seed": [1, 2]}, {"seed": [2, 3]}], "is the same run as")
        self.expect({"data.path": ["a/b", "a_b"]}, "clashes")
        self.expect({"seed": [1]}, "base: model.width: unknown key path", base={"model": {"width": 16}})

    def test_sets(self):
        runs = run_sweep({"seed": [1, 2]}, sets=[("schedule.epochs", 3)])
        self.assertTrue(all(r.spec["schedule"]["epochs"] == 3 for r in runs))
        with self.assertRaises(SweepError):
            run_sweep({"seed": [1]}, sets=[("schedule.epoch", 3)])


class Loading(unittest.TestCase):
    def load(self, text, base=None):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "s.json")
            with open(p, "w") as f:
                f.write(text)
            if base is not None:
                with open(os.path.join(d, "base.json"), "w") as f:
                    f.write(base)
            return grid.load(p)

    def expect(self, text, msg, base=None):
        with self.assertRaises(SweepError) as cm:
            self.load(text, base)
        self.assertIn(msg, cm.exception.line())
        self.assertTrue(cm.exception.line().startswith("/"), cm.exception.line())

    def test_load(self):
        sweep, base = self.load('{"base": "base.json", "grid": {"seed": [1]}}', '{"workers": 4}')
        self.assertEqual(base, {"workers": 4})
        self.assertEqual(sweep["name"], "s")
        self.assertEqual(sweep["slurm"]["ranks"], 1)
        self.expect('{"base": {}, "grid": {"seed": [1]}, "grid": {}}', "duplicate key")
        self.expect('{"base": {}, "grid": {"seed": [1]}', "invalid JSON")
        self.expect('', "empty file")
        self.expect('{"base": {}, "grids": {}}', "unknown key 'grids'")
        self.expect('{"base": "nope.json", "grid": {}}', "base:")
        self.expect('{"base": {}, "grid": {}, "slurm": {"ranks": 0}}', "slurm.ranks")
        self.expect('{"base": {}, "grid": {}, "slurm": {"nodes": 2}}', "slurm.nodes: unknown key")
        self.expect('{"base": {}, "grid": []}', "grid:")


if __name__ == "__main__":
    unittest.main(verbosity=1)
