"""The package's user-facing error: the CLI prints its message as one line and exits non-zero."""


class GoogLeNetError(Exception):
    """Bad input (a file, a value, a configuration) that the user can fix; the message names it."""
