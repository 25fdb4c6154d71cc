"""The bad-input corpus's one check: a command given bad input prints one clear error line on stderr
and exits 2, with no traceback.

Corpus rows live in ``tests/test_bad_input_*.py`` as tables; each row names the command line, builds
its hostile input in ``tmp_path``, and gives a piece of the expected message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``aekit ARGV`` in this process (no torch start-up per case); returns (exit code, stdout, stderr)."""
    from aekit.cli import main

    try:
        rc: Any = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    out, err = capsys.readouterr()
    return int(rc or 0), out, err


def assert_one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], expect: str) -> str:
    """Exit code 2, exactly one ``error:`` line on stderr containing ``expect``, no traceback."""
    rc, _, err = run_cli(argv, capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err, err
    assert rc == 2, f"exit {rc}, stderr: {err!r}"
    assert len(errors) == 1, err
    assert expect.lower() in errors[0].lower(), f"{expect!r} not in {errors[0]!r}"
    return errors[0]


def built_once(tmp_path_factory: pytest.TempPathFactory, prefix: str,
               makers: dict[str, Callable[[Path], Path]]) -> Callable[[str], Path]:
    """The runs a corpus's rows name, each made (``makers[which](a fresh folder)``) the first time a
    row asks for it and kept for the module, so a ``-k`` selection trains only what it uses."""
    made: dict[str, Path] = {}

    def get(which: str) -> Path:
        if which not in made:
            made[which] = makers[which](tmp_path_factory.mktemp(f"{prefix}-{which}"))
        return made[which]

    return get
