#!/usr/bin/env python3
"""libqcow_read.py IMAGE OUT.raw: the disk as libqcow (libqcow.so.1,
through ctypes: Debian has no Python binding installed with it) reads it,
written to OUT.raw. The second opinion for qcow2 reads where
shared/docs/formats.md section 5 trusts libqcow: v2/v3, zlib,
refcount_bits=1, internal snapshots; not zero clusters, zstd, extended
L2, external data, LUKS or overlays."""
import ctypes
import sys


def main():
    img, out = sys.argv[1], sys.argv[2]
    lib = ctypes.CDLL("libqcow.so.1")
    lib.libqcow_file_read_buffer_at_offset.restype = ctypes.c_ssize_t
    lib.libqcow_file_read_buffer_at_offset.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                      ctypes.c_size_t, ctypes.c_int64,
                                                      ctypes.c_void_p]
    h, err = ctypes.c_void_p(), ctypes.c_void_p()
    if lib.libqcow_file_initialize(ctypes.byref(h), ctypes.byref(err)) != 1:
        raise SystemExit("libqcow: initialize failed")
    if lib.libqcow_file_open(h, img.encode(), 1, ctypes.byref(err)) != 1:
        raise SystemExit(f"libqcow: cannot open {img}")
    size = ctypes.c_uint64()
    if lib.libqcow_file_get_media_size(h, ctypes.byref(size), ctypes.byref(err)) != 1:
        raise SystemExit("libqcow: no media size")
    chunk = 1 << 20
    buf = ctypes.create_string_buffer(chunk)
    with open(out, "wb") as f:
        off = 0
        while off < size.value:
            n = min(chunk, size.value - off)
            got = lib.libqcow_file_read_buffer_at_offset(h, buf, n, off, ctypes.byref(err))
            if got != n:
                raise SystemExit(f"libqcow: read of {n} bytes at {off} returned {got}")
            f.write(buf.raw[:n])
            off += n


if __name__ == "__main__":
    main()
