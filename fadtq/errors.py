"""The one exception type users see: a one-line, actionable message."""


class FadtqError(Exception):
    """A user-facing error. Its message names the file, field or flag at fault and what was expected.

    The command line prints ``error: <message>`` and exits with status 2; no traceback.
    """
