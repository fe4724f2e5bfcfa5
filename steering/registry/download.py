"""HTTP(S) downloads for static registries: bounded in bytes and in time, retried, atomic on disk.

Three limits per file: ``timeout`` for each socket operation (connect, each read), one total
``deadline`` for the whole request (connecting, the status line and headers, the body: a server
that trickles any of them cannot hold a download longer), and a byte cap. The default deadline is
``max(MIN_DEADLINE, size / MIN_RATE)``. A ``5xx`` or ``429`` answer is retried a few times with
backoff (honouring ``Retry-After`` when it fits in the deadline) and then counts as unreachable, so a
cached copy may stand in. Errors name the limit that was hit and whether the server was reached,
and never show the credentials of a URL.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..atomic import atomic_write
from ..errors import DownloadError, UnreachableError

DEFAULT_TIMEOUT = 30.0  # seconds per socket operation
MIN_DEADLINE = 60.0  # seconds: the total time any one file may take, at least
MIN_RATE = 64 << 10  # bytes/s: a larger file gets size / MIN_RATE seconds
BLOCK = 1 << 16
ATTEMPTS = 3  # tries of a request the server answers with 5xx or 429
BACKOFF = 0.5  # seconds before the second try; doubled after each
T = TypeVar("T")


def deadline_for(size: int | None) -> float:
    """The default total time for a download of ``size`` bytes (``None``: unknown, e.g. an index).

    Examples:
        >>> deadline_for(None), deadline_for(64 << 20)
        (60.0, 1024.0)
    """
    return MIN_DEADLINE if size is None else max(MIN_DEADLINE, size / MIN_RATE)


def redact(url: str) -> str:
    """``url`` without the user name and password it may carry, for messages.

    Examples:
        >>> redact("https://user:secret@host/vectors/index.json")
        'https://***@host/vectors/index.json'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


class _DeadlinePassed(Exception):
    """The request's total deadline passed during a socket read."""


class _Reader(io.RawIOBase):
    """A socket's byte stream whose every read is bounded by ``timeout`` and by the total deadline."""

    def __init__(self, sock: socket.socket, timeout: float, at: float) -> None:
        self._sock, self._raw, self._timeout, self._at = sock, sock.makefile("rb", buffering=0), timeout, at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._at - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed
        self._sock.settimeout(min(self._timeout, left))
        try:
            return self._raw.readinto(buffer) or 0
        except TimeoutError:
            if time.monotonic() >= self._at:
                raise _DeadlinePassed from None
            raise

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Socket:
    """The connection's socket, with reads (status line, headers, body) going through :class:`_Reader`."""

    def __init__(self, sock: socket.socket, timeout: float, at: float) -> None:
        self._sock, self._timeout, self._at = sock, timeout, at

    def makefile(self, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self._sock, self._timeout, self._at))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _opener(timeout: float, at: float) -> urllib.request.OpenerDirector:
    def bounded(base: type[http.client.HTTPConnection]) -> Any:
        class Connection(base):  # type: ignore[misc,valid-type]
            def connect(self) -> None:
                self.timeout = max(min(timeout, at - time.monotonic()), 0.001)
                super().connect()
                self.sock = _Socket(self.sock, timeout, at)  # type: ignore[has-type,arg-type,assignment]

        return Connection

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(bounded(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(bounded(http.client.HTTPSConnection), req, context=self._context)  # type: ignore[attr-defined]

    class Redirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            scheme = urllib.parse.urlsplit(newurl).scheme.lower()
            if scheme not in ("http", "https"):  # urllib would follow ftp:// too, outside these bounds
                raise DownloadError(
                    f"{redact(req.full_url)}: the server redirects to a {scheme or 'relative'}:// address; only "
                    "http(s) redirects are followed."
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HTTP(), HTTPS(), Redirect())


class _Retryable(Exception):
    def __init__(self, code: int, reason: str, retry_after: float | None) -> None:
        super().__init__(code, reason)
        self.code, self.reason, self.retry_after = code, reason, retry_after


def _retry_after(value: str | None) -> float | None:
    return float(value) if value and value.strip().isascii() and value.strip().isdigit() else None


def _open(url: str, timeout: float, at: float, deadline: float) -> Any:
    shown = redact(url)
    try:
        return _opener(timeout, at).open(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code == 429:
            raise _Retryable(e.code, str(e.reason), _retry_after(e.headers.get("Retry-After"))) from None
        raise DownloadError(f"{shown}: the server answered HTTP {e.code} {e.reason}.") from None
    except DownloadError:  # our own refusal (a redirect off http), not a connection failure
        raise
    except _DeadlinePassed:
        raise UnreachableError(
            f"{shown}: connected, but no complete response within deadline={deadline:.0f}s (the server is too slow)."
        ) from None
    except urllib.error.URLError as e:  # connecting or sending the request failed
        if isinstance(e.reason, _DeadlinePassed):
            raise UnreachableError(f"{shown}: no complete response within deadline={deadline:.0f}s.") from None
        raise UnreachableError(
            f"{shown}: could not connect ({e.reason}). Check the source URL, or use offline=True."
        ) from None
    except TimeoutError:  # connected and sent the request; no status line within the timeout
        raise UnreachableError(
            f"{shown}: connected, but the server sent no response within timeout={timeout}s."
        ) from None
    except (OSError, http.client.HTTPException) as e:  # e.g. the connection reset while waiting
        raise UnreachableError(f"{shown}: connected, but the connection broke before a response ({e}).") from None


def _request(url: str, timeout: float, deadline: float, read: Callable[[Any, float], T]) -> T:
    """Open ``url`` and ``read(response, at)``; retry 5xx / 429 answers within the deadline."""
    at = time.monotonic() + deadline
    for attempt in range(ATTEMPTS):
        try:
            response = _open(url, timeout, at, deadline)
        except _Retryable as e:
            wait = e.retry_after if e.retry_after is not None else BACKOFF * 2**attempt
            if attempt == ATTEMPTS - 1 or time.monotonic() + wait >= at:
                raise UnreachableError(
                    f"{redact(url)}: the server answered HTTP {e.code} {e.reason} ({attempt + 1} tries"
                    + (f", Retry-After {e.retry_after:g}s" if e.retry_after is not None else "")
                    + f", deadline={deadline:.0f}s)."
                ) from None
            time.sleep(wait)
            continue
        with response:
            return read(response, at)
    raise AssertionError("unreachable")


def _stream(
    response: Any, url: str, limit: int, limit_name: str, timeout: float, deadline: float, sink: Callable[[bytes], Any]
) -> int:
    """Copy the body into ``sink`` block by block; enforce the byte ``limit`` (the deadline is in the reads)."""
    start, total, shown = time.monotonic(), 0, redact(url)
    while True:
        try:
            block = response.read1(BLOCK)  # returns what one socket read brings
        except _DeadlinePassed:
            elapsed = time.monotonic() - start
            raise UnreachableError(
                f"{shown}: still downloading after deadline={deadline:.0f}s ({total} bytes received, "
                f"{total / max(elapsed, 1e-9):.0f} B/s); the server is too slow. Pass deadline=... to allow more time."
            ) from None
        except TimeoutError:
            raise UnreachableError(
                f"{shown}: the server stopped sending for timeout={timeout}s after {total} bytes."
            ) from None
        except (OSError, http.client.HTTPException) as e:  # connection reset, incomplete read
            raise UnreachableError(f"{shown}: the connection broke after {total} bytes ({e}).") from None
        if not block:
            return total
        total += len(block)
        if total > limit:
            raise DownloadError(f"{shown}: more than {limit_name}={limit} bytes; refused.")
        sink(block)


def _check_length(response: Any, url: str, limit: int, limit_name: str) -> None:
    length = response.headers.get("Content-Length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise DownloadError(
            f"{redact(url)}: the server offers {length} bytes, more than {limit_name}={limit}; refused."
        )


def fetch_bytes(
    url: str, *, limit: int, limit_name: str, timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None
) -> bytes:
    """The body of ``url`` in memory, at most ``limit`` bytes."""
    total = deadline or deadline_for(None)

    def read(response: Any, at: float) -> bytes:
        chunks: list[bytes] = []
        _check_length(response, url, limit, limit_name)
        _stream(response, url, limit, limit_name, timeout, total, chunks.append)
        return b"".join(chunks)

    return _request(url, timeout, total, read)


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

    total = deadline or deadline_for(size)
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]

    def read(response: Any, at: float) -> Path:
        with tqdm(total=size, unit="B", unit_scale=True, desc=name, disable=not progress, leave=False) as bar:
            _check_length(response, url, size, "the size the index lists")

            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:

                    def sink(block: bytes) -> None:
                        f.write(block)
                        bar.update(len(block))

                    n = _stream(response, url, size, "the size the index lists", timeout, total, sink)
                if n != size:
                    raise DownloadError(f"{redact(url)}: got {n} bytes, the index lists {size} (truncated?).")

            atomic_write(dest, write)
        return dest

    return _request(url, timeout, total, read)
