"""Files written whole or not at all: a reader (or a later run) never sees half of one,
and a full disk leaves the last good copy and no debris."""

from __future__ import annotations

import os


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file beside it and a rename. On
    failure the temporary file is removed and the OSError names ``path``."""
    tmp = f"{os.fspath(path)}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OSError(e.errno, e.strerror, os.fspath(path)) from None
