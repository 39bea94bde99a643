"""Output paths checked before the work starts, so a read-only `--out` or `--model-dir`
fails in one line up front instead of after minutes of conversion or training."""

from __future__ import annotations

import os
import tempfile

from mnas_tf.config_files import ConfigError


class NotWritableError(ConfigError):
    """An output path that cannot be written; the message names the flag."""


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def check_writable_dir(path: str, flag: str) -> None:
    """Creates `path` if needed and proves a file can be made in it."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise NotWritableError(f"{flag} {path} cannot be written ({_reason(e)}); choose a "
                               f"writable location") from None


def check_writable_file(path: str, flag: str) -> None:
    """The file `path` can be created or replaced (its folder is created if needed)."""
    if os.path.isdir(path):
        raise NotWritableError(f"{flag} {path} is a directory; give a file path")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), flag)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise NotWritableError(f"{flag} {path} exists and is read-only; choose another path")
