"""Strict JSON, dotted key paths over nested objects, and the spec schema from `ccdl spec-keys`."""

import json
import math
import os
import re
import stat

from . import SweepError


# ---------------------------------------------------------------- strict JSON


MAX_DEPTH = 64           # specs, sweep files and manifests nest a handful of levels
MAX_BYTES = 256 << 20    # no sweep file, spec or manifest comes near this


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {brief(text)} is out of range")
    return value


def depth(obj):
    """How deeply obj nests (a scalar: 0, [] or {}: 1), without recursion."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((v, level) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def brief(value, limit=60):
    """repr of a value from a file, cut to one short line for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def loads_strict(text):
    """json.loads that rejects duplicate keys, NaN/Infinity and numbers that overflow a double
    (like ccdl's parser), and nesting deeper than MAX_DEPTH (ValueError for each)."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                           parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def read_text(path):
    """The UTF-8 text of a regular file; SweepError naming the file otherwise. Never blocks:
    a FIFO, a device or a directory is refused before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte or a lone surrogate in the path
        raise SweepError(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SweepError(f"not a regular file ({file_kind(st.st_mode)})", path)
        if st.st_size > MAX_BYTES:
            raise SweepError(f"{st.st_size} bytes: too large for a JSON file here", path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise SweepError(f"cannot read: {e.strerror}", path) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SweepError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})", path) from None


def file_kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def load_file(path):
    """Parse a JSON file strictly; SweepError naming the file on any problem."""
    text = read_text(path)
    if not text.strip():
        raise SweepError("empty file (expected a JSON object)", path)
    try:
        return loads_strict(text)
    except json.JSONDecodeError as e:
        raise SweepError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}", path) from None
    except ValueError as e:
        raise SweepError(f"invalid JSON: {e}", path) from None


def dumps(obj):
    """The form spec files are written in: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------- key paths


def flatten(obj, prefix=""):
    """{"a": {"b": 1}, "c": [1]} -> {"a.b": 1, "c": [1]}: every non-object value by its path."""
    out = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def get_path(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def has_path(obj, path):
    marker = object()
    return get_path(obj, path, marker) is not marker


def set_path(obj, path, value):
    """Set obj[a][b][c] = value for path "a.b.c", creating objects on the way."""
    parts = path.split(".")
    for part in parts[:-1]:
        child = obj.get(part)
        if child is None:
            child = obj[part] = {}
        elif not isinstance(child, dict):
            raise SweepError(f"{path}: {part} is not an object in the base spec")
        obj = child
    obj[parts[-1]] = value


def del_path(obj, path):
    parts = path.split(".")
    for part in parts[:-1]:
        obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return
    if isinstance(obj, dict):
        obj.pop(parts[-1], None)


def merge(dst, src):
    """Deep-merge object src into dst (objects merge, everything else replaces)."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        else:
            dst[key] = json.loads(json.dumps(value))


def normal(value):
    """A comparable form of a JSON value: numbers as floats (1 == 1.0), bools kept apart."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any double: compared as itself
            return value
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    return value


def same(a, b):
    return normal(a) == normal(b)


def canonical(obj):
    """A string that is equal for equal specs (key order and 1 vs 1.0 do not matter)."""
    return json.dumps(normal(obj), sort_keys=True, separators=(",", ":"))


def format_value(value):
    """Short text of a value for run names: 0.25 -> "0.25", 1.0 -> "1", [256, 256] -> "256x256"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return "x".join(format_value(v) for v in value) or "none"
    if value is None:
        return "null"
    return re.sub(r"[^A-Za-z0-9._+]", "_", str(value))


# ---------------------------------------------------------------- the schema


class Schema:
    """The spec keys ccdl accepts, with their types and defaults, from `ccdl spec-keys`.

    `ccdl spec-keys` prints a Markdown table `| `key` | type | `default` | allowed | meaning |`.
    """

    def __init__(self, keys):
        self.keys = keys  # path -> {"type": str, "default": value}
        self.objects = set()
        for path in keys:
            parts = path.split(".")
            for i in range(1, len(parts)):
                self.objects.add(".".join(parts[:i]))

    @classmethod
    def from_table(cls, text):
        keys = {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or not cells[0].startswith("`"):
                continue
            path = cells[0].strip("`")
            raw = cells[2].strip("`")
            try:
                default = json.loads(raw) if raw else None
            except ValueError:
                default = raw
            keys[path] = {"type": cells[1], "default": default}
        if not keys:
            raise SweepError("`ccdl spec-keys` printed no key table")
        return cls(keys)

    def is_leaf(self, path):
        return path in self.keys

    def is_object(self, path):
        return path in self.objects

    def default(self, path, fallback=None):
        entry = self.keys.get(path)
        return entry["default"] if entry is not None else fallback

    def check_path(self, path):
        """'' if path is a key or an object path, else why not."""
        if self.is_leaf(path) or self.is_object(path):
            return ""
        close = sorted(k for k in self.keys if k.split(".")[-1] == path.split(".")[-1])
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"{path}: unknown key path (not in `ccdl spec-keys`){hint}"

    def check_spec(self, spec, where):
        """Every key path in spec must be known (leaf, or object holding an object)."""
        for path, value in flatten(spec).items():
            if self.is_leaf(path):
                continue
            if self.is_object(path) and value == {}:
                continue
            raise SweepError(f"{where}: {self.check_path(path) or path + ': not a key'}")
