"""The gateway: REST API, protocol orchestration, request state. Untrusted for secrecy."""
