"""Files written whole or not at all: a temporary file beside the target, renamed over it when complete, and the
error every run file's problem becomes (CheckpointError), naming the file and what to do.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# How a file being written is named until it is complete; a name ending so is a leftover when no one holds the lock.
PARTIAL_SUFFIX = ".partial"
# What torch.load's weights-only unpickler writes before its reason when a file holds more than tensors and values.
WEIGHTS_ONLY_REFUSAL = "WeightsUnpickler error:"


class CheckpointError(RuntimeError):
    """A run folder's file is missing, unreadable, corrupt, unwritable, for another model or in use by another
    process; the message names the file and says what to do."""


def last_error_line(stderr: str) -> str:
    """Return the last non-blank line a failed command wrote to stderr (a traceback's last line is its error), or
    'it wrote no error' when it wrote none: the one-line cause a message quotes."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "it wrote no error"


def failure_reason(error: BaseException) -> str:
    """Return the one-line cause of a failed read or write: the OSError's text if there is one in the chain; for a
    file torch.load's safe (weights-only) loader refused, that loader's reason, without torch's advice to load it
    again with weights_only=False, which would run whatever code a pickle holds."""
    text = str(error)
    if WEIGHTS_ONLY_REFUSAL in text:
        lines = text.split(WEIGHTS_ONLY_REFUSAL, 1)[1].strip().splitlines()
        return f"not the tensors and plain values torch's safe loader reads ({lines[0] if lines else 'no reason'})"
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return (text.strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block succeeds it replaces `path` in one rename.

    If the block fails, the temporary file is removed and `path` is left as it was; a failed write (disk full,
    no permission) becomes a CheckpointError naming the file.
    """
    temporary: Path | None = None
    refuse_file_in_the_way(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
        os.close(descriptor)
        temporary = Path(name)
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(temporary, path)
    except BaseException as error:
        _discard(temporary)
        if isinstance(error, OSError | RuntimeError) and not isinstance(error, CheckpointError):
            raise CheckpointError(
                f"could not write {path} ({failure_reason(error)}); nothing was overwritten: free some space or fix "
                "the folder, then run again"
            ) from error
        raise


def refuse_file_in_the_way(path: Path) -> None:
    """Raise a CheckpointError if a file stands where one of the folders of `path` belongs (so nothing can be
    written there); checked before a write, and by commands before the work whose result they would write."""
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise CheckpointError(
                    f"cannot write {path}: {parent} is a file, not a folder; nothing was written: choose another "
                    "path, or move that file out of the way"
                )
            return


def _discard(temporary: Path | None) -> None:
    """Remove a temporary file if there is one."""
    if temporary is not None:
        temporary.unlink(missing_ok=True)
