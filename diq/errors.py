"""User-facing errors: each names the input (file, line, field) and the fix."""


class DiqError(Exception):
    """An error caused by user input or environment, reported without a traceback.

    The message must say what is wrong, where (file / line / field / sample id) and how to fix it.
    """

    exit_code = 2
