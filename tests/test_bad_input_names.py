"""Errors name what the caller used (issue 21, items 15 and 22): the CLI's flags and a config's keys
on the command line, a Python parameter's own name from Python. And AekitError is a ValueError (as
scikit-learn expects of a bad parameter), so every ``except ValueError`` around code that raises one
must let it through with its own message rather than reword it as a syntax error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aekit.errors import AekitError
from tests.badinput import assert_one_line_error

FAST = ["--data", "mnist-mini", "--epochs", "1", "--max-steps", "1", "--quiet"]
DIGITS_400 = "1" + "0" * 400

ROWS: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # An integer no float holds: the range check said OverflowError, with a traceback.
    ("seed-400-digits", lambda t: ["train", *FAST, "--out", str(t / "r"), "--seed", DIGITS_400],
     "train.seed must lie in [0, 4294967295], got a whole number of about 401 digits"),
    ("max-steps-400-digits", lambda t: ["train", *FAST, "--out", str(t / "r"), "--max-steps", DIGITS_400],
     "train.max_steps must lie in [1, 1000000000000]"),
    ("code-zero", lambda t: ["train", *FAST, "--out", str(t / "r"), "--code", "0"], "code size (--code) must be"),
    ("baseline-code-zero", lambda t: ["baseline", "pca", "--code", "0"],
     "code must be a whole number of PCA components, at least 1, got 0"),
]


@pytest.mark.parametrize(("case", "build", "expect"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_setting_names_the_flag(case: str, build: Callable[[Path], list[str]], expect: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(build(tmp_path), capsys, expect)


def test_aekit_error_is_a_value_error() -> None:
    assert issubclass(AekitError, ValueError)


def test_python_callers_see_their_own_names() -> None:
    import aekit.api
    from aekit.baselines import PCA
    from aekit.config import RunConfig, TrainConfig, check_setting

    with pytest.raises(AekitError, match=r"^n_components must be a whole number of PCA components"):
        PCA(0)
    with pytest.raises(AekitError, match=r"^code must be a whole number of PCA components, at least 1, got 0"):
        aekit.api.baseline_pca(0)
    with pytest.raises(AekitError, match=r"^lr must lie in \(0, 10\], got -1"):
        check_setting("train.lr", -1, "lr")
    # validate() checks types too: a TrainConfig built in Python skips the TOML reader's type check.
    with pytest.raises(AekitError, match=r"^train\.epochs must be a whole number, got 2\.5"):
        RunConfig(train=TrainConfig(epochs=2.5)).validate()
    with pytest.raises(AekitError, match=r"^train\.deterministic must be True or False, got 1"):
        RunConfig(train=TrainConfig(deterministic=1)).validate()


@pytest.mark.parametrize(("spec", "message"), [
    ("center:0", "the square must be 1 to 28 pixels wide"),
    ("random:2", "the fraction must lie strictly between 0 and 1"),
    ("rows:5-99", "rows must satisfy 0 <= A <= B < 28"),
    ("center:x", "expected a number after 'center:'"),  # the syntax error keeps its own words
])
def test_value_error_handlers_let_aekit_errors_through(spec: str, message: str) -> None:
    from aekit.tasks.inpaint import parse_mask

    with pytest.raises(AekitError, match=message):
        parse_mask(spec, (28, 28))


def test_a_model_table_error_keeps_its_own_line() -> None:
    from aekit.run import model_from_config

    with pytest.raises(AekitError, match=r"^code size \(--code\) must be a whole number"):
        model_from_config({"name": "mlp", "input_shape": [6], "code": 0})  # not "model table 'mlp': code size..."
