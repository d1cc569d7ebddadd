"""kubecost_worker: Kubecost metrics in Thanos -> hourly Kubernetes expenses in ClickHouse.

Data flows one way: ``source`` (Thanos) -> ``model`` (pure cost math) -> ``sink`` (ClickHouse).
``pipeline`` joins them for one tenant-hour; the CLI and schedulers only call ``pipeline``.
"""

__version__ = "0.1.0"
