"""Transport security: the cluster CA and mutual TLS, and end-to-end envelopes between nodes."""
