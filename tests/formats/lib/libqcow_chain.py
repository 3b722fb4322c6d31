#!/usr/bin/env python3
"""libqcow_chain.py TOP BASE WANT.raw: reads TOP (qcow v1) with BASE
attached as its parent through libqcow (ctypes), in 4 KiB to 1 MiB
reads, against WANT.raw (qemu-img's conversion). Prints the failed and
wrong reads; exits 0 when libqcow misread something (the known fault
behind scuse refusing qcow v1 chains), 1 when it read everything right
(then the refusal is out of date), 2 when it could not run the reads at
all (no libqcow, an image it cannot open): no verdict."""
import ctypes
import sys


def main():
    top, base, want_path = sys.argv[1:4]
    try:
        lib = ctypes.CDLL("libqcow.so.1")
    except OSError as e:
        print(f"no libqcow: {e}")
        sys.exit(2)
    lib.libqcow_file_read_buffer_at_offset.restype = ctypes.c_ssize_t
    lib.libqcow_file_read_buffer_at_offset.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                      ctypes.c_size_t, ctypes.c_int64,
                                                      ctypes.c_void_p]
    err = ctypes.c_void_p()

    def open_one(p):
        h = ctypes.c_void_p()
        if lib.libqcow_file_initialize(ctypes.byref(h), ctypes.byref(err)) != 1 or \
           lib.libqcow_file_open(h, p.encode(), 1, ctypes.byref(err)) != 1:
            print(f"libqcow cannot open {p}")
            sys.exit(2)
        return h

    t, b = open_one(top), open_one(base)
    if lib.libqcow_file_set_parent_file(t, b, ctypes.byref(err)) != 1:
        print("libqcow refuses the parent")
        sys.exit(2)
    want = open(want_path, "rb").read()
    bad_total = 0
    for chunk in (4096, 65536, 1 << 20):
        buf = ctypes.create_string_buffer(chunk)
        failed = wrong = 0
        for off in range(0, len(want), chunk):
            n = min(chunk, len(want) - off)
            got = lib.libqcow_file_read_buffer_at_offset(t, buf, n, off, ctypes.byref(err))
            if got != n:
                failed += 1
            elif buf.raw[:n] != want[off:off + n]:
                wrong += 1
        print(f"{chunk}-byte reads: {failed} failed, {wrong} wrong of {(len(want) + chunk - 1) // chunk}")
        bad_total += failed + wrong
    sys.exit(0 if bad_total else 1)


if __name__ == "__main__":
    main()
