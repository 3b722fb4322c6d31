#!/usr/bin/python3
"""libvmdk_read.py IMAGE OUT.raw [PARENT...]: the disk as libvmdk (pyvmdk,
Debian's python3-libvmdk) reads it, written to OUT.raw; the second
opinion for VMDK reads (shared/docs/formats.md section 5: trusted for
sparse, flat, split, stream and child+parent, not for zeroed grains).
PARENT...: the chain below IMAGE, nearest first (libvmdk does not follow
parentFileNameHint itself). Run by /usr/bin/python3, which has pyvmdk."""
import sys

import pyvmdk


def open_chain(paths):
    handles = []
    for p in paths:
        h = pyvmdk.handle()
        h.open(p)
        h.open_extent_data_files()
        handles.append(h)
    for child, parent in zip(handles, handles[1:]):
        child.set_parent(parent)
    return handles


def main():
    img, out = sys.argv[1], sys.argv[2]
    handles = open_chain([img] + sys.argv[3:])
    top = handles[0]
    size = top.get_media_size()
    with open(out, "wb") as f:
        off = 0
        while off < size:
            n = min(1 << 20, size - off)
            data = top.read_buffer_at_offset(n, off)
            if len(data) != n:
                sys.exit(f"libvmdk: short read at {off}: {len(data)} of {n}")
            f.write(data)
            off += n
    for h in handles:
        h.close()


if __name__ == "__main__":
    main()
