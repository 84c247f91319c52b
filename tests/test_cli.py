"""The CLI: help with examples everywhere, in-process main(), one real subprocess, clear errors."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from rdmeval.cli.main import build_parser, main


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_subcommand_help_has_examples():
    parser = build_parser()
    assert "examples:" in parser.format_help()
    names = []
    for name, sub in _subparsers(parser):
        names.append(name)
        assert "examples:" in sub.format_help() or any("examples:" in s.format_help() for _, s in _subparsers(sub)), name
    assert {"demo", "prompts", "generate", "env"} <= set(names)


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for name, sub in _subparsers(parser):
        yield prefix + (name,), sub
        yield from _commands(sub, prefix + (name,))


def test_every_command_with_progress_bars_takes_no_progress():
    with_bars = {}
    for path, sub in _commands(build_parser()):
        flags = {s for a in sub._actions for s in a.option_strings}
        if flags & {"--progress", "--no-progress"}:
            with_bars[" ".join(path)] = flags
    assert {"demo", "reproduce", "generate", "score geneval", "score pickscore", "audit"} <= set(with_bars)
    assert [cmd for cmd, flags in with_bars.items() if "--no-progress" not in flags] == []
    parsed = build_parser().parse_args(["demo", "--no-progress"])
    assert parsed.progress is False and build_parser().parse_args(["demo", "--progress"]).progress is True


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "rdmeval" in capsys.readouterr().out


def test_env_reports_versions_and_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RDMEVAL_CACHE", str(tmp_path / "c"))
    assert main(["env", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"torch"' in out and str(tmp_path / "c") in out


def test_user_errors_exit_2_with_a_message(capsys):
    assert main(["prompts", "show", "no-such-set"]) == 2
    assert "unknown prompt set 'no-such-set'" in capsys.readouterr().err
    assert main(["generate", "--model", "student", "--prompts", "demo-geneval", "--out", "/tmp/x-never"]) == 2
    assert "--weights" in capsys.readouterr().err


def test_subprocess_entry_point():
    out = subprocess.run([sys.executable, "-m", "rdmeval", "prompts", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "geneval" in out.stdout and "pickapic-test" in out.stdout and "coco-val" in out.stdout


def test_a_closed_pipe_is_not_an_error():
    """`rdmeval env | head -n 1`: when the reader goes away, rdmeval stops quietly (exit 141, as shell tools)."""
    proc = subprocess.Popen([sys.executable, "-m", "rdmeval", "env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before rdmeval writes a line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "error" not in err.lower() and "Traceback" not in err, err


def test_help_examples_keep_their_line_breaks():
    """A backslash at a line end inside a help string joins two example lines; write it as ``\\\\``."""
    for path, sub in _commands(build_parser()):
        for line in (sub.epilog or "").splitlines():
            assert not re.search(r"\S {3,}--", line), (" ".join(path), line)


def test_train_config_help_names_every_config():
    from rdmeval.distill.config import CONFIGS

    train = dict(_commands(build_parser()))[("train",)]
    help_text = next(a.help for a in train._actions if "--config" in a.option_strings)
    assert [name for name in CONFIGS if name not in help_text] == []


def test_every_verbose_flag_says_what_it_shows():
    """-v shows third-party output as well as tracebacks in every command (rdmeval/cli/main.py)."""
    for path, sub in _commands(build_parser()):
        for action in sub._actions:
            if "--verbose" in action.option_strings:
                assert action.help.startswith("show third-party warnings and log lines"), " ".join(path)
