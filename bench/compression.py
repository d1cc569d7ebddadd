"""What gzipped answers cost Thanos: every request of a batched fetch, replayed with and without compression.

    .venv/bin/python bench/compression.py [--pods 200,2000] [--hours 12] [--rounds 4]

For each size, a simulated tenant in a local Prometheus (``bench/peer.py``'s). The requests are those of a batch of
``--hours`` hours as a backfill fetches it (the batch's shared queries, then each hour's read with the pods it
re-fetches as samples), recorded once, then sent one at a time, each twice in turn: accepting gzip (as OpenCost's
client does, and the worker with ``KCW_THANOS_COMPRESSED=true``) and not (the worker's default), which of the two
goes first alternating by round, so that a drift of the machine's speed moves both alike. Prints, per tenant-hour,
the Prometheus process's CPU and the bytes on the wire of each, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hour_profile import Recording  # noqa: E402
from peer import TENANT, prometheus_cpu, say, simulated_hours  # noqa: E402

from kubecost_worker import logs  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus  # noqa: E402
from kubecost_worker.source.extract import fetch_hours  # noqa: E402
from kubecost_worker.source.thanos import ThanosSettings  # noqa: E402

ENCODINGS = ("gzip", "identity")


def recorded_requests(url: str, starts: list[int]) -> list[tuple[str, dict]]:
    """The requests of one batch over ``starts``, as the worker sends them (path and parameters)."""
    Recording.sent, Recording.shared = [], set()
    client = Recording(ThanosSettings(url=url))
    for hour in fetch_hours(client, "tenant_id", TENANT, starts, 60):
        hour.read()
    return Recording.sent


def replayed(url: str, pid: int, sent: list[tuple[str, dict]], rounds: int) -> dict[str, tuple[float, int]]:
    """Per encoding accepted: Prometheus CPU seconds and bytes on the wire, summed over the rounds."""
    session = requests.Session()
    totals = {encoding: [0.0, 0] for encoding in ENCODINGS}
    for k in range(rounds):
        for path, params in sent:
            for encoding in ENCODINGS if k % 2 else reversed(ENCODINGS):
                before = prometheus_cpu(pid)
                response = session.get(url + path, params=params, headers={"Accept-Encoding": encoding},
                                       stream=True, timeout=600)
                body = response.raw.read(decode_content=False)
                totals[encoding][0] += prometheus_cpu(pid) - before
                totals[encoding][1] += len(body)
    return {encoding: (cpu, size) for encoding, (cpu, size) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", default="200,2000")
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    logs.configure("text", "warning")
    with tempfile.TemporaryDirectory(prefix="kcw-compression-") as workdir:
        for pods in (int(p) for p in args.pods.split(",")):
            tsdb, starts = simulated_hours(Path(workdir), str(pods), pods, args.hours)
            server = LocalPrometheus(tsdb)
            with server as url:
                sent = recorded_requests(url, starts)
                say(f"{pods:,} pods: {len(sent)} requests for {args.hours} hours, replayed {args.rounds} times")
                figures = replayed(url, server.process.pid, sent, args.rounds)
            per_hour = args.rounds * args.hours
            (gzip_cpu, gzip_bytes), (plain_cpu, plain_bytes) = figures["gzip"], figures["identity"]
            print(f"\n{pods:,} pods, per tenant-hour: Prometheus CPU gzipped {gzip_cpu / per_hour * 1000:.1f} ms, "
                  f"uncompressed {plain_cpu / per_hour * 1000:.1f} ms ({gzip_cpu / plain_cpu:.2f} x); on the wire "
                  f"{gzip_bytes / per_hour / 1e6:.3f} MB gzipped, {plain_bytes / per_hour / 1e6:.3f} MB "
                  f"uncompressed ({plain_bytes / gzip_bytes:.1f} x)\n", flush=True)


if __name__ == "__main__":
    main()
