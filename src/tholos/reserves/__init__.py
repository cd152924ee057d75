"""Proof of reserves: what the custodian owes (a Merkle-sum tree over customer balances, with a
proof per customer) beside what it controls (wallet signatures over a challenge and balances)."""
