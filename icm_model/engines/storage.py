"""Where a matting job reads its targets and writes its outputs: a local folder, or any location pyarrow's file
systems read (``s3://``, ``gs://``, ``hdfs://``, ``file://``...; pyarrow comes with the Ray extra).

Every output is written under a temporary name and renamed when complete, so a stopped job never leaves a
half-written file that a restarted job would take as done.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..image_io import IMAGE_SUFFIXES
from ..validation import InputError

TEMPORARY_SUFFIX = ".partial"


def _is_uri(location: str) -> bool:
    return "://" in location


@dataclass(frozen=True)
class Storage:
    """A file system for a job's targets and outputs; ``uri`` false means the local file system (plain paths)."""

    uri: bool = False

    @staticmethod
    def for_location(location: str | Path) -> Storage:
        """The storage of ``location``: local for a plain path, pyarrow for a ``scheme://`` (``file://`` too)."""
        return Storage(uri=_is_uri(str(location)))

    def _pyarrow(self, location: str):
        """``(pyarrow file system, path within it)`` of ``location``."""
        try:
            from pyarrow import fs
        except ImportError as error:
            raise InputError(
                f'{location!r} is not a local path: reading it needs pyarrow (pip install -e ".[distributed]")'
            ) from error
        return fs.FileSystem.from_uri(location)

    def join(self, folder: str, name: str) -> str:
        return f"{folder.rstrip('/')}/{name}" if self.uri else str(Path(folder) / name)

    def list_images(self, location: str) -> list[str]:
        """The image files of a folder (sorted by name) or the file itself; a clear error when there are none."""
        if not self.uri:
            from ..image_io import list_images

            return [str(p) for p in list_images(location)]
        from pyarrow import fs

        filesystem, path = self._pyarrow(location)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            return [location]
        if info.type != fs.FileType.Directory:
            raise InputError(f"{location!r} is neither an image file nor a folder")
        scheme = location.split("://", 1)[0]
        files = sorted(
            f"{scheme}://{entry.path}"
            for entry in filesystem.get_file_info(fs.FileSelector(path))
            if entry.type == fs.FileType.File and Path(entry.path).suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {location!r}")
        return files

    def open_read(self, location: str):
        """A binary file object of ``location`` (local file, or the whole object read into memory)."""
        if not self.uri:
            return open(location, "rb")  # noqa: SIM115 (the caller closes it)
        filesystem, path = self._pyarrow(location)
        with filesystem.open_input_file(path) as stream:
            return io.BytesIO(stream.read())

    def exists(self, location: str) -> bool:
        if not self.uri:
            return os.path.isfile(location)
        from pyarrow import fs

        filesystem, path = self._pyarrow(location)
        return filesystem.get_file_info(path).type == fs.FileType.File

    def make_folder(self, location: str) -> None:
        if not self.uri:
            Path(location).mkdir(parents=True, exist_ok=True)
            return
        filesystem, path = self._pyarrow(location)
        filesystem.create_dir(path, recursive=True)

    def write_atomic(self, location: str, data: bytes) -> None:
        """Writes ``data`` to a temporary name beside ``location``, then renames it to ``location``."""
        temporary = f"{location}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}"
        if not self.uri:
            with open(temporary, "wb") as stream:
                stream.write(data)
            os.replace(temporary, location)
            return
        filesystem, path = self._pyarrow(location)
        _, temporary_path = self._pyarrow(temporary)
        with filesystem.open_output_stream(temporary_path) as stream:
            stream.write(data)
        filesystem.move(temporary_path, path)
