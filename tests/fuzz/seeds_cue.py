#!/usr/bin/env python3
"""Seeds for fuzz_cue: CUE sheets of the shapes scuse reads (several files,
every mode, INDEX 00 pregaps, PREGAP/POSTGAP, FLAGS, REM and the ignored
keywords) and a few it refuses. Usage: seeds_cue.py DIR"""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
seeds = {
    "iso": 'FILE "disc.bin" BINARY\n  TRACK 01 MODE1/2048\n    INDEX 01 00:00:00\n',
    "mixed": ('REM GENRE test\nCATALOG 0000000000000\nPERFORMER "x"\nTITLE "y"\n'
              'FILE "data.bin" BINARY\r\n  TRACK 01 MODE1/2352\r\n    INDEX 01 00:00:00\r\n'
              '  TRACK 02 AUDIO\r\n    FLAGS DCP PRE\r\n    ISRC ABCDE1234567\r\n'
              '    INDEX 00 00:10:00\r\n    INDEX 01 00:12:00\r\n    INDEX 02 00:13:00\r\n'
              'FILE audio.bin BINARY\r\n  TRACK 03 AUDIO\r\n    PREGAP 00:02:00\r\n'
              '    INDEX 01 00:00:00\r\n    POSTGAP 00:01:00\r\n'),
    "xa": ('FILE "a.bin" BINARY\n  TRACK 01 MODE2/2352\n    INDEX 01 00:00:00\n'
           '  TRACK 02 MODE2/2336\n    INDEX 01 01:00:00\n'),
    "bad_mode": 'FILE "a.bin" BINARY\n  TRACK 01 MODE9/2048\n    INDEX 01 00:00:00\n',
    "overlap": ('FILE "a.bin" BINARY\n  TRACK 01 AUDIO\n    INDEX 01 00:05:00\n'
                '  TRACK 02 AUDIO\n    INDEX 01 00:04:00\n'),
    "sessions": ('REM SESSION 01\nFILE "a.bin" BINARY\n  TRACK 01 AUDIO\n'
                 '    INDEX 01 00:00:00\nREM SESSION 02\n  TRACK 02 MODE1/2352\n'
                 '    INDEX 01 00:10:00\n'),
}
for name, text in seeds.items():
    with open(os.path.join(out, name + ".cue"), "w", newline="") as f:
        f.write(text)
