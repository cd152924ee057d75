"""`tholos keys --help` describes every subcommand (it used to describe two of eight)."""

from __future__ import annotations

import argparse

from tholos.cli import build_parser


def _sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise AssertionError(f"no subcommand {name}")


def test_every_keys_subcommand_has_a_help_line() -> None:
    keys = _sub(build_parser(), "keys")
    (subs,) = [a for a in keys._actions if isinstance(a, argparse._SubParsersAction)]
    described = {c.dest for c in subs._choices_actions if c.help}
    assert set(subs.choices) == described, sorted(set(subs.choices) - described)
    wanted = {"disable", "enable", "label", "tag", "destroy", "repair", "import", "create"}
    assert wanted <= set(subs.choices)
    text = keys.format_help()
    for name in subs.choices:
        assert name in text


def test_lifecycle_arguments() -> None:
    ap = build_parser()
    a = ap.parse_args(["keys", "destroy", "ab" * 16, "--confirm", "ab" * 16, "--dir", "d"])
    assert a.confirm == "ab" * 16
    a = ap.parse_args(["keys", "tag", "k", "--add", "x", "--add", "y", "--remove", "z"])
    assert (a.add, a.remove) == (["x", "y"], ["z"])
    a = ap.parse_args(["keys", "label", "k", "--clear"])
    assert a.clear and a.label is None
