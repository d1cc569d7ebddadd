"""The model's CPU per tenant-hour, alone: ``compute_hour`` over the same inputs, nothing else in the process.

    .venv/bin/python bench/model.py --inputs FILE [--pods 2000] [--hours 6] [--rounds 3]

Where FILE does not exist, simulates one tenant of ``--pods`` pods (the project's simulator) for ``--hours`` hours
and the hour before, fetches the hours from a local Prometheus as a backfill's batch reads them and keeps their
inputs in FILE (a pickle of ``HourInput``s): the same inputs can then be priced by another checkout of the code
(``PYTHONPATH=<checkout> python bench/model.py --inputs FILE``), so that two versions of the model are compared on
one input, in turn. Prints the model's CPU per hour in each round and their median. The cyclic garbage collector
is paused, as the pipeline pauses it for a batch (``pipeline.cyclic_gc_paused``): running, it made the model's CPU
1.5 times as high at 2,000 pods, walking objects it never frees.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: a checkout named there prices the inputs
sys.path.insert(0, str(ROOT / "bench"))

# before peer, which puts this checkout first on the path
from kubecost_worker import logs  # noqa: E402  isort: skip
from peer import TENANT, say, simulated_hours  # noqa: E402

from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus  # noqa: E402
from kubecost_worker.model import compute_hour  # noqa: E402
from kubecost_worker.pipeline import cyclic_gc_paused  # noqa: E402
from kubecost_worker.source import extract  # noqa: E402
from kubecost_worker.wiring import thanos_client  # noqa: E402


def fetched_inputs(pods: int, hours: int) -> list:
    """The inputs of ``hours`` simulated hours of ``pods`` pods, read as one batch."""
    tsdb, starts = simulated_hours(Path(tempfile.mkdtemp(prefix="kcw-bench-model-")), "model", pods, hours)
    with LocalPrometheus(tsdb) as url:
        client = thanos_client(load_config({"KCW_THANOS_URL": url}))
        return [fetch.read() for fetch in extract.fetch_hours(client, "tenant_id", TENANT, starts, 60)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    logs.configure("text", "warning")
    if not args.inputs.exists():
        args.inputs.write_bytes(pickle.dumps(fetched_inputs(args.pods, args.hours)))
    inputs = pickle.loads(args.inputs.read_bytes())
    say(f"the model of {len(inputs)} hours, {args.rounds} rounds")
    per_hour = []
    with cyclic_gc_paused():
        compute_hour(inputs[0])  # warm-up, untimed
        for _ in range(args.rounds):
            began = time.process_time()
            for hour_input in inputs:
                compute_hour(hour_input)
            per_hour.append((time.process_time() - began) / len(inputs))
    print(f"model CPU per tenant-hour: {statistics.median(per_hour) * 1000:.1f} ms (median of "
          f"{', '.join(f'{s * 1000:.1f}' for s in per_hour)}), {sum(len(g) for i in inputs for g in i.series.values())} "
          f"series in {len(inputs)} hours ({Path(logs.__file__).parents[1]})")


if __name__ == "__main__":
    main()
