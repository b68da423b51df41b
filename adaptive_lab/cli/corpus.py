"""``adaptive-lab corpus DIR --files N``: write a deterministic test corpus."""

from __future__ import annotations

import argparse
import json
import time

NAME = "corpus"
HELP = "write a deterministic corpus of files (size mix A or B, optional EICAR files)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="directory to create (empty or missing)")
    parser.add_argument("--files", type=int, default=10_000,
                        help="regular files to write, manifest included (default 10000)")
    parser.add_argument("--dirs", type=int, default=100,
                        help="leaf directories, ten per parent (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--mix", choices=("A", "B"), default="A",
                        help="A: log-normal sizes, median 8 KiB, 1%% at 1 MiB; "
                             "B: all 4 KiB (default A)")
    parser.add_argument("--eicar", type=int, default=0, metavar="K",
                        help="plant K files holding the EICAR test string (default 0)")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.scanner.corpus import make_corpus

    t0 = time.perf_counter()
    info = make_corpus(args.dir, files=args.files, dirs=args.dirs, seed=args.seed,
                       size_mix=args.mix, eicar=args.eicar)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({**info.to_dict(), "seconds": seconds}))
    else:
        print(f"{info.root}: {info.files} files, {info.bytes / 2**20:.1f} MiB, mix "
              f"{info.size_mix}, seed {info.seed}, {len(info.eicar)} EICAR files "
              f"({seconds:.1f} s)")
    return 0
