#!/usr/bin/env python3
"""seeds_ctl.py DIR: seed inputs for fuzz_ctl: request lines of every
command with sound arguments, with each kind of wrong argument, ids of
every JSON type, and some malformed lines; a few lines per seed, as a
client's stream would hold them."""
import json
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def req(cmd, args=None, rid=None):
    r = {"execute": cmd}
    if args is not None:
        r["arguments"] = args
    if rid is not None:
        r["id"] = rid
    return json.dumps(r)


seeds = {
    "query": [req("qmp_capabilities"), req("query-luns", rid=1), req("query-commands")],
    "add": [req("lun-add", {"lun": 1, "file": "/a.qcow2", "format": "qcow2", "device": "disk",
                            "readonly": False}, rid="a"),
            req("lun-add", {"lun": 16383, "file": "b.iso", "device": "cdrom", "readonly": True})],
    "remove": [req("lun-remove", {"lun": 0}, rid=[1, {"x": None}]),
               req("lun-remove", {"lun": -1}), req("lun-remove", {"lun": 16384})],
    "resize": [req("lun-resize", {"lun": 3}, rid=2.5), req("lun-resize", {"lun": "3"})],
    "medium": [req("medium-eject", {"lun": 2, "force": True}),
               req("medium-eject", {"lun": 2}),
               req("medium-insert", {"lun": 2, "file": "c.iso", "format": "raw"}, rid=True)],
    "quit": [req("quit", rid=None), req("quit", {"now": 1})],
    "wrong": [req("lun-add", {"lun": 1}), req("lun-add", {"lun": 1, "file": ""}),
              req("lun-add", {"lun": 1, "file": "x", "device": "tape"}),
              req("nope"), json.dumps({"execute": 7}), json.dumps({"arguments": {}}),
              json.dumps({"execute": "quit", "extra": 1}), "[1, 2]", "\"quit\"", "42"],
    "broken": ['{"execute": "quit"', '{"execute": "quit", "execute": "quit"}',
               '{"execute": "qu\\u0000it"}', "\r", "", "   ", '{"execute": "quit"}\r'],
}
for name, lines in seeds.items():
    with open(os.path.join(out, "seed-" + name), "w") as f:
        f.write("\n".join(lines) + "\n")
