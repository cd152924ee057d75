"""The signer: a small hardened process per node that opens shares, nonces and presignatures.

The network-facing node process starts it (`tholos.node.signer.launch`) and talks to it over a
Unix socket (0600 in a 0700 directory) with a fixed, versioned message set
(`tholos.node.signer.wire`). See `tholos.node.signer.process` for what it does and trusts.
"""
