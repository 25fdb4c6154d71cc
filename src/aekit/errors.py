"""The one exception type for bad user input.

Anything the user can fix (a missing file, a corrupt IDX file, an unknown option, an impossible
layer size) raises :class:`AekitError` with a message that says what was wrong and what to do.
The CLI prints it on one line and exits with code 2; internal bugs still raise normally.
"""


def key_text(key: object) -> str:
    """A key from a user's file as error text: as it is when it is a plain name, else quoted
    (a key may hold a newline or a control character, and an error stays one line)."""
    text = str(key)
    return text if text.isidentifier() else repr(text)


class AekitError(ValueError):
    """Bad input from the user: the message says what was wrong and how to fix it.

    A ValueError, because scikit-learn's conventions (and its estimator checks) expect one for a bad
    parameter or unusable data; so a handler of ValueError around code that raises AekitError must
    let it through (``except AekitError: raise`` first) unless it means to reword it."""


class TrainingStopped(Exception):
    """Training stopped on SIGTERM or SIGINT after writing a checkpoint; ``--resume`` continues it."""

    def __init__(self, signum: int, epoch: int, step: int) -> None:
        self.signum, self.epoch, self.step = signum, epoch, step
        super().__init__(f"stopped at epoch {epoch}, step {step}; continue with --resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 143 for SIGTERM, 130 for SIGINT, as a shell reports them
