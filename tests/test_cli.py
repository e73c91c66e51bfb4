"""The `mmfree` command: help, info on presets and checkpoints, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmfree.cli import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in {n.split()[0] for n in COMMANDS}:
        assert name in out


def test_info_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "370m"]) == 0
    out = capsys.readouterr().out
    assert "374.1 M" in out and "1024 x 24" in out and "packed (2-bit)" in out


def test_info_unknown_target_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "huge"]) == 1
    assert "neither a preset" in capsys.readouterr().err


def test_unknown_flag_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "debug", "--bogus"])
    assert exit_info.value.code == 2


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mmfree.cli", "info", "debug"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "128 x 4" in proc.stdout
