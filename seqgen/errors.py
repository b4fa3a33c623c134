"""Errors a user can cause: the CLI turns these into one line on stderr and exit code 2."""


class UserError(Exception):
    """A problem with the user's input (file, option, checkpoint), not a bug in seqgen."""


class SeqgenWarning(UserWarning):
    """Something a user should know that does not stop the command; the CLI prints it as one
    ``warning:`` line on stderr."""
