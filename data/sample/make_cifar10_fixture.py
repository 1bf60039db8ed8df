"""Writes data/sample/cifar10/test_batch.bin: the first 20 CIFAR-10 test images in the CIFAR
binary format (1 label byte + 1024 red + 1024 green + 1024 blue bytes per record).

The images come from PyPI's foolbox 3.3.4 (MIT), which ships them losslessly as
foolbox/data/cifar10_NN_L.png (NN = index, L = label). Standard library only:

    python3 -m pip download foolbox==3.3.4 --no-deps -d /tmp/fb
    python3 data/sample/make_cifar10_fixture.py /tmp/fb/foolbox-3.3.4-py3-none-any.whl
"""
import re
import struct
import sys
import zipfile
import zlib
from pathlib import Path


def decode_png(data: bytes):
    """8-bit RGB or RGBA, non-interlaced PNG -> (width, height, rows of RGB bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and color in (2, 6), ihdr
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        filt, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line[i] for i in range(stride) if i % bpp < 3))
        prev = line
    return width, height, rows


def main():
    wheel = sys.argv[1]
    out = Path(__file__).resolve().parent / "cifar10" / "test_batch.bin"
    pattern = re.compile(r"foolbox/data/cifar10_(\d\d)_(\d)\.png$")
    found = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            m = pattern.search(name)
            if m:
                found[int(m.group(1))] = (int(m.group(2)), z.read(name))
    assert sorted(found) == list(range(20)), sorted(found)
    records = bytearray()
    for i in range(20):
        label, png = found[i]
        w, h, rows = decode_png(png)
        assert (w, h) == (32, 32)
        pixels = b"".join(rows)
        records.append(label)
        for ch in range(3):
            records += bytes(pixels[p * 3 + ch] for p in range(1024))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(records)
    print(f"wrote {out} ({len(records)} bytes, labels {[found[i][0] for i in range(20)]})")


if __name__ == "__main__":
    main()
