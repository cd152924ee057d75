"""`tholos bench`: throughput and latency of key generation and signing on local clusters."""
