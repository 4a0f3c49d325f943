"""Errors a user can cause and fix; the CLI prints them as one sentence, no traceback."""


class UserError(Exception):
    """Base class: bad input, missing data, a wrong option. The message says how to fix it."""
