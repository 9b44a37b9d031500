"""The one user-error path: an error caused by what the user gave (config, input files, directories, environment)
is a UserError whose message names the file, line or key; `promptgd` prints it in one line and exits with 2.
Anything else is a bug and keeps its traceback."""

import errno


class UserError(Exception):
    """A mistake in the user's input, config, files or environment, not in promptgd."""


class DiskFullError(UserError, OSError):
    """The device ran out of space while promptgd wrote `path`; nothing half-written was kept."""

    def __init__(self, path) -> None:
        super().__init__(
            f"{path}: no space left on the device while writing it (nothing half-written was kept); free some space "
            "and run the same command again: a training run resumes from its last checkpoint"
        )


def is_out_of_space(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, also when a library reports it in its own exception type (safetensors: 'os error 28')."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(error) or "Disk quota exceeded" in str(error)
