"""The one user-error path: an error caused by what the user gave (config, input files, directories, environment)
is a UserError whose message names the file, line or key; `promptgd` prints it in one line and exits with 2.
Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake in the user's input, config, files or environment, not in promptgd."""
