"""HTTP(S) downloads for static registries: bounded in bytes and in time, atomic on disk.

Two limits per request: ``timeout`` for each socket operation (connect, each read), and a total
``deadline`` per file, so a server that trickles bytes cannot hold a download for longer than the
file's size justifies. The default deadline is ``max(MIN_DEADLINE, size / MIN_RATE)``. Errors name the
limit that was hit and whether the server was reached at all.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import DownloadError, UnreachableError

DEFAULT_TIMEOUT = 30.0  # seconds per socket operation
MIN_DEADLINE = 60.0  # seconds: the total time any one file may take, at least
MIN_RATE = 64 << 10  # bytes/s: a larger file gets size / MIN_RATE seconds
BLOCK = 1 << 16


def deadline_for(size: int | None) -> float:
    """The default total time for a download of ``size`` bytes (``None``: unknown, e.g. an index).

    Examples:
        >>> deadline_for(None), deadline_for(64 << 20)
        (60.0, 1024.0)
    """
    return MIN_DEADLINE if size is None else max(MIN_DEADLINE, size / MIN_RATE)


def _open(url: str, timeout: float) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise UnreachableError(
                f"{url}: the server answered HTTP {e.code} {e.reason} (a server-side error)."
            ) from None
        raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}.") from None
    except urllib.error.URLError as e:  # connecting or sending the request failed
        raise UnreachableError(
            f"{url}: could not connect ({e.reason}). Check the source URL, or use offline=True."
        ) from None
    except TimeoutError:  # connected and sent the request; no status line within the timeout
        raise UnreachableError(
            f"{url}: connected, but the server sent no response within timeout={timeout}s."
        ) from None
    except OSError as e:  # e.g. the connection reset while waiting for the response
        raise UnreachableError(f"{url}: connected, but the connection broke before a response ({e}).") from None


def _stream(
    response: Any, url: str, limit: int, limit_name: str, timeout: float, deadline: float, sink: Callable[[bytes], Any]
) -> int:
    """Copy the body into ``sink`` block by block; enforce the byte ``limit`` and the total ``deadline``."""
    start, total = time.monotonic(), 0
    while True:
        try:
            block = response.read1(BLOCK)  # returns what one socket read brings: the deadline is checked often
        except TimeoutError:
            raise UnreachableError(
                f"{url}: the server stopped sending for timeout={timeout}s after {total} bytes."
            ) from None
        except OSError as e:  # connection reset, incomplete read
            raise UnreachableError(f"{url}: the connection broke after {total} bytes ({e}).") from None
        if not block:
            return total
        total += len(block)
        if total > limit:
            raise DownloadError(f"{url}: more than {limit_name}={limit} bytes; refused.")
        sink(block)
        elapsed = time.monotonic() - start
        if elapsed > deadline:
            raise UnreachableError(
                f"{url}: still downloading after deadline={deadline:.0f}s ({total} bytes received, "
                f"{total / elapsed:.0f} B/s); the server is too slow. Pass deadline=... to allow more time."
            )


def _check_length(response: Any, url: str, limit: int, limit_name: str) -> None:
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise DownloadError(f"{url}: the server offers {length} bytes, more than {limit_name}={limit}; refused.")


def fetch_bytes(
    url: str, *, limit: int, limit_name: str, timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None
) -> bytes:
    """The body of ``url`` in memory, at most ``limit`` bytes."""
    response = _open(url, timeout)
    chunks: list[bytes] = []
    with response:
        _check_length(response, url, limit, limit_name)
        _stream(response, url, limit, limit_name, timeout, deadline or deadline_for(None), chunks.append)
    return b"".join(chunks)


def fetch_file(
    url: str,
    dest: Path,
    *,
    size: int,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    progress: bool = False,
) -> Path:
    """Download exactly ``size`` bytes into ``dest`` atomically (a failure leaves no file)."""
    from tqdm.auto import tqdm

    response = _open(url, timeout)
    with (
        response,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress, leave=False
        ) as bar,
    ):
        _check_length(response, url, size, "the size the index lists")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:

                def sink(block: bytes) -> None:
                    f.write(block)
                    bar.update(len(block))

                n = _stream(
                    response, url, size, "the size the index lists", timeout, deadline or deadline_for(size), sink
                )
            if n != size:
                raise DownloadError(f"{url}: got {n} bytes, the index lists {size} (truncated?).")

        atomic_write(dest, write)
    return dest
