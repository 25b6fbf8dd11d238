"""Reading the files and JSON documents the agents are handed, so that odd input is one clear error.

A FIFO named like a config file, bytes that are not UTF-8 and JSON nested deeper than
the interpreter's stack become an ``OSError`` or a ``ValueError`` whose message names
the file, so the caller's one ``except`` clause reports it in one line.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import errno
import json
import os
import stat

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Optional, Union


class NotRegularFile(OSError):
    """The path names a FIFO, socket, device or directory, where a regular file was expected."""


def open_regular(path: str) -> int:
    """A read-only descriptor on ``path``, refused unless it is a regular file.

    The open itself must not block: opening a FIFO that has no writer blocks a plain
    ``open()`` for ever, so it is opened non-blocking, checked with ``fstat``, and only
    a regular file is switched back to blocking reads.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str) -> bytes:
    """The whole content of the regular file ``path`` (see ``open_regular``)."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()


def decode_text(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text; otherwise a ``ValueError`` naming ``source`` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("%s: not UTF-8 text (byte %d)" % (source, exc.start)) from None


def read_text(path: str) -> Optional[str]:
    """The regular file's UTF-8 text, or None when it does not exist."""
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return None
    return decode_text(data, path)


def loads_json(text: Union[str, bytes], source: str) -> Any:
    """Parse JSON text; every failure, nesting too deep included, is a ``ValueError`` naming ``source``."""
    if isinstance(text, bytes):
        text = decode_text(text, source)
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("%s: JSON nested too deeply" % source) from None
    except ValueError as exc:
        raise ValueError("%s: not valid JSON: %s" % (source, exc)) from None
