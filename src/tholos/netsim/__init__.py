"""Network simulation for benchmarks and failure tests: a TCP relay that adds one-way delay and
jitter and can cut a link, and the three-site WAN profile built from it. This kernel has no
`netem`, so delays come from our own relay in front of each node."""
