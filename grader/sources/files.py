"""Histories from exported JSON files, folders of them, and bundles.

A bad file does not stop the others: it becomes one line in the error list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from grader.engine.history import DEFAULT_MAX_HISTORY_BYTES, display_path, iter_history_paths, load_history_file
from grader.errors import HistoryError
from grader.sources.loaded import Loaded


def _may_be_bundle(path: Path) -> bool:
    """False when ``path`` cannot be a bundle (:func:`grader.sources.bundles.is_bundle` says for the rest)."""
    return path.suffix.lower() == ".zip" or path.is_dir()


def read_files(paths: Sequence[Path], *, max_bytes: int = DEFAULT_MAX_HISTORY_BYTES) -> Loaded:
    """Read every history file (folders expand to their ``*.json``, bundles to their histories); bad files become errors.

    A bad file, an unlistable or empty folder, a FIFO or a symlink loop is one
    line in ``errors`` and never stops the other files. Files larger than
    ``max_bytes`` are refused unread.
    """
    loaded = Loaded()
    for given in paths:
        if _may_be_bundle(Path(given)):
            # Imported here: only a folder or a .zip can be a bundle, and the bundle
            # reader (with its manifest schema and zip handling) cost a plain
            # `grader check --history FILE.json` about a millisecond of start-up.
            from grader.sources.bundles import is_bundle, read_bundle

            if is_bundle(Path(given)):
                loaded.merge(read_bundle(Path(given)))
                continue
        try:
            found = list(iter_history_paths([given]))
        except HistoryError as err:
            loaded.sources.append(display_path(given))
            loaded.errors.append(str(err))
            continue
        for path in found:
            loaded.sources.append(display_path(path))
            try:
                loaded.histories.append(load_history_file(path, max_bytes=max_bytes))
            except HistoryError as err:
                loaded.errors.append(str(err))
    return loaded
