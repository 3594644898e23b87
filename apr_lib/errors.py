"""User-facing errors: the command line prints their message (no traceback) and exits non-zero."""


class UserError(Exception):
    """Bad input or missing data; the message names the key, file or value and the fix."""


class ProfileError(UserError):
    """A profile (params/<name>.yaml) fails validation."""


class DataMissingError(UserError):
    """A dataset is not where it should be and cannot be fetched here."""


class CheckpointError(UserError):
    """A checkpoint is truncated, tampered with or belongs to another configuration."""


class TrainingDiverged(UserError):
    """The loss became non-finite; the run and epoch are named."""
