"""``adaptive-lab cache stats|prune|clear PATH``: look after a scan's rescan cache.

``stats`` prints entries, directories, runs, racy and damaged entries, the file size and
the last runs' hit rates; ``prune`` drops entries not seen for ``--max-age`` runs and
evicts least-recently-used ones over ``--max-entries``, then compacts the file;
``clear`` removes every entry. A file that is not a cache exits 2, unchanged.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

NAME = "cache"
HELP = "show, prune or clear a rescan cache (made by scan --cache PATH)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("stats", "prune", "clear"),
                        help="stats: what is in it; prune: drop old entries; clear: empty it")
    parser.add_argument("path", metavar="PATH", help="the cache file")
    parser.add_argument("--max-age", type=int, default=None, metavar="RUNS",
                        help="prune: drop entries of directories not listed in the last "
                             "RUNS runs (default 20)")
    parser.add_argument("--max-entries", type=int, default=None, metavar="N",
                        help="prune: evict least-recently-used entries over N "
                             "(default 2000000)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _print_stats(info: dict[str, Any]) -> None:
    print(f"cache        {info['path']}  ({info['bytes'] / 2**20:.1f} MiB)")
    print(f"entries      {info['entries']} in {info['directories']} directories "
          f"({info['racy_entries']} racy, to re-hash; {info['damaged_entries']} damaged)")
    for c in info["configs"]:
        print(f"  digest {c['algorithm'] or 'none'}, signatures {c['signatures']}: "
              f"{c['entries']} entries")
    print(f"runs         {info['runs']}")
    for r in info["recent_runs"]:
        rate = f"{r['hit_rate']:.1%}" if r["hit_rate"] is not None else "-"
        print(f"  run {r['run']:>5}  {_stamp(r['started'])}  hits {r['hits']:>8}  "
              f"misses {r['misses']:>8}  rate {rate:>6}  "
              f"{'complete' if r['complete'] else 'incomplete'}  {r['root']}")


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.scanner.cache import ScanCache

    if args.action != "prune" and (args.max_age is not None or args.max_entries is not None):
        raise ValueError("--max-age and --max-entries apply to prune")
    cache = ScanCache(args.path, create=False)
    if args.action == "stats":
        info = cache.stats()
        if args.json:
            print(json.dumps(info))
        else:
            _print_stats(info)
    elif args.action == "prune":
        out = cache.prune(max_age_runs=args.max_age, max_entries=args.max_entries)
        print(json.dumps(out) if args.json else
              f"pruned {out['pruned']} (not seen), evicted {out['evicted']} (over the cap); "
              f"{out['entries']} entries left")
    else:
        removed = cache.clear()
        print(json.dumps({"removed": removed}) if args.json else f"removed {removed} entries")
    return 0
