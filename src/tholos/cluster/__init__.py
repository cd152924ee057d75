"""A local cluster directory: CA, certificates, configs and process management (`tholos cluster`)."""
