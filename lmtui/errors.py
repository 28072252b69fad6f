"""The one exception type a user can cause; every face turns it into a one-line message."""


class LmtuiError(Exception):
    """A problem with the user's input (a path, a checkpoint, an option), never a bug in lmtui."""


class InvalidOption(LmtuiError):
    """An option value (or a prompt) the run cannot use; faces report it as a usage error (exit 2)."""
