"""Chain connectors: balances, nonces, fees, broadcast, confirmations and deposits, on the gateway
side. Untrusted like the gateway: a lying connector can delay or hide a transaction, never make a
node sign something else (the nodes parse what they sign, tholos.chains)."""
