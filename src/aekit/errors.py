"""The one exception type for bad user input.

Anything the user can fix (a missing file, a corrupt IDX file, an unknown option, an impossible
layer size) raises :class:`AekitError` with a message that says what was wrong and what to do.
The CLI prints it on one line and exits with code 2; internal bugs still raise normally.
"""


class AekitError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""
