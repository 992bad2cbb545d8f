"""What a run may write: every file a command writes (image, sidecar, report, manifest, fitted
recipe) is checked here, with the same rules, before any photo is decoded or tuned.

A planned output is refused when it

- is an input of the run (the same path, or the same file under another name or link);
- exists and is not the run's own, unless ``force`` (a folder is refused even with ``force``);
- would be written through a symlink that leads out of the output folder (``root``);
- lies in a folder that does not exist (unless the run creates its folders inside ``root``);
- has a name too long for the temporary name :func:`enhance.io.atomic_path` writes beside it.

Every refusal is an :class:`OutputError` whose message is one line, ``"<path>: <problem>"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from enhance.io import WRITE_EXTENSIONS

# atomic_path's temporary name adds a leading "." and ".<8 hex>.tmp" to the output's name.
TEMP_EXTRA = len(".") + len(".01234567.tmp")


class OutputError(ValueError):
    """A planned write that is refused; ``str(e)`` is one line: ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both already resolved)."""
    return path == folder or folder in path.parents


def opens_with(path: str | os.PathLike[str], prefix: bytes) -> bool:
    """True when ``path`` is a regular file whose first bytes are ``prefix`` (how a run knows a
    file of its own kind, such as its report). Never opens a FIFO or device."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            return f.read(len(prefix)) == prefix
    except OSError:
        return False


def check_image_name(path: str | os.PathLike[str]) -> None:
    """Refuse an image output whose extension ``enhance.io.write`` cannot encode."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_EXTENSIONS:
        raise OutputError(path, f"cannot write '{suffix or Path(path).name}' files (use "
                                f"{', '.join(sorted(WRITE_EXTENSIONS))})")


class Inputs:
    """The files a run reads, by resolved path and by (device, inode), for quick look-ups."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths: set[Path] = set()
        self.ids: set[tuple[int, int]] = set()
        for path in map(Path, paths):
            self.paths.add(path.resolve())
            try:
                info = path.stat()
                self.ids.add((info.st_dev, info.st_ino))
            except OSError:
                pass

    def holds(self, path: Path) -> bool:
        """True when ``path`` (which exists, or is a dangling link) names one of the inputs."""
        if path.resolve() in self.paths:
            return True
        try:
            info = path.stat()
        except OSError:
            return False
        return (info.st_dev, info.st_ino) in self.ids


def check_writes(
    outputs: Iterable[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]] | Inputs,
    *,
    force: bool = False,
    owned: Callable[[Path], bool] = lambda path: False,
    root: str | os.PathLike[str] | None = None,
    make_folders: bool = False,
) -> None:
    """Refuse the run unless every path of ``outputs`` may be written (see the module's docstring).

    ``inputs``: every file the run reads (an :class:`Inputs` when checking many outputs against
    many inputs). ``owned(path)``: True for an existing output the run
    itself wrote earlier (a batch's manifest records them), which is replaced without ``force``.
    ``root``: the output folder no output may leave, symlinks followed. ``make_folders``: the run
    creates missing folders (inside ``root``) itself.
    """
    taken = inputs if isinstance(inputs, Inputs) else Inputs(inputs)
    top = Path(root).resolve() if root is not None else None
    seen: dict[Path, Path] = {}
    for out in map(Path, outputs):
        resolved = out.resolve()
        if resolved in seen:
            raise OutputError(out, f"would be written twice by this run (also as {seen[resolved]})")
        seen[resolved] = out
        if top is not None and not inside(resolved, top):
            raise OutputError(out, f"would leave the output folder {root} (through a symlink or '..'); refused")
        _check_folder(out, make_folders)
        if os.path.lexists(out):
            _check_existing(out, taken, force, owned)


def _check_folder(out: Path, make_folders: bool) -> None:
    folder = out.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != folder and not make_folders:
        raise OutputError(out, f"the folder {folder} does not exist")
    if not existing.is_dir():
        raise OutputError(out, f"{existing} is not a folder")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (not POSIX): the common limit
        name_max = 255
    if len(os.fsencode(out.name)) + TEMP_EXTRA > name_max:
        raise OutputError(out, f"file name too long ({len(os.fsencode(out.name))} bytes; at most "
                               f"{name_max - TEMP_EXTRA} leave room for the temporary file written first)")


def _check_existing(out: Path, taken: Inputs, force: bool, owned: Callable[[Path], bool]) -> None:
    if out.is_dir():
        raise OutputError(out, "is a folder; an output file was expected")
    if taken.holds(out):
        raise OutputError(out, "is an input of this run: refusing to overwrite the input")
    if not force and not owned(out):
        raise OutputError(out, "already exists (use --force to replace it)")
