"""Metrics (Prometheus) and structured logs (structlog) shared by the node and the gateway: the
metric objects, the request id followed from the gateway through every node, log setup."""
