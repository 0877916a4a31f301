#!/usr/bin/python3
"""imagenet32_convert.py: the official downsampled-ImageNet 32x32 npz files -> ccdl's layout.

Usage: /usr/bin/python3 tools/imagenet32_convert.py SRC_DIR OUT_DIR

SRC_DIR holds (directly or in the official Imagenet32_train_npz/ and Imagenet32_val_npz/
subdirectories) train_data_batch_1.npz .. train_data_batch_10.npz and val_data.npz from
https://image-net.org/download-images (Chrabaszcz, Loshchilov, Hutter 2017), each with
'data' (N, 3072) uint8 in R, G, B planes of 32 x 32 and 'labels' 1..1000.

OUT_DIR gets train_1.bin .. train_P.bin (one per training batch found, in batch order) and
val.bin, in the layout docs/data.md describes and src/data/data.c reads:

    offset 0   8 bytes  magic b"CCDLI32\\0"
           8   u32 LE   format version (1)
          12   u32 LE   part: this file's number in its split, from 1
          16   u32 LE   parts: files in the split (P for train, 1 for val)
          20   u32 LE   records in this file
          24   u32 LE   classes (1000)
          28   u32 LE   reserved, 0
          32   records: u16 LE label 0..999 (the npz label minus 1), then 3072 pixel bytes
                        (R plane, G plane, B plane; rows of 32)

It prints the per-channel mean and standard deviation of the training pixels (on the [0, 1]
scale) so they can be compared with the constants data.c normalises with.
Only numpy is needed; one batch (about 400 MB) is in memory at a time.
"""
import glob
import os
import re
import struct
import sys

import numpy as np

MAGIC = b"CCDLI32\0"
VERSION = 1
CLASSES = 1000
PIXELS = 3072


def find(src, pattern):
    """Files matching pattern in src or its immediate subdirectories."""
    hits = glob.glob(os.path.join(src, pattern)) + glob.glob(os.path.join(src, "*", pattern))
    return sorted(set(hits))


def load(path):
    with np.load(path) as z:
        data = np.asarray(z["data"])
        labels = np.asarray(z["labels"]).reshape(-1).astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        sys.exit(f"{path}: 'data' must be (N, {PIXELS}) uint8, got {data.shape} {data.dtype}")
    if labels.shape[0] != data.shape[0]:
        sys.exit(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 1 or labels.max() > CLASSES):
        sys.exit(f"{path}: labels must be 1..{CLASSES}, got {labels.min()}..{labels.max()}")
    return data, labels


def write(path, part, parts, data, labels):
    n = data.shape[0]
    records = np.empty((n, 2 + PIXELS), dtype=np.uint8)
    records[:, 0:2] = (labels - 1).astype("<u2").view(np.uint8).reshape(n, 2)
    records[:, 2:] = data
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<6I", VERSION, part, parts, n, CLASSES, 0))
        f.write(records.tobytes())
    os.replace(tmp, path)  # a crash never leaves a half-written file under the final name


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    train = find(src, "train_data_batch_*.npz")
    train.sort(key=lambda p: int(re.search(r"train_data_batch_(\d+)", p).group(1)))
    val = find(src, "val_data.npz")
    if not train or len(val) != 1:
        sys.exit(f"{src}: need train_data_batch_*.npz and one val_data.npz")
    os.makedirs(out, exist_ok=True)
    total, s, ss = 0, np.zeros(3), np.zeros(3)
    for part, path in enumerate(train, start=1):
        data, labels = load(path)
        planes = data.reshape(-1, 3, 1024).astype(np.float64) / 255.0
        s += planes.sum(axis=(0, 2))
        ss += (planes * planes).sum(axis=(0, 2))
        total += data.shape[0]
        write(os.path.join(out, f"train_{part}.bin"), part, len(train), data, labels)
        print(f"{path}: {data.shape[0]} images -> train_{part}.bin")
    data, labels = load(val[0])
    write(os.path.join(out, "val.bin"), 1, 1, data, labels)
    print(f"{val[0]}: {data.shape[0]} images -> val.bin")
    mean = s / (total * 1024)
    std = np.sqrt(ss / (total * 1024) - mean * mean)
    print(f"train: {total} images; per-channel mean {np.round(mean, 4).tolist()}, "
          f"std {np.round(std, 4).tolist()}")


if __name__ == "__main__":
    main()
