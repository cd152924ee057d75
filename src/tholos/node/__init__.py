"""A tholos node: holds one share of every key, sealed at rest, and answers the gateway over mTLS."""
