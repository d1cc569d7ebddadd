"""Source: reading kubecost series from Thanos Query (or Prometheus) over its HTTP API."""
