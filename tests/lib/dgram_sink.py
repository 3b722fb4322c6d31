#!/usr/bin/env python3
"""Stands in for /dev/log or journald's socket: binds a datagram socket at
argv[1] and appends each datagram to argv[2] as one line of JSON: the
syslog text as received, or (argv[3] == 'journal') the fields the native
journal protocol carries, parsed (FIELD=value lines; a field name
followed by a newline, a 64-bit little-endian length and that many
bytes). Runs until killed; writes argv[1] + '.ready' once bound."""
import json, os, socket, struct, sys

path, out, kind = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "syslog")


def journal_fields(b):
    fields, i = {}, 0
    while i < len(b):
        nl = b.index(b"\n", i)
        line = b[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            n = struct.unpack("<Q", b[nl + 1:nl + 9])[0]
            fields[line.decode()] = b[nl + 9:nl + 9 + n].decode()
            if b[nl + 9 + n:nl + 10 + n] != b"\n":
                raise ValueError("binary field not ended by a newline")
            i = nl + 10 + n
    return fields


s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.path.exists(path):
    os.unlink(path)
s.bind(path)
os.chmod(path, 0o666)
open(path + ".ready", "w").close()
with open(out, "a") as f:
    while True:
        b = s.recv(65536)
        try:
            rec = journal_fields(b) if kind == "journal" else b.decode()
        except Exception as e:  # a malformed datagram is recorded as such
            rec = {"MALFORMED": repr(e), "RAW": b.hex()}
        f.write(json.dumps(rec) + "\n")
        f.flush()
