#!/usr/bin/env python3
"""Where a slow request waited: one API's access log (``bench/fleet.py --access-logs``), summed per time bucket.

    python bench/access_log.py OUT/plane-logs/zaqar.access.log            # 30 s buckets
    python bench/access_log.py OUT/plane-logs/keystone.access.log --bucket 10

One row per bucket and kind of request (method, what the path addresses, status, the
client's program from its User-Agent): how many ended in the bucket and their median,
longest and summed duration in ms.  Rows of requests that wait for another service show
when they waited (a Zaqar claim behind its token's validation at Keystone); the summed
duration of one service's requests in a bucket is how busy its threads were.  Buckets
start at whole multiples of their length in UTC, so the rows of two services' logs line
up.  bench/FLEET.md ("N = 200, zaqar over HTTP, third run") reads them this way.
"""
from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
from collections import defaultdict
from typing import Dict, Iterable, Iterator, List, NamedTuple, Tuple

#: The line tests/e2e/controlplane.py has gunicorn write: '%(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'.
LINE = re.compile(r'\[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) \S+ '
                  r'(?P<ms>\d+)ms "(?P<agent>[^"]*)"')
#: What a path addresses, first match wins; ids and queue names vary and would split the rows.
PATH_KINDS = (("/claims", "claim"), ("/messages", "messages"), ("/v3/auth/tokens", "tokens"),
              ("/ec2tokens", "ec2tokens"), ("/metadata", "metadata"))


class Request(NamedTuple):
    ended: float  # epoch seconds (gunicorn writes the line when the answer has gone out)
    kind: str     # "POST claim 201 os-collect-config"
    ms: int


def path_kind(path: str) -> str:
    bare = path.split("?", 1)[0]
    for fragment, kind in PATH_KINDS:
        if fragment in bare:
            return kind
    return re.sub(r"[0-9a-f]{32}|[0-9a-f-]{36}", "ID", bare)[:40]


def parse(lines: Iterable[str]) -> Iterator[Request]:
    """The requests of an access log; lines of any other form (a restart's messages) are skipped."""
    for line in lines:
        found = LINE.search(line)
        if not found:
            continue
        ended = datetime.datetime.strptime(found["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
        program = found["agent"].split()[0] if found["agent"].strip() else "-"
        kind = "%s %s %s %s" % (found["method"], path_kind(found["path"]), found["status"], program)
        yield Request(ended, kind, int(found["ms"]))


def buckets(requests: Iterable[Request], bucket_s: int) -> Dict[Tuple[int, str], List[int]]:
    """Durations by (the bucket's start in epoch seconds, kind)."""
    out: Dict[Tuple[int, str], List[int]] = defaultdict(list)
    for r in requests:
        out[(int(r.ended // bucket_s) * bucket_s, r.kind)].append(r.ms)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="a <service>.access.log kept by bench/fleet.py --access-logs")
    parser.add_argument("--bucket", type=int, default=30, help="seconds per row (default %(default)s)")
    args = parser.parse_args()
    if args.bucket < 1:
        parser.error("--bucket must be 1 or more seconds")
    try:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            requests = list(parse(f))
    except OSError as exc:
        print("%s: %s" % (args.log, exc.strerror or exc), file=sys.stderr)
        return 1
    if not requests:
        print("%s: no request line in it" % args.log, file=sys.stderr)
        return 1
    print("%-8s  %-48s %5s %7s %7s %8s" % ("UTC", "request", "n", "med ms", "max ms", "sum ms"))
    for (start, kind), ms in sorted(buckets(requests, args.bucket).items()):
        when = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%H:%M:%S")
        print("%-8s  %-48s %5d %7d %7d %8d" % (when, kind[:48], len(ms), statistics.median(ms), max(ms), sum(ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
