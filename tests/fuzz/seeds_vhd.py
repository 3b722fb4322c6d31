#!/usr/bin/env python3
"""Seeds for fuzz_vhd: small VHDs (under 64 KiB) written by the project's
spec writer (tests/formats/lib/vhd.py): fixed, dynamic with full and partly
set bitmaps, 512-byte and 4 KiB blocks, a differencing child with every
kind of locator, an old 511-byte fixed footer.

usage: seeds_vhd.py CORPUS_DIR
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats", "lib"))
import vhd  # noqa: E402


def main(corpus):
    os.makedirs(corpus, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        def path(n):
            return os.path.join(d, n)

        vhd.create(path("fixed.vhd"), 16384, "fixed")
        v = vhd.Vhd(path("fixed.vhd"), writable=True)
        vhd.write(v, 1024, b"\x5a" * 2048)
        v.fh.close()
        raw = open(path("fixed.vhd"), "rb").read()
        open(path("fixed511.vhd"), "wb").write(raw[:-1])

        vhd.create(path("dyn512.vhd"), 8192, "dynamic", block_size=512)
        v = vhd.Vhd(path("dyn512.vhd"), writable=True)
        vhd.write(v, 0, b"\x11" * 512)
        vhd.write(v, 3072, b"\x12" * 1024)
        v.fh.close()

        vhd.create(path("dyn4k.vhd"), 32768, "dynamic", block_size=4096)
        v = vhd.Vhd(path("dyn4k.vhd"), writable=True)
        vhd.write(v, 512, b"\x21" * 1024)
        vhd.write(v, 8192, b"\x22" * 4096)
        vhd.write(v, 20480, b"\x23" * 512, set_bits=False)
        v.fh.close()

        vhd.create(path("parent.vhd"), 16384, "dynamic", block_size=4096)
        vhd.create(path("child.vhd"), None, "diff", parent=path("parent.vhd"), block_size=4096,
                   w2ku="C:\\vms\\parent.vhd")
        v = vhd.Vhd(path("child.vhd"), writable=True)
        vhd.write(v, 4096, b"\x31" * 1536)
        v.fh.close()

        for n in ("fixed.vhd", "fixed511.vhd", "dyn512.vhd", "dyn4k.vhd", "child.vhd"):
            data = open(path(n), "rb").read()
            if len(data) <= 65536:
                open(os.path.join(corpus, "seed-" + n), "wb").write(data)
            else:
                print(f"seeds_vhd.py: {n} is {len(data)} bytes, skipped", file=sys.stderr)
    open(os.path.join(corpus, "seed-cookie-only"), "wb").write(b"conectix")


if __name__ == "__main__":
    main(sys.argv[1])
