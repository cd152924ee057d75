"""Threshold cryptography: groups, FROST, DKG, refresh/reshare/repair, ECDSA, BLS, DiSE (no I/O)."""
