"""``slotalloc <command> --help``: every command, every option explained."""

from __future__ import annotations

import argparse
import re
from typing import get_args

import pytest

from slotalloc.cli import _parser, main
from slotalloc.solve import Method


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = _commands()


def test_every_command_is_listed_in_the_top_level_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert [c for c in COMMANDS if not re.search(rf"^\s+{c}\s+\S", out, re.MULTILINE)] == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_explains_every_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for action in COMMANDS[command]._actions:
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
        for flag in action.option_strings:
            assert flag in out
        if action.choices is not None:
            assert "{" + ",".join(map(str, action.choices)) + "}" in out


@pytest.mark.parametrize(
    "command", sorted(c for c, p in COMMANDS.items() if "--time-limit" in p._option_string_actions)
)
def test_time_limit_help_gives_the_unit_and_the_default(command: str) -> None:
    action = COMMANDS[command]._option_string_actions["--time-limit"]
    text = (action.help or "") % {"default": action.default}
    assert "seconds" in text or "work units" in text
    assert f"default {action.default}" in text
    if "--deterministic" in COMMANDS[command]._option_string_actions:
        assert "wall seconds" in text and "deterministic work units" in text


def test_time_limit_is_documented_for_solve_plan_and_demo() -> None:
    having = {c for c, p in COMMANDS.items() if "--time-limit" in p._option_string_actions}
    assert having == {"solve", "plan", "demo"}


def test_method_help_lists_exactly_the_solvers_methods(capsys: pytest.CaptureFixture[str]) -> None:
    action = COMMANDS["solve"]._option_string_actions["--method"]
    assert action.metavar == "{" + ",".join(get_args(Method)) + "}"
    for method in get_args(Method):
        assert method in (action.help or "")


def test_every_generate_option_has_help() -> None:
    generate = COMMANDS["generate"]
    options = [a for a in generate._actions if a.option_strings and a.dest != "help"]
    assert len(options) == 13  # --weeks for xiamen-season included
    assert all(a.help for a in options)
