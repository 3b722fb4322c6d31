#!/usr/bin/env python3
"""seeds_vmdk.py CORPUS_DIR: small VMDK seeds for fuzz_vmdk (each under
64 KiB): sparse images with zeroed grains and grain-directory holes, a
VMware-layout stream with markers and footer, one without its footer's
GD, descriptor texts mixing extent kinds (in the target every extent file
is the image itself), a split-disk extent with no descriptor."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats", "lib"))
import vmdkgen  # noqa: E402


def main():
    out = sys.argv[1]
    tmp = os.path.join(out, ".tmp")
    os.makedirs(tmp, exist_ok=True)

    def keep(name, data):
        if len(data) <= 65536:
            open(os.path.join(out, "seed-" + name), "wb").write(data)

    for name, argv in [
        ("sparse-zeroed", ["sparse", "--size", "24576", "--seed", "1", "--grain", "8", "--gtes", "4",
                           "--zeroed", "--gd-holes", "--stale"]),
        ("sparse-v3", ["sparse", "--size", "16384", "--seed", "2", "--grain", "4", "--gtes", "8",
                       "--version", "3", "--no-rgd"]),
        ("extent", ["extent", "--size", "8192", "--seed", "3", "--grain", "2", "--gtes", "4"]),
        ("stream", ["stream", "--size", "20000", "--seed", "4", "--grain", "8", "--gtes", "4"]),
        ("stream-gd-at-end", ["stream", "--size", "9000", "--seed", "5", "--grain", "16", "--gtes", "2",
                              "--no-footer-gd"]),
    ]:
        img, raw = os.path.join(tmp, name), os.path.join(tmp, name + ".raw")
        kind, rest = argv[0], argv[1:]
        {"sparse": vmdkgen.sparse, "stream": vmdkgen.stream,
         "extent": lambda a: vmdkgen.sparse(a, embedded=False)}[kind]([img, raw] + rest)
        keep(name, open(img, "rb").read())
    keep("desc-mixed", b"# Disk DescriptorFile\nversion=1\nCID=1234abcd\nparentCID=ffffffff\n"
         b"createType=\"monolithicFlat\"\nRW 16 FLAT \"a.bin\" 2\nRDONLY 8 FLAT \"b.bin\"\n"
         b"RW 4 ZERO\nNOACCESS 4 ZERO\nRW 8 VMFS \"c\" 0\nRW 32 SPARSE \"s.vmdk\"\n"
         b"ddb.adapterType = \"ide\"\n")
    keep("desc-child", b"# Disk DescriptorFile\r\nversion=1\r\nCID=fffffffe\r\nparentCID=0badcafe\r\n"
         b"createType=\"monolithicFlat\"\r\nparentFileNameHint=\"p.vmdk\"\r\nRW 1 FLAT \"x\" 0\r\n")
    keep("desc-bad", b"# Disk DescriptorFile\nCID=1\ncreateType=\"x\"\nRW 99999999999999999999 ZERO\n")
    keep("cowd", b"COWD" + bytes(508))
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
