"""Reading ZIP packages (DOCX) without trusting their headers: zip bombs fail fast as TOO_LARGE.

`zipfile` bounds what it *returns* by the size an entry declares, not what it *inflates*:
`ZipFile.read` decompresses up to 2 GiB of a deflated member in one call before cutting the
result to the declared size, and inflates bzip2/LZMA members with no bound at all. So sizes are
checked first as declared (cheap, nothing inflated), then measured by streaming every member
in bounded chunks, before python-docx reads anything. OPC packages may only store or deflate
their items (ECMA-376 Part 2, Annex C), so other compression methods are refused outright.
"""

from __future__ import annotations

import copy
import zipfile

from tvdb.errors import DocumentError, ErrorCode

MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
"""The most a DOCX package may expand to, all members together; more fails with TOO_LARGE."""

_CHUNK = 1024 * 1024
_OPC_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_UNREACHABLE = 1 << 62  # a declared size the bounded reads below never get to


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f}".removesuffix(".0") + " MiB"


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """The content of `info`, or None when it is (or declares to be) larger than `limit` bytes or
    uses a compression method that cannot be inflated in bounded steps. Never inflates more than
    `limit` + 1 MiB. Raises what zipfile raises on damaged data (BadZipFile, zlib.error, ...)."""
    if info.file_size > limit or info.compress_type not in _OPC_METHODS:
        return None
    data = _read_up_to(archive, info, limit + 1)
    return None if len(data) > limit else data


def _read_up_to(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At least `limit` bytes of `info` when it holds that many, read in bounded chunks.

    A copy of the entry declares an unreachable size, so a member that understates its size is
    read past its claim (and its CRC is only checked when it really ends).
    """
    probe = copy.copy(info)
    probe.file_size = _UNREACHABLE
    parts: list[bytes] = []
    total = 0
    with archive.open(probe) as stream:
        while total < limit and (chunk := stream.read(min(_CHUNK, limit - total))):
            parts.append(chunk)
            total += len(chunk)
    return b"".join(parts)


def _expanded_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> int:
    """How many bytes `info` really inflates to, counting at most `budget` + 1 (nothing kept)."""
    probe = copy.copy(info)
    probe.file_size = _UNREACHABLE
    total = 0
    with archive.open(probe) as stream:
        while total <= budget and (chunk := stream.read(_CHUNK)):
            total += len(chunk)
    return total


def check_expansion(archive: zipfile.ZipFile, *, path: str, kind: str = "DOCX") -> None:
    """Raise DocumentError before a zip bomb is inflated: TOO_LARGE when the members declare, or
    really expand to, more than MAX_UNCOMPRESSED_BYTES together; CORRUPT for a compression method
    OPC does not allow. Damaged data raises what zipfile raises (the caller maps it to CORRUPT)."""
    infos = archive.infolist()
    cap = _mib(MAX_UNCOMPRESSED_BYTES)
    declared = sum(i.file_size for i in infos)
    if declared > MAX_UNCOMPRESSED_BYTES:
        biggest = max(infos, key=lambda i: i.file_size)
        raise DocumentError(
            ErrorCode.TOO_LARGE,
            f"the package expands to {_mib(declared)} ({biggest.filename} alone to {_mib(biggest.file_size)}), "
            f"over the {cap} a {kind} may expand to (a zip bomb?)",
            path=path,
        )
    for info in infos:
        if info.compress_type not in _OPC_METHODS:
            raise DocumentError(
                ErrorCode.CORRUPT,
                f"{info.filename} uses ZIP compression method {info.compress_type}; "
                f"a {kind} package may only store or deflate its parts",
                path=path,
            )
    budget = MAX_UNCOMPRESSED_BYTES
    for info in infos:
        size = _expanded_size(archive, info, budget)
        if size > budget:
            raise DocumentError(
                ErrorCode.TOO_LARGE,
                f"{info.filename} declares {info.file_size:,} bytes, but the package expands to more than "
                f"the {cap} a {kind} may expand to (a zip bomb with lying headers?)",
                path=path,
            )
        budget -= size
