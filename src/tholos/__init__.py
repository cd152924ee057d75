"""tholos: a software-only distributed HSM. Keys are generated in threshold and never exist in one place."""

__version__ = "0.1.0"
