"""Test-only code shipped with the package because node processes started by tests need it.

No production module imports this package (an import-linter contract); a node loads
`tholos.testing.faults` only when started with `--fault NAME` and THOLOS_ALLOW_FAULTS=1.
"""
