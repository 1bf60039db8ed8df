#!/usr/bin/env python3
"""Write Fashion-MNIST IDX files as a CIFAR-10 binary dataset (cifar-10-batches-bin/).

Used by scripts/gpu-check.sh to make CIFAR-format data on a machine that has no CIFAR: real
images (the bundled Fashion-MNIST sample), real CIFAR bytes. Each 28x28 grey image is padded
to 32x32 (2 black pixels each side, as the datasets crate pads Fashion-MNIST) and repeated in
the R, G and B planes; a record is 1 label byte and 3072 pixel bytes, as in CIFAR-10. The
training images are split over data_batch_1..5.bin in order, the test images go to
test_batch.bin. Standard library only (the GPU machine's Python may lack numpy).

    python3 scripts/fmnist-to-cifar.py data/sample/fashion-mnist OUT_DIR [--limit-train N]
"""

import argparse
import gzip
import os
import struct
import sys


def read_idx(path, magic, dims):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    header = 4 + 4 * dims
    if len(data) < header:
        sys.exit(f"{path}: {len(data)} bytes, shorter than an IDX header")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        sys.exit(f"{path}: IDX magic {got:#x}, expected {magic:#x}")
    shape = struct.unpack(">" + "I" * dims, data[4:header])
    size = 1
    for d in shape:
        size *= d
    if len(data) != header + size:
        sys.exit(f"{path}: {len(data)} bytes, the header {shape} says {header + size}")
    return shape, data[header:]


def find(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{folder}: no {stem}[.gz]")


def records(images, labels, limit):
    (n, rows, cols), pixels = images
    (m,), label_bytes = labels
    if (rows, cols) != (28, 28) or n != m:
        sys.exit(f"expected 28x28 images with one label each, got {n}x{rows}x{cols} and {m} labels")
    n = min(n, limit) if limit else n
    blank = bytes(32 * 2)
    side = bytes(2)
    for i in range(n):
        img = pixels[i * 784 : (i + 1) * 784]
        plane = bytearray(blank)
        for r in range(28):
            plane += side + img[r * 28 : (r + 1) * 28] + side
        plane += blank
        yield bytes([label_bytes[i]]) + bytes(plane) * 3


def write(path, recs):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for rec in recs:
            f.write(rec)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fmnist_dir")
    p.add_argument("out_dir")
    p.add_argument("--limit-train", type=int, default=0, help="only the first N training images")
    a = p.parse_args()
    d = a.fmnist_dir
    train = records(
        read_idx(find(d, "train-images-idx3-ubyte"), 0x803, 3),
        read_idx(find(d, "train-labels-idx1-ubyte"), 0x801, 1),
        a.limit_train,
    )
    test = records(
        read_idx(find(d, "t10k-images-idx3-ubyte"), 0x803, 3),
        read_idx(find(d, "t10k-labels-idx1-ubyte"), 0x801, 1),
        0,
    )
    out = os.path.join(a.out_dir, "cifar-10-batches-bin")
    os.makedirs(out, exist_ok=True)
    train = list(train)
    per = -(-len(train) // 5)
    for b in range(5):
        write(os.path.join(out, f"data_batch_{b + 1}.bin"), train[b * per : (b + 1) * per])
    test = list(test)
    write(os.path.join(out, "test_batch.bin"), test)
    print(f"{out}: {len(train)} training and {len(test)} test images in CIFAR-10 format")


if __name__ == "__main__":
    main()
