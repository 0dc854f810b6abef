"""Service logs (structlog) and Prometheus metrics."""
