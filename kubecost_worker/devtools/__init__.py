"""Development tools, apart from the product: simulated clusters with their ground truth (``simulation``), a
throwaway local Prometheus (``localprom``), the demo (``demo``) and the accuracy checks tests and benchmarks use
(``accuracy``). The service itself never imports them.
"""
