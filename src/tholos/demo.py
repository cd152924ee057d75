"""`make run` entry point: see tholos.cluster.demo."""

from tholos.cluster.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
