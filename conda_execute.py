"""conda-execute: run a script in a throw-away conda environment that the script describes.

    conda-execute [OPTIONS] SCRIPT [ARGS...]

The script carries a metadata block, e.g.::

    # conda execute
    # env:
    #  - python >=3.8
    #  - numpy
    # channels:
    #  - conda-forge
    # run_with: [python]

The environment is named by a hash of that spec, created once under an env dir, and the script
is then exec'd in it with its arguments, stdin, stdout, signals and exit code untouched.
Environments unused for a while are garbage-collected. Standard library only, Python 3.8+.

The module follows the data: the script and its sources -> its metadata ('# conda execute'
block or PEP 723) -> Spec -> configuration -> lock file -> env name and prefix -> package
manager -> create under a lock -> record use -> activate and exec; then GC and listing; the
command line last, and a conda plugin. The warm path (the environment exists) imports nothing
beyond what a zipapp has already loaded (os, sys) plus _operator, _sha256 and fcntl: heavy
modules are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs 11-25 ms to import (3.8-3.13): only type checkers read it
    from typing import IO, Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

    Row = Tuple[int, int, str]  # a YAML line: (line number, indentation, text after it)
else:  # this shim runs in ~25 µs; collections.namedtuple would take ~1.2 ms for our dozen
    from _operator import itemgetter  # built in; operator.py is not loaded under -I -S

    class _Record(tuple):
        """The run-time base of every NamedTuple class: one generic __new__ for all.

        collections.namedtuple compiles a __new__ per class with eval (~0.1 ms each, a dozen
        classes on every start); this shares one, with the same behaviour for our uses.
        """

        __slots__ = ()  # each class sets _fields and _field_defaults

        def __new__(cls, *args, **kwargs):
            fields, defaults = cls._fields, cls._field_defaults
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__}() takes {len(fields)} values, got {len(args)}")
            values = list(args)
            for name in fields[len(args):]:
                if name in kwargs:
                    values.append(kwargs.pop(name))
                elif name in defaults:
                    values.append(defaults[name])
                else:
                    raise TypeError(f"{cls.__name__}() missing argument {name!r}")
            if kwargs:
                raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kwargs)}")
            return tuple.__new__(cls, values)

        def _replace(self, **changes):
            return type(self)(*[changes.pop(f, v) for f, v in zip(self._fields, self)],
                              **changes)

        def __repr__(self):
            items = ", ".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
            return f"{type(self).__name__}({items})"

    class _NamedTupleMeta(type):
        """`class X(NamedTuple): a: int = 0` as a _Record subclass, without typing."""

        def __new__(mcls, name, bases, ns):
            if not bases:
                return super().__new__(mcls, name, bases, ns)
            fields = tuple(ns.get("__annotations__", {}))
            defaults = {f: ns.pop(f) for f in fields if f in ns}
            body = {k: v for k, v in ns.items() if k not in ("__annotations__", "__dict__")}
            body.update({f: property(itemgetter(i), doc=f"Alias for field number {i}")
                         for i, f in enumerate(fields)})
            body.update(__slots__=(), _fields=fields, _field_defaults=defaults,
                        __match_args__=fields)
            return type(name, (_Record,), body)

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base class standing in for typing.NamedTuple at run time."""


# Exit codes. When the script runs, the exit code is the script's own.
EXIT_USAGE = 2  # bad command line, bad or missing metadata, unreadable script
EXIT_NO_CONDA = 69  # no conda, mamba or micromamba found
EXIT_CREATE_FAILED = 70  # the package manager could not create the environment
EXIT_ENV_DIR = 73  # the env dir cannot be created, written, or is not private
EXIT_BOOTSTRAP_FAILED = 74  # micromamba (no conda found) could not be downloaded, verified, installed
EXIT_BAD_ARCHIVE = 74  # a bundle's package archive is missing or does not match its lock
EXIT_BUSY = 75  # --force-env on an environment a running script uses
EXIT_NOT_EXECUTABLE = 126  # run_with[0] exists but cannot be executed
EXIT_NOT_FOUND = 127  # run_with[0] is neither in the environment nor on PATH

BLOCK_WORDS = frozenset({"conda execute", "conda execute:"})  # a header, after its comment prefix
BLOCK_KEYS = frozenset({"env", "channels", "run_with"})
MAX_BLOCK_LINES = 1000
MAX_LINE_BYTES = 64 * 1024
MAX_REMOTE_BYTES = 10 * 1024 * 1024
MICROMAMBA_URL = "https://micro.mamba.pm/api/micromamba/{platform}/latest"
MAX_BOOTSTRAP_BYTES = 128 * 1024 * 1024  # the archive, and bin/micromamba in it
BOOTSTRAP_TIMEOUT = 60.0  # seconds without data; the whole download gets 10 times that
DEFAULT_UNUSED_HOURS = 25.0
GC_EVERY_SECONDS = 3600
GC_GRACE_SECONDS = 60  # GC keeps an env created this recently (a run may be about to use it)
NAME_CHARS = frozenset("0123456789abcdef")
CONTROL_CHARS = frozenset(chr(i) for i in range(32)) | frozenset("\x7f")  # refused in metadata
MARKER = os.path.join("conda-meta", "conda-execute")  # JSON, but not *.json: conda reads those as package records
LOG_NAME = "usage.jsonl"
GC_STAMP = ".gc-stamp"
CREATE_LOCK = ".create.lock"  # NAME.create.lock: runs waiting for NAME's creation queue on it
PLATFORM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # (not on Windows)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
EXTENSION_RUNNERS = {  # run_with by file extension (words split on spaces)
    ".py": "python", ".pyw": "python", ".sh": "bash", ".bash": "bash", ".zsh": "zsh",
    ".R": "Rscript", ".r": "Rscript", ".pl": "perl", ".rb": "ruby", ".jl": "julia",
    ".js": "node", ".mjs": "node", ".cjs": "node", ".ts": "deno run", ".lua": "lua",
    ".php": "php", ".tcl": "tclsh", ".fish": "fish", ".ps1": "pwsh", ".awk": "awk -f",
    ".sed": "sed -f", ".hs": "runghc", ".go": "go run", ".java": "java", ".kts": "kotlin",
    ".groovy": "groovy", ".swift": "swift", ".exs": "elixir", ".erl": "escript",
    ".ml": "ocaml", ".raku": "raku", ".scm": "guile", ".el": "emacs --script", ".nu": "nu",
}
INLINE_FLAGS = {"perl": "-e", "ruby": "-e", "node": "-e", "julia": "-e", "Rscript": "-e"}


###############################################################################
# Errors #######################################################################
###############################################################################


class UsageError(Exception):
    """A problem the user can fix. str() gives 'FILE:LINE: message' (parts omitted when unknown)."""

    def __init__(self, message: str, path: str = "", line: int = 0, code: int = EXIT_USAGE):
        super().__init__(message)
        self.message, self.path, self.line, self.code = message, path, line, code

    def __str__(self) -> str:
        where = ":".join(p for p in (self.path, str(self.line) if self.line else "") if p)
        return f"{where}: {self.message}" if where else self.message


def _rx(pattern: str) -> Any:
    """A compiled regular expression; `re` is imported only by the paths that use one."""
    import re

    return re.compile(pattern)


def _say(message: str) -> None:
    """One line of progress or warning on stderr (stdout belongs to the script)."""
    sys.stderr.write(f"conda-execute: {message}\n")
    sys.stderr.flush()


###############################################################################
# Reading the script ###########################################################
###############################################################################


class Source(NamedTuple):
    """Where the script comes from: a file, inline code (-c), stdin (-) or a URL."""

    label: str  # what error messages and the usage log call it
    path: str  # the file the interpreter runs ("" for inline code)
    inline: str = ""  # the code given with -c
    fd: int = -1  # an open descriptor keeping a stdin or downloaded script alive across exec


def _open_script(path: str) -> IO[bytes]:
    """Open a regular file for reading, with one clear error for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError("no such file", path) from None
    except OSError as e:
        raise UsageError(f"cannot read: {e.strerror}", path) from None
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise UsageError("is a directory, not a script", path)
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("not a regular file (for a pipe, use '-' to read the script "
                         "from stdin)", path)
    try:
        return open(path, "rb")
    except OSError as e:
        raise UsageError(f"cannot read: {e.strerror}", path) from None


def iter_lines(f: IO[bytes], label: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, text) for each line, decoded as UTF-8, without its line ending.

    A line longer than MAX_LINE_BYTES is yielded as '' (it can hold no metadata); NUL bytes and
    undecodable text are errors, since they mean the file is not a script.
    """
    lineno = 0
    while True:
        raw = f.readline(MAX_LINE_BYTES)
        if not raw:
            return
        lineno += 1
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of an overlong line
                raw = f.readline(MAX_LINE_BYTES)
            yield lineno, ""
            continue
        if b"\0" in raw:
            raise UsageError("binary file (NUL byte), not a script", label, lineno)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("not valid UTF-8 text", label, lineno) from None
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield lineno, text.rstrip("\r\n")


###############################################################################
# Script sources: stdin and URLs ###############################################
###############################################################################


def unnamed_file() -> int:
    """A new unnamed read-write file: memfd on Linux (tempfile costs ~5 ms to import)."""
    try:
        return os.memfd_create("conda-execute")
    except (AttributeError, OSError):  # not Linux, or a kernel without memfd
        import tempfile

        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())


def _memfile(data: bytes) -> int:
    """An unnamed temporary file holding DATA; its /dev/fd path outlives exec."""
    fd, view = unnamed_file(), memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def source_from_stdin() -> Source:
    data = sys.stdin.buffer.read(MAX_REMOTE_BYTES + 1)
    if len(data) > MAX_REMOTE_BYTES:
        raise UsageError(f"script on stdin is larger than {MAX_REMOTE_BYTES} bytes", "<stdin>")
    fd = _memfile(data)
    return Source("<stdin>", f"/dev/fd/{fd}", fd=fd)


def source_from_url(url: str, allow_http: bool = False) -> Source:
    """Download an http(s) script completely (size cap, time limit) before anything runs.

    The limit is CONDA_EXECUTE_DOWNLOAD_TIMEOUT seconds, else 30, for the whole download
    (connecting and the headers included). https:// always; http:// to a loopback host, or
    anywhere with ALLOW_HTTP; a redirect must lead to a URL these rules accept, and never from
    https:// to http://.
    """
    import io

    check_script_url(url, url, allow_http)
    text = os.environ.get("CONDA_EXECUTE_DOWNLOAD_TIMEOUT", "") or "30"
    try:
        timeout = float(text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < 1e6:
        raise UsageError("CONDA_EXECUTE_DOWNLOAD_TIMEOUT must be a number of seconds > 0, "
                         f"got {text!r}")
    buf = io.BytesIO()
    download(url, buf, "script", MAX_REMOTE_BYTES, timeout, timeout,
             lambda new: check_script_url(url, new, allow_http),
             lambda reason: UsageError(reason, url))
    fd = _memfile(buf.getvalue())
    return Source(url, f"/dev/fd/{fd}", fd=fd)


def check_script_url(url: str, new: str, allow_http: bool) -> None:
    """Refuse to fetch a script from NEW (URL itself, or where URL redirected to)."""
    from urllib.parse import urlsplit

    scheme, host = urlsplit(new).scheme.lower(), (urlsplit(new).hostname or "").lower()
    moved = f"download failed: redirected to {new!r}; " if new != url else ""
    if scheme not in ("http", "https"):
        raise UsageError(f"{moved}only http:// and https:// URLs are supported", url)
    if scheme == "http" and url.lower().startswith("https:"):
        raise UsageError(f"{moved}an https:// script is never fetched over http://", url)
    if scheme == "http" and not (allow_http or host in LOOPBACK_HOSTS):
        raise UsageError(f"{moved}refusing plain http:// to a host other than this machine "
                         "(use https://, or allow it: --allow-http, CONDA_EXECUTE_ALLOW_HTTP=1 "
                         "or allow-http: true in a condarc)", url)


def download(url: str, out: IO[bytes], what: str, cap: int, timeout: float, deadline: float,
             check_url: Any, fail: Any, progress: Any = None) -> str:
    """Stream URL into OUT; return the sha256 of its bytes. Shared by scripts and the bootstrap.

    TIMEOUT bounds each wait, DEADLINE (seconds) the whole download: connecting, the TLS
    handshake, the request, the headers and the body. Each redirect target is given to
    CHECK_URL(new_url) before it is followed (it raises to refuse it). More than CAP bytes
    (announced or received) and fewer than Content-Length are errors, reported as FAIL(reason),
    e.g. "download failed: HTTP 404 Not Found" ("WHAT is larger than ...").
    PROGRESS(done, total), if given, is called after each chunk.
    """
    import time
    import urllib.error

    digest, done, total = _sha256(), 0, None
    end = time.monotonic() + deadline
    too_big = f"{what} is larger than {cap} bytes"
    try:
        with _deadline_opener(end, timeout, check_url).open(url) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise fail(too_big)
            while True:
                chunk = response.read1(1 << 16)  # what has arrived: a trickle cannot hide
                if not chunk:
                    break
                done += len(chunk)
                if done > cap:
                    raise fail(too_big)
                digest.update(chunk)
                out.write(chunk)
                if progress:
                    progress(done, total)
    except UsageError:
        raise
    except urllib.error.HTTPError as e:
        raise fail(f"download failed: HTTP {e.code} {e.reason}") from None
    except Exception as e:  # URLError, OSError, http.client.IncompleteRead and friends
        raise fail(_download_error(e, time.monotonic() >= end, deadline)) from None
    if total is not None and done != total:
        raise fail(f"download truncated ({done} of {total} bytes)")
    return digest.hexdigest()


def _download_error(e: Exception, late: bool, deadline: float) -> str:
    """What went wrong, in a few words."""
    lookup = getattr(getattr(e, "reason", None), "lookup_host", None) or getattr(
        e, "lookup_host", None)
    if lookup:  # a name server that did not answer in time (see _bounded_create_connection)
        waited = deadline if late else getattr(getattr(e, "reason", e), "lookup_waited", deadline)
        return f"download failed: timed out after {waited:g} s looking up {lookup}"
    if late:
        return f"download failed: timed out after {deadline:g} s"
    if isinstance(e, (OSError, ValueError)):  # URLError is an OSError
        return f"download failed: {getattr(e, 'reason', None) or e}"
    return f"download failed: {'truncated' if type(e).__name__ == 'IncompleteRead' else type(e).__name__}"


def _deadline_opener(end: float, timeout: float, check_url: Any) -> Any:
    """A urllib opener whose every wait on the network ends by END (time.monotonic()).

    Each name lookup, connect, send and read is given min(TIMEOUT, what is left), so neither a
    name server that never answers nor a server trickling its status line, headers or body a
    byte at a time holds anything past END. Redirect targets go to CHECK_URL first.
    """
    import http.client
    import socket
    import time
    import urllib.request

    def budget() -> float:
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        return min(timeout, left)

    connect_to = _bounded_create_connection(budget)

    class Timed:  # mixed into HTTPConnection and HTTPSConnection
        response_class = _budgeted_response(budget)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)  # type: ignore
            self._create_connection = connect_to  # the lookup too; SNI and Host keep the name

        def connect(self) -> None:
            self.timeout = budget()  # the TLS handshake (the connect takes its own budget)
            super().connect()  # type: ignore

        def send(self, data: Any) -> None:
            if self.sock:  # type: ignore  # else send() connects first
                self.sock.settimeout(budget())  # type: ignore
            super().send(data)  # type: ignore

    def handler(base: Any, conn: Any) -> Any:
        class Handler(base):  # type: ignore
            def do_open(self, _: Any, req: Any, **kwargs: Any) -> Any:
                return super().do_open(type("Conn", (Timed, conn), {}), req, **kwargs)
        return Handler

    class Checked(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore
            check_url(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    handlers = [Checked, handler(urllib.request.HTTPHandler, http.client.HTTPConnection)]
    if hasattr(http.client, "HTTPSConnection"):  # Python built with ssl
        handlers.append(handler(urllib.request.HTTPSHandler, http.client.HTTPSConnection))
    return urllib.request.build_opener(*handlers)


def _bounded_create_connection(budget: Any) -> Any:
    """socket.create_connection's replacement for _deadline_opener: the name lookup in a
    daemon thread waited for at most budget() seconds, then each address connected with what
    is left (budget() again: it raises once the deadline has passed)."""
    import _thread
    import socket

    def lookup(host: str, port: int) -> list:
        try:  # a numeric address needs no name server: no thread
            return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                      socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError, ValueError):
            pass
        done = _thread.allocate_lock()
        done.acquire()
        answer: list = []

        def resolve() -> None:  # runs in the thread; its answer is read only if in time
            try:
                answer.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
            except BaseException as e:  # handed to the caller
                answer.append(e)
            finally:
                done.release()

        waited = budget()
        _thread.start_new_thread(resolve, ())
        if not done.acquire(timeout=waited):
            late = socket.timeout(f"timed out after {waited:g} s looking up {host}")
            late.lookup_host, late.lookup_waited = host, waited  # type: ignore[attr-defined]
            raise late
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return answer[0]

    def create_connection(address: Any, timeout: Any = None, source_address: Any = None,
                          *args: Any, **kwargs: Any) -> Any:
        """TIMEOUT is ignored: each step takes budget() (it raises once the deadline passed,
        which ends the loop below with that timeout as the error)."""
        host, port = address
        error: Any = None
        for family, kind, proto, _, addr in lookup(host, port):
            sock = None
            try:
                sock = socket.socket(family, kind, proto)
                sock.settimeout(budget())
                if source_address:
                    sock.bind(source_address)
                sock.connect(addr)
                sock.settimeout(budget())  # what is left, for the TLS handshake that follows
                return sock
            except OSError as e:
                error = e
                if sock is not None:
                    sock.close()
        raise error if error is not None else OSError("getaddrinfo returned an empty list")

    return create_connection


def _budgeted_response(budget: Any) -> Any:
    """An HTTPResponse whose every socket read may wait budget() seconds, the reads that
    http.client makes for the status line and each header line included."""
    import http.client
    import io

    class Reader(io.RawIOBase):
        def __init__(self, raw: Any, sock: Any) -> None:
            self.raw, self.sock = raw, sock

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> Any:
            self.sock.settimeout(budget())
            return self.raw.readinto(b)

        def close(self) -> None:
            self.raw.close()
            super().close()

    class Response(http.client.HTTPResponse):
        def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp = io.BufferedReader(Reader(self.fp.detach(), sock))

    return Response


###############################################################################
# The metadata block: a small YAML subset ######################################
###############################################################################
# A block starts at a line '# conda execute' (or '# conda execute:'), behind any comment prefix
# ('#', '//', '--', ';', '%'...), and ends at the first line without that prefix. Inside, after
# the prefix, each line is one of:
#     key: scalar        key: [flow, list]        key:        - item        # comment
# Scalars are plain, 'single-quoted' or "double-quoted". Indentation does not matter.
# Values are kept with their line numbers so later checks can point at the line.

if TYPE_CHECKING:
    Item = Tuple[int, str]  # (line, text)


class Field(NamedTuple):
    """One key of the block: its line, and a scalar (str) or a list of (line, item)."""

    line: int
    value: object  # str or List[Item]


def _check_text(text: str, label: str, line: int) -> None:
    """A block line or item may hold tabs, but no other control character."""
    for ch in text:
        if ch in CONTROL_CHARS and ch != "\t":
            raise UsageError(f"control character {ch!r} in metadata", label, line)


def _skip_comment(src: str, pos: int, label: str, line: int) -> None:
    """After a value only spaces and a '# comment' may follow."""
    rest = src[pos:].strip()
    if rest and not rest.startswith("#"):
        raise UsageError(f"unexpected text after value: {rest!r}", label, line)


def _parse_quoted(src: str, pos: int, label: str, line: int) -> Tuple[int, str]:
    """Parse a quoted scalar starting at src[pos]; return (position after it, value)."""
    quote, pos, out = src[pos], pos + 1, []
    while pos < len(src):
        ch = src[pos]
        if ch == quote:
            if quote == "'" and src[pos + 1:pos + 2] == "'":  # '' is a literal quote
                out.append("'")
                pos += 2
                continue
            return pos + 1, "".join(out)
        if ch == "\\" and quote == '"':
            pos, ch = _parse_escape(src, pos, label, line)
        else:
            pos += 1
        out.append(ch)
    raise UsageError(f"unclosed {quote} quote", label, line)


ESCAPES = {"\\": "\\", '"': '"', "/": "/", "n": "\n", "t": "\t", "r": "\r", "0": "\0", " ": " "}


def _parse_escape(src: str, pos: int, label: str, line: int) -> Tuple[int, str]:
    """Parse a backslash escape at src[pos]; return (position after it, character)."""
    code = src[pos + 1:pos + 2]
    if code in ESCAPES:
        return pos + 2, ESCAPES[code]
    width = {"x": 2, "u": 4, "U": 8}.get(code, 0)
    digits = src[pos + 2:pos + 2 + width]
    if width and len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
        return pos + 2 + width, chr(int(digits, 16))
    raise UsageError(f"bad escape sequence '\\{code}'", label, line)


def _parse_plain(src: str, pos: int, stops: str, label: str, line: int) -> Tuple[int, str]:
    """Parse a plain scalar up to a ' #' comment or one of STOPS; reject mappings."""
    end = pos
    while end < len(src) and src[end] not in stops:
        if src[end] == "#" and end > pos and src[end - 1] in " \t":
            break
        end += 1
    value = src[pos:end].strip()
    if value.endswith(":") or ": " in value or ":\t" in value:
        raise UsageError(f"mappings are not supported here: {value!r}", label, line)
    return end, value


def _parse_scalar(src: str, pos: int, stops: str, label: str, line: int) -> Tuple[int, str]:
    """Parse one scalar (quoted or plain) at src[pos]."""
    if src[pos] in "'\"":
        return _parse_quoted(src, pos, label, line)
    if src[pos] == "[":
        raise UsageError("nested lists are not supported", label, line)
    if src[pos] == "{":
        raise UsageError("mappings are not supported", label, line)
    if src[pos] in "&*!|>%@`":
        raise UsageError(f"unsupported YAML syntax {src[pos]!r}; quote the value", label, line)
    return _parse_plain(src, pos, stops, label, line)


def _parse_flow_list(src: str, pos: int, label: str, line: int) -> Tuple[int, List[Item]]:
    """Parse '[a, "b", c]' starting at src[pos] == '['; return (position after ']', items)."""
    items: List[Item] = []
    pos += 1
    while True:
        while pos < len(src) and src[pos] in " \t":
            pos += 1
        if pos >= len(src) or src[pos] == "#":
            raise UsageError("unclosed '[' (flow lists must close on the same line)", label, line)
        if src[pos] == "]" and not items:
            return pos + 1, items
        pos, value = _parse_scalar(src, pos, ",]", label, line)
        items.append((line, value))
        while pos < len(src) and src[pos] in " \t":
            pos += 1
        if pos < len(src) and src[pos] == ",":
            pos += 1
        elif pos < len(src) and src[pos] == "]":
            return pos + 1, items
        else:
            raise UsageError("unclosed '[' (expected ',' or ']')", label, line)


def _parse_value(src: str, label: str, line: int) -> object:
    """Parse what follows 'key:' (src stripped): a scalar, a flow list, or '' for a block list."""
    if not src or src.startswith("#"):
        return ""
    if src[0] == "[":
        pos, items = _parse_flow_list(src, 0, label, line)
    else:
        pos, value = _parse_scalar(src, 0, "", label, line)
        items = value  # type: ignore[assignment]
    _skip_comment(src, pos, label, line)
    return items


def parse_block(lines: Iterable[Item], label: str, keys: frozenset = BLOCK_KEYS
                ) -> Dict[str, Field]:
    """Parse the text of block lines (what follows each line's '#') into {key: Field}.

    >>> parse_block([(2, " env: [python]")], "s.py")["env"].value
    [(2, 'python')]
    """
    fields: Dict[str, Field] = {}
    open_list: Optional[str] = None  # the key whose '- item' lines come next
    for line, text in lines:
        _check_text(text, label, line)
        src = text.strip()
        if not src or src.startswith("#"):
            continue
        if src == "-" or src.startswith(("- ", "-\t")):
            if open_list is None:
                raise UsageError("list item without a 'key:' line above it", label, line)
            item = src[1:].strip()
            if not item or item.startswith("#"):
                raise UsageError("empty list item", label, line)
            if item.startswith("- ") or item == "-":
                raise UsageError("nested lists are not supported", label, line)
            pos, value = _parse_scalar(item, 0, "", label, line)
            _skip_comment(item, pos, label, line)
            fields[open_list].value.append((line, value))  # type: ignore[attr-defined]
            continue
        key, colon, rest = src.partition(":")
        key = key.strip()
        if not colon or not key or not all(c.isalnum() or c in "_-" for c in key):
            raise UsageError(f"expected 'key: value' or '- item', got {src!r}", label, line)
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise UsageError(f"unknown key {key!r} (known keys: {known})", label, line)
        if key in fields:
            raise UsageError(f"duplicate key {key!r} (first on line {fields[key].line})",
                             label, line)
        value = _parse_value(rest.strip(), label, line)
        open_list = key if value == "" else None
        fields[key] = Field(line, [] if value == "" else value)
    return fields


def block_prefix(text: str) -> str:
    """The comment prefix of a block header line ('# conda execute', '// conda execute',
    '-- conda execute:', ...), or '' if TEXT is no header. A prefix is a run of characters
    that are neither letters, digits nor spaces: '#', '//', '--', ';', ';;', '%', '!', "'"...
    followed by white space.

    >>> block_prefix("  ;; conda execute"), block_prefix("#conda execute")
    (';;', '')
    """
    stripped = text.strip()
    end = 0
    while end < len(stripped) and not (stripped[end].isalnum() or stripped[end].isspace()):
        end += 1
    rest = stripped[end:]
    return stripped[:end] if end and rest[:1].isspace() and rest.strip() in BLOCK_WORDS else ""


def _block_lines(lines: Iterator[Item], label: str, prefix: str,
                 ended: Optional[List[Item]] = None) -> List[Item]:
    """Collect the block's lines (text after PREFIX) up to the first line without PREFIX (or
    a lock block's opener), which is appended to ENDED."""
    block: List[Item] = []
    for line, text in lines:
        if not _block_line(block, line, text, label, prefix):
            if ended is not None:
                ended.append((line, text))
            break
    return block


def _block_line(block: List[Item], line: int, text: str, label: str, prefix: str) -> bool:
    """Add one line to BLOCK; False if it ends the block (it does not start with PREFIX, or
    opens a lock block). At most MAX_BLOCK_LINES lines: a longer block is an error at its
    first line too many."""
    stripped = text.strip()
    if not stripped.startswith(prefix) or stripped.endswith(LOCK_OPENER):
        return False
    if len(block) >= MAX_BLOCK_LINES:
        raise UsageError(f"metadata block longer than {MAX_BLOCK_LINES} lines", label, line)
    block.append((line, stripped[len(prefix):]))
    return True


###############################################################################
# The spec: what the environment holds and how the script runs #################
###############################################################################


class Spec(NamedTuple):
    """A validated metadata block."""

    env: Tuple[str, ...]  # conda match specs, whitespace-normalised, in block order
    channels: Tuple[str, ...]
    run_with: Tuple[str, ...]  # the command the script is given to
    label: str  # the script, for messages
    line: int  # the line of the block header
    pip: Tuple[str, ...] = ()  # PEP 508 requirements (PEP 723 'dependencies'), installed by pip
    lock: Optional[Lock] = None  # the lock file the env is built from, if one applies
    entrypoint: Optional[Entrypoint] = None  # a conda-script's commands (run_with is then ())
    run_line: int = 0  # the line run_with comes from (1: the shebang), else the block's
    notes: Tuple[str, ...] = ()  # what reading it passed over, said with -v
    form: str = "conda-execute"  # the block's format, as --dry-run names it
    embedded: Optional[EmbeddedLock] = None  # a lock block inside the script, as read


def _items(field: Field, key: str, label: str, split: bool = False) -> Tuple[Item, ...]:
    """The (line, text) items of a list field; a scalar is an error unless SPLIT is given."""
    if isinstance(field.value, str):
        if not split:
            raise UsageError(f"{key} must be a list (e.g. '{key}: [a, b]' or '- a' lines)",
                             label, field.line)
        return tuple((field.line, word) for word in field.value.split())
    return tuple(field.value)  # type: ignore[arg-type]


def _words(field: Optional[Field], key: str, label: str, split: bool = False,
           required: bool = False, line: int = 0) -> Tuple[str, ...]:
    """Validate a list field: non-empty items that cannot be read as command-line options."""
    if field is None:
        if required:  # LINE: the block's header
            raise UsageError(f"the metadata block has no '{key}:' list", label, line)
        return ()
    items = _items(field, key, label, split)
    if not items:
        raise UsageError(f"{key} is empty", label, field.line)

    def fail(problem: str, detail: str, line: int) -> UsageError:
        message = {"control": f"control character {detail!r} in metadata",
                   "empty": f"empty item in {key}",
                   "option": f"{key} item {detail!r} starts with '-' (it would be read as an "
                             "option)"}[problem]
        return UsageError(message, label, line)

    return tuple(_list_item(text, line, key == "run_with" and i > 0, True, fail)
                 for i, (line, text) in enumerate(items))


def _list_item(text: str, at: Any, option_ok: bool, tab_ok: bool, fail: Any) -> str:
    """One item of a metadata list (a spec, a channel, a word of run_with), checked the same
    way in both formats: no control character (a tab only where TAB_OK), whitespace collapsed
    to single spaces (so 'numpy  >=1' and 'numpy >=1' name one env), not empty, and no leading
    '-' (it would be read as an option) unless OPTION_OK. Errors are FAIL(problem, detail, AT):
    problem "control" (detail: the character), "empty" or "option" (detail: the item).
    """
    for ch in text:
        if ch in CONTROL_CHARS and not (tab_ok and ch == "\t"):
            raise fail("control", ch, at)
    item = " ".join(text.split())
    if not item:
        raise fail("empty", item, at)
    if item.startswith("-") and not option_ok:
        raise fail("option", item, at)
    return item


def spec_from_fields(fields: Dict[str, Field], label: str, line: int) -> Spec:
    """Turn parsed block fields into a Spec (run_with may still be empty: see default_run_with)."""
    env = _words(fields.get("env"), "env", label, required=True, line=line)
    channels = _words(fields.get("channels"), "channels", label)
    run_with = _words(fields.get("run_with"), "run_with", label, split=True)
    return Spec(env, channels, run_with, label, line,
                run_line=fields["run_with"].line if run_with else line)


# Which commands start conda-execute itself (a shebang or run_with that does must never become
# the command a script is given to: conda-execute would exec itself on the script forever). A
# command starts us when, past `env [-S] [options] [NAME=VALUE...]`, its program is named
# conda-execute* or conda_execute* (any path), is `conda execute`, is a python running
# `-m conda_execute` or a file that is ours, or is itself a file that is ours: a zip whose
# __main__.py (the pyz's first member, stored) starts conda_execute, or a console script that
# imports it. A file is judged by its first bytes, not by its name.
OWN_FILE_MARKS = (b"conda_execute.console_main()", b"from conda_execute import")
PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "--check-hash-based-pycs"})  # take the next word
ENV_VALUE_OPTIONS = frozenset({"-u", "--unset", "-C", "--chdir"})


def _names_us(word: str) -> bool:
    base = os.path.basename(word)
    return base.startswith(("conda-execute", "conda_execute"))


def is_own_file(path: str) -> bool:
    """Whether PATH is conda-execute: a pyz (its __main__.py, stored first, runs
    conda_execute) or a console script importing it. Unreadable: False."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except (OSError, ValueError):
        return False
    if head[:2] == b"#!" or head[:2] == b"PK":
        return any(mark in head for mark in OWN_FILE_MARKS)
    return False


def split_shebang(text: str) -> List[str]:
    """A shebang's words as `env -S` splits them: white space, 'single' and "double" quotes
    and backslashes (enough to find the program and its file; nothing is expanded)."""
    words, word, quote, started, chars = [], "", "", False, iter(text)
    for ch in chars:
        if quote:
            if ch == quote:
                quote = ""
            else:
                word += next(chars, "") if ch == "\\" and quote == '"' else ch
        elif ch in "'\"":
            quote, started = ch, True
        elif ch == "\\":
            word, started = word + next(chars, ""), True
        elif ch.isspace():
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + ch, True
    return [*words, word] if started else words


def _past_env(words: List[str]) -> List[str]:
    """WORDS without a leading `env` and its options and NAME=VALUE assignments."""
    if not words or os.path.basename(words[0]) != "env":
        return words
    i = 1
    while i < len(words) and (words[i].startswith("-") or "=" in words[i]):
        i += 2 if words[i] in ENV_VALUE_OPTIONS else 1
    return words[i:]


def _python_runs_us(words: List[str]) -> bool:
    """Whether `python WORDS...` runs conda-execute: -m conda_execute, or a file of ours."""
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        word = words[i]
        if word.startswith(("-m", "-c")):
            module = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            return word.startswith("-m") and module in ("conda_execute", "conda_execute.__main__")
        i += 2 if word in PYTHON_VALUE_OPTIONS else 1
    return i < len(words) and (_names_us(words[i]) or is_own_file(words[i]))


def launches_us(words: List[str]) -> bool:
    """Whether the command WORDS (a shebang's, run_with) starts conda-execute (see above);
    a bare program name is looked up on PATH."""
    words = _past_env(words)
    if not words:
        return False
    program, base = words[0], os.path.basename(words[0])
    if _names_us(program) or (base == "conda" and words[1:2] == ["execute"]):
        return True
    if base.startswith(("python", "pypy")):
        return _python_runs_us(words[1:])
    found = program if os.sep in program else _which(program)
    return bool(found) and is_own_file(found)  # type: ignore[arg-type]


def default_run_with(spec: Spec, shebang: str, filename: str) -> Spec:
    """SPEC with run_with when its block has none: the shebang's command (run_line 1), unless
    it starts conda-execute, else the file extension's runner."""
    words = split_shebang(shebang[2:]) if shebang.startswith("#!") else []
    if words and not launches_us(words):
        return spec._replace(run_with=tuple(shebang[2:].split()), run_line=1)
    runner = EXTENSION_RUNNERS.get(os.path.splitext(filename)[1])
    if runner:
        return spec._replace(run_with=tuple(runner.split()))
    raise UsageError("cannot tell how to run this script: add 'run_with: [COMMAND]' to its "
                     "metadata block (or give it a known extension or a shebang)", spec.label,
                     spec.line)


###############################################################################
# PEP 723 inline script metadata (`# /// script`) ##############################
###############################################################################
#
# Flow: find_pep723 (lines -> TOML text) -> parse_toml (toml_subset; tomllib for what
# that refuses, on 3.11+) -> pep723_fields (dict -> conda specs, channels, pip requirements,
# run_with); _read_pep723 chains the three (and also watches for a '# conda execute' block).

# The spec's reference regex, one line at a time: the opener, and the closer.
PEP723_OPENER_RE = (r"# /// ([a-zA-Z0-9-]+)")
PEP723_CLOSER = "# ///"
# Bounds on what a block may hold before a TOML parser sees it (a real block is a few hundred
# bytes): its text, and the parts of one dotted key (tomllib's time and memory grow with their
# square: 32,700 parts took 20 s and 4 GB).
PEP723_MAX_CHARS = 64 * 1024
TOML_MAX_KEY_PARTS = 64
# Keys of the script block: PEP 723 defines the first three; the tables are ours.
PEP723_TOP_KEYS = frozenset({"dependencies", "requires-python", "tool"})
TOOL_CONDA_KEYS = frozenset({"dependencies", "channels"})
TOOL_CONDA_EXECUTE_KEYS = frozenset({"run_with"})
# requires-python: one PEP 440 clause, and the versions we can hand to conda.
PEP440_CLAUSE_RE = (r"\s*(~=|===|==|!=|<=|>=|<|>)\s*(\S+?)\s*")
PEP440_VERSION_RE = (r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?")
PEP440_PREFIX_RE = (r"[0-9]+(?:\.[0-9]+)*\.\*")
# The package name of a conda match spec, after an optional `channel::`.
CONDA_SPEC_NAME_RE = (r"(?:[^\s:]+::)?([A-Za-z0-9_][A-Za-z0-9_.-]*)")
# A warm run matches these by hand: importing re costs 5-7 ms (3.8-3.13), more than all the
# rest of a warm run's own work. tests/test_pep723.py holds each matcher to its regex.
DIGITS = frozenset("0123456789")
PEP723_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
PEP440_OPERATORS = ("~=", "===", "==", "!=", "<=", ">=", "<", ">")  # in PEP440_CLAUSE_RE's order
SPEC_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
SPEC_NAME_CHARS = SPEC_NAME_START | frozenset(".-")


def pep723_opener(line: str) -> str:
    """The TYPE of a `# /// TYPE` line (PEP723_OPENER_RE's group), else ''."""
    kind = line[6:] if line.startswith("# /// ") else ""
    return kind if kind and all(c in PEP723_TYPE_CHARS for c in kind) else ""


def pep440_clause(clause: str) -> Tuple[str, str]:
    """(operator, version) of one PEP 440 clause (PEP440_CLAUSE_RE's groups), else ('', '')."""
    text = clause.strip()
    for op in PEP440_OPERATORS:  # as the regex's alternation backtracks: '===' may be '==' '='
        version = text[len(op):].lstrip() if text.startswith(op) else ""
        if version and not any(c.isspace() for c in version):
            return op, version
    return "", ""


def _digits(text: str) -> bool:
    return bool(text) and all(c in DIGITS for c in text)


def _release(text: str) -> bool:
    """N(.N)*"""
    return all(map(_digits, text.split(".")))


def is_pep440_version(version: str) -> bool:
    """PEP440_VERSION_RE: N(.N)* and an optional aN, bN or rcN."""
    cut = next((i for i, c in enumerate(version) if c not in DIGITS and c != "."), len(version))
    pre = version[cut:]
    kind = "rc" if pre.startswith("rc") else pre[:1]
    return _release(version[:cut]) and (
        not pre or (kind in ("a", "b", "rc") and _digits(pre[len(kind):])))


def is_pep440_prefix(version: str) -> bool:
    """PEP440_PREFIX_RE: N(.N)*.*"""
    return version.endswith(".*") and _release(version[:-2])


def _name_end(text: str, start: int) -> int:
    """Where a package name ([A-Za-z0-9_][A-Za-z0-9_.-]*) starting at START ends (START: none)."""
    if start >= len(text) or text[start] not in SPEC_NAME_START:
        return start
    end = start + 1
    while end < len(text) and text[end] in SPEC_NAME_CHARS:
        end += 1
    return end


def _name_starts(spec: str) -> Tuple[int, ...]:
    """Where CONDA_SPEC_NAME_RE tries the name: after a leading `channel::`, then at 0."""
    channel, sep, _ = spec.partition("::")
    if sep and channel and not any(c == ":" or c.isspace() for c in channel):
        return (len(channel) + 2, 0)
    return (0,)


def spec_name(spec: str) -> str:
    """The package name CONDA_SPEC_NAME_RE matches at the start of SPEC ('' if none)."""
    for start in _name_starts(spec):
        end = _name_end(spec, start)
        if end > start:
            return spec[start:end]
    return ""


def _pep723_line(lineno: int, line: str) -> str:
    """One script line as the spec's regex sees it: no BOM, no line ending.

    iter_lines has already done this for a script file; find_pep723 does it again because it
    also stands alone and takes raw lines (the PEP 723 tests pass CRLF and keepends lines). It
    runs only on candidate lines (line 1 and '# /// ' lines) and inside blocks.
    """
    if lineno == 1 and line.startswith("\ufeff"):
        line = line[1:]
    if line.endswith("\n"):
        line = line[:-1]
    return line[:-1] if line.endswith("\r") else line


def _is_content_line(line: str) -> bool:
    """A line that may sit inside a block: `#` alone, or `# ` and any text."""
    return line == "#" or line.startswith("# ")


def find_pep723(lines: Iterable[tuple[int, str]], path: str) -> tuple[int, str] | None:
    """Find the PEP 723 `script` block: (line of `# /// script`, its TOML text) or None.

    `lines` yields (1-based number, text without newline); CRLF and a BOM on line 1
    are tolerated. Follows the specification's reference regex exactly:

    - an opener is exactly `# /// TYPE`; the block is the run of content lines
      (`#` or `# ...`) after it, and it ends at the LAST `# ///` of that run that
      has at least one content line before it (so `# ///` inside content is
      content when more content follows); no such `# ///`: no block (an
      unclosed block is ignored, not an error, as the spec says);
    - blocks of other types are skipped and never buffered; so is a run that a
      block's opener starts (the regex cannot match anything inside it);
    - a second closed `script` block raises UsageError (the spec's MUST).

    Reads to the end of `lines`: a second block can only be found there (pip and
    pipx do the same; uv stops at the first block and so misses it), and the
    caller has to look for a `# conda execute` block everywhere anyway. Memory
    stays bounded: only the `script` block's content is kept, at most
    PEP723_MAX_CHARS characters. Outside blocks a line costs one startswith (a
    120 MB, 2M-line script: 0.22 s, 22 kB). A caller that wants a cap on reading
    can pass `itertools.islice(lines, N)`.
    """
    found: tuple[int, str] | None = None
    kind = ""  # type of the block being read; "" outside blocks
    opener = count = close_at = size = 0
    content: list[str] = []
    keep = overflow = False
    for lineno, raw in lines:
        if not kind and lineno > 1 and not raw.startswith("# /// "):
            continue  # fast path: most lines of a big script are code
        line = _pep723_line(lineno, raw)
        if not kind:
            kind = pep723_opener(line)
            if kind:
                opener, count, close_at = lineno, 0, 0
                keep, overflow, content, size = kind == "script", False, [], 0
            continue
        if not _is_content_line(line):
            found = _end_pep723_block(found, kind, opener, content[:close_at] if close_at else None, path)
            kind = ""
            continue
        if line == PEP723_CLOSER and count:
            if overflow:
                raise UsageError(f"script block longer than {PEP723_MAX_CHARS} characters", path, opener)
            close_at = count
        count += 1
        if keep:
            content.append(line[2:])
            size += len(line)
            if size > PEP723_MAX_CHARS:  # keep what a closer already sealed, drop the rest
                keep, overflow, content = False, True, content[:close_at]
    if kind:
        found = _end_pep723_block(found, kind, opener, content[:close_at] if close_at else None, path)
    return found


def _end_pep723_block(
    found: tuple[int, str] | None, kind: str, opener: int, content: list[str] | None, path: str
) -> tuple[int, str] | None:
    """The result after a block ends: content is None for an unclosed block."""
    if kind != "script" or content is None:
        return found
    if found:
        raise UsageError(f"multiple script blocks (the first starts at line {found[0]}); keep one", path, opener)
    return opener, "".join(text + "\n" for text in content)


# TOML ########################################################################

TOML_LINE_RE = (r"\(at line (\d+), column \d+\)|\(at end of document\)")
TOML_SCAN_RE = (r"\"\"\"|'''|[\"'#.\n=,\[\]{}]")  # what starts a string or comment, ends a key
TOML_SCAN_CHARS = frozenset("\"'#.\n=,[]{}")  # _toml_token matches TOML_SCAN_RE by hand


def parse_toml(text: str, path: str, first_line: int) -> dict[str, Any]:
    """Parse TOML text whose line 1 is line `first_line` of the script.

    toml_subset reads it (tomllib costs 7-16 ms to import, with the re it imports); what that
    refuses goes to tomllib where Python has it (3.11+: dates and times, tomllib's own
    messages). Both give the same dict, and errors as UsageError at the same script line.
    """
    try:
        return toml_subset(text, path, first_line)
    except UsageError as error:
        refused = error
    try:
        import tomllib  # novm
    except ImportError:
        raise refused from None
    _check_key_parts(text, path, first_line)
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise UsageError("invalid TOML in script block: nested too deeply", path,
                         first_line) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _rx(TOML_LINE_RE).search(message)
        if not match:
            offset = 0
        elif match.group(1):
            offset = int(match.group(1)) - 1
        else:  # end of document: the line after the last one, like toml_subset
            offset = text.replace("\r\n", "\n").count("\n")
        message = message[: match.start()].rstrip() if match else message
        raise UsageError(f"invalid TOML in script block: {message}", path, first_line + offset) from None


def _check_key_parts(text: str, path: str, first_line: int) -> None:
    """Refuse a dotted key of more than TOML_MAX_KEY_PARTS parts, before any parser sees it.

    Counts the dots outside strings and comments between two characters that end a key
    (= , [ ] { } newline): a key's dots, or a float's one. Linear in the text.
    """
    dots, pos = 0, 0
    while True:
        token, pos = _toml_token(text, pos)
        if not token:
            return
        if token == ".":
            dots += 1
            if dots >= TOML_MAX_KEY_PARTS:
                raise UsageError(f"script block: a key of more than {TOML_MAX_KEY_PARTS} "
                                 "dotted parts", path, first_line + text.count("\n", 0, pos))
        elif token == "#":
            pos = text.find("\n", pos)
            if pos < 0:
                return
        elif token[0] in "\"'":
            pos = _toml_string_end(text, pos, token)
        else:
            dots = 0


def _toml_token(text: str, pos: int) -> Tuple[str, int]:
    """The next token TOML_SCAN_RE finds from POS and the position after it, else ('', POS)."""
    for i in range(pos, len(text)):
        char = text[i]
        if char in TOML_SCAN_CHARS:
            token = char * 3 if char in "\"'" and text.startswith(char * 3, i) else char
            return token, i + len(token)
    return "", pos


def _toml_string_end(text: str, pos: int, quote: str) -> int:
    """The position after the string that QUOTE opened just before POS (or the text's end)."""
    while True:
        end = text.find(quote, pos)
        if end < 0:
            return len(text)
        slash = end
        while quote[0] == '"' and text[slash - 1] == "\\":  # the opening quote stops this
            slash -= 1
        if (end - slash) % 2 == 0:  # not escaped
            pos = end + len(quote)
            for _ in range(2 if len(quote) == 3 else 0):  # """a""""" is a"" and its closer
                pos += text.startswith(quote[0], pos)
            return pos
        pos = end + 1


# A TOML reader that imports nothing (tomllib and its re cost 7-16 ms), shaped like tomli
# (hukkin/tomli, MIT) and raising at the same positions: strings (basic, literal,
# multi-line), integers, floats, booleans, arrays, inline tables, [tables], [[arrays of
# tables]], comments. Dates and times raise "unsupported". Every rule is a small function
# (src, pos) -> (pos, value); errors carry the position (_TomlError) and
# toml_subset turns it into a script line.

TOML_WS = frozenset(" \t")
TOML_WS_AND_NEWLINE = TOML_WS | frozenset("\n")
BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
KEY_INITIAL_CHARS = BARE_KEY_CHARS | frozenset("\"'")
HEXDIGIT_CHARS = frozenset("0123456789abcdefABCDEF")
ILLEGAL_STR_CHARS = CONTROL_CHARS - frozenset("\t")
ILLEGAL_MULTILINE_STR_CHARS = CONTROL_CHARS - frozenset("\t\n")
TOML_ESCAPES = {"\\b": "\b", "\\t": "\t", "\\n": "\n", "\\f": "\f", "\\r": "\r", '\\"': '"', "\\\\": "\\"}
TOML_DATETIME_RE = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")
TOML_NUMBER_RE = (
    r"0(?:x[0-9A-Fa-f](?:_?[0-9A-Fa-f])*|b[01](?:_?[01])*|o[0-7](?:_?[0-7])*)"  # hex, bin, oct
    r"|[+-]?(?:0|[1-9](?:_?[0-9])*)"  # decimal integer part
    r"((?:\.[0-9](?:_?[0-9])*)?(?:[eE][+-]?[0-9](?:_?[0-9])*)?)"  # fraction, exponent
)
TOML_SPECIAL_FLOATS = frozenset({"inf", "nan", "+inf", "+nan", "-inf", "-nan"})

if TYPE_CHECKING:
    Key = Tuple[str, ...]


class _TomlError(Exception):
    """A TOML syntax error at a position of the source."""
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos, self.message = pos, message


class _TomlDoc(NamedTuple):
    """The document being built, and the namespaces that can no longer be opened.

    `flags`: a tree of keys ([flags, {part: node}] nodes, so that a key costs its length, not
    the number of keys seen) marking EXPLICIT tables (opened by a header, or by dotted keys in
    an earlier section) and FROZEN ones (inline tables and arrays, and everything under them);
    `pending`: dotted-key tables that become explicit at the next header.
    """
    data: dict[str, Any]
    flags: list
    pending: set[Key]


TOML_EXPLICIT, TOML_FROZEN = 1, 2


def toml_subset(text: str, path: str, first_line: int) -> dict[str, Any]:
    """Parse the TOML that PEP 723 blocks use, without importing anything (parse_toml).

    Gives the dict tomllib would, or a UsageError at script line `first_line` +
    the TOML line of the problem; dates and times are "unsupported TOML".
    """
    src = type(text)(text.replace("\r\n", "\n"))  # keeps a Toml11 a Toml11
    _check_key_parts(src, path, first_line)
    try:
        return _toml_document(src)
    except RecursionError:
        raise UsageError("invalid TOML in script block: nested too deeply", path,
                         first_line) from None
    except _TomlError as exc:
        line = first_line + src.count("\n", 0, exc.pos)
        raise UsageError(f"invalid TOML in script block: {exc.message}", path, line) from None


def _toml_document(src: str) -> dict[str, Any]:
    """Parse statements (usually one a line) until the end of the source."""
    doc = _TomlDoc({}, [0, {}], set())
    header: Key = ()
    pos = 0
    while True:
        pos = _skip_chars(src, pos, TOML_WS)
        # Expect: end of document, end of line, comment, key/value, [table], [[array]].
        char = src[pos : pos + 1]
        if not char:
            return doc.data
        if char == "\n":
            pos += 1
            continue
        if char in KEY_INITIAL_CHARS:
            pos = _key_value_rule(src, pos, doc, header)
            pos = _skip_chars(src, pos, TOML_WS)
        elif char == "[":
            for key in doc.pending:
                _mark(doc.flags, key, TOML_EXPLICIT)
            doc.pending.clear()
            if src.startswith("[[", pos):
                pos, header = _array_table_rule(src, pos, doc)
            else:
                pos, header = _table_rule(src, pos, doc)
            pos = _skip_chars(src, pos, TOML_WS)
        elif char != "#":
            raise _TomlError(pos, "Invalid statement")
        pos = _toml_skip_comment(src, pos)
        # Expect: end of line or end of document.
        char = src[pos : pos + 1]
        if not char:
            return doc.data
        if char != "\n":
            raise _TomlError(pos, "Expected newline or end of document after a statement")
        pos += 1


def _skip_chars(src: str, pos: int, chars: frozenset) -> int:
    """The position of the first character at or after pos not in chars."""
    while pos < len(src) and src[pos] in chars:
        pos += 1
    return pos


def _skip_until(src: str, pos: int, expect: str, illegal: frozenset, error_on_eof: bool) -> int:
    """The position of `expect` from pos (or the end); no illegal character before it."""
    end = src.find(expect, pos)
    if end < 0:
        end = len(src)
        if error_on_eof:
            raise _TomlError(end, f"Expected {expect!r}")
    for bad in range(pos, end):
        if src[bad] in illegal:
            raise _TomlError(bad, f"Found invalid character {src[bad]!r}")
    return end


def _toml_skip_comment(src: str, pos: int) -> int:
    """Skip a `#` comment, up to (not over) its newline."""
    if src.startswith("#", pos):
        return _skip_until(src, pos + 1, "\n", ILLEGAL_STR_CHARS, False)
    return pos


def _skip_array_ws(src: str, pos: int) -> int:
    """Skip the whitespace, newlines and comments allowed between array items."""
    while True:
        before = pos
        pos = _toml_skip_comment(src, _skip_chars(src, pos, TOML_WS_AND_NEWLINE))
        if pos == before:
            return pos


def _is_frozen(frozen: set[Key], key: Key) -> bool:
    """Whether key is an inline table or array, or lies inside one (within an inline table)."""
    return any(key[:i] in frozen for i in range(1, len(key) + 1))


def _mark(flags: list, key: Key, flag: int) -> None:
    """Set FLAG on KEY in the tree of flags (see _TomlDoc)."""
    node = flags
    for part in key:
        node = node[1].setdefault(part, [0, {}])
    node[0] |= flag


def _marked(flags: list, key: Key, flag: int, inherited: bool = False) -> bool:
    """Whether KEY has FLAG (with INHERITED: or one of the tables above it has)."""
    node = flags
    for part in key:
        node = node[1].get(part)
        if node is None:
            return False
        if inherited and node[0] & flag:
            return True
    return bool(node[0] & flag)


def _unmark(flags: list, key: Key) -> None:
    """Forget the flags of KEY and of everything under it."""
    node = flags
    for part in key[:-1]:
        node = node[1].get(part)
        if node is None:
            return
    node[1].pop(key[-1], None)


def _get_or_create_nest(data: dict[str, Any], key: Key, access_lists: bool = True) -> dict[str, Any]:
    """The table at key, created as needed (the last item of an array of tables)."""
    cont: Any = data
    for part in key:
        cont = cont.setdefault(part, {})
        if access_lists and isinstance(cont, list):
            cont = cont[-1]
        if not isinstance(cont, dict):
            raise KeyError(part)
    return cont


def _table_rule(src: str, pos: int, doc: _TomlDoc) -> tuple[int, Key]:
    """`[a.b]`: open table a.b, which must not be open already."""
    pos, key = _parse_key(src, _skip_chars(src, pos + 1, TOML_WS))
    if _marked(doc.flags, key, TOML_EXPLICIT) or _marked(doc.flags, key, TOML_FROZEN, True):
        raise _TomlError(pos, f"Cannot declare {'.'.join(key)} twice")
    _mark(doc.flags, key, TOML_EXPLICIT)
    try:
        _get_or_create_nest(doc.data, key)
    except KeyError:
        raise _TomlError(pos, "Cannot overwrite a value") from None
    if not src.startswith("]", pos):
        raise _TomlError(pos, "Expected ']' at the end of a table declaration")
    return pos + 1, key


def _array_table_rule(src: str, pos: int, doc: _TomlDoc) -> tuple[int, Key]:
    """`[[a.b]]`: append a table to the array a.b and open it."""
    pos, key = _parse_key(src, _skip_chars(src, pos + 2, TOML_WS))
    if _marked(doc.flags, key, TOML_FROZEN, True):
        raise _TomlError(pos, f"Cannot mutate immutable namespace {'.'.join(key)}")
    _unmark(doc.flags, key)  # a fresh table: forget what was under key
    _mark(doc.flags, key, TOML_EXPLICIT)
    try:
        cont = _get_or_create_nest(doc.data, key[:-1])
        tables = cont.setdefault(key[-1], [])
        if not isinstance(tables, list):
            raise KeyError(key[-1])
        tables.append({})
    except KeyError:
        raise _TomlError(pos, "Cannot overwrite a value") from None
    if not src.startswith("]]", pos):
        raise _TomlError(pos, "Expected ']]' at the end of an array declaration")
    return pos + 2, key


def _key_value_rule(src: str, pos: int, doc: _TomlDoc, header: Key) -> int:
    """`a.b = value` in the table `header`."""
    pos, key, value = _parse_key_value_pair(src, pos)
    parent = header + key[:-1]
    for i in range(1, len(key)):
        if _marked(doc.flags, header + key[:i], TOML_EXPLICIT):
            raise _TomlError(pos, f"Cannot redefine namespace {'.'.join(header + key[:i])}")
        doc.pending.add(header + key[:i])
    if _marked(doc.flags, parent, TOML_FROZEN, True):
        raise _TomlError(pos, f"Cannot mutate immutable namespace {'.'.join(parent)}")
    try:
        nest = _get_or_create_nest(doc.data, parent)
    except KeyError:
        raise _TomlError(pos, "Cannot overwrite a value") from None
    if key[-1] in nest:
        raise _TomlError(pos, "Cannot overwrite a value")
    if isinstance(value, (dict, list)):
        _mark(doc.flags, header + key, TOML_FROZEN)
    nest[key[-1]] = value
    return pos


def _parse_key_value_pair(src: str, pos: int) -> tuple[int, Key, Any]:
    """`key = value`, returning the position after the value."""
    pos, key = _parse_key(src, pos)
    if not src.startswith("=", pos):
        raise _TomlError(pos, "Expected '=' after a key in a key/value pair")
    pos, value = _toml_value(src, _skip_chars(src, pos + 1, TOML_WS))
    return pos, key, value


def _parse_key(src: str, pos: int) -> tuple[int, Key]:
    """A dotted key: parts separated by `.`, with optional whitespace around dots."""
    pos, part = _parse_key_part(src, pos)
    key: Key = (part,)
    pos = _skip_chars(src, pos, TOML_WS)
    while src.startswith(".", pos):
        pos, part = _parse_key_part(src, _skip_chars(src, pos + 1, TOML_WS))
        key += (part,)
        pos = _skip_chars(src, pos, TOML_WS)
    return pos, key


def _parse_key_part(src: str, pos: int) -> tuple[int, str]:
    """A bare, 'literal' or "basic" key."""
    char = src[pos : pos + 1]
    if char and char in BARE_KEY_CHARS:
        end = _skip_chars(src, pos, BARE_KEY_CHARS)
        return end, src[pos:end]
    if char == "'":
        return _parse_literal_str(src, pos)
    if char == '"':
        return _parse_basic_str(src, pos + 1, False)
    raise _TomlError(pos, "Invalid initial character for a key part")


def _toml_value(src: str, pos: int) -> tuple[int, Any]:
    """Any value: string, boolean, array, inline table, number."""
    char = src[pos : pos + 1]
    if char == '"':
        if src.startswith('"""', pos):
            return _parse_multiline_str(src, pos, literal=False)
        return _parse_basic_str(src, pos + 1, False)
    if char == "'":
        if src.startswith("'''", pos):
            return _parse_multiline_str(src, pos, literal=True)
        return _parse_literal_str(src, pos)
    if src.startswith("true", pos):
        return pos + 4, True
    if src.startswith("false", pos):
        return pos + 5, False
    if char == "[":
        return _parse_array(src, pos)
    if char == "{":
        return _parse_inline_table(src, pos)
    if _rx(TOML_DATETIME_RE).match(src, pos):
        raise _TomlError(pos, "unsupported TOML before Python 3.11: dates and times (quote the value)")
    number = _rx(TOML_NUMBER_RE).match(src, pos)
    if number:
        text = number.group().replace("_", "")
        return number.end(), float(text) if number.group(1) else int(text, 0)
    for size in (3, 4):
        if src[pos : pos + size] in TOML_SPECIAL_FLOATS:
            return pos + size, float(src[pos : pos + size])
    raise _TomlError(pos, "Invalid value")


def _parse_array(src: str, pos: int) -> tuple[int, list[Any]]:
    """`[v, v, ...]` over any number of lines, with comments and a trailing comma."""
    array: list[Any] = []
    pos = _skip_array_ws(src, pos + 1)
    if src.startswith("]", pos):
        return pos + 1, array
    while True:
        pos, value = _toml_value(src, pos)
        array.append(value)
        pos = _skip_array_ws(src, pos)
        char = src[pos : pos + 1]
        if char == "]":
            return pos + 1, array
        if char != ",":
            raise _TomlError(pos, "Unclosed array")
        pos = _skip_array_ws(src, pos + 1)
        if src.startswith("]", pos):
            return pos + 1, array


class Toml11(str):
    """TOML source to read as TOML 1.1 (conda-script blocks): inline tables may span lines,
    hold comments and end with a comma; strings know the escapes \\e and \\xHH. The rules
    check the type of their source, so the 1.0 reader (tomllib's twin) stays as it is."""


def _parse_inline_table(src: str, pos: int) -> tuple[int, dict[str, Any]]:
    """`{k = v, k.k = v}` on one line, no trailing comma (TOML 1.0); in TOML 1.1, over any
    number of lines, with comments and a trailing comma."""
    table: dict[str, Any] = {}
    frozen: set[Key] = set()
    v11 = isinstance(src, Toml11)
    pos = _skip_array_ws(src, pos + 1) if v11 else _skip_chars(src, pos + 1, TOML_WS)
    if src.startswith("}", pos):
        return pos + 1, table
    while True:
        pos, key, value = _parse_key_value_pair(src, pos)
        if _is_frozen(frozen, key):
            raise _TomlError(pos, f"Cannot mutate immutable namespace {'.'.join(key)}")
        try:
            nest = _get_or_create_nest(table, key[:-1], access_lists=False)
        except KeyError:
            raise _TomlError(pos, "Cannot overwrite a value") from None
        if key[-1] in nest:
            raise _TomlError(pos, f"Duplicate inline table key {key[-1]!r}")
        nest[key[-1]] = value
        pos = _skip_array_ws(src, pos) if v11 else _skip_chars(src, pos, TOML_WS)
        char = src[pos : pos + 1]
        if char == "}":
            return pos + 1, table
        if char != ",":
            raise _TomlError(pos, "Unclosed inline table")
        if isinstance(value, (dict, list)):
            frozen.add(key)
        pos = _skip_array_ws(src, pos + 1) if v11 else _skip_chars(src, pos + 1, TOML_WS)
        if v11 and src.startswith("}", pos):
            return pos + 1, table


def _parse_literal_str(src: str, pos: int) -> tuple[int, str]:
    """'text': no escapes, one line."""
    end = _skip_until(src, pos + 1, "'", ILLEGAL_STR_CHARS, True)
    return end + 1, src[pos + 1 : end]


def _parse_multiline_str(src: str, pos: int, literal: bool) -> tuple[int, str]:
    """'''text''' or \"\"\"text\"\"\": a newline right after the opening quotes is dropped."""
    pos += 3
    if src.startswith("\n", pos):
        pos += 1
    if literal:
        delim = "'"
        end = _skip_until(src, pos, "'''", ILLEGAL_MULTILINE_STR_CHARS, True)
        pos, result = end + 3, src[pos:end]
    else:
        delim = '"'
        pos, result = _parse_basic_str(src, pos, True)
    for _ in range(2):  # up to two quotes just before the closing three belong to the text
        if not src.startswith(delim, pos):
            break
        pos, result = pos + 1, result + delim
    return pos, result


def _parse_basic_str(src: str, pos: int, multiline: bool) -> tuple[int, str]:
    """The text of a "basic" string from just after its opening quote(s)."""
    illegal = ILLEGAL_MULTILINE_STR_CHARS if multiline else ILLEGAL_STR_CHARS
    result = ""
    start = pos
    while True:
        char = src[pos : pos + 1]
        if not char:
            raise _TomlError(pos, "Unterminated string")
        if char == '"':
            if not multiline:
                return pos + 1, result + src[start:pos]
            if src.startswith('"""', pos):
                return pos + 3, result + src[start:pos]
            pos += 1
        elif char == "\\":
            result += src[start:pos]
            pos, text = _toml_escape(src, pos, multiline)
            result += text
            start = pos
        elif char in illegal:
            raise _TomlError(pos, f"Illegal character {char!r}")
        else:
            pos += 1


def _toml_escape(src: str, pos: int, multiline: bool) -> tuple[int, str]:
    """A backslash escape; in multi-line strings a line-ending backslash eats whitespace."""
    escape = src[pos : pos + 2]
    pos += 2
    if multiline and escape in ("\\ ", "\\\t", "\\\n"):
        if escape != "\\\n":
            pos = _skip_chars(src, pos, TOML_WS)
            char = src[pos : pos + 1]
            if not char:
                return pos, ""
            if char != "\n":
                raise _TomlError(pos, "Unescaped '\\' in a string")
            pos += 1
        return _skip_chars(src, pos, TOML_WS_AND_NEWLINE), ""
    if escape in ("\\u", "\\U"):
        size = 4 if escape == "\\u" else 8
        digits = src[pos : pos + size]
        if len(digits) != size or not HEXDIGIT_CHARS.issuperset(digits):
            raise _TomlError(pos, "Invalid hex value")
        pos += size
        code = int(digits, 16)
        if not (code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF):
            raise _TomlError(pos, "Escaped character is not a Unicode scalar value")
        return pos, chr(code)
    if escape in TOML_ESCAPES:
        return pos, TOML_ESCAPES[escape]
    if isinstance(src, Toml11) and escape == "\\e":
        return pos, "\x1b"
    if isinstance(src, Toml11) and escape == "\\x":
        digits = src[pos : pos + 2]
        if len(digits) != 2 or not HEXDIGIT_CHARS.issuperset(digits):
            raise _TomlError(pos, "Invalid hex value")
        return pos + 2, chr(int(digits, 16))
    raise _TomlError(pos, "Unescaped '\\' in a string")


# From metadata to an environment #############################################


def pep723_fields(
    data: dict[str, Any], path: str, line: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Map a parsed script block to (conda_specs, channels, pip_requirements, run_with).

    - `[tool.conda] dependencies` (conda match specs) and `channels`: the
      convention of conda-exec, so one script serves both tools;
    - `requires-python` becomes a `python` spec (see python_spec), unless
      `[tool.conda] dependencies` already names python: that one wins, as in
      conda-exec; requires-python is still checked;
    - top-level `dependencies` (PEP 508) are the pip requirements;
    - `[tool.conda-execute] run_with`: a list, or a string split on whitespace;
      () when absent (the caller then picks the interpreter).

    The env always gets a python (the script is Python): a bare `python` spec is
    added when nothing names python; `pip` is added when there are pip
    requirements and no conda spec names pip. Other `tool.*` tables are left
    alone (the spec says tools must not fail on them), and so are top-level keys
    the specification does not define (as uv does: see pep723_ignored); unknown
    keys in our two tables are errors, to catch typos. Errors: UsageError at
    `line` (the `# /// script` line).
    """
    def fail(message: str) -> UsageError:
        return UsageError(message, path, line)

    tool = _table(data, "tool", "tool", fail)
    conda = _table(tool, "conda", "[tool.conda]", fail)
    ours = _table(tool, "conda-execute", "[tool.conda-execute]", fail)
    _check_keys(conda, TOOL_CONDA_KEYS, "[tool.conda]", fail)
    _check_keys(ours, TOOL_CONDA_EXECUTE_KEYS, "[tool.conda-execute]", fail)

    specs = _strings(conda.get("dependencies", []), "[tool.conda] dependencies", fail)
    channels = _strings(conda.get("channels", []), "[tool.conda] channels", fail)
    pip = _strings(data.get("dependencies", []), "dependencies", fail)
    run_with = ours.get("run_with", [])
    if isinstance(run_with, str):
        run_with = run_with.split()
        if not run_with:
            raise fail("[tool.conda-execute] run_with: empty")
    run_with = _strings(run_with, "[tool.conda-execute] run_with", fail, options_after_first=True)
    if "run_with" in ours and not run_with:
        raise fail("[tool.conda-execute] run_with: empty")

    requires = data.get("requires-python")
    if requires is not None and not isinstance(requires, str):
        raise fail(f"requires-python: expected a string like \">=3.10\", got {_toml_type(requires)}")
    names = {_conda_spec_name(spec) for spec in specs}
    python = () if "python" in names else (python_spec(requires, path, line) if requires is not None else "python",)
    if requires is not None and python == ():
        python_spec(requires, path, line)  # still report a bad one
    extra_pip = ("pip",) if pip and "pip" not in names else ()
    return python + specs + extra_pip, channels, pip, run_with


def pep723_ignored(data: dict[str, Any]) -> Tuple[str, ...]:
    """The -v note on the top-level keys PEP 723 does not define (`authors`, `main`...): uv
    runs such scripts and ignores them, and so do we."""
    unknown = sorted(set(data) - PEP723_TOP_KEYS)
    return (f"ignored the script block's key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (PEP 723 defines {', '.join(sorted(PEP723_TOP_KEYS))})",
            ) if unknown else ()


def python_spec(requires_python: str, path: str, line: int) -> str:
    """The conda spec for a PEP 440 requires-python, e.g. ">=3.9,<3.13" -> "python >=3.9,<3.13".

    Clause by clause (comma-separated; whitespace ignored):
    `>=V >V <=V <V !=V ==V` are kept (conda has the same operators);
    `==V.*` -> `V.*` (conda reads `==V.*` as `==V`), `!=V.*` is kept;
    `~=V.N` -> `>=V.N,V.*` (its PEP 440 definition); `===V` and `~=V` with one
    part are errors. Versions are N(.N)* with an optional aN/bN/rcN (no epoch,
    no local or post or dev parts).
    """
    clauses = [_python_clause(c, requires_python, path, line) for c in requires_python.split(",")]
    return "python " + ",".join(clauses)


def _python_clause(clause: str, whole: str, path: str, line: int) -> str:
    """One PEP 440 clause as conda version-spec text."""
    op, version = pep440_clause(clause)
    if op == "===":
        raise UsageError(f"requires-python {whole!r}: '===' (arbitrary equality) has no conda equivalent", path, line)
    if op in ("==", "!=") and is_pep440_prefix(version):
        return version if op == "==" else op + version
    if not is_pep440_version(version):
        raise UsageError(
            f"requires-python {whole!r}: expected comma-separated clauses like '>=3.10' or '==3.11.*'", path, line
        )
    if op != "~=":
        return op + version
    parts = version.split(".")
    if len(parts) < 2:
        raise UsageError(f"requires-python {whole!r}: '~=' needs at least two version parts", path, line)
    return f">={version},{'.'.join(parts[:-1])}.*"


def _conda_spec_name(spec: str) -> str:
    """The lower-cased package name of a conda match spec ('' if it has none)."""
    return spec_name(spec).lower()


def _toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, for messages."""
    names = ((bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a float"))
    names += ((list, "an array"), (dict, "a table"))
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _check_keys(table: dict[str, Any], known: frozenset, where: str, fail: Any) -> None:
    """Reject keys of table not in known (sorted, so the first typo is stable)."""
    for key in sorted(set(table) - known):
        raise fail(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")


def _table(parent: dict[str, Any], key: str, where: str, fail: Any) -> dict[str, Any]:
    """parent[key] as a table ({} when absent)."""
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise fail(f"{where}: expected a table, got {_toml_type(value)}")
    return value


def _strings(value: Any, where: str, fail: Any, options_after_first: bool = False) -> tuple[str, ...]:
    """A list of strings checked by _list_item (no tabs: TOML spells one \\t on purpose); none
    may start with '-' (it would become an option of conda or pip), except, for a command,
    after the first.
    """
    if not isinstance(value, list):
        raise fail(f"{where}: expected an array of strings, got {_toml_type(value)}")

    def problem(kind: str, detail: str, index: int) -> UsageError:
        message = {"control": f"control character in {value[index].strip()!r}",
                   "empty": "empty string", "option": f"{detail!r} starts with '-'"}[kind]
        return fail(f"{where}[{index}]: {message}")

    items = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise fail(f"{where}[{index}]: expected a string, got {_toml_type(item)}")
        items.append(_list_item(item, index, options_after_first and index > 0, False, problem))
    return tuple(items)


###############################################################################
# conda-script blocks (pixi's format for any language) ########################
###############################################################################
# A block as pixi reads it (pixi issue 3751; pixi's crates/pixi_manifest/src/script/conda):
#     // /// conda-script                   the opener: PREFIX + '/// conda-script'; PREFIX
#     // channels = ["conda-forge"]         (the text before the marker, spaces included) holds
#     // entrypoint = "gcc -o ${CACHE}/m ${SCRIPT} && ${CACHE}/m"   no letter or digit
#     //                                    every line: PREFIX + TOML, or PREFIX alone
#     // [dependencies]
#     // gcc = "*"
#     // /// end-conda-script               the closer; at most one block per file
# The TOML inside is TOML 1.1 (Toml11). The entrypoint is a small shell language, parsed here
# (parse_entrypoint) and run by run_entrypoint without any system shell.

SCRIPT_OPENER = "/// conda-script"
SCRIPT_CLOSER = "/// end-conda-script"
CONDA_SCRIPT_KEYS = frozenset({"channels", "entrypoint", "dependencies", "tool"})
DEPENDENCY_KEYS = frozenset({"version", "build", "build-number", "channel", "subdir", "extras",
                             "flags", "md5", "sha256", "url", "when"})
DEPENDENCY_NAME_RE = (r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DEPENDENCY_FIELD_RES = {  # what a match spec can carry unquoted (no space, comma, bracket)
    "version": r"[A-Za-z0-9_.*+!<>=|~^,-]+", "build": r"[A-Za-z0-9_.*+!]+",
    "build-number": r"(?:[<>]=?|==|!=)?[0-9]+", "subdir": r"[a-z0-9]+-[a-z0-9_]+|noarch",
    "md5": r"[0-9a-fA-F]{32}", "sha256": r"[0-9a-fA-F]{64}", "channel": r"[^\s\[\],'\"]+",
    "url": r"(?:https?|file)://[^\s#]+\.(?:conda|tar\.bz2)"}
# The fields a warm run meets most, matched by hand (no re: see DIGITS): the characters of
# DEPENDENCY_FIELD_RES' plain character classes. tests/test_pep723.py holds them to it.
DEPENDENCY_FIELD_CHARS = {
    "version": frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.*+!<>=|~^,-"),
    "build": frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.*+!")}
IDENTIFIER_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
IDENTIFIER_CHARS = IDENTIFIER_START | DIGITS
WHEN_FAMILIES = {"__unix": ("linux", "osx"), "__linux": ("linux",), "__osx": ("osx",),
                 "__win": ("win",)}
ENTRYPOINT_FAMILIES = {"linux": "linux", "osx": "osx", "win": "win"}
CONDA_PLATFORMS = frozenset({
    "linux-32", "linux-64", "linux-aarch64", "linux-armv6l", "linux-armv7l", "linux-ppc64",
    "linux-ppc64le", "linux-riscv32", "linux-riscv64", "linux-s390x", "osx-64", "osx-arm64",
    "win-32", "win-64", "win-arm64", "emscripten-wasm32", "wasi-wasm32", "zos-z"})


class Block(NamedTuple):
    """A conda-script block: its opener's line, prefix and content lines (after the prefix)."""

    line: int
    prefix: str
    lines: List[Item]


class Entrypoint(NamedTuple):
    """A conda-script's command for this platform: commands joined by '&&', each a tuple of
    words, each word a tuple of ShellParts."""

    commands: Tuple[Tuple[Tuple[ShellPart, ...], ...], ...]
    line: int  # where the command is written, for messages
    text: str


def script_opener(text: str) -> str:
    """The prefix of a line that opens a conda-script block ('// ', '# ', '-- '...), or ''.

    >>> script_opener("// /// conda-script"), script_opener("x = '/// conda-script'")
    ('// ', '')
    """
    line = text.rstrip()
    if not line.endswith(SCRIPT_OPENER):
        return ""
    prefix = line[: -len(SCRIPT_OPENER)]
    return prefix if prefix and not any(c.isalnum() for c in prefix) else ""


def script_block_line(block: Block, line: int, text: str, label: str) -> bool:
    """Add one line to an open conda-script BLOCK; False when it is the closer. A line without
    the prefix, a second opener and more than MAX_BLOCK_LINES lines are errors."""
    prefix = block.prefix
    if text.startswith(prefix):
        rest = text[len(prefix):]
        if rest.rstrip() == SCRIPT_CLOSER:
            return False
        if rest.rstrip() == SCRIPT_OPENER:
            raise UsageError(f"a second conda-script block opens inside the one of line "
                             f"{block.line}; a file holds at most one", label, line)
    elif text.rstrip() == prefix.rstrip():
        rest = ""
    else:
        raise UsageError(f"unclosed conda-script block (line {block.line}): this line does not "
                         f"start with its prefix {prefix!r}; close the block with "
                         f"'{prefix}{SCRIPT_CLOSER}'", label, line)
    if len(block.lines) >= MAX_BLOCK_LINES:
        raise UsageError(f"conda-script block longer than {MAX_BLOCK_LINES} lines", label, line)
    block.lines.append((line, rest))
    return True


def conda_script_spec(block: Block, label: str, platform: str) -> Spec:
    """The Spec of a closed conda-script block, for PLATFORM (the entrypoint's key and 'when'
    conditions): specs from [dependencies], channels in order, the entrypoint parsed."""
    text = "".join(line_text + "\n" for _, line_text in block.lines)
    data = toml_subset(Toml11(text), label, block.line + 1)

    def fail(message: str, key: str = "", after: int = 0) -> UsageError:
        return UsageError(message, label, _key_line(block, key, after) if key else block.line)

    if is_pixi_form(data):
        return pixi_script_spec(data, block, label, platform, fail)
    for key in data:
        if key not in CONDA_SCRIPT_KEYS:
            raise fail(f"conda-script block: unknown key {key!r} (known: "
                       f"{', '.join(sorted(CONDA_SCRIPT_KEYS))}; other tools' settings go "
                       "under [tool.NAME])", key)
    _table(data, "tool", "conda-script block: tool", lambda m: fail(m, "tool"))
    if "channels" not in data:
        raise fail("conda-script block: no 'channels' (e.g. channels = [\"conda-forge\"])")
    channels = _strings(data["channels"], "channels", lambda m: fail(m, "channels"))
    if not channels:
        raise fail("channels: list at least one channel", "channels")
    deps = _table(data, "dependencies", "[dependencies]", lambda m: fail(m, "dependencies"))
    after = _key_line(block, "[dependencies]", 0)
    specs = tuple(spec for name, value in deps.items()
                  for spec in dependency_spec(name, value, platform,
                                              lambda m, n=name: fail(m, n, after)))
    return Spec(specs, channels, (), label, block.line,
                entrypoint=select_entrypoint(data, block, label, platform), form="conda-script")


# The form `pixi exec` implements (../shared/conda-script-dialects.md, B): [script] holds
# `channels` (required) and `entrypoint` (optional; [script.target.SELECTOR] entrypoint wins
# where SELECTOR matches); [dependencies] holds `name = "VALUE"` strings, and
# [dependencies.target.SELECTOR] more of them. VALUE means what rattler's lenient parse of
# `name=VALUE` means (pixi_dependency_spec writes that as conda reads it). The entrypoint is
# split on white space, ${SCRIPT} replaced by the script's path, or the path appended when it
# has none; without one the script runs as a '# conda execute' script does. Other keys are
# ignored (pixi's serde structs ignore them): said with -v.
PIXI_FORM = "conda-script (pixi exec)"
PIXI_FORM_KEYS = frozenset({"script", "dependencies"})
PIXI_SCRIPT_KEYS = frozenset({"channels", "entrypoint", "target"})
PIXI_SELECTORS = {"unix": ("linux", "osx"), "linux": ("linux",), "osx": ("osx",),
                  "win": ("win",)}


def is_pixi_form(data: dict) -> bool:
    """Whether a conda-script block is in pixi exec's form: a [script] table, or targets."""
    deps = data.get("dependencies")
    return "script" in data or (isinstance(deps, dict) and isinstance(deps.get("target"), dict))


def pixi_script_spec(data: dict, block: Block, label: str, platform: str, fail: Any) -> Spec:
    """The Spec of a conda-script block in pixi exec's form, for PLATFORM."""
    for key in ("channels", "entrypoint"):
        if key in data:
            raise fail(f"{key!r} at the top of a block with a [script] table mixes the two "
                       f"conda-script forms: move it into [script] (pixi exec's form) or drop "
                       "[script] (the documented form)", key)
    script = _table(data, "script", "[script]", lambda m: fail(m, "[script]"))
    if "script" not in data:
        raise fail("[dependencies.target.*] is pixi exec's form, which needs a [script] table "
                   "with channels = [...]", "[dependencies.target")
    if "channels" not in script:
        raise fail("[script]: no 'channels' (e.g. channels = [\"conda-forge\"])", "[script]")
    channels = _strings(script["channels"], "[script] channels", lambda m: fail(m, "channels"))
    entry = _pixi_targets(script, "[script]", platform, fail).get("entrypoint",
                                                                   script.get("entrypoint"))
    deps = _table(data, "dependencies", "[dependencies]", lambda m: fail(m, "dependencies"))
    wanted = {**{k: v for k, v in deps.items() if k != "target"},
              **_pixi_targets(deps, "[dependencies]", platform, fail)}
    specs = tuple(pixi_dependency(name, value, fail) for name, value in wanted.items())
    ignored = sorted(set(data) - PIXI_FORM_KEYS) + sorted(f"script.{k}" for k in script
                                                         if k not in PIXI_SCRIPT_KEYS)
    notes = (f"ignored {', '.join(map(repr, ignored))} (pixi exec reads [script] and "
             "[dependencies] only)",) if ignored else ()
    if entry is not None and (not isinstance(entry, str) or not entry.split()):
        raise fail("[script] entrypoint: expected a command (a non-empty string)", "entrypoint")
    return Spec(specs, channels, (), label, block.line, form=PIXI_FORM, notes=notes,
                entrypoint=pixi_entrypoint(entry, _key_line(block, "entrypoint", 0))
                if entry is not None else None)


def _pixi_targets(table: dict, where: str, platform: str, fail: Any) -> dict:
    """The entries of TABLE's [target.SELECTOR] tables that apply on PLATFORM, the most
    specific last (unix, then linux/osx/win, then the platform itself)."""
    targets = _table(table, "target", f"{where} target", lambda m: fail(m, "target"))
    family, merged = platform.split("-")[0], {}
    for selector in sorted(targets, key=lambda k: (k in CONDA_PLATFORMS, k != "unix")):
        if selector not in PIXI_SELECTORS and selector not in CONDA_PLATFORMS:
            raise fail(f"{where} target.{selector}: not a platform selector (unix, linux, osx, "
                       "win, or a platform such as linux-64)", f"[{where[1:-1]}.target.{selector}]")
        entries = _table(targets, selector, f"{where} target.{selector}",
                         lambda m: fail(m, "target"))
        if selector == platform or family in PIXI_SELECTORS.get(selector, ()):
            merged.update(entries)
    return merged


def pixi_dependency(name: str, value: Any, fail: Any) -> str:
    """One [dependencies] entry of pixi exec's form as a conda match spec."""
    if not isinstance(value, str):
        raise fail(f"[dependencies] {name}: pixi exec's form takes a string (\"*\", \">=1.2\"), "
                   f"got {_toml_type(value)}", name)
    try:
        return pixi_dependency_spec(name, value)
    except ValueError as e:
        raise fail(f"[dependencies] {name} = {value!r}: {e}", name) from None


def pixi_dependency_spec(name: str, value: str) -> str:
    """The match spec conda is given for pixi's `name = "VALUE"`: "*" or "" the bare name; an
    operator first (">=1.1", "==1.0", "<2,>=1") that version spec, as pixi means it (rattler's
    lenient `name=>=1.1`); anything else what rattler's lenient parse of `name=VALUE` means,
    written as conda reads it ("1.2" -> 1.2.*, "=1.2" -> ==1.2, "1.0 b0" -> ==1.0 b0).
    Raises ValueError for what has no such reading. Pure string work: check_specs checks the
    result with conda's grammar before an environment is made."""
    text = value.strip()
    if text in ("", "*"):
        return name
    if text[0] in OPERATOR_CHARS and not (text[0] == "=" and text[1:2] not in OPERATOR_CHARS):
        return f"{name} {text}"
    exact = text.startswith("=")
    body = text[1:] if exact else text
    if not body or "[" in body:
        raise ValueError(f"rattler cannot read '{name}={value}'")
    version, build = _pixi_split(body)
    version = _pixi_version(version, exact, build is not None)
    if build is None:
        return f"{name} {version}"
    if all(char.isalnum() or char in "_*" for char in build) and build.isascii():
        return f"{name} {version} {build}"
    if "'" in build or '"' in build or "]" in build:
        raise ValueError(f"unsupported build string '{build}' in '{name}={value}'")
    return f"{name}[version='{version}', build='{build}']"


def _pixi_split(body: str) -> Tuple[str, Optional[str]]:
    """Version and build of a pixi value: split at the first blank, else at the first '='."""
    parts = body.split(None, 1)
    if len(parts) == 2:
        return parts[0], parts[1].strip()
    for index in range(1, len(body) - 1):
        if body[index] == "=" and body[index - 1] not in "=!<>~,|" and body[index + 1] != "=":
            return body[:index], body[index + 1 :]
    return body, None


def _pixi_version(version: str, exact: bool, has_build: bool) -> str:
    """Rattler's lenient reading of the `=VERSION` after a name, as an explicit version spec."""
    pieces = []
    for index, piece in enumerate(_split_constraints(version)):
        if piece in (",", "|"):
            pieces.append(piece)
        elif index == 0:
            pieces.append(_pixi_first(piece, exact, has_build and version == piece))
        elif piece[0] in OPERATOR_CHARS:
            pieces.append(piece)
        else:
            pieces.append(_glob_or_exact(piece))
    for piece in pieces:
        if piece not in (",", "|") and "*" in piece.rstrip("*").rstrip("."):
            raise ValueError(f"'*' inside version '{version}' is not supported")
    return "".join(pieces)


def _split_constraints(version: str) -> list:
    """'1.2,<2|3' -> ['1.2', ',', '<2', '|', '3']; an empty constraint raises ValueError."""
    pieces, current = [], ""
    for char in version:
        if char in ",|":
            pieces += [current.strip(), char]
            current = ""
        else:
            current += char
    pieces.append(current.strip())
    if any(piece == "" for piece in pieces):
        raise ValueError(f"empty constraint in version '{version}'")
    return pieces


def _pixi_first(piece: str, exact: bool, single_with_build: bool) -> str:
    """The constraint glued to pixi's '=': '=1.2' alone means 1.2.*, '==1.2' or one with a build, ==1.2."""
    if piece[0] in OPERATOR_CHARS:
        raise ValueError(f"operator after '=' in '{piece}'")
    if exact or single_with_build:
        return _glob_or_exact(piece)
    if piece.endswith("*"):
        return _glob_or_exact(piece)
    return piece + ".*"


def _glob_or_exact(piece: str) -> str:
    """A bare version as rattler reads it: '1.2*' -> '1.2.*', '*' -> '*', '1.2' -> '==1.2'."""
    if piece == "*" or piece.endswith(".*"):
        return piece
    if piece.endswith("*"):
        return piece[:-1] + ".*"
    return "==" + piece


def pixi_entrypoint(text: str, line: int) -> Entrypoint:
    """pixi exec's entrypoint as one command: words split on white space, ${SCRIPT} the
    script's path (appended as the last word when the text has none), nothing else expanded."""
    words = tuple(tuple(part for i, piece in enumerate(word.split("${SCRIPT}"))
                        for part in ((ShellPart("var", "SCRIPT"),) if i else ()) +
                        (ShellPart("quoted", piece),))
                  for word in text.split())
    if "${SCRIPT}" not in text:
        words += ((ShellPart("var", "SCRIPT"),),)
    return Entrypoint((words,), line, text)


def _key_line(block: Block, key: str, after: int, default: int = 0) -> int:
    """The script line where KEY is written in BLOCK (at or after line AFTER): the line that
    starts with it, as 'key =', '"key" =' or '[key]'; else DEFAULT, or the block's opener."""
    for line, text in block.lines:
        word = text.strip()
        if line >= after and (word == key or (word.startswith((key, f'"{key}"', f"'{key}'"))
                                              and word.lstrip("\"'")[len(key):].lstrip("\"' \t")
                                              .startswith("="))):
            return line
    return default or block.line


def dependency_field_ok(key: str, text: str) -> bool:
    """Whether TEXT may stand unquoted as KEY in a match spec (DEPENDENCY_FIELD_RES[KEY])."""
    chars = DEPENDENCY_FIELD_CHARS.get(key)
    if chars is None:
        return bool(_rx(DEPENDENCY_FIELD_RES[key]).fullmatch(text))
    return bool(text) and all(c in chars for c in text)


def is_assignment(word: str) -> bool:
    """Whether WORD starts with NAME= (the regex [A-Za-z_][A-Za-z0-9_]*=, by hand)."""
    name, sep, _ = word.partition("=")
    return bool(sep and name and name[0] in IDENTIFIER_START
                and all(c in IDENTIFIER_CHARS for c in name))


def dependency_spec(name: str, value: Any, platform: str, fail: Any) -> Tuple[str, ...]:
    """The conda match spec of one [dependencies] entry (none if its 'when' does not hold here).

    A string is a version ('*' is any): 'numpy = ">=1.26"' -> 'numpy >=1.26'. A table takes
    pixi's keys: version, build, build-number, channel, subdir, md5, sha256 -> 'channel::name
    version build' or 'name[...]'; url (with md5) -> the package URL; when: '__unix', '__linux',
    '__osx' or '__win'. extras and flags have no conda spelling: errors, as is anything else.
    """
    if not name or _name_end(name, 0) != len(name):  # DEPENDENCY_NAME_RE
        raise fail(f"[dependencies]: {name!r} is not a package name (letters, digits, '-', "
                   "'_', '.')")
    if isinstance(value, str):
        value = {"version": value}
    if not isinstance(value, dict):
        raise fail(f"[dependencies] {name}: expected a version string or a table, got "
                   f"{_toml_type(value)}")
    table = {k: v for k, v in value.items() if k != "when"}
    _check_keys(table, DEPENDENCY_KEYS - {"when"}, f"[dependencies] {name}", fail)
    for key, item in table.items():
        if key in ("extras", "flags"):
            raise fail(f"[dependencies] {name}: {key!r} has no conda match spec spelling")
        text = str(item) if key == "build-number" and type(item) is int else item
        text = "".join(text.split()) if isinstance(text, str) else text
        if not isinstance(text, str) or not dependency_field_ok(key, text):
            raise fail(f"[dependencies] {name}: {key} {item!r} cannot be part of a conda match "
                       "spec")
        table[key] = text
    if "when" in value and not _when_holds(value["when"], platform, name, fail):
        return ()
    return (_match_spec(name, table, fail),)


def _when_holds(when: Any, platform: str, name: str, fail: Any) -> bool:
    """Whether a 'when' condition holds on PLATFORM; only the OS virtual packages are known."""
    if when not in WHEN_FAMILIES:
        raise fail(f"[dependencies] {name}: when = {when!r}: only "
                   f"{', '.join(repr(w) for w in WHEN_FAMILIES)} are supported")
    return platform.split("-")[0] in WHEN_FAMILIES[when]


def _match_spec(name: str, table: Dict[str, str], fail: Any) -> str:
    """One conda match spec from checked fields (see dependency_spec)."""
    if "url" in table:
        others = sorted(set(table) - {"url", "md5"})
        if others:
            raise fail(f"[dependencies] {name}: url goes with md5 only, not {others[0]!r}")
        return table["url"] + (f"#{table['md5']}" if "md5" in table else "")
    channel = f"{table['channel']}::" if "channel" in table else ""
    version = table.get("version", "*")
    if version.startswith("-"):
        raise fail(f"[dependencies] {name}: version {version!r} starts with '-'")
    extra = [f"{key.replace('-', '_')}={table[key]}"
             for key in ("build-number", "subdir", "md5", "sha256") if key in table]
    if extra:
        fields = [f"version='{version}'"] if version != "*" else []
        fields += [f"build='{table['build']}'"] if "build" in table else []
        return f"{channel}{name}[{','.join(fields + extra)}]"
    words = [channel + name] + ([version] if version != "*" or "build" in table else [])
    return " ".join(words + ([table["build"]] if "build" in table else []))


def select_entrypoint(data: dict, block: Block, label: str, platform: str) -> Entrypoint:
    """The entrypoint for PLATFORM: a string, or a table whose most specific key matches
    (linux-64, then linux/osx/win, then unix). Every command in the table is parsed, so a bad
    one is reported on any machine."""
    where = _key_line(block, "entrypoint", 0)
    value = data.get("entrypoint")
    if value is None:
        raise UsageError("conda-script block: no 'entrypoint' (e.g. entrypoint = "
                         "\"python ${SCRIPT}\")", label, block.line)
    table = value if isinstance(value, dict) else {"": value}
    if not table:
        raise UsageError("entrypoint: the table names no platform", label, where)
    found: Dict[str, Entrypoint] = {}
    for key, command in table.items():
        line = _key_line(block, key, where, where) if key else where
        if key and key != "unix" and key not in ENTRYPOINT_FAMILIES and key not in CONDA_PLATFORMS:
            raise UsageError(f"entrypoint: {key!r} is neither a platform family (unix, linux, "
                             "osx, win) nor a conda platform (linux-64, osx-arm64...)", label, line)
        if not isinstance(command, str):
            raise UsageError(f"entrypoint{'.' + key if key else ''}: expected a string or a "
                             f"table of platforms, got {_toml_type(command)}", label, line)
        found[key] = Entrypoint(parse_entrypoint(command, label, line), line, command)
    family = platform.split("-")[0]
    for key in ("", platform, family, "unix" if family != "win" else ""):
        if key in found:
            return found[key]
    raise UsageError(f"entrypoint: no command for this platform ({platform}); add a "
                     f"'{platform}', '{family}' or 'unix' key", label, where)


# The entrypoint's shell language (pixi's: crates/pixi_..._shell): words split on white
# space; 'single quotes' keep everything; "double quotes" keep everything but ${VAR} and
# $(...); ${SCRIPT} and ${CACHE} are the only variables; $(commands) is replaced by their
# output (split into words unless quoted); '&&' runs the next command if this one succeeded.
# Nothing else: no pipes, redirects, globs, ';', '||', '&', subshells or assignments.

ENTRY_VARIABLES = ("SCRIPT", "CACHE")
MAX_SUBSTITUTION_DEPTH = 64  # pixi's limit
SHELL_STOPS = frozenset(" \t\n\r\f\v&)|;<>`")
SHELL_REFUSED = {
    "|": "pipes are not supported", ";": "';' is not supported; join commands with '&&'",
    "<": "redirects are not supported", ">": "redirects are not supported",
    "`": "backticks are not supported; use $(...)", "(": "subshells are not supported",
    "*": "globs are not supported; quote the word to pass it as it is",
    "?": "globs are not supported; quote the word to pass it as it is",
    ")": "unexpected ')'", "&": "'&' is not supported; join commands with '&&'",
}


class ShellPart(NamedTuple):
    """A piece of a word: kind "text", "quoted" ('...': kept, may be empty), "var" (value: the
    name), "double" ("...": value: its parts) or "sub" ($(...): value: its commands)."""

    kind: str
    value: Any
    source: str = ""  # a $(...) as written, for --dry-run


class _ShellError(Exception):
    """An entrypoint syntax error at a position of the command."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos, self.message = pos, message


def parse_entrypoint(text: str, label: str, line: int) -> Tuple[Tuple[Tuple[ShellPart, ...], ...], ...]:
    """The commands of an entrypoint, or a UsageError at LINE naming the column."""
    try:
        return _shell_sequence(text, 0, 0, -1)[1]
    except _ShellError as e:
        raise UsageError(f"entrypoint: {e.message} (column {e.pos + 1} of {text!r})",
                         label, line) from None


def _shell_sequence(src: str, pos: int, depth: int, opened: int) -> Tuple[int, tuple]:
    """Commands joined by '&&', up to the end, or (inside '$(' at OPENED) up to its ')'."""
    commands: list = []
    words: list = []
    while True:
        pos = _skip_chars(src, pos, frozenset(" \t\n\r\f\v"))
        char = src[pos : pos + 1]
        if not char or (char == ")" and opened >= 0):
            if not char and opened >= 0:
                raise _ShellError(opened, "unclosed '$('")
            if not words:
                raise _ShellError(pos, "expected a command")
            commands.append(_shell_command(words, src, pos))
            return pos, tuple(commands)
        if src.startswith("&&", pos):
            if not words:
                raise _ShellError(pos, "expected a command before '&&'")
            commands.append(_shell_command(words, src, pos))
            words, pos = [], pos + 2
        elif src.startswith("||", pos):
            raise _ShellError(pos, "'||' is not supported")
        elif char in SHELL_REFUSED:
            raise _ShellError(pos, SHELL_REFUSED[char])
        else:
            pos, word = _shell_word(src, pos, depth)
            words.append(word)


def _shell_command(words: list, src: str, pos: int) -> tuple:
    """A command's words; one that starts with NAME=value would be an assignment: refused."""
    first = words[0][0]
    if first.kind == "text" and is_assignment(first.value):
        raise _ShellError(pos, f"{first.value!r} looks like a variable assignment, which the "
                               "entrypoint cannot do")
    return tuple(words)


def _shell_word(src: str, pos: int, depth: int) -> Tuple[int, Tuple[ShellPart, ...]]:
    """One word: text, 'single', "double", ${VAR} and $(...) pieces up to a space or operator."""
    parts: List[ShellPart] = []
    while pos < len(src) and src[pos] not in SHELL_STOPS:
        char = src[pos]
        if char == "'":
            end = src.find("'", pos + 1)
            if end < 0:
                raise _ShellError(pos, "unclosed ' quote")
            parts.append(ShellPart("quoted", src[pos + 1 : end]))
            pos = end + 1
        elif char == '"':
            pos, inner = _shell_double(src, pos, depth)
            parts.append(ShellPart("double", inner))
        elif char == "$":
            pos, part = _shell_dollar(src, pos, depth)
            parts.append(part)
        elif char in SHELL_REFUSED:
            raise _ShellError(pos, SHELL_REFUSED[char])
        else:
            end = pos
            while end < len(src) and src[end] not in SHELL_STOPS and src[end] not in "'\"$*?(":
                end += 1
            parts.append(ShellPart("text", src[pos:end]))
            pos = end
    return pos, tuple(parts)


def _shell_double(src: str, pos: int, depth: int) -> Tuple[int, Tuple[ShellPart, ...]]:
    """A "double-quoted" piece from its opening quote: text, ${VAR} and $(...) parts."""
    parts: List[ShellPart] = []
    start, at = pos, pos + 1
    while True:
        end = min((i for i in (src.find('"', at), src.find("$", at)) if i >= 0), default=-1)
        if end < 0:
            raise _ShellError(start, 'unclosed " quote')
        if end > at:
            parts.append(ShellPart("text", src[at:end]))
        if src[end] == '"':
            return end + 1, tuple(parts)
        at, part = _shell_dollar(src, end, depth)
        parts.append(part)


def _shell_dollar(src: str, pos: int, depth: int) -> Tuple[int, ShellPart]:
    """${NAME} (SCRIPT or CACHE) or $(commands) at src[pos] == '$'."""
    if src.startswith("${", pos):
        end = src.find("}", pos)
        if end < 0:
            raise _ShellError(pos, "unclosed '${'")
        name = src[pos + 2 : end]
        if name not in ENTRY_VARIABLES:
            raise _ShellError(pos, f"unknown variable ${{{name}}} (the entrypoint has "
                                   "${SCRIPT} and ${CACHE})")
        return end + 1, ShellPart("var", name)
    if src.startswith("$(", pos):
        if depth >= MAX_SUBSTITUTION_DEPTH:
            raise _ShellError(pos, f"$(...) nested more than {MAX_SUBSTITUTION_DEPTH} deep")
        end, commands = _shell_sequence(src, pos + 2, depth + 1, pos)
        return end + 1, ShellPart("sub", commands, src[pos : end + 1])
    raise _ShellError(pos, "'$' must be followed by {NAME} or (: write ${SCRIPT}, ${CACHE} "
                           "or $(command)")


def expand_word(word: Tuple[ShellPart, ...], variables: Dict[str, str], substitute: Any
                ) -> List[str]:
    """The arguments a word gives: variables and quoted text never split; the output of an
    unquoted $(...) (SUBSTITUTE(part) -> str) splits on white space and may give none."""
    args: List[str] = []
    current, kept = "", False
    for part in word:
        if part.kind in ("text", "quoted"):
            current, kept = current + part.value, kept or part.kind == "quoted"
        elif part.kind == "var":
            current += variables[part.value]
        elif part.kind == "double":
            kept = True
            current += "".join(p.value if p.kind == "text" else variables[p.value]
                               if p.kind == "var" else substitute(p) for p in part.value)
        else:
            output = substitute(part)
            if output[:1].isspace() and current:
                args, current = [*args, current], ""
            for i, piece in enumerate(output.split()):
                if i:
                    args, current = [*args, current], ""
                current += piece
            if output[-1:].isspace() and current:
                args, current = [*args, current], ""
    return args + ([current] if current or kept else [])


def shown_command(words: tuple, variables: Dict[str, str]) -> List[str]:
    """A command as --dry-run shows it: variables substituted, each $(...) as written."""
    return [arg for word in words for arg in expand_word(
        tuple(ShellPart("quoted", p.source) if p.kind == "sub" else p for p in word),
        variables, lambda p: p.source)]


###############################################################################
# Finding the metadata: '# conda execute', PEP 723 or conda-script ############
###############################################################################

HOW_TO = ("no '# conda execute' metadata block; add one at the top, e.g.\n"
          "  # conda execute\n  # env:\n  #  - python >=3.8\n  # run_with: [python]")


class _Watch:
    """Passes lines through, noting on the way the first '# conda execute' block (HEADER, BLOCK),
    the conda-script block (SCRIPT, checked as it is read) and the first '# /// script' line
    outside it (PEP723: pixi counts any such line as a PEP 723 block)."""

    def __init__(self, lines: Iterator[Item], label: str) -> None:
        self.lines, self.label, self.header, self.block = lines, label, 0, []  # type: List[Item]
        self.script: Optional[Block] = None
        self.pep723 = 0
        self.lock: Optional[EmbeddedLock] = None

    def __iter__(self) -> Iterator[Item]:
        prefix, inside = "", False
        for line, text in self.lines:
            if inside:
                inside = script_block_line(self.script, line, text, self.label)  # type: ignore
                yield line, text
                continue
            if prefix and not _block_line(self.block, line, text, self.label, prefix):
                prefix = ""  # collected as read_spec's _block_lines does, with its length limit
            if "///" in text and not inside and not self.lock and (
                    lock_opener(text) or text.rstrip() == CONDA_EXEC_OPENER):
                self.lock = read_lock_block(self.lines, (line, text), self.label)
                yield line, text
                for n, t in self.lock.lines:
                    yield n, self.lock.prefix + t
                yield self.lock.end, self.lock.prefix + LOCK_CLOSER
                continue
            if "///" in text:
                inside = self._opens_script(line, text)
            if not self.header and "conda execute" in text and not inside:
                prefix = block_prefix(text)
                self.header = line if prefix else 0
            yield line, text
        if inside:
            closer = self.script.prefix + SCRIPT_CLOSER  # type: ignore[union-attr]
            raise UsageError(f"unclosed conda-script block: no {closer!r} line", self.label,
                             self.script.line)  # type: ignore[union-attr]

    def _opens_script(self, line: int, text: str) -> bool:
        """Whether TEXT opens the conda-script block (a second one is an error)."""
        opener = script_opener(text)
        if opener and self.script:
            raise UsageError(f"a second conda-script block (the first starts at line "
                             f"{self.script.line}); a file holds at most one", self.label, line)
        if opener:
            self.script = Block(line, opener, [])
        elif not self.pep723 and text.rstrip() == "# /// script":
            self.pep723 = line
        return bool(opener)


def read_spec(lines: Iterator[Item], label: str, filename: str) -> Spec:
    """Find and parse the script's metadata; fill in run_with.

    A '# conda execute' block (behind any comment prefix) ends the reading (a huge script is
    not read whole). PEP 723 '# /// script' and conda-script blocks are read per their
    specifications, to the end of the file (a second block is an error). Two blocks that each
    describe the environment are an error at the second.
    """
    shebang = ""
    for line, text in lines:
        if line == 1:
            shebang = text
        prefix = block_prefix(text) if "conda execute" in text else ""
        if prefix:
            ended: List[Item] = []
            block = parse_block(_block_lines(lines, label, prefix, ended), label)
            spec = spec_from_fields(block, label, line)
            if not spec.run_with:
                spec = default_run_with(spec, shebang, filename)
            if ended and lock_opener(ended[0][1]):  # a lock block right after the block
                spec = spec._replace(embedded=read_lock_block(lines, ended[0], label))
            return spec
        if text.startswith("# /// ") or ("///" in text and script_opener(text)):
            return _read_blocks(_prepend((line, text), lines), label, shebang, filename)
    raise UsageError(HOW_TO, label)


def lock_opener(text: str) -> str:
    """The prefix of a line that opens a lock block ('# ', '// '...), or ''."""
    line = text.rstrip()
    if not line.endswith(LOCK_OPENER):
        return ""
    prefix = line[: -len(LOCK_OPENER)].lstrip()
    return prefix if prefix and not any(c.isalnum() for c in prefix) else ""


def read_lock_block(lines: Iterator[Item], opener: Item, label: str) -> EmbeddedLock:
    """The lock block OPENER starts (ours, or conda-exec's): its lines up to PREFIX + '///'
    (each PREFIX + text, or the prefix alone); a line without the prefix, or no closer, is an
    error."""
    exec_lock = opener[1].rstrip() == CONDA_EXEC_OPENER
    prefix = "# " if exec_lock else lock_opener(opener[1])
    body: List[Item] = []
    for line, text in lines:
        text = text.strip()
        if text == prefix + LOCK_CLOSER or text == prefix.rstrip() + LOCK_CLOSER:
            return EmbeddedLock(opener[0], prefix, body, line,
                                "conda-exec" if exec_lock else "conda-execute")
        if not (text.startswith(prefix) or text == prefix.rstrip()) or \
                len(body) > 100 * MAX_BLOCK_LINES:
            break
        body.append((line, text[len(prefix):]))
    raise UsageError(f"unclosed lock block: no {prefix + LOCK_CLOSER!r} line", label, opener[0])


def _prepend(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def _read_blocks(lines: Iterator[Item], label: str, shebang: str, filename: str) -> Spec:
    """The Spec of a script whose first metadata is a '# /// TYPE' line (maybe no script block)
    or a conda-script block: read to the end, then exactly one block may describe the env."""
    watch = _Watch(lines, label)
    found = find_pep723(watch, label)
    blocks = [("a PEP 723 script block", found[0])] if found else []
    if watch.script and watch.pep723 and not found:
        blocks.append(("a PEP 723 '# /// script' line", watch.pep723))
    blocks += [("a '# conda execute' block", watch.header)] if watch.header else []
    blocks += [("a conda-script block", watch.script.line)] if watch.script else []
    blocks.sort(key=lambda b: b[1])
    if len(blocks) > 1:
        raise UsageError(f"{blocks[1][0]} after {blocks[0][0]} (line {blocks[0][1]}): only one "
                         "may describe the environment; keep one of them", label, blocks[1][1])
    if watch.header:  # a '# /// other' block, then a '# conda execute' block
        spec = spec_from_fields(parse_block(watch.block, label), label, watch.header)
        spec = spec if spec.run_with else default_run_with(spec, shebang, filename)
        return spec._replace(embedded=watch.lock)
    if watch.script:
        spec = conda_script_spec(watch.script, label, conda_platform())
        spec = spec if spec.entrypoint else default_run_with(spec, shebang, filename)
        return spec._replace(embedded=watch.lock)
    if not found:
        raise UsageError(HOW_TO, label)
    opener, text = found
    data = parse_toml(text, label, opener + 1)
    env, channels, pip, run_with = pep723_fields(data, label, opener)
    return Spec(env, channels, run_with or ("python",), label, opener, pip, run_line=opener,
                notes=pep723_ignored(data) if set(data) - PEP723_TOP_KEYS else (), form="pep723",
                embedded=watch.lock)


def load_spec(source: Source) -> Spec:
    """Read the Spec of a script from its source."""
    if source.inline:  # inline code runs with python unless run_with says otherwise
        lines = source.inline.split("\n")  # as in a file: not at \x1e, \u2028 ... (splitlines)
        if not lines[-1]:
            lines.pop()
        return read_spec(((n, t.rstrip("\r")) for n, t in enumerate(lines, 1)), source.label,
                         "inline.py")
    if source.fd < 0:
        with _open_script(source.path) as f:
            return read_spec(iter_lines(f, source.label), source.label, source.path)
    with os.fdopen(os.dup(source.fd), "rb") as f:  # shares the offset: rewind after reading
        f.seek(0)
        name = source.label.split("?")[0].split("#")[0]  # a URL's path gives the extension
        try:
            return read_spec(iter_lines(f, source.label), source.label, name)
        finally:
            f.seek(0)


###############################################################################
# Configuration: env dir, package manager, condarc ############################
###############################################################################


class Config(NamedTuple):
    """Where environments live and how long unused ones are kept."""

    env_dir: str
    unused_hours: float
    conda: str  # the package manager given by the user ("" = search for one)
    shared_ok: bool  # accept an env dir other users can write to
    bootstrap: bool = True  # no package manager found: download micromamba
    refused_by: str = ""  # with bootstrap off: the setting that turned it off, for the error
    micromamba_url: str = ""  # where to download it from ("" = MICROMAMBA_URL)
    micromamba_sha256: str = ""  # the archive's sha256 pin ("" = not pinned)
    bootstrap_timeout: float = BOOTSTRAP_TIMEOUT
    manager: str = ""  # the package manager load_config found ("" = none: search again)
    platform: str = ""  # envs are made for it (CONDA_SUBDIR, else this machine's platform)
    allow_http: bool = False  # fetch http:// script URLs from hosts other than this machine


def _which(name: str, path: Optional[str] = None) -> Optional[str]:
    """Like shutil.which, without importing shutil; only PATH's absolute dirs are searched.

    An empty or relative PATH entry means the current directory, whatever it is: never a
    place to take the package manager (or run_with's program) from.
    """
    for d in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = os.path.join(d, name)
        if os.path.isabs(d) and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


MANAGERS = ("conda", "mamba", "micromamba")


def find_manager(given: str = "") -> Optional[str]:
    """The package manager: --conda/CONDA_EXECUTE_CONDA, CONDA_EXE, MAMBA_EXE, then PATH."""
    env = os.environ
    for candidate in (given, env.get("CONDA_EXECUTE_CONDA"), env.get("CONDA_EXE"),
                      env.get("MAMBA_EXE")):
        if candidate:
            found = candidate if os.sep in candidate else _which(candidate)
            if found and os.access(found, os.X_OK):
                return found
    for name in MANAGERS:
        found = _which(name)
        if found:
            return found
    found = bootstrapped_micromamba()  # from an earlier --bootstrap
    if not os.access(found, os.X_OK):
        return None
    _check_bootstrapped(found)
    return found


def _check_bootstrapped(exe: str) -> None:
    """The bootstrapped micromamba must be a regular file of the user's that no one else can
    write, in dirs that pass private_dir's checks: anyone who could change it runs as us."""
    st = os.lstat(exe)
    problem = "is not a regular file" if st.st_mode & 0o170000 != 0o100000 else _foreign(st)
    if not problem:
        for d in (os.path.dirname(exe), bootstrap_dir()):
            os.close(_private_dir(d, create=False))
        return
    raise UsageError(f"the bootstrapped micromamba {problem}; refusing to run it (remove "
                     f"{bootstrap_dir()} and bootstrap again)", exe, code=EXIT_BOOTSTRAP_FAILED)


def conda_root(manager: Optional[str]) -> Optional[str]:
    """conda's root prefix, found without running conda (conda info costs 0.5 s)."""
    env = os.environ
    if manager and manager == bootstrapped_micromamba():
        return None  # its root is private; envs go where they went before it was bootstrapped
    for var in ("CONDA_ROOT", "_CONDA_ROOT"):  # conda exports _CONDA_ROOT when activated
        if env.get(var):
            return env[var]
    if manager and "micromamba" in os.path.basename(manager) and env.get("MAMBA_ROOT_PREFIX"):
        return env["MAMBA_ROOT_PREFIX"]
    if manager:
        bindir = os.path.dirname(os.path.realpath(manager))
        if os.path.basename(bindir) in ("bin", "condabin", "Scripts"):
            return os.path.dirname(bindir)
    return env.get("MAMBA_ROOT_PREFIX") or None


def condarc_paths(root: Optional[str]) -> List[str]:
    """conda's condarc search path (conda/base/constants.py SEARCH_PATH), later wins."""
    env, home = os.environ, os.path.expanduser("~")
    bases = ["/etc/conda", "/var/lib/conda"]
    if root:
        bases.append(root)
    if env.get("XDG_CONFIG_HOME"):
        bases.append(os.path.join(env["XDG_CONFIG_HOME"], "conda"))
    bases += [os.path.join(home, ".config", "conda"), os.path.join(home, ".conda")]
    paths = []
    for base in bases:
        paths += _rc_files(base)
    paths.append(os.path.join(home, ".condarc"))
    if env.get("CONDA_PREFIX"):
        paths += _rc_files(env["CONDA_PREFIX"])
    if env.get("CONDARC"):
        paths.append(env["CONDARC"])
    return paths


def _rc_files(base: str) -> List[str]:
    paths = [os.path.join(base, ".condarc"), os.path.join(base, "condarc")]
    d = os.path.join(base, "condarc.d")
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith((".yml", ".yaml")))
    except OSError:
        names = []
    return paths + [os.path.join(d, n) for n in names]


RC_KEYS = frozenset({"env-dir", "remove-if-unused-for", "allow-shared-env-dir", "bootstrap",
                     "micromamba-url", "micromamba-sha256", "bootstrap-timeout", "allow-http"})


def read_condarc(path: str) -> Dict[str, Field]:
    """The settings under the top-level 'conda-execute:' key of one condarc file.

    Only that key is read (with the block parser); the rest of the file may be any YAML.
    """
    try:
        with open(path, "rb") as f:
            lines = list(iter_lines(f, path))
    except (OSError, UsageError):
        return {}
    for i, (line, text) in enumerate(lines):
        if text.startswith(("conda-execute:", "conda_execute:")):
            rest = text.partition(":")[2].strip()
            if rest.startswith("{") and rest.endswith("}"):  # flow mapping on one line
                body = [(line, part.strip()) for part in rest[1:-1].split(",")]
            elif rest and not rest.startswith("#"):
                raise UsageError("conda-execute: must be a mapping", path, line)
            else:
                body = []
                for ln, t in lines[i + 1:]:
                    if t.strip() and not t[:1].isspace() and not t.startswith("#"):
                        break
                    body.append((ln, t))
            keys = RC_KEYS | {k.replace("-", "_") for k in RC_KEYS}
            fields = parse_block(body, path, keys)
            return {k.replace("_", "-"): v for k, v in fields.items()}
    return {}


def _expand(path: str) -> str:
    path = os.path.expanduser(path)
    return os.path.expandvars(path) if "$" in path else path


def _number(value: str, name: str, unit: str, label: str = "", line: int = 0) -> float:
    """A number >= 0 for the setting NAME (given at LABEL:LINE, if from a file or variable)."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:  # also rejects nan
        raise UsageError(f"{name} needs a number of {unit} >= 0, got {value!r}", label, line)
    return number


def _flag(value: str, label: str, line: int = 0) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise UsageError(f"expected true or false, got {value!r}", label, line)
    return lowered in ("true", "yes", "1", "on")


def load_config(env_dir: str = "", conda: str = "", shared_ok: bool = False,
                bootstrap: Optional[bool] = None, allow_http: bool = False) -> Config:
    """Settings, first set wins: the command line, environment variables, condarc, defaults."""
    env = os.environ
    conda = conda or env.get("CONDA_EXECUTE_CONDA", "")
    manager = find_manager(conda)
    root = conda_root(manager)
    rc: Dict[str, Tuple[str, str, int]] = {}
    for path in condarc_paths(root):
        if os.path.isfile(path):
            for key, field in read_condarc(path).items():
                if not isinstance(field.value, str):
                    raise UsageError(f"{key} must be a single value", path, field.line)
                rc[key] = (field.value, path, field.line)

    def setting(var: str, key: str) -> Optional[Tuple[str, str, int]]:
        """(value, where, line): the variable VAR if set, else KEY from the condarc files."""
        return (env[var], var, 0) if env.get(var) else rc.get(key)

    unused = setting("CONDA_EXECUTE_REMOVE_IF_UNUSED_FOR", "remove-if-unused-for")
    hours = _number(unused[0], "remove-if-unused-for", "hours", *unused[1:]) if unused \
        else DEFAULT_UNUSED_HOURS
    shared = setting("CONDA_EXECUTE_ALLOW_SHARED_ENV_DIR", "allow-shared-env-dir")
    shared_ok = shared_ok or (_flag(*shared) if shared else False)
    chosen = setting("CONDA_EXECUTE_ENV_DIR", "env-dir")
    chosen_dir = env_dir or (chosen[0] if chosen else default_env_dir(root))
    bootstrap, refused_by = _bootstrap_setting(bootstrap, setting("CONDA_EXECUTE_BOOTSTRAP",
                                                                  "bootstrap"))
    url = setting("CONDA_EXECUTE_MICROMAMBA_URL", "micromamba-url")
    pin = setting("CONDA_EXECUTE_MICROMAMBA_SHA256", "micromamba-sha256")
    timeout = setting("CONDA_EXECUTE_BOOTSTRAP_TIMEOUT", "bootstrap-timeout")
    seconds = _number(timeout[0], "bootstrap-timeout", "seconds", *timeout[1:]) if timeout \
        else BOOTSTRAP_TIMEOUT
    http = setting("CONDA_EXECUTE_ALLOW_HTTP", "allow-http")
    allow_http = allow_http or (_flag(*http) if http else False)
    # The real path: what private_dir checks is what every later step names.
    return Config(os.path.realpath(_expand(chosen_dir)), hours, conda, shared_ok, bootstrap,
                  refused_by, _expand(url[0]) if url else "", pin[0] if pin else "",
                  seconds or 0.001, manager or "", env_platform(),
                  allow_http)


def _bootstrap_setting(given: Optional[bool], flag: Optional[Tuple[str, str, int]]
                       ) -> Tuple[bool, str]:
    """(bootstrap, refused_by): --bootstrap/--no-bootstrap (GIVEN), else FLAG, else on."""
    if given is not None:
        return given, "" if given else "--no-bootstrap"
    if flag is None or _flag(*flag):
        return True, ""
    value, where, line = flag
    return False, f"{where}={value}" if not line else f"'bootstrap: {value}' at {where}:{line}"


def default_env_dir(root: Optional[str]) -> str:
    """tmp_envs beside conda's envs (<root>/tmp_envs), else ~/.conda/tmp_envs."""
    if root:
        candidate = os.path.join(root, "tmp_envs")
        if os.access(candidate, os.W_OK) or (not os.path.exists(candidate)
                                              and os.access(root, os.W_OK)):
            return candidate
    return os.path.join(os.path.expanduser("~"), ".conda", "tmp_envs")


###############################################################################
# Lock files: SCRIPT.conda-lock, or a block in the script #####################
###############################################################################
# A lock holds one explicit list per platform (exact package URLs with their md5, each after
# a `# sha256:` line), headed by lines of ours:
#     # conda-execute-lock: 2
#     # conda-execute-metadata: <sha256 of the metadata it was made from>
#     # conda-execute-pip: requests==2.32.3        (one line per PyPI pin)
#     # platform: linux-64
#     @EXPLICIT
#     # sha256: 5f1e...
#     https://.../linux-64/python-3.12.7-h0_cpython.conda#a1b2...
#     # platform: osx-arm64
#     @EXPLICIT
#     ...
# Each platform's part is a list `conda create --file` takes as it is (`#` lines are comments
# to conda). Version 1 (one platform, no sha256 lines) is still read. The lock lives beside
# the script (SCRIPT.conda-lock) or inside it (--lock --embed): a block of the same lines
# without their "# ", behind the script's comment prefix, after its metadata block:
#     # /// conda-execute-lock
#     # conda-execute-lock: 2
#     # ...
#     # ///
# A run uses its platform's list (CONDA_SUBDIR honoured) when the metadata matches: the env
# is created from it (no solve) and pip installs the pins --no-deps. The env's identity holds
# the digest of that list and the pins only, so locking another platform rebuilds nothing.

LOCK_SUFFIX = ".conda-lock"
LOCK_MAGIC = "# conda-execute-lock: 2"
LOCK_OPENER = "/// conda-execute-lock"
LOCK_CLOSER = "///"
BUNDLE_PACKAGES = "packages"  # a bundle's package archives: packages/SUBDIR/FILE
BUNDLE_MARK = "conda-execute-bundle.json"  # in it: what made it, for which platforms
BUNDLE_WHEELS = "wheels"  # a bundle's PyPI wheels, for `pip install --no-index --find-links`
BUNDLE_MICROMAMBA = "micromamba"  # a bundle's micromamba/PLATFORM/micromamba (--with-micromamba)


class EmbeddedLock(NamedTuple):
    """A lock block as read from a script: its opener's line, prefix and content lines."""

    line: int
    prefix: str
    lines: List[Item]  # (line, text after the prefix and one space)
    end: int  # the closer's line
    kind: str = "conda-execute"  # or "conda-exec": conda-exec's lock (rattler-lock v6 YAML)


class Lock(NamedTuple):
    """A parsed lock, with the list of the platform a run uses."""

    path: str  # the lock file, or the script holding the lock block
    digest: str  # sha256 of this platform's list and the pins: part of the env's identity
    metadata: str  # the metadata hash it was made from
    platform: str  # the platform whose list this is ("" when the lock has none for it)
    pip: Tuple[str, ...]  # name==version pins installed with pip --no-deps
    line: int  # the line of the metadata hash, for messages
    distrust: str = ""  # why it may not be the user's own ("" = it is): then it is not read
    urls: Tuple[str, ...] = ()  # this platform's URL#md5 lines
    sha256: Tuple[str, ...] = ()  # each one's sha256 ("" where the lock has none)
    platforms: Tuple[str, ...] = ()  # every platform the lock has a list for
    embedded: bool = False


def conda_platform() -> str:
    """This machine's conda subdir: linux-64, linux-aarch64, osx-arm64, win-64, ...

    Lock files and the bootstrap both use it. Read from os.uname() (on Windows, the variables
    platform.machine() reads): `import platform` costs milliseconds (it imports re), and a
    script with a lock file asks on every run.
    """
    if hasattr(os, "uname"):
        machine = os.uname().machine.lower()
    else:
        env = os.environ
        machine = (env.get("PROCESSOR_ARCHITEW6432") or env.get("PROCESSOR_ARCHITECTURE", "")).lower()
    system = {"darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    arch = {"x86_64": "64", "amd64": "64", "i686": "32", "i386": "32", "x86": "32",
            "arm64": "aarch64"}.get(machine, machine)
    if system in ("osx", "win") and arch == "aarch64":
        arch = "arm64"  # conda's names: linux-aarch64, but osx-arm64 and win-arm64
    return f"{system}-{arch}"


def env_platform() -> str:
    """The platform environments are made for: CONDA_SUBDIR (which conda and micromamba honour
    too) if set, else this machine's."""
    subdir = os.environ.get("CONDA_SUBDIR", "")
    if not subdir:
        return conda_platform()
    if not is_platform(subdir):
        raise UsageError(f"CONDA_SUBDIR must be a conda platform such as linux-64 or osx-arm64, "
                         f"got {subdir!r}")
    return subdir


def is_platform(name: str) -> bool:
    """A conda platform's shape: SYSTEM-ARCH in lowercase letters, digits and '_'."""
    system, dash, arch = name.partition("-")
    return bool(dash and system.isalpha() and arch) and set(system + arch) <= PLATFORM_CHARS


def metadata_hash(spec: Spec) -> str:
    return _sha256_hex(spec_identity(spec._replace(lock=None)))


def read_lock(path: str, here: str = "") -> Optional[Lock]:
    """The lock file at PATH (with the list for platform HERE), or None if there is none; a
    malformed one is an error."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            distrust = "" if os.name == "nt" or st.st_uid == 0 else _foreign(st)
            if not distrust and st.st_mode & 0o022:
                distrust = "is writable by other users"
            if distrust:
                return Lock(path, "", "", "", (), 0, distrust)
            data = f.read(MAX_REMOTE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"cannot read the lock file: {e.strerror}", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("lock file is not UTF-8 text", path) from None
    lines = [(n, t[2:] if t.startswith("# ") else t)
             for n, t in enumerate(text.splitlines(), 1)]
    return parse_lock(lines, path, here)


def parse_lock(lines: List[Item], path: str, here: str, embedded: bool = False) -> Lock:
    """A lock from its lines (comment lines without their "# "), with HERE's list."""
    if not lines or lines[0][1].strip() not in ("conda-execute-lock: 1",
                                                 "conda-execute-lock: 2"):
        raise UsageError(f"not a conda-execute lock (its first line must be {LOCK_MAGIC!r}); "
                         "remake it with --lock --upgrade", path, lines[0][0] if lines else 1)
    metadata, meta_line, pip = "", 0, []  # type: str, int, List[str]
    lists: Dict[str, List[Tuple[str, str]]] = {}
    platform, sha, explicit = "", "", False
    for n, line in lines[1:]:
        key, _, value = line.partition(":")
        value = value.strip()
        if line.strip() == "@EXPLICIT":
            explicit = bool(platform)
        elif explicit and "://" in line and not line.startswith(("#", "sha256:")):
            lists[platform].append((line.strip(), sha))
            sha = ""
        elif key == "conda-execute-metadata":
            metadata, meta_line = value, n
        elif key == "conda-execute-pip":
            if not _is_pin(value):
                raise UsageError(f"bad pip pin {value!r} (expected name==version)", path, n)
            pip.append(value)
        elif key == "platform":
            platform, explicit = value, False
            lists.setdefault(platform, [])
        elif key == "sha256":
            sha = value
    if not (metadata and lists and all(lists.values())):
        raise UsageError("incomplete lock (no metadata hash, platform or package URLs); "
                         "remake it with --lock --upgrade", path)
    chosen = lists.get(here or conda_platform(), [])
    digest = _sha256_hex("\n".join([u for u, _ in chosen] + pip))
    return Lock(path, digest, metadata, (here or conda_platform()) if chosen else "",
                tuple(pip), meta_line, urls=tuple(u for u, _ in chosen),
                sha256=tuple(h for _, h in chosen), platforms=tuple(lists), embedded=embedded)


PIN_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _is_pin(pin: str) -> bool:
    """name==version and nothing else (no URL, option, marker or second clause)."""
    name, sep, version = pin.partition("==")
    return bool(sep and name[:1].isalnum() and version[:1].isalnum()) and \
        set(name) <= PIN_NAME_CHARS and set(version) <= PIN_NAME_CHARS | {"+", "!"}


def apply_lock(spec: Spec, script: str, locked: bool, here: str) -> Spec:
    """Attach SCRIPT's lock (beside it, or embedded) to SPEC when it is the user's and matches
    the metadata and has a list for the platform HERE; otherwise warn (or fail if LOCKED)."""
    if spec.embedded:
        if os.path.lexists(script + LOCK_SUFFIX):
            raise UsageError(f"the script holds a lock block and there is also a lock file "
                             f"{script + LOCK_SUFFIX}: keep one of them", spec.label,
                             spec.embedded.line)
        lock: Optional[Lock] = parse_lock(spec.embedded.lines, spec.label, here, embedded=True) \
            if spec.embedded.kind == "conda-execute" else conda_exec_as_lock(spec, here, locked)
        if lock is None:  # conda-exec's, made from other metadata: warned, solved
            return spec
    else:
        lock = read_lock(script + LOCK_SUFFIX, here)
    if lock is None:
        if locked:
            raise UsageError(f"--locked, but there is no lock file {script + LOCK_SUFFIX} "
                             "nor a lock block (make one with --lock)", spec.label)
        return spec
    if lock.distrust:  # another user could have chosen its URLs and pins
        message = (f"lock file {lock.distrust}: not using it (if you trust it, chown it to "
                   "yourself and chmod go-w it)")
        if locked:
            raise UsageError(message, lock.path)
        _say(f"warning: {lock.path}: {message}; solving instead")
        return spec
    problem = ""
    if lock.metadata != metadata_hash(spec):
        problem = "was made from other metadata"
    elif not lock.platform:
        problem = f"has no list for {here} (it has {', '.join(lock.platforms)})"
    if not problem:
        return spec._replace(lock=lock)
    message = f"lock {problem}; remake it with --lock --upgrade" + (
        f" --platform {here}" if not lock.platform and lock.metadata == metadata_hash(spec)
        else "")
    if locked:
        raise UsageError(message, lock.path, lock.line)
    _say(f"warning: {lock.path}:{lock.line}: {message} (solving instead)")
    return spec


def lock_text(spec: Spec, lists: Dict[str, List[Tuple[str, str]]], pins: List[str]) -> str:
    """A lock's text: our header lines, then each platform's explicit list (URL#md5 lines,
    each after its '# sha256:' line)."""
    lines = [LOCK_MAGIC, f"# conda-execute-metadata: {metadata_hash(spec)}"]
    lines += [f"# conda-execute-pip: {pin}" for pin in pins]
    for platform, entries in lists.items():
        lines += [f"# platform: {platform}", "@EXPLICIT"]
        for url, sha in entries:
            lines += [f"# sha256: {sha}"] if sha else []
            lines.append(url)
    return "\n".join(lines) + "\n"


def check_platforms(platforms: List[str]) -> List[str]:
    """--platform values, each a conda platform (an unknown one is exit 2)."""
    for p in platforms:
        if p not in CONDA_PLATFORMS:
            raise UsageError(f"--platform {p!r}: not a conda platform (known: "
                             f"{', '.join(sorted(CONDA_PLATFORMS))})")
    return list(dict.fromkeys(platforms))


def write_lock(cfg: Config, env: Env, spec: Spec, script: str, platforms: List[str] = (),
               embed: bool = False) -> str:
    """Lock SCRIPT: this platform's list from its env, each other platform's from a solve
    (nothing installed); written beside it (SCRIPT.conda-lock), or into it with EMBED."""
    mgr = manager_for(cfg)
    lists = {cfg.platform: this_platform_list(mgr, env, spec)}
    for platform in platforms:
        kept = _locked_list(spec, platform) if platform not in lists else None
        if kept:  # the lock in use has it: locking again changes nothing (--upgrade re-solves)
            lists[platform] = kept
        elif platform not in lists:
            lists[platform] = solve_for(mgr, spec, platform, os.path.dirname(env.prefix))
    text = lock_text(spec, lists, pip_pins(env.prefix) if spec.pip else [])
    if embed:
        path = embed_lock(script, text)
    else:
        path = script + LOCK_SUFFIX
        try:  # a file of the project, like the script: the umask decides its mode
            _atomic_write(path, text, 0o666)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}", spec.label) from None
    _say(f"wrote {'a lock block into ' if embed else ''}{path} ({', '.join(lists)})")
    return path


def conda_exec_as_lock(spec: Spec, here: str, locked: bool) -> Optional[Lock]:
    """conda-exec's embedded lock as a Lock of ours for HERE: its list and PyPI pins. It holds
    no hash of our metadata: it applies when it pins every package the metadata names (else
    a warning and a solve, or with LOCKED an error); one it cannot read is an error."""
    assert spec.embedded is not None
    entries, pins = conda_exec_lock(spec.embedded.lines, spec.label, here)
    names = {u.split("#")[0].rsplit("/", 1)[-1].rsplit("-", 2)[0] for u, _ in entries}
    pinned = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    missing = [n for n in map(spec_name, spec.env) if n.lower() not in names] + \
        [r for r in spec.pip if _pypi_name(r) not in pinned]
    if missing:
        message = (f"conda-exec lock does not pin {missing[0]!r}: made from other metadata; "
                   "remake it (conda exec --lock --embed, or conda-execute --lock --embed)")
        if locked:
            raise UsageError(message, spec.label, spec.embedded.line)
        _say(f"warning: {spec.label}:{spec.embedded.line}: {message} (solving instead)")
        return None
    digest = _sha256_hex("\n".join([u for u, _ in entries] + pins))
    return Lock(spec.label, digest, metadata_hash(spec), here, tuple(pins), spec.embedded.line,
                urls=tuple(u for u, _ in entries), sha256=tuple(h for _, h in entries),
                platforms=(here,), embedded=True)


def _pypi_name(requirement: str) -> str:
    """The normalised project name of a PEP 508 requirement (the whole text if it has none)."""
    match = _rx(PYPI_NAME_RE).fullmatch(requirement)
    return (match.group(1) if match else requirement).lower().replace("_", "-")


def _locked_list(spec: Spec, platform: str) -> List[Tuple[str, str]]:
    """PLATFORM's list in the lock SPEC was made from (none without one, or if it has none)."""
    if spec.lock is None:
        return []
    if spec.embedded and spec.embedded.kind != "conda-execute":
        return []
    lock = parse_lock(spec.embedded.lines, spec.label, platform) if spec.lock.embedded else \
        read_lock(spec.lock.path, platform)
    return list(zip(lock.urls, lock.sha256)) if lock and lock.platform == platform else []


def this_platform_list(mgr: Manager, env: Env, spec: Spec) -> List[Tuple[str, str]]:
    """(URL#md5, sha256) of each package in ENV, as the manager lists it explicitly; sha256
    from the env's package records (conda-meta/*.json)."""
    import subprocess

    cmd = explicit_command(mgr, env.prefix)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    except OSError as e:
        raise UsageError(f"cannot run {mgr.exe}: {e.strerror}", spec.label,
                         code=EXIT_CREATE_FAILED) from None
    if proc.returncode != 0 or "@EXPLICIT" not in proc.stdout:
        shown = " ".join([os.path.basename(mgr.exe), *cmd[1:2 + (mgr.kind != "conda")]])
        raise UsageError(f"{shown} --explicit failed (exit {proc.returncode})", spec.label,
                         code=EXIT_CREATE_FAILED)
    shas: Dict[str, str] = {}
    meta = os.path.join(env.prefix, "conda-meta")
    for name in os.listdir(meta):
        if name.endswith(".json"):
            record = _read_json_object(os.path.join(meta, name))
            if isinstance(record.get("url"), str) and isinstance(record.get("sha256"), str):
                shas[record["url"].rsplit("/", 1)[-1]] = record["sha256"]
    urls = proc.stdout.split("@EXPLICIT", 1)[1].split()
    return [(u, shas.get(u.split("#")[0].rsplit("/", 1)[-1], "")) for u in urls
            if "://" in u]


def solve_for(mgr: Manager, spec: Spec, platform: str, workdir: str) -> List[Tuple[str, str]]:
    """(URL#md5, sha256) of each package the specs solve to on PLATFORM, installing nothing:
    `create --dry-run --json` (conda with CONDA_SUBDIR; libmamba with --platform), conda's
    records completed by `conda search --json --subdir` (its dry run gives no URL or hash)."""
    import json
    import subprocess

    prefix = os.path.join(workdir, f".solve-{platform}-{os.getpid()}")
    channels = ["--override-channels", *[a for c in spec.channels for a in ("-c", c)]] \
        if spec.channels else []
    conda = mgr.kind == "conda"
    cmd = [mgr.exe, "create", *(["-r", mgr.root] if mgr.root else []), "--dry-run", "--json",
           *([] if conda else ["--platform", platform, "--yes"]), "-p", prefix, *channels,
           "--", *spec.env]
    environ = dict(os.environ, CONDA_SUBDIR=platform) if conda else None
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, text=True,
                              env=environ)
    except OSError as e:
        raise UsageError(f"cannot run {mgr.exe}: {e.strerror}", code=EXIT_CREATE_FAILED) from None
    finally:
        if os.path.lexists(prefix):  # micromamba writes PREFIX/.mambarc even for a dry run
            remove_tree(prefix)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {}
    links = data.get("actions", {}).get("LINK") if data.get("success") else None
    if proc.returncode != 0 or not isinstance(links, list):
        raise UsageError(f"--platform {platform}: the specs have no solution there: "
                         f"{_solve_reason(data, proc.stderr)}", spec.label,
                         code=EXIT_CREATE_FAILED)
    if not conda:
        return [(f"{r['url']}#{r['md5']}", r.get("sha256", "")) for r in links]
    return [_searched(mgr, r, platform, channels, spec) for r in links]


def _solve_reason(data: dict, stderr: str) -> str:
    """The manager's own reason a solve failed, on one line."""
    problems = data.get("solver_problems")
    reason = "; ".join(problems) if isinstance(problems, list) and problems else \
        data.get("message") or data.get("error") or (stderr.strip().splitlines() or ["?"])[-1]
    return " ".join(str(reason).split())[:500]


def _searched(mgr: Manager, link: dict, platform: str, channels: List[str], spec: Spec
              ) -> Tuple[str, str]:
    """(URL#md5, sha256) of one package of conda's dry run, from `conda search --json`."""
    import json
    import subprocess

    query = f"{link['name']}=={link['version']}={link['build_string']}"
    cmd = [mgr.exe, "search", "--json", "--subdir", link.get("platform") or platform,
           *channels, query]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL, text=True)
    try:
        records = json.loads(proc.stdout).get(link["name"], [])
    except (ValueError, AttributeError):
        records = []
    base = str(link.get("base_url", "")).rstrip("/")
    for r in records:
        if r.get("build") == link["build_string"] and str(r.get("url", "")).startswith(base):
            return f"{r['url']}#{r['md5']}", r.get("sha256", "")
    raise UsageError(f"--platform {platform}: conda search found no record of {query}",
                     spec.label, code=EXIT_CREATE_FAILED)


def pip_pins(prefix: str) -> List[str]:
    """name==version of every distribution that pip (not conda) installed in the env."""
    import json
    import subprocess

    try:
        proc = subprocess.run([os.path.join(prefix, "bin", "python"), "-m", "pip", "inspect",
                               "--disable-pip-version-check"], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    except OSError as e:
        raise UsageError(f"pip inspect failed in {prefix}: {e.strerror}",
                         code=EXIT_CREATE_FAILED) from None
    try:
        installed = json.loads(proc.stdout)["installed"]
        return sorted(f"{d['metadata']['name']}=={d['metadata']['version']}" for d in installed
                      if d.get("installer") == "pip")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"pip inspect failed in {prefix} (exit {proc.returncode})",
                         code=EXIT_CREATE_FAILED) from None


def _atomic_write(path: str, data: str | bytes, mode: int = 0o600,
                  dir_fd: Optional[int] = None) -> None:
    """Replace PATH (relative to DIR_FD if given) with DATA (text as UTF-8, lone surrogates
    kept) all at once: written to a new temp file beside it (an unpredictable name, created
    O_EXCL|O_NOFOLLOW with MODE less the umask, so a planted file or link is never written
    through) and fsync'd, then renamed over PATH (a link at PATH is replaced, not followed).
    Readers see the old content or the new, never a part; on failure the temp file is removed.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    head, base = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC
    while True:
        tmp = os.path.join(head, f".{base}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


###############################################################################
# conda-exec's embedded lock (`# /// conda-exec-lock`) #########################
###############################################################################
# conda-exec 0.4 (`conda exec --lock --embed`, repository jezdez/conda-exec at 0.4.0,
# conda_exec/lockfile.py) writes, after the script's PEP 723 block, a block of '# ' lines
#     # /// conda-exec-lock
#     # # conda-exec-lock-input-sha256: <hex>
#     # version: 6
#     # environments: ...
#     # ///
# holding a rattler-lock v6 document (exported by conda-lockfiles through conda's ruamel.yaml
# settings; pixi and rattler write the same format with the dash at the parent key's column).
# A run uses its list for this platform (URLs with md5 and sha256, PyPI pins) as it uses a
# lock of ours; what this reader does not understand is refused with one line. It reads the
# block-style YAML subset both write, and nothing else.
CONDA_EXEC_OPENER = "# /// conda-exec-lock"


MAX_INDENT = 80  # rattler and conda-exec stay below 20; deeper is refused (bounds recursion)
PLAIN_FIRST_REFUSED = frozenset("[]{},#&*!|>'\"%@`")
DOUBLE_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
                  "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
                  "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}
HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
HEX_DIGITS = frozenset("0123456789abcdef")
PIN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
CONDA_SELECTOR_KEYS = frozenset(("conda", "name", "version", "build", "subdir"))
PYPI_SELECTOR_KEYS = frozenset(("pypi", "extras"))


class _Str(str):
    """A scalar read from the lock, with its line."""

    line = 0


class _Map(dict):  # type: ignore[type-arg]
    """A block mapping read from the lock, with the line of its first key."""

    line = 0


class _Seq(list):  # type: ignore[type-arg]
    """A block sequence read from the lock, with the line of its first item."""

    line = 0


def _at(node: Any, line: int) -> Any:
    """NODE (a _Str, _Map or _Seq) with its line set."""
    node.line = line
    return node


def _fail(message: str, line: int) -> UsageError:
    """An error about conda-exec's lock at LINE (its file is set by conda_exec_lock)."""
    return UsageError(f"conda-exec lock: {message}", "", line)


def _quote(text: str) -> str:
    """TEXT quoted for a one-line message (cut to 200 characters)."""
    return repr(text[:200])


def _show(text: str) -> str:
    """TEXT for a one-line message: as is when printable and short, else its repr, cut."""
    return text if text.isprintable() and len(text) <= 200 else repr(text[:200])


def _rows(lines: List[Tuple[int, str]]) -> List[Row]:
    """The lines that carry YAML (not blank, not a '#' comment) as (line, indent, text)."""
    rows: List[Row] = []
    for line, raw in lines:
        text = raw.rstrip()
        body = text.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        indent = len(text) - len(body)
        if body[0] == "\t":
            raise _fail("a tab in the indentation", line)
        if indent == 0 and body.startswith(("---", "...", "%")):
            raise _fail(f"cannot read {_quote(body)} (YAML directives or several documents)",
                        line)
        if indent > MAX_INDENT:
            raise _fail(f"indented more than {MAX_INDENT} columns", line)
        rows.append((line, indent, body))
    return rows


def _is_dash(text: str) -> bool:
    """Whether TEXT starts a block sequence item."""
    return text == "-" or text.startswith("- ")


def _quoted_prefix(text: str, line: int) -> Tuple[str, int]:
    """The value of the quoted scalar TEXT starts with, and the index after its closing quote
    (-1 when it has none)."""
    quote, out, i = text[0], [], 1
    while i < len(text):
        c = text[i]
        if c == quote and quote == "'" and text[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        elif c == "\\" and quote == '"':
            char, i = _escape(text, i + 1, line)
            out.append(char)
        else:
            out.append(c)
            i += 1
    return "".join(out), -1


def _escape(text: str, i: int, line: int) -> Tuple[str, int]:
    """The character the double-quoted escape at TEXT[i] (after the backslash) stands for."""
    c = text[i:i + 1]
    if c in DOUBLE_ESCAPES and c:
        return DOUBLE_ESCAPES[c], i + 1
    size = HEX_ESCAPES.get(c, 0)
    digits = text[i + 1:i + 1 + size]
    if size and len(digits) == size and set(digits.lower()) <= HEX_DIGITS:
        return chr(int(digits, 16)), i + 1 + size
    raise _fail(f"cannot read the escape '\\{_show(c)}' in a double-quoted value", line)


def _comment_free(text: str, line: int) -> Tuple[str, bool]:
    """A plain scalar piece without its ' #' comment, and whether it had one."""
    cut = text.find(" #")
    piece = text if cut < 0 else text[:cut].rstrip()
    if ": " in piece or piece.endswith(":"):
        raise _fail(f"cannot read {_quote(piece)} (a ':' inside a plain value)", line)
    return piece, cut >= 0


def _quoted(parts: List[str], line: int) -> str:
    """The value of a quoted scalar written over PARTS: line breaks fold to one space, except
    after a backslash in double quotes (an escaped line break: nothing)."""
    text = parts[0]
    for part in parts[1:]:
        escaped = text[0] == '"' and (len(text) - len(text.rstrip("\\"))) % 2 == 1
        text = text[:-1] + part if escaped else f"{text} {part}"
    value, end = _quoted_prefix(text, line)
    if end < 0:
        raise _fail("a quoted value with no closing quote", line)
    rest = text[end:]
    if rest and not rest.startswith(" #"):
        raise _fail(f"cannot read {_quote(rest)} after a quoted value", line)
    return value


def _scalar(parts: List[str], line: int) -> Any:
    """The value of a scalar written over PARTS (its lines, in a row), or an empty '[]' / '{}'."""
    first = parts[0]
    if first[0] in "'\"":
        return _at(_Str(_quoted(parts, line)), line)
    if first in ("[]", "{}") and len(parts) == 1:
        return _at(_Seq() if first == "[]" else _Map(), line)
    if first[0] in PLAIN_FIRST_REFUSED or (first[0] in "-?:" and first[1:2] in ("", " ")):
        raise _fail(f"cannot read {_quote(first)} (only block mappings, block sequences and "
                    "plain or quoted values are read)", line)
    pieces = []
    for index, part in enumerate(parts):
        piece, commented = _comment_free(part, line + index)
        if commented and index < len(parts) - 1:
            raise _fail("a comment inside a value written over several lines", line + index)
        pieces.append(piece)
    return _at(_Str(" ".join(pieces)), line)


def _split_key(text: str, line: int) -> Optional[Tuple[str, str]]:
    """(key, rest) when TEXT is 'key:' or 'key: rest' (key plain or quoted), else None."""
    if text[0] in "'\"":
        key, end = _quoted_prefix(text, line)
        after = text[end:] if end > 0 else ""
        if after == ":" or after.startswith(": "):
            return key, after[1:].strip()
        return None
    colon = text.find(": ")
    colon = len(text) - 1 if colon < 0 and text.endswith(":") else colon
    if colon <= 0:
        return None
    key = text[:colon].rstrip()
    if key[0] in PLAIN_FIRST_REFUSED or key[0] in "?:" or " #" in key or key == "-":
        raise _fail(f"cannot read the key {_quote(key)}", line)
    return key, text[colon + 1:].strip()


def _scalar_rows(rows: List[Row], start: int, indent: int, first: str) -> Tuple[Any, int]:
    """The scalar starting with FIRST on rows[start], continued by the rows deeper than INDENT
    (on the lines right after it: a blank or comment line inside a value is refused)."""
    parts, i = [first], start + 1
    while i < len(rows) and rows[i][1] > indent:
        if rows[i][0] != rows[i - 1][0] + 1:
            raise _fail("a blank or comment line inside a value", rows[i][0])
        parts.append(rows[i][2])
        i += 1
    return _scalar(parts, rows[start][0]), i


def _below(rows: List[Row], i: int, indent: int, same_indent_list: bool) -> Tuple[Any, int]:
    """The value of an entry that ends with ':' or '-' at INDENT: the node from rows[i] on."""
    if i < len(rows) and rows[i][1] > indent:
        line, inner, text = rows[i]
        if _is_dash(text) or _split_key(text, line) is not None:
            return _node(rows, i, inner)
        return _scalar_rows(rows, i, indent, text)
    if same_indent_list and i < len(rows) and rows[i][1] == indent and _is_dash(rows[i][2]):
        return _sequence(rows, i, indent)  # pixi's style: the dash under the key
    return None, i


def _node(rows: List[Row], i: int, indent: int) -> Tuple[Any, int]:
    """The block sequence or mapping whose first row, rows[i], is at INDENT."""
    if _is_dash(rows[i][2]):
        return _sequence(rows, i, indent)
    return _mapping(rows, i, indent)


def _sequence(rows: List[Row], i: int, indent: int) -> Tuple[_Seq, int]:
    """The block sequence whose items are the '-' rows at INDENT from rows[i] on."""
    items = _at(_Seq(), rows[i][0])
    while i < len(rows) and rows[i][1] == indent and _is_dash(rows[i][2]):
        line, _, text = rows[i]
        content = text[1:].lstrip(" ")
        inner = indent + len(text) - len(content)
        if not content:
            value, i = _below(rows, i + 1, indent, False)
        elif inner > MAX_INDENT:
            raise _fail(f"nested more than {MAX_INDENT} columns deep", line)
        elif _is_dash(content) or _split_key(content, line) is not None:
            rows[i] = (line, inner, content)  # '- key: value': a mapping at the key's column
            value, i = _node(rows, i, inner)
        else:
            value, i = _scalar_rows(rows, i, indent, content)
        items.append(value)
        if i < len(rows) and rows[i][1] > indent:
            raise _fail("unexpected indentation", rows[i][0])
    return items, i


def _mapping(rows: List[Row], i: int, indent: int) -> Tuple[_Map, int]:
    """The block mapping whose keys are the rows at INDENT from rows[i] on."""
    result = _at(_Map(), rows[i][0])
    while i < len(rows) and rows[i][1] == indent:
        line, _, text = rows[i]
        entry = None if _is_dash(text) else _split_key(text, line)
        if entry is None:
            raise _fail(f"expected 'key: value', found {_quote(text)}", line)
        key, rest = entry
        if key in result:
            raise _fail(f"the key {_quote(key)} appears twice", line)
        if rest:
            value, i = _scalar_rows(rows, i, indent, rest)
        else:
            value, i = _below(rows, i + 1, indent, True)
        result[_at(_Str(key), line)] = value
        if i < len(rows) and rows[i][1] > indent:
            raise _fail("unexpected indentation", rows[i][0])
    return result, i


def read_yaml_subset(lines: List[Tuple[int, str]]) -> Any:
    """The document LINES hold: block mappings (_Map), block sequences (_Seq), scalars (_Str,
    never converted to numbers or booleans), '[]' and '{}'; anything else is refused."""
    rows = _rows(lines)
    if not rows:
        raise _fail("the block is empty", lines[0][0] if lines else 0)
    if rows[0][1]:
        raise _fail("the first line is indented", rows[0][0])
    value, i = _node(rows, 0, 0)
    if i < len(rows):
        raise _fail("unexpected indentation", rows[i][0])
    return value


###############################################################################
# rattler-lock v6 ##############################################################
###############################################################################


def _line(node: Any, default: int) -> int:
    return getattr(node, "line", 0) or default


def _want(node: Any, kind: type, what: str, line: int) -> Any:
    """NODE when it is a KIND (mapping, sequence or scalar), else the error naming WHAT."""
    if isinstance(node, kind):
        return node
    names = {_Map: "a mapping", _Seq: "a list", _Str: "a value"}
    found = "nothing" if node is None else names.get(type(node), "something else")
    raise _fail(f"{what} must be {names[kind]}, found {found}", _line(node, line))


def _environment(doc: Any, platform: str) -> Tuple[_Seq, _Seq]:
    """The 'default' environment's list for PLATFORM and the top-level package records."""
    doc = _want(doc, _Map, "the lock", 1)
    version = doc.get("version")
    if version is None:
        raise _fail("no 'version' key (not a rattler lock)", doc.line)
    if version != "6":
        raise _fail(f"lock format version {_show(str(version))}, not 6 (the rattler-lock v6 "
                    "that conda-exec writes)", _line(version, doc.line))
    envs = _want(doc.get("environments"), _Map, "'environments'", doc.line)
    if "default" not in envs:
        names = ", ".join(_show(n) for n in envs) or "none"
        raise _fail(f"no 'default' environment (it has: {names})", envs.line or doc.line)
    env = _want(envs["default"], _Map, "environment 'default'", envs.line)
    lists = _want(env.get("packages"), _Map, "the packages of environment 'default'", env.line)
    if platform not in lists:
        names = ", ".join(_show(n) for n in lists) or "none"
        raise _fail(f"no package list for {platform} (the lock has: {names})", lists.line)
    chosen = _want(lists[platform], _Seq, f"the package list for {platform}", lists.line)
    records = _want(doc.get("packages"), _Seq, "the top-level 'packages'", doc.line)
    return chosen, records


def _index(records: _Seq) -> Dict[Tuple[str, str], List[_Map]]:
    """The package records by (kind, location): ('conda', URL) or ('pypi', URL)."""
    index: Dict[Tuple[str, str], List[_Map]] = {}
    for record in records:
        record = _want(record, _Map, "a package record", records.line)
        kinds = [k for k in ("conda", "pypi") if k in record]
        if len(kinds) != 1:
            raise _fail("a package record needs one 'conda' or 'pypi' key", record.line)
        location = _want(record[kinds[0]], _Str, f"'{kinds[0]}'", record.line)
        index.setdefault((kinds[0], str(location)), []).append(record)
    return index


def _record(ref: _Map, kind: str, index: Dict[Tuple[str, str], List[_Map]]) -> _Map:
    """The one record the environment entry REF (a 'conda' or 'pypi' selector) names."""
    location = _want(ref[kind], _Str, f"'{kind}'", ref.line)
    allowed = CONDA_SELECTOR_KEYS if kind == "conda" else PYPI_SELECTOR_KEYS
    unknown = [k for k in ref if k not in allowed]
    if unknown:
        raise _fail(f"cannot read the key {_quote(unknown[0])} of the entry for "
                    f"{_show(location)}", ref.line)
    candidates = [r for r in index.get((kind, str(location)), [])
                  if kind == "pypi" or all(r.get(k, ref[k]) == ref[k] for k in ref if k != kind)]
    if not candidates:
        raise _fail(f"no package record for {_show(location)}", location.line)
    if len(candidates) > 1:
        raise _fail(f"several package records for {_show(location)}", location.line)
    return candidates[0]


def _conda_url(ref: _Map, record: _Map, platform: str) -> Tuple[str, str]:
    """(URL#md5, sha256) of a conda package of PLATFORM's list, each checked."""
    url = ref["conda"]
    scheme, sep, rest = url.partition("://")
    if not (sep and scheme in ("https", "http", "file") and rest.count("/") >= 2
            and url.endswith((".conda", ".tar.bz2"))
            and not any(c in url for c in "#? \t") and url.isprintable()):
        raise _fail(f"{_show(url)} is not the URL of a .conda or .tar.bz2 package", url.line)
    subdir = url.rsplit("/", 2)[-2]
    if subdir not in (platform, "noarch"):
        raise _fail(f"the list for {platform} holds a package for {_show(subdir)}: "
                    f"{_show(url)}", url.line)
    hashes = []
    for name, size in (("md5", 32), ("sha256", 64)):
        value = record.get(name)
        if value is None:
            raise _fail(f"no {name} for {_show(url)}", record.line)
        value = _want(value, _Str, f"the {name} of {_show(url)}", record.line).lower()
        if len(value) != size or not set(value) <= HEX_DIGITS:
            raise _fail(f"the {name} of {_show(url)} is not {size} hex digits",
                        _line(record[name], record.line))
        hashes.append(value)
    return f"{url}#{hashes[0]}", hashes[1]


def _pypi_pin(ref: _Map, record: _Map) -> str:
    """The 'name==version' pin of a PyPI package, checked."""
    location = ref["pypi"]
    if not location.startswith(("https://", "http://")):
        raise _fail(f"the PyPI package at {_show(location)} is not from a URL: cannot pin it",
                    location.line)
    if record.get("editable", "false") != "false":
        raise _fail(f"the PyPI package at {_show(location)} is editable: cannot pin it",
                    record.line)
    name = _want(record.get("name"), _Str, f"the name of {_show(location)}", record.line)
    version = _want(record.get("version"), _Str, f"the version of {_show(location)}",
                    record.line)
    pin = f"{name}=={version}"
    if not (name[:1].isalnum() and version[:1].isalnum() and set(name) <= PIN_CHARS
            and set(version) <= PIN_CHARS | {"+", "!"}):
        raise _fail(f"cannot pin {_show(pin)} (expected name==version)", record.line)
    return pin


def conda_exec_lock(lines: List[Item], label: str, platform: str
                    ) -> Tuple[List[Tuple[str, str]], List[str]]:
    """From the block's content lines (line number, text after the '# ' prefix): for PLATFORM,
    [(URL#md5, sha256)] of the conda packages of environment 'default' in the order listed,
    and the PyPI pins ['name==version'] (if the lock has PyPI packages for that platform).
    Raises UsageError at the line concerned (LABEL its file) when the lock is not version 6,
    has no 'default' environment or no list for PLATFORM, names a package with no record,
    sha256 or md5, or holds anything this reader cannot parse."""
    try:
        chosen, records = _environment(read_yaml_subset(lines), platform)
        index = _index(records)
        conda: List[Tuple[str, str]] = []
        pins: List[str] = []
        for ref in chosen:
            ref = _want(ref, _Map, f"an entry of the package list for {platform}", chosen.line)
            kinds = [k for k in ("conda", "pypi") if k in ref]
            if len(kinds) != 1:
                raise _fail("an entry needs one 'conda' or 'pypi' key", ref.line)
            record = _record(ref, kinds[0], index)
            if kinds[0] == "conda":
                conda.append(_conda_url(ref, record, platform))
            else:
                pins.append(_pypi_pin(ref, record))
        if not conda:
            raise _fail(f"no conda packages for {platform}", chosen.line)
    except UsageError as e:
        raise UsageError(e.message, label, e.line) from None
    return conda, pins


###############################################################################
# The environment's name and place #############################################
###############################################################################


def _sha256_hex(text: str) -> str:
    return _sha256_bytes(text.encode("utf-8"))


def _sha256_bytes(data: bytes) -> str:
    return _sha256(data).hexdigest()


def _sha256(data: bytes = b"") -> Any:
    """A sha256 object (.update(), .hexdigest()) from the built-in module: no hashlib, no
    OpenSSL. The module is picked by version: a failed import costs ~0.2 ms."""
    try:
        return __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256").sha256(data)
    except ImportError:  # a build without it
        from hashlib import sha256

        return sha256(data)


def spec_identity(spec: Spec) -> str:
    """The text an environment's name hashes; two different specs never share one.

    Specs alone (the original conda-execute's case): the sorted specs joined by newlines. With
    channels, pip requirements, a lock, or a spec starting with '#': a header line, then
    '# section' lines, each followed by its items as JSON strings, one a line. A text of the
    first kind never starts with '#', and one of the second kind reads back one way only.
    """
    env = sorted(spec.env)
    if not (spec.channels or spec.pip or spec.lock or any(s.startswith("#") for s in env)):
        return "\n".join(env)
    lines = ["# conda-execute identity 2", "# env", *map(_json_string, env)]
    for section, items in (("channels", spec.channels), ("pip", sorted(spec.pip)),
                           ("lock", [spec.lock.digest] if spec.lock else [])):
        lines += [f"# {section}", *map(_json_string, items)]
    return "\n".join(lines)


def env_name(spec: Spec) -> str:
    """20 hex chars of SHA-256 over the spec's identity.

    Without channels (and pip requirements and lock) this is the original conda-execute's name:
    >>> env_name(Spec(("python >=3", "numpy"), (), (), "", 0))
    'ea977067a8fbeb21a594'
    """
    return _sha256_hex(spec_identity(spec))[:20]


class Env(NamedTuple):
    """One environment: its name and prefix under the env dir's platform directory."""

    name: str
    prefix: str
    lock: str  # its lock file's name in that directory (beside the prefix: it outlives it)


def env_for(spec: Spec, cfg: Config) -> Env:
    return env_named(env_name(spec), os.path.join(cfg.env_dir, cfg.platform))


def env_named(name: str, platform_dir: str) -> Env:
    """The environment NAME under PLATFORM_DIR (GC and listing know envs by name only)."""
    return Env(name, os.path.join(platform_dir, name), name + ".lock")


class EnvDir(NamedTuple):
    """An env dir's directory for one platform (ENV_DIR/PLATFORM), checked once, then used
    through one descriptor: locks, the usage log, the GC stamp and temp files are opened
    relative to it without following links, so no one can redirect those writes elsewhere."""

    path: str
    fd: int  # O_DIRECTORY|O_NOFOLLOW descriptor of PATH; -1 on Windows (paths are used there)
    platform: str


def open_env_dir(cfg: Config, create: bool = True, platform: str = "") -> Optional[EnvDir]:
    """The env dir's PLATFORM directory (default cfg.platform), created 0700 if CREATE (with
    the env dir and its missing parents) and checked like private_dir; None if it is missing
    and not CREATE."""
    platform = platform or cfg.platform
    try:
        root = private_dir(cfg.env_dir, "the env dir", EXIT_ENV_DIR, cfg.shared_ok, create)
    except FileNotFoundError:
        return None
    path = os.path.join(cfg.env_dir, platform)
    if root < 0:  # Windows: no descriptors for dirs
        os.makedirs(path, exist_ok=True)
        return EnvDir(path, -1, platform)
    try:
        fd = _open_dir(platform, path, "the env dir", EXIT_ENV_DIR, cfg.shared_ok, create, root)
    except FileNotFoundError:
        return None
    finally:
        os.close(root)
    return EnvDir(path, fd, platform)


def _open_dir(name: str, path: str, what: str, code: int, shared_ok: Optional[bool],
              create: bool, dir_fd: Optional[int] = None) -> int:
    """Open the dir NAME (relative to DIR_FD) without following a link, creating it 0700 if
    CREATE; unless SHARED_OK it must be the user's and not writable by others (fstat of the
    descriptor: what is checked is what is used). PATH and WHAT are for messages."""
    try:
        if create:
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                pass
        fd = os.open(name, os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        if create:
            raise UsageError(f"cannot create {what}: it vanished", path, code=code) from None
        raise
    except OSError as e:
        import errno

        reason = "it is a symbolic link or not a directory" if e.errno in (
            errno.ELOOP, errno.ENOTDIR) else e.strerror
        raise UsageError(f"cannot {'create' if create else 'open'} {what}: {reason}", path,
                         code=code) from None
    problem = "" if shared_ok else _foreign(os.fstat(fd))
    if problem:
        os.close(fd)
        accept = "" if shared_ok is None else "use --allow-shared-env-dir to accept it"
        fix = "chmod go-w it" if "writable" in problem else ""
        hint = ", or ".join(h for h in (fix, accept) if h)
        raise UsageError(f"{what} {problem}; refusing to run what someone else could "
                         f"{'plant' if fix else 'change'}{f' ({hint})' if hint else ''}", path,
                         code=code)
    return fd


def _foreign(st: os.stat_result) -> str:
    """Why a file with stat ST could be changed by another user ('' if it cannot)."""
    if st.st_uid != os.getuid():
        return "belongs to another user"
    if st.st_mode & 0o022:
        return "is writable by other users"
    return ""


def private_dir(path: str, name: str, code: int, shared_ok: Optional[bool] = None,
                create: bool = True) -> int:
    """Open the dir PATH, created 0700 with its missing parents if CREATE (whatever the umask);
    return its descriptor (-1 on Windows, where nothing is checked). Refused (unless SHARED_OK)
    when it is another user's or writable by others, or when any parent (of its real path) is
    another user's or writable by others without the sticky bit: the rule of OpenSSH's
    secure_path and of sudo (root's parents are fine). Then no one else can swap it, or any dir
    above it, between the check and its use. A missing PATH without CREATE raises
    FileNotFoundError. Errors name NAME, point at PATH and exit with CODE; a SHARED_OK of None
    means --allow-shared-env-dir does not apply (so it is not suggested).
    """
    try:
        if create:
            _makedirs_private(path)
        elif not os.path.isdir(path):
            raise FileNotFoundError(path)
    except OSError as e:
        if isinstance(e, FileNotFoundError) and not create:
            raise
        raise UsageError(f"cannot create {name}: {e.strerror}", path, code=code) from None
    if os.name == "nt":
        return -1
    real = os.path.realpath(path)
    if not shared_ok:
        _check_parents(real, path, name, code, shared_ok)
    return _open_dir(real, path, name, code, shared_ok, False)


def _makedirs_private(path: str) -> None:
    """Create PATH and each missing parent 0700 (os.makedirs gives parents the umask's mode)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            pass


def _check_parents(real: str, path: str, name: str, code: int, shared_ok: Optional[bool]) -> None:
    """Refuse REAL if a dir above it is another user's (not root's) or is writable by others
    and not sticky: whoever can rename its entries can swap the env dir under us."""
    parent, uid = os.path.dirname(real), os.getuid()
    while True:
        st = os.stat(parent)
        problem = "" if st.st_uid in (0, uid) else "belongs to another user"
        if not problem and st.st_mode & 0o022 and not st.st_mode & 0o1000:
            problem = "is writable by other users and not sticky"
        if problem:
            accept = "" if shared_ok is None else " (use --allow-shared-env-dir to accept it)"
            raise UsageError(f"{name} is inside {parent}, which {problem}: someone else could "
                             f"swap it for theirs; refusing it{accept}", path, code=code)
        up = os.path.dirname(parent)
        if up == parent:
            return
        parent = up


###############################################################################
# The package manager, and bootstrapping micromamba ###########################
###############################################################################
# With --bootstrap (or CONDA_EXECUTE_BOOTSTRAP=1, or `bootstrap: true` in a condarc) and no
# conda, mamba or micromamba anywhere, the official static micromamba is downloaded once into a
# private dir, and find_manager uses it from then on (last, after everything on PATH):
#     $XDG_CACHE_HOME/conda-execute/bin/micromamba   (default ~/.cache/conda-execute; dirs 0700)
#     $XDG_CACHE_HOME/conda-execute/root/            its root prefix, passed as `create -r`:
#                                                    package cache, and a .condarc naming
#                                                    conda-forge (what Miniforge's root has)
# The download is the conda package micromamba's own docs fetch (a .tar.bz2 from
# https://micro.mamba.pm/api/micromamba/{platform}/latest); only bin/micromamba is taken from it.
# Transport: https; file:// (an air-gapped mirror); http:// only to a loopback host, or anywhere
# when micromamba-sha256 pins the archive. Environments stay in the usual default env dir
# (~/.conda/tmp_envs), so the first run and later ones agree on it.

BOOTSTRAP_PLATFORMS = frozenset({"linux-64", "linux-aarch64", "linux-ppc64le", "osx-64",
                                 "osx-arm64"})  # conda subdirs with a static micromamba build
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
BOOTSTRAP_CONDARC = "channels:\n  - conda-forge\n"


def bootstrap_dir() -> str:
    """$XDG_CACHE_HOME/conda-execute (a relative XDG_CACHE_HOME is ignored, as the spec says)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "conda-execute")


def bootstrapped_micromamba() -> str:
    """Where a bootstrapped micromamba lives (it may not exist)."""
    return os.path.join(bootstrap_dir(), "bin", "micromamba")


def bootstrap_platform() -> str:
    """conda_platform(), if micromamba has a static build for it; else an error."""
    found = conda_platform()
    if found not in BOOTSTRAP_PLATFORMS:
        raise UsageError(f"cannot bootstrap micromamba: no static build for {found}; "
                         "install conda or micromamba yourself, or set micromamba-url",
                         code=EXIT_BOOTSTRAP_FAILED)
    return found


def micromamba_url(cfg: Config) -> str:
    """The configured download URL (default: the official one) with {platform} filled in."""
    url = cfg.micromamba_url or MICROMAMBA_URL
    return url.replace("{platform}", bootstrap_platform()) if "{platform}" in url else url


def check_transport(url: str, pinned: bool) -> None:
    """https and file:// always; http:// to a loopback host, or anywhere with a sha256 pin."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("https", "file") or (scheme == "http" and (
            pinned or (parts.hostname or "").lower() in LOOPBACK_HOSTS)):
        return
    raise UsageError(f"cannot bootstrap micromamba: refusing to download {url!r} (use https://, "
                     "file://, http:// to a loopback host, or pin micromamba-sha256)",
                     code=EXIT_BOOTSTRAP_FAILED)


def _bootstrap_error(url: str, reason: str) -> UsageError:
    return UsageError(f"cannot bootstrap micromamba from {url}: {reason}",
                      code=EXIT_BOOTSTRAP_FAILED)


def download_to(url: str, out: IO[bytes], timeout: float, pinned: bool, quiet: bool) -> str:
    """Download micromamba's archive into OUT (see download); return its sha256.

    TIMEOUT bounds each read, 10 times it the whole download; a redirect must lead to a URL
    the transport rules accept.
    """
    import time

    show, drawn = show_for(quiet, False), [0]

    def progress(done: int, total: Optional[int]) -> None:  # on a terminal: one line, in place
        mib = 1024 * 1024
        text = status_line("downloading micromamba", f"{done / mib:.1f}" + (
            f" of {total / mib:.1f} MiB" if total else " MiB"), time.monotonic() - show.start,
            _terminal_width())
        sys.stderr.write("\r" + text.ljust(drawn[0]))
        sys.stderr.flush()
        drawn[0] = len(text)

    try:
        return download(url, out, "archive", MAX_BOOTSTRAP_BYTES, timeout, 10 * timeout,
                        lambda new: check_transport(new, pinned),
                        lambda reason: _bootstrap_error(url, reason),
                        progress if show.mode == "tty" else None)
    finally:
        if drawn[0]:
            sys.stderr.write("\r" + " " * drawn[0] + "\r")
            sys.stderr.flush()


def extract_micromamba(archive: IO[bytes], out: IO[bytes], url: str) -> None:
    """Copy the archive's bin/micromamba into OUT; nothing else is ever extracted.

    The whole archive is refused if any member has an absolute path or a '..' part, or if
    bin/micromamba is missing, repeated, or not a regular file (a link, a device, a dir).
    """
    import tarfile

    def bad(reason: str) -> UsageError:
        return _bootstrap_error(url, f"bad archive: {reason}")

    found = False
    archive.seek(0)
    try:
        with tarfile.open(fileobj=archive, mode="r:bz2") as tf:
            for member in tf:
                parts = member.name.replace("\\", "/").split("/")
                if member.name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                    raise bad(f"unsafe member path {member.name!r}")
                if "/".join(p for p in parts if p not in ("", ".")) != "bin/micromamba":
                    continue
                if found:
                    raise bad("more than one bin/micromamba")
                if not member.isreg():
                    raise bad("bin/micromamba is a link or not a regular file")
                if member.size > MAX_BOOTSTRAP_BYTES:
                    raise bad(f"bin/micromamba is larger than {MAX_BOOTSTRAP_BYTES} bytes")
                src = tf.extractfile(member)
                assert src is not None
                copied = 0
                while True:
                    chunk = src.read(1 << 16)
                    if not chunk:
                        break
                    copied += len(chunk)
                    out.write(chunk)
                if copied != member.size:
                    raise bad("bin/micromamba is truncated")
                found = True
    except UsageError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise bad(f"not a readable .tar.bz2 ({e or type(e).__name__})") from None
    if not found:
        raise bad("no bin/micromamba in it")


def _private_dir(path: str, create: bool = True) -> int:
    """A private dir of the bootstrap, opened (see private_dir)."""
    return private_dir(path, "micromamba's private dir", EXIT_BOOTSTRAP_FAILED, None, create)


def _check_runs(exe: str, url: str) -> None:
    """The extracted binary must run `--version` successfully before it is installed."""
    import subprocess

    try:
        proc = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise _bootstrap_error(url, f"the extracted micromamba does not run: "
                                    f"{getattr(e, 'strerror', None) or e}") from None
    if proc.returncode != 0:
        raise _bootstrap_error(url, f"the extracted micromamba does not run (`--version` "
                                    f"exited with {proc.returncode})")


def bootstrap_micromamba(cfg: Config, quiet: bool = False) -> str:
    """Download, verify and install micromamba once (under a lock); return its path.

    Concurrent first runs wait on the lock, and all but the first find it installed. On any
    failure nothing is left behind: no binary, no temp files, no lock, no empty dirs.
    """
    if os.name == "nt":
        raise UsageError("cannot bootstrap micromamba on Windows; install Miniforge",
                         code=EXIT_BOOTSTRAP_FAILED)
    pin = cfg.micromamba_sha256.strip().lower()
    if pin and (len(pin) != 64 or not set(pin) <= NAME_CHARS):
        raise UsageError(f"micromamba-sha256 must be 64 hex digits, got {pin!r}")
    url = micromamba_url(cfg)
    check_transport(url, bool(pin))
    home = bootstrap_dir()
    bindir, lock, target = os.path.join(home, "bin"), os.path.join(home, ".bootstrap.lock"), \
        bootstrapped_micromamba()
    while True:  # a failing run removes the dirs it made: make them again if they vanish
        home_fd = _private_dir(home)
        os.close(_private_dir(bindir))
        try:
            fd = acquire(EnvDir(home, home_fd, ""), os.path.basename(lock), exclusive=True)
            break
        except FileNotFoundError:
            continue
        finally:
            os.close(home_fd)
    assert fd is not None
    try:
        if not os.access(target, os.X_OK):  # else another run installed it while we waited
            _install_micromamba(url, pin, target, cfg.bootstrap_timeout, quiet)
    except BaseException:
        for remove, path in ((os.unlink, lock), (os.rmdir, bindir), (os.rmdir, home)):
            try:
                remove(path)
            except OSError:
                pass
        raise
    finally:
        try:
            os.unlink(lock)  # waiters notice (acquire re-checks the path) and take a new one
        except OSError:
            pass
        os.close(fd)
    return target


def _install_micromamba(url: str, pin: str, target: str, timeout: float, quiet: bool) -> None:
    """Download URL, check it, and put its bin/micromamba at TARGET (atomically, 0755)."""
    import shutil
    import tempfile

    bindir = os.path.dirname(target)
    for name in os.listdir(bindir):  # left by a run that was killed (we hold the lock)
        if name.startswith(".micromamba-"):
            shutil.rmtree(os.path.join(bindir, name), ignore_errors=True)
    if not quiet:
        _say(f"no conda, mamba or micromamba found; downloading micromamba from {url} into "
             f"{os.path.dirname(bindir)} (once; to refuse: --no-bootstrap, "
             "CONDA_EXECUTE_BOOTSTRAP=0 or 'bootstrap: false' in a condarc)")
    root = os.path.join(os.path.dirname(bindir), "root")
    rc_path, wrote_rc = os.path.join(root, ".condarc"), False
    tmpdir = tempfile.mkdtemp(prefix=".micromamba-", dir=bindir)
    try:
        with tempfile.TemporaryFile() as archive:  # anonymous: gone however we exit
            digest = download_to(url, archive, timeout, bool(pin), quiet)
            if pin and digest != pin:
                raise _bootstrap_error(url, f"sha256 mismatch: expected {pin}, got {digest}")
            tmp = os.path.join(tmpdir, "micromamba")
            with open(tmp, "xb") as out:
                extract_micromamba(archive, out, url)
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, 0o755)
        _check_runs(tmp, url)
        os.close(_private_dir(root))
        if not os.path.exists(rc_path):
            _atomic_write(rc_path, BOOTSTRAP_CONDARC, 0o644)
            wrote_rc = True
        # bin/micromamba itself is streamed (up to MAX_BOOTSTRAP_BYTES) into a temp dir, not
        # written by _atomic_write from memory: it is renamed into place here, then bin fsync'd.
        os.replace(tmp, target)
        dir_fd = os.open(bindir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if wrote_rc:
            os.unlink(rc_path)
        try:
            os.rmdir(root)
        except OSError:
            pass
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if not quiet:
        _say(f"installed micromamba at {target} (archive sha256 {digest}; to pin it, set "
             "CONDA_EXECUTE_MICROMAMBA_SHA256 or micromamba-sha256)")


class Manager(NamedTuple):
    """A package manager and the dialect it speaks."""

    exe: str
    kind: str  # "conda" (conda, mamba 1.x) or "micromamba" (micromamba 1.x/2.x, mamba 2.x)
    root: str = ""  # a root prefix to pass (-r): only for a bootstrapped micromamba


def no_manager(cfg: Config) -> UsageError:
    """Exit 69: what was searched, what refused the download, how to allow it again."""
    searched = f"--conda, CONDA_EXECUTE_CONDA, CONDA_EXE, MAMBA_EXE, {', '.join(MANAGERS)} " \
        f"on PATH, and {bootstrapped_micromamba()}"
    refused = cfg.refused_by or "--no-bootstrap"
    allow = "run without --no-bootstrap" if refused == "--no-bootstrap" else (
        "unset CONDA_EXECUTE_BOOTSTRAP" if refused.startswith("CONDA_") else
        f"remove {refused}") + " or add --bootstrap"
    return UsageError(f"no conda, mamba or micromamba found (searched {searched}) and "
                      f"downloading micromamba was refused by {refused}; to fix: install "
                      "Miniforge (https://conda-forge.org/download/), or set "
                      f"CONDA_EXE=/path/to/conda, or allow the download: {allow}",
                      code=EXIT_NO_CONDA)


_KINDS: Dict[str, str] = {}  # manager_kind's answers in this process


def is_conda_version_line(line: str) -> bool:
    """`conda 26.7.1` or `mamba 1.5.8` (the regex (conda|mamba) [0-9], by hand: no re)."""
    return line.startswith(("conda ", "mamba ")) and line[6:7] in DIGITS


def is_bare_version(text: str) -> bool:
    """`2.0.5` (the regex [0-9]+(\\.[0-9]+)+\\S*$, by hand): N.N, then no space to the end."""
    head, _, rest = text.partition(".")
    rest = rest[:-1] if rest.endswith("\n") else rest  # $ also matches before a last newline
    return _digits(head) and rest[:1] in DIGITS and not any(c.isspace() for c in rest)


PROBE_CACHE = "managers"  # in bootstrap_dir(): one file per manager, see _remembered_kind
MANAGER_KINDS = ("conda", "micromamba")


def manager_kind(exe: str, verbose: bool = False) -> str:
    """The dialect of EXE from what it is, not its name: `EXE --version`, once per executable
    (remembered in bootstrap_dir()/managers, keyed by what identifies the file) and once per
    process. Only ever on the cold path (creating, locking), never on a warm run. VERBOSE: say
    whether the kind was probed or remembered."""
    if exe in _KINDS:
        return _KINDS[exe]
    key = _manager_identity(exe)
    kind = _remembered_kind(*key) if key else ""
    how = "remembered from an earlier probe"
    if not kind:
        kind, how = _probe_kind(exe), "probed with --version"
        if key:
            _remember_kind(key[0], key[1], kind)
    if verbose:
        _say(f"package manager {exe} ({kind} command line): {how}")
    _KINDS[exe] = kind
    return kind


def _probe_kind(exe: str) -> str:
    """`EXE --version`: conda prints `conda X` and mamba 1.x `mamba X` then `conda Y` (conda's
    command line); libmamba's programs (micromamba 1.x and 2.x, mamba 2.x) the bare version."""
    try:
        rc, out, err = Child.output([exe, "--version"])
    except OSError as e:
        raise UsageError(f"cannot run {exe}: {e.strerror}", code=EXIT_NO_CONDA) from None
    lines = out.split("\n")
    if rc == 0 and any(is_conda_version_line(ln) for ln in lines):
        return "conda"
    if rc == 0 and is_bare_version(lines[0].strip()):
        return "micromamba"
    shown = lines[0].strip()[:80] or err.strip()[:80]
    raise UsageError(f"{exe} --version exited with {rc} and printed "
                     f"{shown!r}: not conda, mamba or micromamba", code=EXIT_NO_CONDA)


def _manager_identity(exe: str) -> Optional[Tuple[str, str]]:
    """(entry name, identity) of EXE: sha256 of its real path (32 hex digits), and
    'DEV INO SIZE MTIME_NS REALPATH' of the file it is now; None if it cannot be stat'ed."""
    try:
        real = os.path.realpath(exe)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    return (_sha256_bytes(os.fsencode(real))[:32],
            f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {real}")


def _remembered_kind(name: str, identity: str) -> str:
    """The kind recorded in entry NAME if it was recorded for IDENTITY, else '' (missing,
    unreadable, foreign, stale or garbage: all mean 'probe')."""
    if os.name == "nt":
        return ""
    try:
        d = _private_dir(os.path.join(bootstrap_dir(), PROBE_CACHE), create=False)
    except (OSError, UsageError):  # missing, not a dir, another user's, writable by others
        return ""
    try:
        fd = os.open(name, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK, dir_fd=d)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000 or _foreign(st):
                return ""
            data = os.read(fd, 8192)
        finally:
            os.close(fd)
    except OSError:
        return ""
    finally:
        os.close(d)
    kind, _, rest = os.fsdecode(data).partition(" ")
    return kind if kind in MANAGER_KINDS and rest == identity + "\n" else ""


def _remember_kind(name: str, identity: str, kind: str) -> None:
    """Record KIND for IDENTITY in entry NAME (atomically, 0600, in a private dir created if
    missing); a cache that cannot be written is left as it is."""
    if os.name == "nt":
        return
    try:
        d = _private_dir(os.path.join(bootstrap_dir(), PROBE_CACHE))
    except (OSError, UsageError):
        return
    try:
        _atomic_write(name, os.fsencode(f"{kind} {identity}\n"), 0o600, dir_fd=d)
    except OSError:
        pass
    finally:
        os.close(d)


def manager_for(cfg: Config, quiet: bool = False, verbose: bool = False) -> Manager:
    """The package manager to create with and its kind (cold path: may run `--version`)."""
    exe = manager_exe(cfg, quiet)
    if exe == bootstrapped_micromamba() or is_bundled_micromamba(exe):  # the bootstrap's root
        return Manager(exe, "micromamba", os.path.join(bootstrap_dir(), "root"))
    return Manager(exe, manager_kind(exe, verbose))


def manager_exe(cfg: Config, quiet: bool = False) -> str:
    """The package manager's path; unless refused, download micromamba if none."""
    if cfg.conda:  # given by the user: used, or an error (never silently another one)
        given = cfg.conda if os.sep in cfg.conda else _which(cfg.conda)
        if not (given and os.path.isfile(given) and os.access(given, os.X_OK)):
            raise UsageError(f"the package manager given (--conda or CONDA_EXECUTE_CONDA), "
                             f"{cfg.conda!r}, is not an executable file", code=EXIT_NO_CONDA)
    exe = cfg.manager or find_manager(cfg.conda)
    if not exe and cfg.bootstrap:
        exe = bootstrap_micromamba(cfg, quiet)
    if not exe:
        raise no_manager(cfg)
    return exe


def explicit_command(mgr: Manager, prefix: str) -> List[str]:
    """The command printing PREFIX's explicit list (URL#md5 lines after @EXPLICIT).

    conda: `list --explicit --md5`; libmamba: `env export --explicit` (md5 by default;
    `list` has no --explicit in micromamba 1.x and 2.0).
    """
    if mgr.kind == "conda":
        return [mgr.exe, "list", "-p", prefix, "--explicit", "--md5"]
    return [mgr.exe, "env", "export", *(["-r", mgr.root] if mgr.root else []), "-p", prefix,
            "--explicit"]


###############################################################################
# Creating the environment, once, under a lock #################################
###############################################################################
# One lock file per env, beside it. Running a script holds it shared for the script's whole
# life (the descriptor survives exec); creating holds it exclusively; GC takes it exclusively
# without waiting and skips the env when it cannot. A lock file removed while someone waits on
# it is detected (the path no longer names the locked inode) and opened again.


def acquire(d: EnvDir, name: str, exclusive: bool, wait: bool = True, create: bool = True,
            flags: int = os.O_RDWR) -> Optional[int]:
    """Open NAME in D (see _open_in) with FLAGS and lock it; return the descriptor, or None if
    WAIT is false and it is taken. Without CREATE, a missing NAME raises FileNotFoundError.
    A waiter whose file was removed or replaced meanwhile opens the new one.
    """
    flags |= os.O_CREAT if create else 0
    while True:
        fd = _open_in(d, name, flags)
        if not _lock(fd, exclusive, wait, d.path):
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), _lstat_in(d, name)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _open_in(d: EnvDir, name: str, flags: int) -> int:
    """Open NAME in D's directory (created 0600) without following a link or blocking on a
    FIFO; it must be a regular file of the user's (fstat: what is checked is what is used)."""
    if d.fd < 0:
        return os.open(os.path.join(d.path, name), flags, 0o600)
    try:
        fd = os.open(name, flags | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK, 0o600, dir_fd=d.fd)
    except OSError as e:
        import errno

        if e.errno == errno.ELOOP:
            raise PermissionError(e.errno, f"{name} is a symbolic link; not following it",
                                  os.path.join(d.path, name)) from None
        raise
    st = os.fstat(fd)
    if not (st.st_mode & 0o170000 == 0o100000 and st.st_uid == os.getuid()):
        os.close(fd)
        import errno

        raise PermissionError(errno.EPERM, f"{name} is not a regular file of yours",
                              os.path.join(d.path, name))
    return fd


def _lstat_in(d: EnvDir, name: str) -> os.stat_result:
    if d.fd < 0:
        return os.lstat(os.path.join(d.path, name))
    return os.stat(name, dir_fd=d.fd, follow_symlinks=False)


# How this process locks: flock; fcntl.lockf (POSIX record locks) where the file system
# refuses flock; "none" where it refuses both (after one warning). POSIX locks belong to the
# process, not the descriptor: closing ANY descriptor of a locked file drops them (so a locked
# file is never opened a second time: read_log reads the log through the locked descriptor),
# a forked child does not hold them (conda running a create is not covered), and they survive
# exec (the script's lock descriptor is inheritable, as for flock).
LOCKING = ["flock"]


def _lock(fd: int, exclusive: bool, wait: bool, where: str) -> bool:
    """Lock FD (see LOCKING); False if WAIT is false and another process holds it."""
    if os.name == "nt":  # no flock on Windows: environments are not protected there
        return True
    import fcntl

    op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    while LOCKING[0] != "none":
        try:
            (fcntl.flock if LOCKING[0] == "flock" else fcntl.lockf)(fd, op)
            return True
        except OSError as e:  # errno is imported only when a lock fails (warm path: never)
            import errno

            if e.errno in (errno.EAGAIN, errno.EACCES) and not wait:
                return False
            if e.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK):
                raise
            LOCKING[0] = "lockf" if LOCKING[0] == "flock" else "none"
    if len(LOCKING) == 1:
        LOCKING.append(where)
        _say(f"warning: the {_fs_type(where)} file system of {where} refuses flock and fcntl "
             "locks; going on without them: simultaneous first runs of a script may break "
             "its environment, and garbage collection removes nothing")
    return True


def _fs_type(path: str) -> str:
    """The type of the file system PATH is on, from /proc/self/mounts ('unknown' elsewhere)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                mount = parts[1].replace("\\040", " ") if len(parts) > 2 else ""
                if mount and len(mount) >= len(best) and (
                        path == mount or path.startswith(mount.rstrip("/") + "/")):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def _share(fd: int) -> None:
    """Turn an exclusive lock into a shared one (atomic on Linux, flock and lockf alike)."""
    if os.name != "nt" and LOCKING[0] != "none":
        import fcntl

        (fcntl.flock if LOCKING[0] == "flock" else fcntl.lockf)(fd, fcntl.LOCK_SH)


def is_complete(env: Env) -> bool:
    return os.path.isfile(os.path.join(env.prefix, MARKER))


def missing_interpreter(env: Env, spec: Spec) -> str:
    """The env's interpreter (run_with's command as found in the env at creation, recorded in
    the marker) if it is gone since, e.g. purged from a scratch file system; else ''.
    One stat when run_with's command is in the env's bin; the marker is read only when not."""
    word = _interpreter(spec.run_with) if spec.run_with else ""
    if os.name == "nt" or not word or (os.sep not in word and
                           os.path.exists(os.path.join(env.prefix, "bin", word))):
        return ""
    recorded = _read_json_object(os.path.join(env.prefix, MARKER)).get("interpreter")
    if isinstance(recorded, str) and recorded and \
            not os.path.exists(os.path.join(env.prefix, recorded)):
        return recorded
    return ""


def env_interpreter(prefix: str, spec: Spec) -> Optional[str]:
    """run_with's command as found in PREFIX's bin (relative to PREFIX), or None if it is not
    there (it then comes from PATH, and its absence later is no damage)."""
    word = _interpreter(spec.run_with) if spec.run_with else ""
    if os.name == "nt" or not word or os.sep in word or \
            not _which(word, os.path.join(prefix, "bin")):
        return None
    return os.path.join("bin", word)


def remove_tree(path: str) -> None:
    """Remove a directory: first renamed aside (atomic), so nothing half-removed looks valid."""
    import shutil

    if not os.path.lexists(path):
        return
    aside = os.path.join(os.path.dirname(path), f".trash-{os.path.basename(path)}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except OSError:
        aside = path
    shutil.rmtree(aside, ignore_errors=True)


def create_command(mgr: Manager, spec: Spec, prefix: str, quiet: bool) -> List[str]:
    """The create command line: from the lock's list (PREFIX.explicit, see explicit_list) when
    one applies, else from the specs.

    '--' ends the options on every back end (conda's argparse, libmamba's CLI11), so no spec
    is ever read as a flag.
    """
    cmd = [mgr.exe, "create", *(["-r", mgr.root] if mgr.root else []), "-p", prefix, "--yes"]
    if quiet:
        cmd.append("--quiet")
    if spec.lock:
        return [*cmd, "--file", prefix + ".explicit"]
    if spec.channels:
        cmd.append("--override-channels")
        for channel in spec.channels:
            cmd += ["-c", channel]
    return [*cmd, "--", *spec.env]


def pip_command(prefix: str, spec: Spec) -> List[str]:
    """pip install into the env: the lock's exact pins (--no-deps), else the requirements."""
    cmd = [os.path.join(prefix, "bin", "python"), "-m", "pip", "install",
           "--disable-pip-version-check", "--no-input"]
    if spec.lock and spec.lock.pip and bundle_channel(spec.lock.path):  # the bundle's wheels
        wheels = os.path.join(os.path.dirname(bundle_channel(spec.lock.path)), BUNDLE_WHEELS)
        cmd += ["--no-index", "--find-links", wheels]
    if spec.lock:
        return [*cmd, "--no-deps", "--", *spec.lock.pip] if spec.lock.pip else []
    return [*cmd, "--", *spec.pip] if spec.pip else []


def write_marker(env: Env, spec: Spec, mgr: Optional[Manager] = None) -> None:
    """Record that the env is complete: conda-meta/conda-execute (JSON), written atomically.

    Written without importing json (~1 ms on the cold path); it holds no size (see with_size).
    MGR (exe, kind) lets a warm run on Windows pick `run`'s flags without asking the manager.
    """
    import time

    def strings(items: Iterable[str]) -> str:
        return "[" + ", ".join(map(_json_string, items)) + "]"

    lock = _json_string(spec.lock.path) if spec.lock else "null"
    interpreter = env_interpreter(env.prefix, spec)
    manager = strings([mgr.exe, mgr.kind]) if mgr else "null"
    _atomic_write(os.path.join(env.prefix, MARKER),
                  f'{{"name": {_json_string(env.name)}, "env": {strings(spec.env)}, '
                  f'"channels": {strings(spec.channels)}, "pip": {strings(spec.pip)}, '
                  f'"lock": {lock}, "created": {time.time():.3f}, "interpreter": '
                  f'{_json_string(interpreter) if interpreter else "null"}, '
                  f'"conda_execute": {_json_string(__version__)}, "manager": {manager}}}\n',
                  0o644)


def tree_size(path: str) -> int:
    """Bytes of regular files under PATH (not following links). A walk of the whole env: never
    on the run path (creating a 10,000-file env would wait for it); --list measures lazily."""
    total, stack = 0, [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            pass
    return total


class Show(NamedTuple):
    """How creating an env shows itself on stderr (stdout belongs to the script)."""

    mode: str  # "tty": one status line redrawn in place; "plain": lines; "quiet"; "verbose"
    start: float  # time.monotonic() when creating began


def show_for(quiet: bool, verbose: bool) -> Show:
    """-v: everything, live; -q: nothing unless it fails; else a status line on a terminal."""
    import time

    mode = "verbose" if verbose else "quiet" if quiet else \
        "tty" if os.name != "nt" and sys.stderr.isatty() else "plain"
    return Show(mode, time.monotonic())


PHASES = (  # the start of a line conda, micromamba or pip prints -> the phase shown
    ("Collecting package metadata", "collecting package metadata"),
    ("Solving environment", "solving environment"),
    ("Transaction starting", "linking packages"),
    ("Transaction finished", "finishing"),
    ("Transaction", "solved"),  # micromamba's plan, printed after its solve
    ("Downloading and Extracting Packages", "downloading packages"),
    ("Preparing transaction", "preparing transaction"),
    ("Verifying transaction", "verifying transaction"),
    ("Executing transaction", "executing transaction"),
    ("Linking ", "linking "),  # a phase ending in a space is followed by the line's next word
    ("Collecting ", "collecting "),
    ("Downloading ", "downloading "),
    ("Installing collected packages", "installing"),
)


def phase_of(line: str) -> str:
    """The phase a line of the package manager's (or pip's) output announces, or ""."""
    text = line.strip()
    for start, phase in PHASES:
        if text.startswith(start):
            return phase + text[len(start):].split(" ", 1)[0] if phase.endswith(" ") else phase
    return ""


def status_line(what: str, phase: str, seconds: float, width: int) -> str:
    """'conda-execute: WHAT (2.1 s): PHASE', cut to fit a terminal WIDTH wide."""
    text = f"conda-execute: {what} ({seconds:.1f} s)" + (f": {phase}" if phase else "")
    return text[:max(width - 1, 20)]


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


class _Drawn(NamedTuple):
    """What a status line has drawn so far and read of the step's output."""

    width: int = 0  # characters of the line on screen (to blank them out)
    seen: int = 0  # bytes of the output read
    pending: bytes = b""  # a line not yet ended
    phase: str = ""


def _redraw(log: IO[bytes], show: Show, what: str, drawn: _Drawn) -> _Drawn:
    """Read what the step has written since DRAWN and draw the status line again."""
    import time

    seen, pending, phase = drawn.seen, drawn.pending, drawn.phase
    size = os.fstat(log.fileno()).st_size
    if size > seen:  # pread: the step writes through the same file offset, ours must not move
        pending += os.pread(log.fileno(), size - seen, seen)
        seen = size
        *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
        for line in (*lines, pending):
            phase = phase_of(line.decode("utf-8", "replace")) or phase
        pending = pending[-4096:]
    text = status_line(what, phase, time.monotonic() - show.start, _terminal_width())
    sys.stderr.write("\r" + text.ljust(drawn.width))
    sys.stderr.flush()
    return _Drawn(len(text), seen, pending, phase)


def _file_text(fd: int) -> str:
    """All the file FD holds, as text (the descriptor stays open)."""
    with open(fd, "rb", closefd=False) as f:
        f.seek(0)
        return f.read().decode("utf-8", "replace")


class Child:
    """A child process, started with os.posix_spawn where there is one: what the creation
    steps need of subprocess.Popen (subprocess and what it imports cost ~10 ms, a third of a
    first run's own work). Its stdin is /dev/null; STDOUT and STDERR are descriptors to give
    it (-1: ours); KEEP, one more it inherits (the env's lock)."""

    def __init__(self, cmd: List[str], stdout: int = -1, stderr: int = -1, keep: int = -1):
        self.returncode: Optional[int] = None
        if not hasattr(os, "posix_spawn"):  # Windows
            import subprocess

            self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                          stdout=None if stdout < 0 else stdout,
                                          stderr=None if stderr < 0 else stderr)
            return
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        actions += [(os.POSIX_SPAWN_DUP2, fd, n) for fd, n in ((stdout, 1), (stderr, 2))
                    if fd >= 0]
        was = os.get_inheritable(keep) if keep >= 0 else True
        if not was:
            os.set_inheritable(keep, True)  # inherited, as pass_fds would; as it was after
        try:
            self.pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=actions)
        finally:
            if not was:
                os.set_inheritable(keep, False)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """The exit code (-N for signal N), or None if TIMEOUT seconds pass first."""
        import time

        deadline, delay = time.monotonic() + (timeout or 0.0), 0.0005
        while self.poll(block=timeout is None) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            delay = min(delay * 2, left, 0.05)
            time.sleep(delay)
        return self.returncode

    def poll(self, block: bool = False) -> Optional[int]:
        if self.returncode is None and hasattr(self, "popen"):
            self.returncode = self.popen.wait() if block else self.popen.poll()
        elif self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped meanwhile, by a signal handler's poll()
                return self.returncode
            if pid:
                self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) \
                    else os.WEXITSTATUS(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never a pid that was reaped (and may be reused)
            self.popen.send_signal(signum) if hasattr(self, "popen") else \
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        import _signal

        self.send_signal(_signal.SIGTERM)

    @staticmethod
    def output(cmd: List[str]) -> Tuple[int, str, str]:
        """Run CMD to its end: (exit code, stdout, stderr), each kept in an unnamed file."""
        fds = (unnamed_file(), unnamed_file())
        try:
            rc = Child(cmd, *fds).wait()
            out, err = map(_file_text, fds)
        finally:
            for fd in fds:
                os.close(fd)
        return rc or 0, out, err


def _watch(proc: Child, log: IO[bytes], show: Show, what: str) -> int:
    """Wait for PROC, redrawing one status line from its output; erase it at the end."""
    drawn = _Drawn()
    try:
        while True:
            drawn = _redraw(log, show, what, drawn)
            rc = proc.wait(timeout=0.2)
            if rc is not None:
                return rc
    finally:
        sys.stderr.write("\r" + " " * drawn.width + "\r")
        sys.stderr.flush()


def run_step(cmd: List[str], prefix: str, lock_fd: int, show: Show, what: str,
             code: int = EXIT_NO_CONDA) -> int:
    """Run one creation step (WHAT: how the status line names it); clean up on failure or signal.

    Its output (stdout and stderr, in order) is kept in a temp file and shown in full if it
    fails; with -v it goes to our stderr as it comes. The lock descriptor is passed to the
    package manager, so even if we are killed the lock is held until it exits. SIGINT/SIGTERM
    stop it, remove the half-made prefix and exit 128+N.
    """
    import _signal as signal  # signal.py imports enum (~2 ms) for what this needs not

    log = None
    if show.mode != "verbose":  # the output is kept (shown if the step fails)
        log = open(unnamed_file(), "w+b")  # noqa: SIM115 (closed at exit)
    got: List[int] = []

    procs: list = []

    def forward(signum: int, _frame: object) -> None:
        got.append(signum)
        if procs and procs[0].poll() is None:
            procs[0].send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    # Handlers first: a signal arriving while the child starts must still stop it.
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            out = log.fileno() if log else sys.stderr.fileno()
            proc = Child(cmd, out, out if log else -1, lock_fd)
        except OSError as e:  # CODE: 69 for the package manager, 70 for pip
            remove_tree(prefix)
            raise UsageError(f"cannot run {cmd[0]}: {e.strerror}", code=code) from None
        procs.append(proc)
        if got:
            proc.terminate()
        rc = _watch(proc, log, show, what) if show.mode == "tty" and log else proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if got or rc != 0:
        remove_tree(prefix)
    if got:
        raise UsageError("interrupted while creating the environment; nothing was kept",
                         code=128 + got[0])
    if rc != 0 and log is not None:
        log.seek(0)
        sys.stderr.buffer.write(log.read())
        sys.stderr.flush()
    return rc


def ensure_env(d: EnvDir, env: Env, spec: Spec, cfg: Config, force: bool = False,
               quiet: bool = False, verbose: bool = False) -> int:
    """Make sure ENV exists, complete and whole; return a descriptor holding its lock shared.

    The warm path takes the env's lock shared and finds it whole. Otherwise runs queue on its
    creation lock (asleep in the kernel); the first creates it holding the env's lock
    exclusively, and each of the others then finds it whole and takes the env's lock shared:
    a job array's tasks run side by side, not one after another.
    """
    fd = _env_lock(d, env.lock, exclusive=False)
    assert fd is not None
    if not force and is_complete(env) and not missing_interpreter(env, spec):
        return fd
    os.close(fd)
    cfd = _env_lock(d, env.name + CREATE_LOCK, exclusive=True, wait=False)
    if cfd is None:
        if not quiet:
            _say(f"waiting for another conda-execute to finish creating {env.name} ...")
        cfd = _env_lock(d, env.name + CREATE_LOCK, exclusive=True)
    assert cfd is not None
    try:
        return _create_locked(d, env, spec, cfg, force, quiet, verbose)
    finally:
        os.close(cfd)


def _create_locked(d: EnvDir, env: Env, spec: Spec, cfg: Config, force: bool, quiet: bool,
                   verbose: bool) -> int:
    """ensure_env's part under the creation lock: take the env's lock and create if needed."""
    if not force:
        fd = _env_lock(d, env.lock, exclusive=False)
        if is_complete(env) and not missing_interpreter(env, spec):
            return fd  # made by the run we waited for
        os.close(fd)
    fd = _env_lock(d, env.lock, exclusive=True, wait=False)
    if fd is None:
        if force:
            raise UsageError(f"environment {env.name} is in use by a running script; "
                             "not recreating it (retry when it has finished)",
                             spec.label, code=EXIT_BUSY)
        if not quiet:
            _say(f"waiting for the scripts that use {env.name} to finish ...")
        fd = _env_lock(d, env.lock, exclusive=True)
    gone = is_complete(env) and missing_interpreter(env, spec)
    if gone:
        _say(f"environment {env.name} is damaged ({os.path.join(env.prefix, gone)} is gone); "
             "recreating it")
    if force or gone or not is_complete(env):
        create(env, spec, cfg, fd, quiet=quiet, verbose=verbose)
    _share(fd)
    return fd


def _env_lock(d: EnvDir, name: str, exclusive: bool, wait: bool = True) -> Any:
    """acquire() in the env dir, its errors (a read-only file system...) one line, exit 73."""
    try:
        return acquire(d, name, exclusive, wait)
    except OSError as e:
        raise UsageError(f"cannot lock {name} in the env dir: {e.strerror}", d.path,
                         code=EXIT_ENV_DIR) from None


def create(env: Env, spec: Spec, cfg: Config, lock_fd: int, quiet: bool = False,
           verbose: bool = False) -> None:
    """Create ENV from SPEC (the caller holds the lock exclusively)."""
    mgr = manager_for(cfg, quiet, verbose)
    if os.path.lexists(env.prefix):
        if verbose or not quiet:
            _say(f"removing {'the' if is_complete(env) else 'incomplete'} environment "
                 f"{env.prefix}")
        remove_tree(env.prefix)
    if spec.lock:
        explicit_list(spec, env.prefix + ".explicit")
    try:
        _create_steps(env, spec, mgr, lock_fd, quiet, verbose)
    finally:
        if spec.lock:
            try:
                os.unlink(env.prefix + ".explicit")
            except OSError:
                pass


def explicit_list(spec: Spec, path: str) -> None:
    """Write the lock's list for this platform to PATH, as `conda create --file` takes it;
    from a bundle, each URL is the bundle's own copy, checked against its sha256 first."""
    assert spec.lock is not None
    urls = list(spec.lock.urls)
    channel = bundle_channel(spec.lock.path)
    if channel:
        urls = [bundled_url(channel, url, sha, spec) for url, sha in
                zip(spec.lock.urls, spec.lock.sha256)]
    try:
        _atomic_write(path, "@EXPLICIT\n" + "".join(u + "\n" for u in urls))
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}", code=EXIT_ENV_DIR) from None


def bundle_channel(lock_path: str) -> str:
    """The packages folder of the bundle the lock at LOCK_PATH is in (see --bundle), or ''."""
    folder = os.path.join(os.path.dirname(os.path.abspath(lock_path)), BUNDLE_PACKAGES)
    return folder if os.path.isfile(os.path.join(folder, BUNDLE_MARK)) else ""


def bundled_url(channel: str, url: str, sha256: str, spec: Spec) -> str:
    """The file:// URL of URL's archive in the bundle's CHANNEL folder, after checking it
    against SHA256 (else the md5 after '#'): a missing or changed file is exit 74."""
    from urllib.parse import quote

    _, md5, place = archive_place(url)
    local = os.path.join(channel, place)
    try:
        matches = archive_matches(local, sha256, md5)
    except OSError as e:
        raise UsageError(f"the bundle's {place} cannot be read: {e.strerror}",
                         spec.label, code=EXIT_BAD_ARCHIVE) from None
    if not matches:
        raise UsageError(f"the bundle's {place} does not match the lock's "
                         f"{'sha256' if sha256 else 'md5'}: it was changed or damaged; "
                         "nothing was created", spec.label, code=EXIT_BAD_ARCHIVE)
    return "file://" + quote(os.path.abspath(local)) + (f"#{md5}" if md5 else "")


def archive_place(url: str) -> Tuple[str, str, str]:
    """(URL without '#md5', the md5, 'SUBDIR/FILE': where a bundle keeps its archive)."""
    from urllib.parse import unquote

    bare, _, md5 = url.partition("#")
    return bare, md5, "/".join(unquote(p) for p in bare.rstrip("/").split("/")[-2:])


def archive_matches(path: str, sha256: str, md5: str) -> bool:
    """Whether the file at PATH has SHA256 (the lock's), else MD5 when the lock has none."""
    import hashlib

    digest = hashlib.sha256() if sha256 else hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == (sha256 or md5)


def _create_steps(env: Env, spec: Spec, mgr: Manager, lock_fd: int, quiet: bool,
                  verbose: bool) -> None:
    """create()'s steps: the package manager's create, pip, the marker."""
    show = show_for(quiet, verbose)
    cmd = create_command(mgr, spec, env.prefix, quiet)
    what = f"creating environment {env.name} with {os.path.basename(mgr.exe)}"
    if show.mode in ("plain", "verbose"):
        _say(what + " (first run) ...")
    if verbose:
        _say("running: " + " ".join(cmd))
    rc = run_step(cmd, env.prefix, lock_fd, show, what)
    if rc != 0:
        raise UsageError(f"could not create environment {env.name}: "
                         f"{os.path.basename(mgr.exe)} create exited with {rc} (see above)",
                         spec.label, spec.line, code=EXIT_CREATE_FAILED)
    if not os.path.isdir(os.path.join(env.prefix, "conda-meta")):
        remove_tree(env.prefix)
        raise UsageError(f"{mgr.exe} reported success but created no environment at "
                         f"{env.prefix}", spec.label, spec.line, code=EXIT_CREATE_FAILED)
    pip = pip_command(env.prefix, spec)
    if pip:
        what = f"installing PyPI packages into {env.name} with pip"
        if show.mode in ("plain", "verbose"):
            _say(what + " ...")
        if verbose:
            _say("running: " + " ".join(pip))
        rc = run_step(pip, env.prefix, lock_fd, show, what, EXIT_CREATE_FAILED)
        if rc != 0:
            raise UsageError(f"could not create environment {env.name}: pip install exited "
                             f"with {rc} (see above)", spec.label, spec.line,
                             code=EXIT_CREATE_FAILED)
    try:
        write_marker(env, spec, mgr)
    except OSError as e:  # e.g. the disk filled up: keep nothing half-made
        remove_tree(env.prefix)
        raise UsageError(f"could not create environment {env.name}: cannot write its "
                         f"completion marker: {e.strerror}", spec.label, spec.line,
                         code=EXIT_CREATE_FAILED) from None
    if show.mode != "quiet":
        pypi = (len(spec.lock.pip) if spec.lock else len(spec.pip)) if pip else 0
        _say(created_line(env, pypi, show))


def created_line(env: Env, from_pypi: int, show: Show) -> str:
    """'created environment NAME (3 packages, 2.1 s)': conda's packages, then PyPI's."""
    import time

    try:
        conda = sum(n.endswith(".json") for n in os.listdir(os.path.join(env.prefix,
                                                                          "conda-meta")))
    except OSError:
        conda = 0
    pypi = f" + {from_pypi} from PyPI" if from_pypi else ""
    return (f"created environment {env.name} ({conda} package{'s' * (conda != 1)}{pypi}, "
            f"{time.monotonic() - show.start:.1f} s)")


###############################################################################
# Recording use ################################################################
###############################################################################


def _json_string(text: str) -> str:
    """A JSON string literal, without importing json (lone surrogates become \\udcXX)."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def log_line(when: float, name: str, script: str, pid: int) -> str:
    return (f'{{"time": {when:.3f}, "env": {_json_string(name)}, '
            f'"script": {_json_string(script)}, "pid": {pid}}}\n')


def record_use(d: EnvDir, env: Env, script: str) -> None:
    """Append one line to the usage log: one write on an O_APPEND descriptor.

    The log is locked exclusively while writing: O_APPEND is atomic on a local file system,
    not over NFS, where two clients' appends can overwrite each other. The log only informs GC
    (a running script is protected by its lock): if it cannot be written (disk full, env dir
    gone, not a file of the user's), say so and go on.
    """
    import time

    path = os.path.join(d.path, LOG_NAME)
    data = log_line(time.time(), env.name, script, os.getpid()).encode("utf-8", "surrogatepass")
    try:  # acquire opens the log anew if compaction replaced it while we waited
        fd = acquire(d, LOG_NAME, exclusive=True, flags=os.O_RDWR | os.O_APPEND)
        assert fd is not None
    except OSError as e:
        _say(f"warning: cannot record use in {path}: {e.strerror}")
        return
    try:
        os.write(fd, data)
    except OSError as e:
        _say(f"warning: cannot record use in {path}: {e.strerror}")
    finally:
        os.close(fd)


###############################################################################
# Activating and running #######################################################
###############################################################################


def activated_environ(prefix: str, environ: Dict[str, str]) -> Dict[str, str]:
    """The variables `conda activate PREFIX` sets (conda/activate.py), on top of ENVIRON."""
    env = dict(environ)
    bindir = os.path.join(prefix, "bin")
    old = environ.get("CONDA_PREFIX")
    drop = {os.path.join(old, "bin")} if old else set()
    path = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p not in drop]
    env["PATH"] = os.pathsep.join([bindir, *path])
    level = environ.get("CONDA_SHLVL", "0")
    level = int(level) if level.isdigit() else 0
    if old:
        env[f"CONDA_PREFIX_{level}"] = old
    env["CONDA_PREFIX"] = prefix
    # conda/activate.py _default_env: the name for envs under an 'envs' dir, else the path
    in_envs = os.path.basename(os.path.dirname(prefix)) == "envs"
    env["CONDA_DEFAULT_ENV"] = os.path.basename(prefix) if in_envs else prefix
    env["CONDA_SHLVL"] = str(level + 1)
    env["CONDA_PROMPT_MODIFIER"] = f"({env['CONDA_DEFAULT_ENV']}) "
    env.update(env_vars(prefix))
    return env


UNSET = "***unset***"


def env_vars(prefix: str) -> Dict[str, str]:
    """Variables from packages (etc/conda/env_vars.d/*) overridden by conda-meta/state."""
    files = []
    d = os.path.join(prefix, "etc", "conda", "env_vars.d")
    if os.path.isdir(d):
        files = [os.path.join(d, n) for n in sorted(os.listdir(d))]
    state = os.path.join(prefix, "conda-meta", "state")
    if os.path.isfile(state):
        files.append(state)
    found: Dict[str, str] = {}
    for path in files:
        data = _read_json_object(path)
        data = data.get("env_vars", {}) if path == state else data
        if isinstance(data, dict):
            for name, value in data.items():
                found[_env_var(str(name), str(value), path)] = str(value)
    return {k.upper(): v for k, v in found.items() if v != UNSET}


def _env_var(name: str, value: str, path: str) -> str:
    """NAME, if NAME=VALUE can be put in an environment (execve would refuse it)."""
    try:
        os.fsencode(name + value)
        ok = bool(name) and "=" not in name and "\0" not in name + value
    except UnicodeError:  # a lone surrogate from JSON's \ud800
        ok = False
    if not ok:
        raise UsageError(f"environment variable {name!r} cannot be set (an empty name, '=' in "
                         "the name, or a NUL or unencodable character)", path,
                         code=EXIT_CREATE_FAILED)
    return name


def _read_json_object(path: str) -> dict:
    """The JSON object in PATH; {} if it cannot be read or holds something else."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def activate_scripts(prefix: str) -> List[str]:
    d = os.path.join(prefix, "etc", "conda", "activate.d")
    try:
        return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".sh")]
    except OSError:
        return []


def script_argv(spec: Spec, source: Source, args: List[str]) -> List[str]:
    """The command: run_with, then the script (or -c CODE), then the user's arguments."""
    if source.inline:
        flag = INLINE_FLAGS.get(os.path.basename(_interpreter(spec.run_with)), "-c")
        return [*spec.run_with, flag, source.inline, *args]
    path = source.path  # a script named '-x' would be read as an option by the interpreter
    return [*spec.run_with, os.path.join(os.curdir, path) if path.startswith("-") else path,
            *args]


def _interpreter(run_with: Tuple[str, ...]) -> str:
    """run_with's program; through `env [-S] [-u NAME]`, the first word after the options."""
    words = list(run_with)
    if len(words) > 1 and os.path.basename(words[0]) == "env":
        words = words[1:]
        while len(words) > 1 and words[0].startswith("-"):
            words = words[2:] if words[0] in ("-u", "--unset") else words[1:]
    return words[0]


# Whatever a shebang, run_with or entrypoint says, conda-execute never starts itself for the
# script it runs: every command it starts gets LAUNCH_VAR = "MODE:PID:LINE:SCRIPT" (MODE x:
# exec'd, so it keeps our PID, through any chain of execs; c: a child, whose parent we stay).
# A conda-execute that finds there, for the same SCRIPT, its own PID (x) or its parent's (c)
# stops at once with one line naming LINE, the line that made the command. The script's own
# children (another PID) may run conda-execute on it again: that is not a loop.
LAUNCH_VAR = "_CE_LAUNCH"


def launch_mark(mode: str, spec: Spec, script: str) -> str:
    """LAUNCH_VAR's value for a command this process execs (MODE x) or starts (c)."""
    line = spec.entrypoint.line if spec.entrypoint else spec.run_line or spec.line
    return f"{mode}:{os.getpid()}:{line}:{script}"


def check_relaunch(script: str, label: str) -> None:
    """Refuse to run SCRIPT when conda-execute itself started this process for it."""
    mark = os.environ.get(LAUNCH_VAR, "").split(":", 3)
    if len(mark) < 4 or mark[3] != script or not mark[2].isdigit():
        return
    me = os.getpid() if mark[0] == "x" else os.getppid() if mark[0] == "c" else -1
    if mark[1] == str(me):
        raise UsageError("this line makes conda-execute the command that runs the script, so it "
                         "would start itself again and again; name the program that runs the "
                         "script instead (run_with, the shebang, or the entrypoint)", label,
                         int(mark[2]))


def exec_in_env(env: Env, spec: Spec, argv: List[str], lock_fd: int, script: str) -> None:
    """Replace this process with ARGV in the activated environment (never returns)."""
    environ = activated_environ(env.prefix, dict(os.environ))
    environ[LAUNCH_VAR] = launch_mark("x", spec, script)
    scripts = activate_scripts(env.prefix)
    if scripts:  # sourced by /bin/sh, which then execs the command (paths as arguments)
        argv, exe = _activating(scripts, argv), "/bin/sh"
    else:
        found = argv[0] if os.sep in argv[0] else _which(argv[0], environ["PATH"])
        if not found:
            raise UsageError(f"{argv[0]!r} (run_with) is not in the environment nor on PATH",
                             spec.label, spec.line, code=EXIT_NOT_FOUND)
        exe = found
    os.set_inheritable(lock_fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(exe, argv, environ)
    except OSError as e:
        code = EXIT_NOT_FOUND if isinstance(e, FileNotFoundError) else EXIT_NOT_EXECUTABLE
        raise UsageError(f"cannot run {exe}: {e.strerror}", spec.label, spec.line,
                         code=code) from None


def _activating(scripts: List[str], argv: List[str]) -> List[str]:
    """ARGV run by /bin/sh after sourcing the activation SCRIPTS (all passed as arguments:
    /bin/sh interprets only our fixed loop, never the command)."""
    loop = 'n=$1; shift; while [ "$n" -gt 0 ]; do . "$1"; shift; n=$((n-1)); done; exec "$@"'
    return ["/bin/sh", "-c", loop, "sh", str(len(scripts)), *scripts, *argv]


CACHE_DIR = ".conda-execute-cache"  # in the env's prefix: removed with the env


def entry_variables(env: Env, source: Source, create: bool = False) -> Dict[str, str]:
    """${SCRIPT}, the script's absolute path, and ${CACHE}, a directory kept between runs:
    PREFIX/.conda-execute-cache/HASH (HASH: of the script's path, or of its URL), created
    private (0700) when CREATE. It lives and dies with the environment (GC, --force-env)."""
    script = os.path.abspath(source.path) if source.fd < 0 else source.path
    key = script if source.fd < 0 else source.label
    cache = os.path.join(env.prefix, CACHE_DIR, _sha256_hex(key)[:20])
    for path in (os.path.dirname(cache), cache) if create else ():
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise UsageError(f"cannot create {path}: {e.strerror}", code=EXIT_ENV_DIR) from None
        os.chmod(path, 0o700)  # whatever the umask
    return {"SCRIPT": script, "CACHE": cache}


def run_entrypoint(env: Env, spec: Spec, source: Source, args: List[str], lock_fd: int,
                   script: str) -> int:
    """Run a conda-script's entrypoint in the activated env, without a shell: each command but
    the last as a child (a failing one ends the run with its exit code), then exec the last
    with ARGS appended (a last command that expands to nothing runs nothing: exit 0)."""
    entry = spec.entrypoint
    assert entry is not None
    variables = entry_variables(env, source, create=True)
    environ = activated_environ(env.prefix, dict(os.environ))
    environ[LAUNCH_VAR] = launch_mark("c", spec, script)
    scripts = activate_scripts(env.prefix)

    def substitute(part: ShellPart) -> str:
        out = b""
        for argv in _expanded(part.value, variables, substitute, spec):
            code, got = _run_in_env(argv, environ, scripts, spec, True)
            if code:
                raise UsageError(f"entrypoint: $({' '.join(argv)}) exited with {code}",
                                 spec.label, entry.line, code=code)
            out += got
        text = out.decode("utf-8", "surrogateescape")
        return text[:-1].rstrip("\r") if text.endswith("\n") else text

    for argv in _expanded(entry.commands[:-1], variables, substitute, spec):
        code = _run_in_env(argv, environ, scripts, spec, False)[0]
        if code:  # as after a shell's '&&': the command has said why
            return code
    last = next(_expanded(entry.commands[-1:], variables, substitute, spec), [])
    if not last:
        return 0
    _run_in_env(last, environ, scripts, spec, None)  # only checks that it can be found
    exec_in_env(env, spec, last + list(args), lock_fd, script)
    return 0  # not reached


def _expanded(commands: tuple, variables: Dict[str, str], substitute: Any, spec: Spec
              ) -> Iterator[List[str]]:
    """Each command's arguments (substitutions run as they come); empty commands skipped."""
    for words in commands:
        argv = [arg for word in words for arg in expand_word(word, variables, substitute)]
        if argv and is_assignment(argv[0]):
            raise UsageError(f"entrypoint: {argv[0]!r} looks like a variable assignment, which "
                             "the entrypoint cannot do", spec.label, spec.entrypoint.line)
        if argv:
            yield argv


def _run_in_env(argv: List[str], environ: Dict[str, str], scripts: List[str], spec: Spec,
                capture: Optional[bool]) -> Tuple[int, bytes]:
    """Run ARGV in the activated env: (exit code, 128+N for signal N; its output if CAPTURE,
    for $(...), whose stdin is closed). CAPTURE None only checks that ARGV[0] can be found."""
    where = (spec.label, spec.entrypoint.line)  # type: ignore[union-attr]
    exe = argv[0] if scripts or os.sep in argv[0] else _which(argv[0], environ.get("PATH"))
    if not exe:
        raise UsageError(f"entrypoint: {argv[0]!r} is neither in the environment nor on PATH",
                         *where, code=EXIT_NOT_FOUND)
    if capture is None:
        return 0, b""
    import signal  # here: an entrypoint of one command never runs a child
    import subprocess

    procs: list = []
    old = {signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: None),  # the child gets it
           signal.SIGTERM: signal.signal(signal.SIGTERM, lambda n, _: [p.send_signal(n)
                                                                       for p in procs])}
    try:
        procs.append(subprocess.Popen(_activating(scripts, argv) if scripts else argv,
                                      executable=exe if not scripts else "/bin/sh", env=environ,
                                      stdin=subprocess.DEVNULL if capture else None,
                                      stdout=subprocess.PIPE if capture else None))
        out = procs[0].communicate()[0] or b""
    except OSError as e:
        raise UsageError(f"entrypoint: cannot run {argv[0]!r}: {e.strerror}", *where,
                         code=EXIT_NOT_EXECUTABLE) from None
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
    rc = procs[0].returncode
    return (128 - rc if rc < 0 else rc), out


def run_windows(cfg: Config, env: Env, argv: List[str]) -> int:
    """On Windows there is no exec: `conda run --no-capture-output` (libmamba: `run`, which
    streams) and pass its exit code. The kind comes from the env's marker (no `--version` on a
    warm run) when the same manager made it.
    """
    import subprocess

    exe = manager_exe(cfg)
    made_by = _read_json_object(os.path.join(env.prefix, MARKER)).get("manager")
    if isinstance(made_by, list) and made_by[:1] == [exe] and len(made_by) == 2:
        kind = made_by[1]
    else:
        kind = manager_for(cfg).kind
    flag = ["--no-capture-output"] if kind == "conda" else []
    return subprocess.call([exe, "run", *flag, "-p", env.prefix, *argv])


###############################################################################
# Garbage collection and listing ###############################################
###############################################################################


def is_env_name(name: str) -> bool:
    return len(name) == 20 and all(c in NAME_CHARS for c in name)


def read_log(d: EnvDir, fd: int = -1) -> Dict[str, dict]:
    """The latest usage record per env name; torn or garbage lines are skipped. Read through
    FD when the caller holds the log locked (a second descriptor's close would drop a POSIX
    lock), else opened afresh (never through a link)."""
    import json

    latest: Dict[str, dict] = {}
    try:
        own = _open_in(d, LOG_NAME, os.O_RDONLY) if fd < 0 else -1
    except OSError:
        return latest
    try:
        os.lseek(own if fd < 0 else fd, 0, os.SEEK_SET)
        chunks = list(iter(lambda: os.read(own if fd < 0 else fd, 1 << 20), b""))
    except OSError:
        return latest
    finally:
        if own >= 0:
            os.close(own)
    for raw in b"".join(chunks).splitlines(keepends=True):
        # A torn line (a write cut short) has the next record glued to it: read that one.
        for chunk in (raw, raw[raw.rfind(b'{"time": '):]):
            try:
                rec = json.loads(chunk)
                name, when = rec["env"], float(rec["time"])
            except (ValueError, KeyError, TypeError, RecursionError):
                continue
            if isinstance(name, str) and when - when == 0 and \
                    when >= latest.get(name, {}).get("time", -1.0):
                rec["time"] = when
                latest[name] = rec
            break
    return latest


class EnvInfo(NamedTuple):
    """What --list and --gc know of one environment."""

    name: str
    prefix: str
    last_used: float  # from the log, else the env's mtime
    complete: bool
    marker: dict  # the completion marker's content ({} if none)
    script: str  # the last script that used it
    platform: str = ""  # the platform directory it is in


def scan_envs(d: EnvDir) -> List[EnvInfo]:
    """Every environment in D, with its last use."""
    latest = read_log(d)
    out = []
    try:
        entries = sorted(os.scandir(d.fd if d.fd >= 0 else d.path), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if not is_env_name(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        prefix = os.path.join(d.path, entry.name)
        marker = _read_json_object(os.path.join(prefix, MARKER))
        rec = latest.get(entry.name, {})
        when = rec.get("time")
        if when is None:
            try:
                when = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
        out.append(EnvInfo(entry.name, prefix, when, bool(marker), marker,
                           str(rec.get("script", "")), d.platform))
    return out


def platform_dirs(cfg: Config) -> List[EnvDir]:
    """Every platform directory of the env dir (for --list), each checked like the env dir."""
    try:
        root = private_dir(cfg.env_dir, "the env dir", EXIT_ENV_DIR, cfg.shared_ok, False)
    except FileNotFoundError:
        return []
    try:
        names = sorted(os.listdir(root if root >= 0 else cfg.env_dir))
    finally:
        if root >= 0:
            os.close(root)
    found = []
    for name in names:
        if is_platform(name) and os.path.isdir(os.path.join(cfg.env_dir, name)):
            d = open_env_dir(cfg, create=False, platform=name)
            if d:
                found.append(d)
    return found


def legacy_dir(env_dir: str, fd: int) -> Optional[EnvDir]:
    """The env dir ENV_DIR itself (FD: a checked descriptor of it, kept by the result) as an
    EnvDir of platform '-', when it holds environments of the earlier layout (ENV_DIR/NAME,
    before ENV_DIR/PLATFORM/NAME). They have the same lock files (NAME.lock), usage log
    (ENV_DIR/usage.jsonl) and marker, so GC and --list treat them by the same rules; a run
    never uses one (it makes its env in the platform layout). None (FD closed) if none."""
    try:
        names = os.listdir(fd if fd >= 0 else env_dir)
    except OSError:
        names = []
    if any(is_env_name(n) for n in names):
        return EnvDir(env_dir, fd, "-")
    if fd >= 0:
        os.close(fd)
    return None


def env_dir_itself(cfg: Config) -> Optional[EnvDir]:
    """legacy_dir of the configured env dir (None if it does not exist)."""
    try:
        fd = private_dir(cfg.env_dir, "the env dir", EXIT_ENV_DIR, cfg.shared_ok, False)
    except FileNotFoundError:
        return None
    return legacy_dir(cfg.env_dir, fd)


def collect_garbage(d: EnvDir, older_than_hours: float, dry_run: bool = False,
                    out: Optional[IO[str]] = None) -> List[str]:
    """Remove envs of D unused for OLDER_THAN_HOURS that no script uses; compact the log.

    An env in use (its lock held shared) or being created (held exclusively) is skipped, and
    so is every env where locks do not work (nothing proves it unused). Returns the names
    removed (or, with DRY_RUN, that would be).
    """
    import time

    now, removed, horizon = time.time(), [], older_than_hours * 3600
    log = _LogView(_log_stamp(d), None)
    for info in scan_envs(d):
        if now - info.last_used < horizon or _created_recently(info, now, out):
            continue
        log = _collect_one(d, info, log, now - horizon, dry_run, out, removed)
    if not dry_run and LOCKING[0] != "none":
        _remove_leftovers(d)
        compact_log(d)
    return removed


class _LogView(NamedTuple):
    """What GC last read of the usage log: its stamp, and its entries once re-read."""

    stamp: Tuple[int, int]
    latest: Optional[Dict[str, dict]]


def _created_recently(info: EnvInfo, now: float, out: Optional[IO[str]]) -> bool:
    """Keep an env created in the last minute: where flock cannot turn an exclusive lock into
    a shared one atomically (BSD, macOS), a run that has just created it holds no lock for an
    instant."""
    created = info.marker.get("created")
    try:
        created = float(created) if created else os.stat(info.prefix).st_mtime
    except (OSError, TypeError, ValueError):
        created = 0.0
    if now - created >= GC_GRACE_SECONDS:
        return False
    if out:
        out.write(f"created less than a minute ago, kept: {info.name}\n")
    return True


def _collect_one(d: EnvDir, info: EnvInfo, log: _LogView, cutoff: float, dry_run: bool,
                 out: Optional[IO[str]], removed: List[str]) -> _LogView:
    """Remove INFO's env unless it is locked or was used after CUTOFF; append its name to
    REMOVED. Returns the log as now read (re-read only when runs were logged since).

    A missing lock file is held by no one (a running script always has its own): a dry run
    leaves it missing; a real one creates it (a run may be starting) and, if the env is kept,
    removes it again (safe under our exclusive lock: a waiter opens it anew).
    """
    lock = info.name + ".lock"
    made = not dry_run and not _exists_in(d, lock)
    try:
        fd = acquire(d, lock, exclusive=True, wait=False, create=not dry_run)
    except FileNotFoundError:
        fd = -1  # a dry run and no lock file: nothing to lock
    if out and (fd is None or (fd >= 0 and LOCKING[0] == "none")):
        out.write(f"{'in use' if fd is None else 'no locks here'}, kept: {info.name}\n")
    try:
        if fd is None or LOCKING[0] == "none":
            return log
        stamp = _log_stamp(d)
        if stamp != log.stamp:  # runs logged since the scan: was this env among them?
            log = _LogView(stamp, read_log(d))
        if log.latest and log.latest.get(info.name, {}).get("time", info.last_used) > cutoff:
            return log
        if not dry_run:
            remove_tree(info.prefix)
            _unlink_in(d, lock)
            made = False
        removed.append(info.name)
        if out:
            out.write(f"{'would remove' if dry_run else 'removed'}: {info.name} "
                      f"{' '.join(info.marker.get('env', []))}\n")
        return log
    finally:
        if made and fd is not None:  # never unlink a lock file another process holds
            _unlink_in(d, lock)
        if fd is not None and fd >= 0:
            os.close(fd)


def _exists_in(d: EnvDir, name: str) -> bool:
    try:
        _lstat_in(d, name)
    except FileNotFoundError:
        return False
    return True


def _unlink_in(d: EnvDir, name: str) -> None:
    os.unlink(name if d.fd >= 0 else os.path.join(d.path, name), dir_fd=d.fd if d.fd >= 0 else None)


def _log_stamp(d: EnvDir) -> Tuple[int, int]:
    """What tells whether the usage log changed: its inode and size."""
    try:
        st = _lstat_in(d, LOG_NAME)
    except OSError:
        return (0, 0)
    return (st.st_ino, st.st_size)


def _remove_leftovers(d: EnvDir) -> None:
    """Trash left by an interrupted removal or a killed solve for another platform, lock
    files whose env is gone, creation locks no one holds or waits on, and a lock's list left
    by a killed creation (NAME.explicit, when NAME's lock is free)."""
    import shutil

    try:
        names = os.listdir(d.fd if d.fd >= 0 else d.path)
    except OSError:
        return
    for name in names:
        if name.endswith(".explicit") and is_env_name(name[:-len(".explicit")]):
            _remove_if_free(d, name, name[:-len(".explicit")] + ".lock")
            continue
        if name.startswith((".trash-", ".solve-")):
            pid = name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and _alive(int(pid))):
                shutil.rmtree(os.path.join(d.path, name), ignore_errors=True)
            continue
        env = name[:-len(CREATE_LOCK)] if name.endswith(CREATE_LOCK) else name[:-5]
        if not (name.endswith(".lock") and is_env_name(env)) or (
                env in names and not name.endswith(CREATE_LOCK)):
            continue
        try:
            fd = acquire(d, name, exclusive=True, wait=False, create=False)
        except OSError:
            continue
        if fd is not None:
            if name.endswith(CREATE_LOCK) or not _exists_in(d, env):
                _unlink_in(d, name)
            os.close(fd)


def _remove_if_free(d: EnvDir, name: str, lock: str) -> None:
    """Remove NAME from D when no one holds LOCK (a creation in progress holds it)."""
    try:
        fd = acquire(d, lock, exclusive=True, wait=False, create=False)
    except FileNotFoundError:  # its env and lock are gone
        fd = -1
    except OSError:
        return
    if fd is not None:
        _unlink_in(d, name)
        if fd >= 0:
            os.close(fd)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def compact_log(d: EnvDir) -> None:
    """Rewrite the usage log to one line per existing env (under its exclusive lock)."""
    try:  # a read-only env dir fails here: --gc says so (exit 73)
        fd = acquire(d, LOG_NAME, exclusive=True, create=False)
    except FileNotFoundError:
        return
    if fd is None:
        return
    try:
        if LOCKING[0] == "none":
            return
        latest = read_log(d, fd)
        lines = []
        for name, rec in sorted(latest.items(), key=lambda kv: kv[1]["time"]):
            if is_env_name(name) and os.path.isdir(os.path.join(d.path, name)):
                pid = rec.get("pid")
                lines.append(log_line(rec["time"], name, str(rec.get("script", "")),
                                      pid if type(pid) is int else 0))
        _atomic_write(LOG_NAME if d.fd >= 0 else os.path.join(d.path, LOG_NAME),
                      "".join(lines), dir_fd=d.fd if d.fd >= 0 else None)
    except OSError:  # e.g. a full disk: keep the log as it is
        pass
    finally:
        os.close(fd)


def maybe_collect_in_background(d: EnvDir, hours: float, keep_fds: Tuple[int, ...] = ()) -> None:
    """At most once an hour, fork a detached process that collects garbage in D.

    The GC stamp's mtime is when GC last started. A run that finds it stale claims it under
    its lock (without waiting: others skip) and re-checks it there, so simultaneous runs (a
    job array) start at most one collector.
    """
    import time

    if not hasattr(os, "fork"):
        return
    try:
        if time.time() - _lstat_in(d, GC_STAMP).st_mtime < GC_EVERY_SECONDS:
            return
        fd = acquire(d, GC_STAMP, exclusive=True, wait=False, create=False)
        if fd is None:
            return
        try:
            if time.time() - os.fstat(fd).st_mtime < GC_EVERY_SECONDS or LOCKING[0] == "none":
                return
            os.utime(fd)
        finally:
            os.close(fd)
    except FileNotFoundError:  # a new env dir: its first hour starts now
        try:
            os.close(_open_in(d, GC_STAMP, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except OSError:
            pass
        return
    except OSError:
        return
    _fork_collector(d, hours, keep_fds)


def _fork_collector(d: EnvDir, hours: float, keep_fds: Tuple[int, ...]) -> None:
    """Fork a detached grandchild that runs collect_garbage(D, HOURS); wait for the child."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:  # e.g. too many processes: collect another time
        return
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # the child: detach, fork again so the grandchild is nobody's zombie, collect
        os.setsid()
        if os.fork():
            os._exit(0)
        for fd in keep_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        collect_garbage(d, hours)
        legacy = legacy_dir(os.path.dirname(d.path), os.open(
            "..", os.O_RDONLY | O_DIRECTORY | O_CLOEXEC, dir_fd=d.fd)) if d.fd >= 0 else None
        if legacy:
            collect_garbage(legacy, hours)
    finally:
        os._exit(0)


def with_size(info: EnvInfo, d: EnvDir) -> EnvInfo:
    """INFO with the env's size in its marker: measured by the first --list that sees the env
    complete (creating never walks the tree) and recorded in the marker, under the env's lock
    taken shared without waiting (not while it is being created) and only if the marker is
    still the one read. A size that cannot be recorded is shown all the same.
    """
    if not info.complete or isinstance(info.marker.get("size"), int):
        return info
    marker = dict(info.marker, size=tree_size(info.prefix))
    try:
        fd = acquire(d, info.name + ".lock", exclusive=False, wait=False, create=False)
    except OSError:  # no lock file (an env made by hand), or not ours to open
        fd = None
    if fd is not None:
        import json

        path = os.path.join(info.prefix, MARKER)
        try:
            if _read_json_object(path) == info.marker:
                _atomic_write(path, json.dumps(marker) + "\n", 0o644)
        except OSError:  # e.g. a shared env dir: the size is shown, not recorded
            pass
        finally:
            os.close(fd)
    return info._replace(marker=marker)


def format_list(infos: List[EnvInfo], now: float) -> str:
    """The --list table."""
    rows = [("NAME", "PLATFORM", "LAST USED", "SIZE", "SPECS", "SCRIPT")]
    for info in sorted(infos, key=lambda i: -i.last_used):
        size = info.marker.get("size")
        specs = _shown(info.marker.get("env", [])) if info.complete else "(incomplete)"
        if info.marker.get("channels"):
            specs += "  [" + _shown(info.marker["channels"]) + "]"
        rows.append((info.name, info.platform, _ago(now - info.last_used),
                     _human_size(size) if isinstance(size, int) else "?", specs,
                     _shown(info.script)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] + "\n"
                   for r in rows)


def list_json(infos: List[EnvInfo]) -> str:
    """--list --json: one JSON object per environment and line, most recently used first."""
    import json

    lines = []
    for info in sorted(infos, key=lambda i: -i.last_used):
        m = info.marker
        size, created = m.get("size"), m.get("created")
        lines.append(json.dumps({
            "name": info.name, "prefix": info.prefix, "complete": info.complete,
            "platform": info.platform, "specs": list(m.get("env", [])),
            "channels": list(m.get("channels", [])), "pip": list(m.get("pip", [])),
            "created": created if isinstance(created, (int, float)) else None,
            "last_used": info.last_used, "size": size if isinstance(size, int) else None,
            "last_script": info.script}) + "\n")
    return "".join(lines)


def _shown(value: Any) -> str:
    """VALUE (a list: its items, space-separated) for a terminal: control characters, which
    could move the cursor or rewrite the screen, shown as \\xNN."""
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text.translate({c: f"\\x{c:02x}" for c in (*range(32), *range(0x7F, 0xA0))})


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit} ago"
    return f"{max(seconds, 0):.0f}s ago"


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


###############################################################################
# Ad-hoc runs: tool mode (-s SPEC -- CMD) and --with ###########################
###############################################################################
# `-s SPEC... [--channel CH...] [--] [CMD ARGS...]` builds a Spec from the command line (its
# label, `<-s SPEC...>`, stands for a script in messages and the usage log) and runs CMD (by
# default the first spec's package name, as `pixi exec` does) through the same env/exec path
# as a script. `--with SPEC` adds specs to a script's (or a tool's) for one run: they are part
# of the env's identity, so such a run gets its own cached env.

# A conda match spec as we accept one from the command line: [channel::]name, then nothing or
# a version/build part (after a space, an operator or '[').
MATCH_SPEC_RE = CONDA_SPEC_NAME_RE + r"(?:[\s=<>!~\[].*)?"
TOOL_REFUSES = ("-c", "--lock", "--locked", "--upgrade")
AD_HOC = ("--spec", "--channel", "--with")  # options of a run, refused by --list and --gc


def is_match_spec(spec: str) -> bool:
    """MATCH_SPEC_RE: [channel::]NAME, then nothing, or whitespace or one of = < > ! ~ [ and
    the rest of the line."""
    for start in _name_starts(spec):
        end = _name_end(spec, start)
        tail = spec[end:]
        if end > start and (not tail or ((tail[0].isspace() or tail[0] in "=<>!~[")
                                         and "\n" not in tail[1:])):
            return True
    return False


def check_match_spec(text: str, fail: Any, matches: Any = is_match_spec,
                     expected: str = "conda match spec (NAME, NAME VERSION or NAME[key=value])"
                     ) -> str:
    """TEXT as a block item (see _list_item) that also starts with a package name (MATCHES);
    else FAIL(message). Returns the normalised spec."""
    def problem(kind: str, detail: str, _at: object) -> UsageError:
        return fail({"control": f"control character {detail!r}", "empty": "empty spec",
                     "option": "starts with '-' (it would be read as an option)"}[kind])

    spec = _list_item(text, 0, False, False, problem)
    if not matches(spec):
        raise fail(f"not a {expected}")
    return spec


def _cli_specs(option: str, values: List[str]) -> Tuple[str, ...]:
    """The checked values of a spec option (-s, --with) of the command line."""
    return tuple(check_match_spec(v, lambda m, v=v: UsageError(f"{option} {v!r}: {m}"))
                 for v in values)


def check_ad_hoc(args: Args) -> bool:
    """Check how the options of a run combine (-s, --channel, --with, and those that belong
    elsewhere); True in tool mode."""
    opts = args.options
    tool = "--spec" in opts
    for flag, goes in (("--json", "--list"), ("--format", "--init, --add or --remove"),
                       ("--pypi", "--init, --add or --remove")):
        if flag in opts:
            raise UsageError(f"{flag} goes with {goes}")
    if "--channel" in opts and not tool:
        raise UsageError("--channel goes with -s (a script names its own channels)")
    for flag in TOOL_REFUSES if tool else ():
        if flag in opts:
            raise UsageError(f"{flag} does not go with -s (tool mode runs a command, not a script)")
    if "--with" in opts and ("--lock" in opts or "--locked" in opts):
        raise UsageError("--with does not go with --lock or --locked (a lock pins the script's "
                         "own metadata; add the spec to the script with --add instead)")
    return tool


def tool_source(args: Args) -> Source:
    """A Source standing for the tool: its label names the specs (no file)."""
    return Source("<-s " + " -s ".join(" ".join(s.split()) for s in args.lists["--spec"]) + ">",
                  "")


def tool_spec(args: Args, source: Source) -> Spec:
    """The Spec of tool mode: the -s specs and --channel channels, run_with the command."""
    env = _cli_specs("-s", args.lists["--spec"])
    channels = tuple(_list_item(c, 0, False, False, lambda kind, _d, _a, c=c: UsageError(
        f"--channel {c!r}: bad channel ({kind})")) for c in args.lists.get("--channel", []))
    command = args.script or spec_name(env[0])
    return Spec(env, channels, (command,), source.label, 0, form="-s")


def tool_argv(spec: Spec, args: Args) -> List[str]:
    """CMD ARGS: the command (given, or the first spec's name) and its arguments."""
    return [*spec.run_with, *args.args]


def with_specs(spec: Spec, extra: List[str]) -> Spec:
    """SPEC with the --with specs added (those it already has are not repeated)."""
    added = tuple(s for s in _cli_specs("--with", extra) if s not in spec.env)
    return spec._replace(env=spec.env + tuple(dict.fromkeys(added))) if added else spec


def _skip_lock(spec: Spec, script: str, quiet: bool) -> Spec:
    """With --with a lock file cannot apply (it pins other specs): say so, and solve."""
    if not quiet and os.path.exists(script + LOCK_SUFFIX):
        _say(f"note: --with: not using {script + LOCK_SUFFIX} (solving with the extra specs)")
    return spec


###############################################################################
# Match specs as conda reads them ##############################################
###############################################################################
# Every spec is checked with conda's own grammar (conda/models/match_spec.py and version.py at
# 26.x) before anything is written, solved or created: by --init/--add as they are given, by a
# run before its environment is made (a warm run's env name already carries checked specs, so
# it checks nothing). tests/test_matchspec.py holds the checker to py-rattler's strict parser
# and lists where rattler and conda differ (conda wins).


# Keys that conda's MatchSpec accepts inside `[...]`: MatchSpec.FIELD_NAMES (match_spec.py:283-301),
# plus the keyword arguments of MatchSpec.__init__ (match_spec.py:304-307).
BRACKET_KEYS = frozenset(
    {
        "channel", "subdir", "name", "version", "build", "build_number", "track_features", "features",
        "url", "md5", "sha256", "license", "license_family", "fn", "when", "extras", "flags",
        "optional", "target", "_original_spec_str",
    }
)
# Fields whose matcher compiles a `^...$` value as a regular expression (GlobStrMatch and subclasses).
REGEX_FIELDS = frozenset({"name", "build", "license", "license_family", "when"})
# Fields whose matcher lower-cases the value first (GlobLowerStrMatch, CaseInsensitiveStrMatch).
LOWERED_FIELDS = frozenset({"name", "license", "license_family", "when"})
VERSION_OPERATORS = frozenset({"=", "==", "!=", "<=", ">=", "<", ">", "~="})
OPERATOR_CHARS = frozenset("=<>!~")
PACKAGE_EXTENSIONS = frozenset({".conda", ".tar.bz2"})
# conda/base/constants.py KNOWN_SUBDIRS
KNOWN_SUBDIRS = frozenset(
    {
        "noarch", "emscripten-wasm32", "wasi-wasm32", "freebsd-64", "linux-32", "linux-64", "linux-aarch64",
        "linux-armv6l", "linux-armv7l", "linux-ppc64", "linux-ppc64le", "linux-riscv64", "linux-s390x",
        "osx-64", "osx-arm64", "win-32", "win-64", "win-arm64", "zos-z",
    }
)

# conda 26.7.1's regular expressions, verbatim (re.VERBOSE ones written out without comments).
CONDA_SPEC_RES = {
    "brackets": r".*(?:(\[.*\]))",  # match_spec.py _BRACKETS_RE
    "brackets_kv": r"""([a-zA-Z0-9_-]+?)=(["']?)([^'"]*?)(\2)(?:[, ]|$)""",  # _BRACKETS_KV_RE
    "parens": r".*(?:(\(.*\)))",  # _PARENS_RE
    "name_version": r"([^ =<>!~]+)?([><!=~ ].+)?",  # _NAME_VERSION_RE
    "cep26_name": r"^(([a-z0-9])|([a-z0-9_](?!_)))[._-]?([a-z0-9]+(\.|-|_|$))*$",
    "cep26_virtual": r"^__[a-z0-9][._-]?([a-z0-9]+(\.|-|_|$))*$",
    "name_bad_chars": r"[^a-z0-9._-]",
    "version_build": r"((?:.+?)[^><!,|]?)(?:(?<![=!|,<>~])(?:[ =])([^-=,|<>~]+?))?$",  # _VERSION_BUILD_RE
    "version_check": r"^[\*\.\+!_0-9a-z]+$",  # version.py version_check_re
    "version_split": r"([0-9]+|[*]+|[^0-9*]+)",  # version_split_re
    "vspec_tokens": r"\s*\^[^$]*[$]|\s*[()|,]|[^()|,]+",  # VSPEC_TOKENS
    "relation": r"^(=|==|!=|<=|>=|<|>|~=)(?![=<>!~])(\S+)$",  # version_relation_re
    "regex_split": r".*[()|,^$]",  # regex_split_re
}
_CONDA_RES: Dict[str, Any] = {}


class _SpecError(ValueError):
    """A refusal; ``whole`` asks for the whole spec to be named after the message."""

    def __init__(self, message: str, whole: bool = False) -> None:
        super().__init__(message)
        self.whole = whole


def _conda_rx(name: str) -> Any:
    """conda's regular expression NAME, compiled on first use."""
    if name not in _CONDA_RES:
        import re

        _CONDA_RES[name] = re.compile(CONDA_SPEC_RES[name])
    return _CONDA_RES[name]


def _regex_compiles(pattern: str) -> bool:
    """Whether Python's re (as conda uses it) compiles PATTERN."""
    import re

    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


# public entry point


def match_spec_problem(spec: str) -> Optional[str]:
    """None when conda's MatchSpec parser accepts SPEC; else a short message naming the bad part."""
    if not spec:
        return "empty match spec"  # conda's MatchSpec('') is an empty query, never a package
    try:
        for key, value in _parse_spec(spec).items():
            _check_field(key, value)
    except _SpecError as err:
        return f"{err} in '{spec}'" if err.whole else str(err)
    except RecursionError:
        return f"version spec nested too deeply in '{spec}'"
    return None


# match_spec.py: _parse_spec_str


def _parse_spec(spec: str) -> Dict[str, str]:
    """The fields conda's _parse_spec_str gives SPEC (match_spec.py:844-1021); raises _SpecError."""
    if spec.endswith("@"):
        return {}  # a track_features query (match_spec.py:852-857)
    if "#" in spec:
        spec = spec[: spec.index("#")]
    spec = spec.split(" if ", 1)[0]
    if any(spec.lower().endswith(ext) for ext in PACKAGE_EXTENSIONS):
        return _package_file_fields(spec)
    spec, brackets = _split_brackets(spec)
    match = _conda_rx("parens").match(spec)
    if match:
        spec = spec.replace(match.group(1), "")
    spec, channel = _split_channel(spec)
    fields = _name_version_build(spec)
    if channel:
        fields["channel"] = channel
    if "name" in brackets:
        del brackets["name"]  # the name outside the brackets wins (match_spec.py:1009-1016)
    fields.update(brackets)
    return fields


def _package_file_fields(spec: str) -> Dict[str, str]:
    """The fields of a package file path or URL: name-version-build only below a subdir folder."""
    path = spec if "://" in spec else "/" + spec.replace("\\", "/")
    lowered = path.lower()
    if not any(f"/{sub}/" in lowered or lowered.endswith(f"/{sub}") for sub in KNOWN_SUBDIRS):
        return {}
    stem = path.rsplit("/", 1)[-1]
    for ext in PACKAGE_EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    dist = stem.rsplit("-", 2)
    if len(dist) != 3:
        raise _SpecError(f"package file name '{path.rsplit('/', 1)[-1]}' is not name-version-build")
    return {"version": dist[1]}


def _split_brackets(spec: str) -> Tuple[str, Dict[str, str]]:
    """SPEC without its `[...]` part, and the key-values in it (match_spec.py:904-918)."""
    match = _conda_rx("brackets").match(spec)
    if not match:
        return spec, {}
    section = match.group(1)
    found: Dict[str, str] = {}
    for kv in _conda_rx("brackets_kv").finditer(section[1:-1]):
        key, value = kv.group(1), kv.group(3)
        if not value:
            raise _SpecError(f"empty value for '{key}' in brackets", whole=True)
        found[key] = _sanitize_version(value, None) if key == "version" else value
    unknown = sorted(set(found) - BRACKET_KEYS)
    if unknown:
        raise _SpecError(f"unknown key '{unknown[0]}' in brackets", whole=True)
    return spec.replace(section, ""), found


def _split_channel(spec: str) -> Tuple[str, str]:
    """SPEC without its `channel::` or `channel:namespace:` prefix, and that channel."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 3:
        return parts[2], parts[0]
    return parts[-1], ""


def _name_version_build(spec: str) -> Dict[str, str]:
    """Name, version and build from the part after the channel (match_spec.py:966-994)."""
    match = _conda_rx("name_version").match(spec)
    name, rest = match.group(1), match.group(2)
    if name is None:
        raise _SpecError("no package name", whole=True)
    _check_package_name(name, spec)
    fields = {"name": name}
    rest = rest and rest.strip()
    if rest:
        if "[" in rest:
            raise _SpecError("more than one '[' section", whole=True)
        version, build = _split_version_build(rest)
        fields["version"] = _sanitize_version(version, build)
        if build is not None:
            fields["build"] = build
    return fields


def _check_package_name(name: str, spec: str) -> None:
    """Refuse NAME as conda's _validate_package_name does (CEP-26 names; globs pass)."""
    if "*" in name:
        return
    lowered = name.lower()
    if "[" in lowered and "]" not in spec[spec.index("[") :]:
        raise _SpecError("unclosed '['", whole=True)
    bad = "".join(dict.fromkeys(_conda_rx("name_bad_chars").findall(lowered)))
    if bad:
        raise _SpecError(f"package name '{name}' contains invalid characters '{bad}'")
    if not (_conda_rx("cep26_name").match(lowered) or _conda_rx("cep26_virtual").match(lowered)):
        raise _SpecError(f"invalid package name '{name}'")


def _split_version_build(text: str) -> Tuple[str, Optional[str]]:
    """conda's _parse_version_plus_build: ('>=1.0,<2.0', 'py34_0') from '>=1.0 , < 2.0 py34_0'."""
    match = _conda_rx("version_build").search(text)
    if not match:
        return text.replace(" ", ""), None
    version, build = match.groups()
    return version.replace(" ", ""), (build.strip() if build else build)


def _sanitize_version(version: str, build: Optional[str]) -> str:
    """conda's _sanitize_version_str: '==1.2' -> '1.2', '=1.2' -> '1.2*' when no build."""
    if version in ("==", "=") or not version.startswith("="):
        return version
    bare = version.lstrip("=")
    if version.startswith("==") and build is None:
        return bare
    if not any(char in bare for char in "=,|"):
        return bare + "*" if build is None and not bare.endswith("*") else bare
    return version


# the components' matchers


def _check_field(key: str, value: str) -> None:
    """Refuse VALUE where the matcher conda builds for field KEY raises (match_spec.py:591-606)."""
    if key == "version":
        _check_version_spec(value)
    elif key == "build_number":
        _check_build_number(value)
    elif key == "channel" and ("://" in value or any(value.lower().endswith(e) for e in PACKAGE_EXTENSIONS)):
        _check_channel_url(value)
    elif key == "channel" and "*" in value and not (value.startswith("^") and value.endswith("$")):
        if not _regex_compiles("^(?:{})$".format(value.replace("*", ".*"))):
            raise _SpecError(f"invalid channel pattern '{value}'")
    elif key in REGEX_FIELDS or key == "channel":
        text = value.lower() if key in LOWERED_FIELDS else value
        if text.startswith("^") and text.endswith("$") and not _regex_compiles(text):
            raise _SpecError(f"invalid regular expression '{value}' for '{key}'")


def _check_channel_url(url: str) -> None:
    """Refuse a channel URL that Python's URL splitting (under conda's Channel) refuses."""
    from urllib.parse import urlsplit

    try:
        port = urlsplit(url if "://" in url else "//" + url).port
    except ValueError as err:
        raise _SpecError(f"invalid channel URL '{url}': {err}") from None
    del port


def _check_build_number(value: str) -> None:
    """Refuse VALUE as conda's BuildNumberMatch does (version.py BuildNumberMatch.get_matcher)."""
    try:
        int(value)
    except ValueError:
        pass
    else:
        return
    text = value.strip()
    if text == "*":
        return
    if text.startswith(("=", "<", ">", "!")):
        _check_relation(text)
    elif (not text or text[0] == "^" or text[-1] == "$") and not (
        text[:1] == "^" and text[-1:] == "$" and _regex_compiles(text)
    ):
        raise _SpecError(f"invalid build_number '{value}'")


# version.py: VersionSpec


def _check_version_spec(spec: Any) -> None:
    """Refuse SPEC as conda's VersionSpec(SPEC) does, recursing through `,` and `|` trees."""
    if isinstance(spec, str) and _conda_rx("regex_split").match(spec):
        spec = _treeify(spec)
    if isinstance(spec, tuple):
        for child in spec[1:]:
            _check_version_spec(child)
    else:
        _check_version_leaf(spec.strip())


def _treeify(spec: str) -> Any:
    """conda's treeify: '1.2,>3|4' -> ('|', (',', '1.2', '>3'), '4'); raises _SpecError."""
    output: list = []
    stack: list = []
    for token in _conda_rx("vspec_tokens").findall(f"({spec})"):
        item = token.strip()
        if item in ("|", ","):
            _apply_ops(output, stack, "(" if item == "|" else "|(", spec)
            stack.append(item)
        elif item == "(":
            stack.append(item)
        elif item == ")":
            _apply_ops(output, stack, "(", spec)
            if not stack or stack[-1] != "(":
                raise _SpecError(f"unbalanced ')' in version spec '{spec}'")
            stack.pop()
        else:
            output.append(item)
    if stack:
        raise _SpecError(f"unbalanced '(' in version spec '{spec}'")
    if not output:
        raise _SpecError(f"no version in version spec '{spec}'")
    return output[0]


def _apply_ops(output: list, stack: list, stops: str, spec: str) -> None:
    """Fold the operators on STACK above any in STOPS into OUTPUT (treeify's apply_ops)."""
    while stack and stack[-1] not in stops:
        if len(output) < 2:
            raise _SpecError(f"missing version around '{stack[-1]}' in version spec '{spec}'")
        op = stack.pop()
        right, left = output.pop(), output.pop()
        if right == "" or left == "":
            raise _SpecError(f"empty version in version spec '{spec}'")
        right = right[1:] if right[0] == op else (right,)
        left = left[1:] if left[0] == op else (left,)
        output.append((op, *left, *right))


def _check_version_leaf(text: str) -> None:
    """Refuse one stripped constraint as VersionSpec.get_matcher does for a string."""
    if not text:
        raise _SpecError("empty version")
    if text[0] == "^" or text[-1] == "$":
        if text[0] != "^" or text[-1] != "$":
            raise _SpecError(f"regex version '{text}' must start with '^' and end with '$'")
        if not _regex_compiles(text):
            raise _SpecError(f"invalid regex version '{text}'")
    elif text[0] in OPERATOR_CHARS:
        _check_relation(text, version=True)
    elif text == "*":
        return
    elif "*" in text.rstrip("*"):
        glob = text.replace(".", r"\.").replace("+", r"\+").replace("*", r".*")
        if not _regex_compiles(f"^(?:{glob})$"):
            raise _SpecError(f"invalid version glob '{text}'")
    elif text[-1] == "*":
        starred = text if text[-2:] == ".*" else text[:-1] + ".*"
        _check_version_order(starred.rstrip("*").rstrip("."))
    elif "@" not in text:
        _check_version_order(text)


def _check_relation(text: str, version: bool = False) -> None:
    """Refuse an `OPversion` constraint as version_relation_re and VersionOrder do."""
    match = _conda_rx("relation").match(text)
    if match is None:
        op = text[: len(text) - len(text.lstrip("=<>!~"))]
        if op not in VERSION_OPERATORS:
            raise _SpecError(f"invalid operator '{op}' in '{text}'")
        if op == text:
            raise _SpecError(f"empty version after '{op}'")
        raise _SpecError(f"invalid version spec '{text}'")
    op, operand = match.groups()
    if version and operand[-2:] == ".*":
        if op == "~=":
            raise _SpecError(f"'~=' cannot be used with '.*' in '{text}'")
        operand = operand[:-2]
    _check_version_order(operand)


# version.py: VersionOrder


def _check_version_order(text: str) -> None:
    """Refuse TEXT as conda's VersionOrder(TEXT) does (version.py VersionOrder.__init__)."""
    version = text.strip().rstrip().lower()
    if version == "":
        raise _SpecError("empty version")
    valid = _conda_rx("version_check").match(version)
    if not valid and "-" in version and "_" not in version:
        version = version.replace("-", "_")
        valid = _conda_rx("version_check").match(version)
    if not valid:
        if "=" in version:
            raise _SpecError("too many '='", whole=True)
        raise _SpecError(f"invalid character(s) in version '{text}'")
    epoch_split = version.split("!")
    if len(epoch_split) > 2:
        raise _SpecError(f"more than one '!' in version '{text}'")
    if len(epoch_split) == 2 and not epoch_split[0].isdigit():
        raise _SpecError(f"epoch must be an integer in version '{text}'")
    local_split = epoch_split[-1].split("+")
    if len(local_split) > 2:
        raise _SpecError(f"more than one '+' in version '{text}'")
    main = local_split[0]
    if main == "":
        raise _SpecError(f"missing version before '+' or after '!' in '{text}'")
    parts = main[:-1].replace("_", ".").split(".") if main[-1] == "_" else main.replace("_", ".").split(".")
    if main[-1] == "_":
        parts[-1] += "_"
    if len(local_split) == 2:
        parts += local_split[1].replace("_", ".").split(".")
    if any(not _conda_rx("version_split").findall(part) for part in parts):
        raise _SpecError(f"empty component in version '{text}'")


def check_specs(spec: Spec, source: Source, lists: Dict[str, List[str]]) -> None:
    """Refuse the first spec of SPEC conda would refuse: at its option (-s, --with) or at the
    script line that holds it."""
    for text in spec.env:
        problem = match_spec_problem(text)
        if problem is None:
            continue
        for option in ("--spec", "--with"):
            if text in lists.get(option, ()):
                raise UsageError(f"{'-s' if option == '--spec' else option} {text!r}: "
                                 f"{problem}")
        raise UsageError(f"{problem} (in the spec {text!r})", spec.label,
                         spec_line(source, text, spec.line))


def spec_line(source: Source, text: str, after: int) -> int:
    """The first line at or after AFTER that holds TEXT (or else its package name); AFTER if
    none does (a spec made from several lines, or a source that cannot be read again)."""
    try:
        if source.inline:
            lines = source.inline.split("\n")
        else:
            with (_open_script(source.path) if source.fd < 0 else
                  os.fdopen(os.dup(source.fd), "rb")) as f:
                f.seek(0)
                lines = [t for _, t in iter_lines(f, source.label)]
                f.seek(0)  # the offset is shared with the descriptor the script is run from
    except (OSError, UsageError):
        return after
    name = spec_name(text)
    for wanted in (text, name):
        for n, line in enumerate(lines[after - 1:] if after else lines, max(after, 1)):
            if wanted and wanted in " ".join(line.split()):
                return n
    return after


###############################################################################
# Authoring: --init, --add, --remove ###########################################
###############################################################################
# --init writes a new script (or a block into a file that has none); --add and --remove edit
# the block a script already has, in whichever format. Edits are made on the file's own lines
# (an edited list item keeps its line's prefix, indentation, quoting style and comment; new
# lines take the line ending of their neighbours); every other byte stays. A conda-script
# block's list is its [dependencies] table: one `name = ...` line an item (script_dependency
# spells a spec so; one it cannot spell is refused). The result is read
# back with the real reader and must give exactly the lists that were asked for, else nothing
# is written. The script is edited under an exclusive flock of the script itself (re-opened if
# another edit replaced it meanwhile), so concurrent edits queue instead of losing one another,
# and replaced atomically (_atomic_write) with its mode kept. A symlink is followed: the target
# is edited and the link stays.

EXIT_CANNOT_WRITE = EXIT_ENV_DIR  # 73: the script cannot be written (--init, --add, --remove)
FORMATS = ("conda-execute", "pep723", "conda-script")
AUTHORING = ("--init", "--add", "--remove")
AUTHORING_OPTIONS = frozenset({"--format", "--pypi", "--channel", "--quiet"})
PYPI_NAME_RE = r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\s*[\[(<>=!~;@].*)?"
CODING_RE = r"[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+"  # PEP 263


class Language(NamedTuple):
    """How a script of one kind carries a block: by its file extension."""

    comment: str  # its line-comment prefix
    package: str  # the conda package of its runner ('' if none): --init's default spec
    shebang: bool  # its runner accepts a '#!' first line


LANGUAGES = {  # one entry per extension of EXTENSION_RUNNERS that has line comments
    ".py": Language("#", "python", True), ".pyw": Language("#", "python", True),
    ".sh": Language("#", "bash", True), ".bash": Language("#", "bash", True),
    ".zsh": Language("#", "zsh", True), ".R": Language("#", "r-base", True),
    ".r": Language("#", "r-base", True), ".pl": Language("#", "perl", True),
    ".rb": Language("#", "ruby", True), ".jl": Language("#", "julia", True),
    ".tcl": Language("#", "tk", True), ".fish": Language("#", "fish", True),
    ".ps1": Language("#", "powershell", True), ".nu": Language("#", "nushell", True),
    ".awk": Language("#", "gawk", True), ".sed": Language("#", "sed", True),
    ".exs": Language("#", "elixir", True), ".raku": Language("#", "rakudo", True),
    ".js": Language("//", "nodejs", True), ".mjs": Language("//", "nodejs", True),
    ".cjs": Language("//", "nodejs", True), ".ts": Language("//", "deno", True),
    ".go": Language("//", "go", False), ".java": Language("//", "openjdk", False),
    ".kts": Language("//", "kotlin", False), ".groovy": Language("//", "groovy", True),
    ".swift": Language("//", "", False), ".lua": Language("--", "lua", True),
    ".hs": Language("--", "ghc", False), ".erl": Language("%", "erlang", False),
    ".scm": Language(";", "guile", False), ".el": Language(";", "emacs", False),
}


class BlockAt(NamedTuple):
    """Where a script's metadata sits: its format, first and last line (1-based), and prefix."""

    fmt: str
    first: int  # the header / opener line
    last: int  # the block's last line (the closer for PEP 723)
    prefix: str  # the comment prefix of its lines
    pixi: bool = False  # a conda-script block in pixi exec's form


class Script(NamedTuple):
    """A script being edited: its lines (split on '\\n' only, each keeping a '\\r')."""

    path: str  # as given: messages, the lock file beside it
    target: str  # the file written (a symlink's target)
    lines: List[str]
    mode: int


def language_for(path: str) -> Language:
    """The Language of PATH from its extension; an unknown one is an error."""
    lang = LANGUAGES.get(os.path.splitext(path)[1])
    if lang is None:
        known = " ".join(sorted(LANGUAGES, key=str.lower))
        raise UsageError(f"cannot tell the language from the extension (known: {known}); "
                         "write the block by hand", path)
    return lang


def shebang_line() -> str:
    """A '#!' line that runs this install: the zipapp through env -S, else the command."""
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isfile(here):  # not inside a zipapp
        return "#!/usr/bin/env conda-execute"
    if "'" in here or not here.isprintable():
        raise UsageError("cannot write a shebang for a zipapp whose path holds a quote", here)
    safe = all(c.isalnum() or c in "/._-+,:@%" for c in here)
    return f"#!/usr/bin/env -S python3 {here if safe else repr(here)}"


# Rendering values ##############################################################


def _yaml_item(text: str, stops: str = "") -> str:
    """TEXT as a block scalar: plain if the block parser reads it back as it is, else quoted."""
    try:
        end, value = _parse_scalar(text, 0, stops, "", 0)
        if end == len(text) and value == text:
            return text
    except UsageError:
        pass
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_string(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # JSON's escapes are TOML's


def _toml_array(key: str, items: Iterable[str]) -> List[str]:
    """KEY = [...] as TOML lines: one item a line, as uv writes them; [] when empty."""
    items = list(items)
    if not items:
        return [f"{key} = []"]
    return [f"{key} = [", *(f"    {_toml_string(i)}," for i in items), "]"]


def render_block(fmt: str, prefix: str, specs: Tuple[str, ...], channels: Tuple[str, ...],
                 pip: Tuple[str, ...]) -> List[str]:
    """A new block's lines (no line endings)."""
    if fmt == "conda-execute":
        body = ["conda execute", "env:", *(f"  - {_yaml_item(s)}" for s in specs)]
        body += ["channels:", *(f"  - {_yaml_item(c)}" for c in channels)] if channels else []
        return [f"{prefix} {line}" for line in body]
    toml = _toml_array("dependencies", pip)
    if specs or channels:
        toml += ["[tool.conda]", *_toml_array("dependencies", specs)]
        toml += _toml_array("channels", channels) if channels else []
    return ["# /// script", *(f"# {line}" for line in toml), "# ///"]


# Reading the script to edit ####################################################


def _edit_target(path: str) -> str:
    """The file to write for PATH: PATH, or its target if it is a symlink; must be a regular,
    writable file."""
    import stat

    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except OSError as e:
        raise UsageError(f"cannot read: {e.strerror}", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("not a regular file", path)
    if not st.st_mode & stat.S_IWUSR or not os.access(target, os.W_OK):
        raise UsageError(f"is read-only (mode {stat.S_IMODE(st.st_mode):04o}); not changing it",
                         path, code=EXIT_CANNOT_WRITE)
    return target


def _read_locked(path: str, target: str, fd: int) -> Script:
    """The script's lines, read from FD (which holds its lock)."""
    import stat

    st = os.fstat(fd)
    data = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REMOTE_BYTES:
            raise UsageError(f"larger than {MAX_REMOTE_BYTES} bytes; not editing it", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("not valid UTF-8 text", path) from None
    if "\0" in text:
        raise UsageError("binary file (NUL byte), not a script", path)
    return Script(path, target, text.split("\n"), stat.S_IMODE(st.st_mode))


def _spec_of(lines: List[str], label: str) -> Spec:
    """What the real reader makes of these lines (its errors as they are)."""
    import io

    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    return read_spec(iter_lines(io.BytesIO(data), label), label, label)


def find_block(script: Script, spec: Spec) -> BlockAt:
    """The block the reader took SPEC from."""
    opener = script.lines[spec.line - 1].rstrip("\r")
    prefix = script_opener(opener)
    if prefix:
        block = Block(spec.line, prefix, [])
        last = spec.line + 1
        while script_block_line(block, last, script.lines[last - 1].rstrip("\r"), script.path):
            last += 1
        return BlockAt("conda-script", spec.line, last, prefix, spec.form == PIXI_FORM)
    text = opener.strip()
    if text.startswith("# /// "):
        content = find_pep723(enumerate((ln.rstrip("\r") for ln in script.lines), 1), script.path)
        assert content is not None
        return BlockAt("pep723", spec.line, spec.line + content[1].count("\n") + 1, "#")
    prefix = block_prefix(text)
    last = spec.line
    while last < len(script.lines) and script.lines[last].strip().startswith(prefix) and \
            not lock_opener(script.lines[last]):
        last += 1
    return BlockAt("conda-execute", spec.line, last, prefix)


def _ending(lines: List[str], index: int) -> str:
    """The line ending to give a new line near LINES[index]: '\\r' if that line has one."""
    near = lines[min(max(index, 0), len(lines) - 1)] if lines else ""
    return "\r" if near.endswith("\r") else ""


# Lists inside a block ##########################################################


class ListItem(NamedTuple):
    """One item of a list as written: script line index (0-based), column span, value."""

    line: int
    start: int
    end: int
    value: str
    alone: bool  # nothing else (but a comma and a comment) on its line


class Listing(NamedTuple):
    """A list as written: its items, where it opens ('[' + 1, or the key line) and closes."""

    items: List[ListItem]
    open_line: int
    open_col: int  # just after '[' (flow and TOML lists)
    close_line: int  # the line of ']' (-1 for a YAML block list)
    toml: bool


def _yaml_listing(lines: List[str], block: BlockAt, key: str) -> Optional[Listing]:
    """The list KEY of a '# conda execute' block, or None if the block has no such key."""
    body = [(n + 1, lines[n].rstrip("\r").strip()[len(block.prefix):])
            for n in range(block.first, block.last)]
    field = parse_block(body, "").get(key)
    if field is None or isinstance(field.value, str):
        return None
    at = field.line - 1
    text = lines[at].rstrip("\r")
    if all(n == field.line for n, _ in field.value):  # a flow list: key: [a, b]
        col = text.index("[", text.index(":", text.index(key))) + 1
        return Listing(_flow_items(text, at, col), at, col, at, False)
    items = []
    for n, _ in field.value:
        src = lines[n - 1].rstrip("\r")
        start = src.index("-", src.index(block.prefix) + len(block.prefix)) + 1
        start += len(src[start:]) - len(src[start:].lstrip(" \t"))
        end, value = _parse_scalar(src, start, "", "", n)
        items.append(ListItem(n - 1, start, _trim(src, start, end), value, True))
    return Listing(items, at, len(text), -1, False)


def _trim(src: str, start: int, end: int) -> int:
    while end > start and src[end - 1] in " \t":
        end -= 1
    return end


def _flow_items(text: str, at: int, col: int) -> List[ListItem]:
    """The items of a one-line YAML flow list whose '[' ends at COL."""
    items, pos = [], col
    while True:
        pos += len(text[pos:]) - len(text[pos:].lstrip(" \t"))
        if text[pos] == "]":
            return items
        end, value = _parse_scalar(text, pos, ",]", "", at + 1)
        items.append(ListItem(at, pos, _trim(text, pos, end), value, False))
        pos = end + len(text[end:]) - len(text[end:].lstrip(" \t"))
        if text[pos] == "]":
            return items
        pos += 1  # ','


def _toml_table(line: str) -> Optional[str]:
    """The table a TOML '[a.b]' header line opens ('a.b'), or None for other lines."""
    src = line.strip()
    if not src.startswith("[") or src.startswith("[["):
        return None if not src.startswith("[[") else "[["
    head = src[1:src.index("]")] if "]" in src else ""
    return ".".join(p.strip().strip("\"'") for p in head.split("."))


def _toml_listing(lines: List[str], block: BlockAt, table: str) -> Optional[Listing]:
    """The `dependencies` array of TOML table TABLE ('' for the top level) in a PEP 723 block."""
    current = ""
    for at in range(block.first, block.last - 1):
        content = lines[at].rstrip("\r")[2:]
        header = _toml_table(content)
        if header is not None:
            current = header
            continue
        key, eq, rest = content.partition("=")
        if current == table and eq and key.strip().strip("\"'") == "dependencies" and \
                rest.strip().startswith("["):
            return _toml_items(lines, at, len(lines[at].rstrip("\r")) - len(rest.lstrip()) + 1,
                               block.last - 1)
    return None


def _toml_items(lines: List[str], at: int, col: int, stop: int) -> Listing:
    """Tokenise a TOML array of one-line strings from just after its '[' (line AT, column COL)."""
    items: List[ListItem] = []
    line, pos = at, col
    while line < stop:
        text = lines[line].rstrip("\r")
        while pos < len(text):
            ch = text[pos]
            if ch in " \t,":
                pos += 1
            elif ch == "#":
                break
            elif ch == "]":
                return Listing(items, at, col, line, True)
            elif ch in "\"'" and not text.startswith(ch * 3, pos):
                end = text.find(ch, pos + 1) if ch == "'" else _basic_end(text, pos)
                if end < 0:
                    break
                value = parse_toml(f"v = {text[pos:end + 1]}", "", 1)["v"]
                items.append(ListItem(line, pos, end + 1, value, False))
                pos = end + 1
            else:
                raise UsageError("cannot edit this array (only one-line strings); edit it by hand",
                                 "", line + 1)
        line, pos = line + 1, 2
    raise UsageError("unclosed array", "", at + 1)


def _basic_end(text: str, pos: int) -> int:
    """The index of the '"' closing the basic string at POS (-1 if none)."""
    i = pos + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i
        else:
            i += 1
    return -1


def _mark_alone(lines: List[str], listing: Listing, prefix_len: int) -> Listing:
    """Set `alone` on TOML items that are the only thing on their line."""
    items = []
    for it in listing.items:
        text = lines[it.line].rstrip("\r")
        rest = text[it.end:].strip().lstrip(",").strip()
        alone = not text[prefix_len:it.start].strip() and (not rest or rest.startswith("#")) \
            and it.line != listing.close_line and it.line != listing.open_line
        items.append(it._replace(alone=alone))
    return listing._replace(items=items)


# conda-script's [dependencies] table: one `name = ...` line per item ###########


def _script_content(lines: List[str], block: BlockAt, at: int) -> str:
    """The TOML text of line AT (0-based) inside a conda-script block (after its prefix)."""
    text = lines[at].rstrip("\r")
    return text[len(block.prefix):] if text.startswith(block.prefix) else ""


def _script_listing(lines: List[str], block: BlockAt, label: str) -> Optional[Listing]:
    """The entries of the block's [dependencies] table (each key a ListItem, valued by its
    name), or None if it has no such table. An entry over several lines cannot be edited."""
    items: List[ListItem] = []
    header, current = -1, ""
    for at in range(block.first, block.last - 1):
        content = _script_content(lines, block, at)
        table = _toml_table(content)
        if table is not None:
            current, header = table, (at if table == "dependencies" else header)
            continue
        if current != "dependencies" or not content.strip() or content.lstrip()[0] == "#":
            continue
        try:
            entry = toml_subset(Toml11(content + "\n"), label, at + 1)
        except UsageError:
            raise UsageError("cannot edit [dependencies]: this entry is not on one line; edit "
                             "it by hand", label, at + 1) from None
        start = len(block.prefix) + len(content) - len(content.lstrip())
        items.append(ListItem(at, start, _entry_end(content, entry) + len(block.prefix),
                              next(iter(entry)), True))
    return Listing(items, header, -1, -1, False) if header >= 0 else None


def _entry_end(content: str, entry: dict) -> int:
    """Where the TOML of a one-line entry ends in CONTENT: before its comment, if any."""
    for hash_at in (k for k, c in enumerate(content) if c == "#"):
        try:
            if toml_subset(Toml11(content[:hash_at] + "\n"), "", 1) == entry:
                return _trim(content, 0, hash_at)
        except UsageError:
            continue
    return _trim(content, 0, len(content))


def script_dependency(spec: str, option: str, pixi: bool = False) -> Tuple[str, str]:
    """A match spec from the command line as a [dependencies] entry: (its TOML, the spec the
    reader makes of it). 'name' -> name = "*"; 'name VERSION' (or 'name>=1') -> name =
    "VERSION"; a build or a 'channel::' -> name = { version = "...", build = "...", channel =
    "..." }. NAME[key=value] and NAME=VERSION=BUILD are refused (write NAME VERSION BUILD).
    PIXI (pixi exec's form): strings only, see pixi_value."""
    def fail(message: str) -> UsageError:
        return UsageError(f"{option} {spec!r}: {message}")

    if pixi:
        name, value = pixi_value(spec, fail)
        key = name if _rx(r"[A-Za-z0-9_-]+").fullmatch(name) else _toml_string(name)
        return f"{key} = {_toml_string(value)}", pixi_dependency_spec(name, value)

    match = _rx(r"(?:([^\s:]+)::)?(" + DEPENDENCY_NAME_RE + r")\s*(.*)").fullmatch(spec)
    words = match.group(3).split() if match else []
    version = words[0] if words else "*"
    if not match or "[" in spec or len(words) > 2 or (
            version[:1] == "=" and version[1:2] != "=" and "=" in version[1:]):
        raise fail("cannot be written in a conda-script block; use NAME, NAME VERSION or "
                   "NAME VERSION BUILD (with an optional CHANNEL::)")
    channel, name = match.group(1), match.group(2)
    table = {"version": version, **({"build": words[1]} if len(words) > 1 else {}),
             **({"channel": channel} if channel else {})}
    converted = dependency_spec(name, table, "", fail)[0]
    key = name if _rx(r"[A-Za-z0-9_-]+").fullmatch(name) else _toml_string(name)
    value = _toml_string(version) if len(table) == 1 else \
        "{ " + ", ".join(f"{k} = {_toml_string(v)}" for k, v in table.items()) + " }"
    return f"{key} = {value}", converted


def pixi_value(spec: str, fail: Any) -> Tuple[str, str]:
    """(name, VALUE) of SPEC for pixi exec's `name = "VALUE"`, meaning what conda reads in
    SPEC: 'name' -> "*"; 'name=1.2' -> "1.2" (1.2.*, as both read it); 'name 1.2' (exactly
    1.2) -> "==1.2"; an operator, glob or list as written. A build, channel or [...] has no
    such spelling: refused."""
    match = _rx(r"(" + DEPENDENCY_NAME_RE + r")\s*(.*)").fullmatch(spec)
    rest = match.group(2).strip() if match else ""
    build = rest[:1] == "=" and rest[1:2] != "=" and "=" in rest[1:]  # name=1.2=py_0
    if not match or "[" in spec or "::" in spec or len(rest.split()) > 1 or build:
        raise fail("cannot be written in pixi exec's conda-script form, which takes NAME or "
                   "NAME VERSION (no build, channel or [key=value])")
    if not rest:
        return match.group(1), "*"
    if rest[0] == "=" and rest[1:2] != "=":
        return match.group(1), rest[1:]
    exact = rest[0] not in "<>=!~" and not any(c in rest for c in "*|,")
    return match.group(1), "==" + rest if exact else rest


def _script_entry(lines: List[str], hit: Optional[ListItem], spec: str, pixi: bool) -> str:
    """SPEC as a [dependencies] entry; one replacing HIT keeps HIT's key as it is written."""
    entry = script_dependency(spec, "--add", pixi)[0]
    key = _rx(r"""("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)[ \t]*=[ \t]*""").match(
        lines[hit.line], hit.start) if hit else None
    return key.group(0) + entry.split(" = ", 1)[1] if key else entry


def _script_specs(data: dict, label: str) -> List[str]:
    """The [dependencies] of a parsed conda-script block as the specs the reader makes of
    them, on any platform ('when' shown after the spec)."""
    if is_pixi_form(data):
        return [pixi_dependency_spec(name, value) for name, value in
                data.get("dependencies", {}).items() if name != "target"]
    specs = []
    for name, value in data.get("dependencies", {}).items():
        when = value.get("when") if isinstance(value, dict) else None
        plain = {k: v for k, v in value.items() if k != "when"} if when else value
        spec = dependency_spec(name, plain, "", lambda m: UsageError(m, label))[0]
        specs.append(f"{spec} (when {when})" if when else spec)
    return specs


# Editing a list ###############################################################


def _render(lines: List[str], listing: Listing, like: Optional[ListItem], text: str) -> str:
    """TEXT as an item of LISTING: YAML plain when it reads back so, else quoted; TOML in the
    quotes of LIKE (an item it replaces or follows) when that keeps its value."""
    if not listing.toml:
        return _yaml_item(text, ",]" if listing.close_line >= 0 else "")
    literal = like is not None and lines[like.line][like.start] == "'"
    return f"'{text}'" if literal and "'" not in text else _toml_string(text)


def replace_item(lines: List[str], it: ListItem, new: str) -> None:
    text = lines[it.line]
    lines[it.line] = text[:it.start] + new + text[it.end:]


def delete_item(lines: List[str], listing: Listing, k: int) -> None:
    """Remove item K: its whole line when it is alone there, else its text and one comma."""
    items, it = listing.items, listing.items[k]
    if it.alone:
        del lines[it.line]
        return
    text = lines[it.line]
    if k + 1 < len(items) and items[k + 1].line == it.line:
        start, end = it.start, items[k + 1].start
    elif k > 0 and items[k - 1].line == it.line:
        start, end = items[k - 1].end, it.end
    else:
        start, end = it.start, it.end
        rest = text[end:]
        end += len(rest) - len(rest.lstrip(" \t"))
        end += 1 if text[end:end + 1] == "," else 0
    lines[it.line] = text[:start] + text[end:]


def append_item(lines: List[str], listing: Listing, new: str) -> None:
    """Add NEW after the last item, in the list's own layout."""
    items = listing.items
    if not items and listing.open_col < 0:  # conda-script: a line after '[dependencies]'
        head = lines[listing.open_line]
        end_ = "\r" if head.endswith("\r") else ""
        lines.insert(listing.open_line + 1, head[:head.index("[")] + new + end_)
        return
    if not items:
        text = lines[listing.open_line]
        lines[listing.open_line] = text[:listing.open_col] + new + text[listing.open_col:]
        return
    last = items[-1]
    text = lines[last.line]
    end_ = "\r" if text.endswith("\r") else ""
    if listing.close_line < 0:  # a YAML block list: a new '- item' line like the last one
        lines.insert(last.line + 1, text[:last.start] + new + end_)
    elif listing.close_line == last.line:
        lines[last.line] = text[:last.end] + ", " + new + text[last.end:]
    else:
        comma = text[last.end:].lstrip(" \t").startswith(",")
        if not comma:
            lines[last.line] = text[:last.end] + "," + text[last.end:]
        lines.insert(last.line + 1, text[:last.start] + new + ("," if comma else "") + end_)


# The edit, checked by the reader ##############################################

WHERE = {"conda-execute": ("env",), "conda": ("tool", "conda", "dependencies"),
         "pip": ("dependencies",), "conda-script": ("dependencies",)}


def _kind(block: BlockAt, what: str) -> str:
    """Which list an edit of WHAT ('conda' or 'pip') changes in BLOCK: a key of WHERE."""
    return block.fmt if block.fmt in ("conda-execute", "conda-script") else what


def _name_of(what: str, text: str) -> str:
    """The package name an item is known by: conda's (lower case), or PyPI's normalised one."""
    if what != "pip":
        return _conda_spec_name(text)
    match = _rx(PYPI_NAME_RE).fullmatch(text)
    return _rx(r"[-_.]+").sub("-", match.group(1)).lower() if match else ""


def check_item(what: str, text: str, option: str) -> str:
    """A spec (conda match spec, or PEP 508 requirement with --pypi) from the command line."""
    if what != "pip":
        spec = _cli_specs(option, [text])[0]
        problem = match_spec_problem(spec)
        if problem:
            raise UsageError(f"{option} {text!r}: {problem}")
        return spec
    return check_match_spec(text, lambda m: UsageError(f"{option} {text!r}: {m}"),
                            _rx(PYPI_NAME_RE).fullmatch,
                            "PyPI requirement (NAME, NAME>=VERSION, NAME[extra]...)")


def check_channel(text: str) -> str:
    """A --channel value: a channel name or URL (one word, no control character, not '-...')."""
    def fail(kind: str, detail: str, _at: object) -> UsageError:
        return UsageError(f"--channel {text!r}: " + {
            "control": f"control character {detail!r}", "empty": "empty channel",
            "option": "starts with '-' (it would be read as an option)"}[kind])

    channel = _list_item(text, 0, False, False, fail)
    if " " in channel:
        raise UsageError(f"--channel {text!r}: a channel is one word (a name or a URL)")
    return channel


def edited(old: List[str], adds: Tuple[str, ...], removes: Tuple[str, ...], what: str,
           label: str) -> List[str]:
    """The list after the edit: an added spec replaces one of the same name in place, or
    comes last; a removed name takes every item of that name (it must have one)."""
    new = list(old)
    for spec in adds:
        hit = [k for k, v in enumerate(new) if _name_of(what, v) == _name_of(what, spec)]
        if hit:
            new[hit[0]] = spec
        else:
            new.append(spec)
    for name in removes:
        if not any(_name_of(what, v) == name for v in new):
            raise UsageError(f"no {name!r} to remove in {' '.join(WHERE[what])}", label)
        new = [v for v in new if _name_of(what, v) != name]
    if what == "conda-execute" and not new:
        raise UsageError("the block's env would be empty; a script needs at least one spec",
                         label)
    return new


def _listing(lines: List[str], block: BlockAt, what: str) -> Optional[Listing]:
    if block.fmt == "conda-execute":
        return _yaml_listing(lines, block, "env")
    if block.fmt == "conda-script":
        return _script_listing(lines, block, "")
    found = _toml_listing(lines, block, "" if what == "pip" else "tool.conda")
    return _mark_alone(lines, found, 2) if found else None


def _new_toml_list(lines: List[str], block: BlockAt, what: str) -> None:
    """Write an empty `dependencies = []` where the TOML wants it (at the top for PyPI's,
    in [tool.conda], made before the closer if missing, for conda's)."""
    end_ = _ending(lines, block.first - 1)
    if block.fmt == "conda-script":  # a [dependencies] table, before the closer
        lines.insert(block.last - 1, block.prefix + "[dependencies]" + end_)
        return
    at = block.first  # just after the opener
    if what == "conda":
        heads = [n for n in range(block.first, block.last - 1)
                 if _toml_table(lines[n].rstrip("\r")[2:]) == "tool.conda"]
        at = heads[0] + 1 if heads else block.last - 1
        if not heads:
            lines.insert(at, "# [tool.conda]" + end_)
            at += 1
    lines.insert(at, "# dependencies = []" + end_)


def edit_lines(script: Script, block: BlockAt, what: str, adds: Tuple[str, ...],
               removes: Tuple[str, ...]) -> List[str]:
    """The script's lines with the block's list edited (see `edited`), one item at a time;
    a list that cannot be edited is an error at the script's line."""
    try:
        return _edit_lines(script, block, what, adds, removes)
    except UsageError as e:
        if e.path:
            raise
        raise UsageError(e.message, script.path, e.line) from None


def _edit_lines(script: Script, block: BlockAt, what: str, adds: Tuple[str, ...],
                removes: Tuple[str, ...]) -> List[str]:
    lines = list(script.lines)
    for spec in adds:
        listing = _listing(lines, block, what)
        if listing is None:
            before = len(lines)
            _new_toml_list(lines, block, what)
            block = block._replace(last=block.last + len(lines) - before)
            listing = _listing(lines, block, what)
            assert listing is not None
        hits = [it for it in listing.items if _name_of(what, it.value) == _name_of(what, spec)]
        like = hits[0] if hits else (listing.items[-1] if listing.items else None)
        before = len(lines)
        new = _script_entry(lines, hits[0] if hits else None, spec, block.pixi) \
            if block.fmt == "conda-script" else _render(lines, listing, like, spec)
        if hits:
            replace_item(lines, hits[0], new)
        else:
            append_item(lines, listing, new)
        block = block._replace(last=block.last + len(lines) - before)
    for name in removes:
        listing = _listing(lines, block, what)
        while listing:
            hits = [k for k, it in enumerate(listing.items) if _name_of(what, it.value) == name]
            if not hits:
                break
            before = len(lines)
            delete_item(lines, listing, hits[0])
            block = block._replace(last=block.last + len(lines) - before)
            listing = _listing(lines, block, what)
    return lines


def _data(lines: List[str], block: BlockAt, label: str) -> dict:
    """The block's content as data: TOML's, or {key: value or [items]} for ours."""
    if block.fmt == "pep723":
        text = "".join(ln.rstrip("\r")[2:] + "\n" for ln in lines[block.first:block.last - 1])
        return parse_toml(text, label, block.first + 1)
    if block.fmt == "conda-script":
        text = "".join(_script_content(lines, block, n) + "\n"
                       for n in range(block.first, block.last - 1))
        data = toml_subset(Toml11(text), label, block.first + 1)
        return {**data, "dependencies": _script_specs(data, label)}
    body = [(n + 1, lines[n].rstrip("\r").strip()[len(block.prefix):])
            for n in range(block.first, block.last)]
    return {k: f.value if isinstance(f.value, str) else [v for _, v in f.value]
            for k, f in parse_block(body, label).items()}


def _pop(data: dict, where: Tuple[str, ...]) -> object:
    """Remove and return data[where...] (None if absent); empty tables it leaves go too."""
    inner = data
    for key in where[:-1]:
        inner = inner.get(key, {})
    value = inner.pop(where[-1], None) if isinstance(inner, dict) else None
    if len(where) == 3 and data.get("tool", {}).get("conda") == {}:
        del data["tool"]["conda"]
    if len(where) == 3 and data.get("tool") == {}:
        del data["tool"]
    return value


def check_edit(old: List[str], new: List[str], label: str, what: str, want: List[str]) -> Spec:
    """Read NEW back with the real reader: it must hold WANT where the edit was made and
    everything else as in OLD. Returns its Spec."""
    old_spec = _spec_of(old, label)
    try:
        spec = _spec_of(new, label)
    except UsageError as e:
        raise UsageError(f"the edited block would not read back ({e.message}); nothing was "
                         "changed: edit it by hand", label, e.line) from None
    block = find_block(Script(label, "", old, 0), old_spec)
    was = _data(old, block, label)
    now = _data(new, find_block(Script(label, "", new, 0), spec), label)
    where = WHERE[_kind(block, what)]
    got, _ = _pop(now, where), _pop(was, where)
    if (got or []) != want or now != was:
        raise UsageError("the edit did not read back as asked; nothing was changed: edit the "
                         "block by hand", label, old_spec.line)
    return spec


# The commands ##################################################################


def author(args: Args) -> int:
    """--init SCRIPT [SPEC...], --add SPEC... SCRIPT, --remove NAME... SCRIPT."""
    opts = args.options
    ops = [o for o in AUTHORING if o in opts]
    if len(ops) > 1:
        raise UsageError(f"use one of {', '.join(AUTHORING)} at a time")
    op = ops[0]
    for other in opts:
        if other != op and (other not in AUTHORING_OPTIONS or
                            (other in ("--format", "--channel") and op != "--init")):
            raise UsageError(f"{other} does not go with {op}")
    fmt = opts.get("--format", "conda-execute")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (known: {', '.join(FORMATS)})")
    words = ([args.script] if args.script is not None else []) + args.args
    what = "pip" if "--pypi" in opts else "conda"
    quiet = "--quiet" in opts
    if op == "--init":
        if not words:
            raise UsageError("--init needs the script to write: --init SCRIPT [SPEC...]")
        channels = tuple(args.lists.get("--channel", []))
        return init_script(words[0], words[1:], fmt, channels, what, quiet)
    if len(words) < 2:
        item = "SPEC" if op == "--add" else "NAME"
        raise UsageError(f"{op} needs at least one {item} and the script: {op} {item}... SCRIPT")
    return edit_script(words[-1], op, words[:-1], what, quiet)


def edit_script(path: str, op: str, words: List[str], what: str, quiet: bool) -> int:
    """--add or --remove on the block of the script at PATH, under the script's lock."""
    if op == "--add":
        adds, removes = tuple(check_item(what, w, op) for w in words), ()
    else:
        adds, removes = (), tuple(_name_of(what, check_item(what, w, op)) for w in words)
    fd, script, _, block = _open_for_edit(path)
    try:
        if what == "pip" and block.fmt != "pep723":
            raise UsageError("--pypi needs a PEP 723 block (this block has no PyPI "
                             "requirements)", path, block.first)
        kind = _kind(block, what)
        if kind == "conda-script":
            adds = tuple(script_dependency(a, op, block.pixi)[1] for a in adds)
        old = _pop(_data(script.lines, block, path), WHERE[kind]) or []
        want = edited(list(old), adds, removes, kind, path)  # type: ignore[arg-type]
        lines = edit_lines(script, block, what, adds, removes)
        if lines == script.lines:
            if not quiet:
                _say(f"{path}: nothing to change")
            return 0
        new_spec = check_edit(script.lines, lines, path, what, want)
        _write(script, lines)
    finally:
        os.close(fd)
    if not quiet:
        _say(f"{path}: {'.'.join(WHERE[kind])} is now [{', '.join(want)}]")
    _stale_lock(path, new_spec)
    return 0


def _open_for_edit(path: str) -> Tuple[int, Script, Spec, BlockAt]:
    """The script at PATH locked for an edit: (the lock's descriptor, for the caller to close;
    its lines; what the reader makes of them; where its block is)."""
    target = _edit_target(path)
    fd = _lock_script(target, path)
    try:
        script = _read_locked(path, target, fd)
        spec = _spec_for_edit(script.lines, path)
        return fd, script, spec, find_block(script, spec)
    except BaseException:
        os.close(fd)
        raise


def _spec_for_edit(lines: List[str], path: str) -> Spec:
    """The reader's Spec; a script without a block is told to use --init."""
    try:
        return _spec_of(lines, path)
    except UsageError as e:
        if e.message == HOW_TO:
            raise UsageError("no metadata block to edit (make one with --init)", path) from None
        raise


def _lock_script(target: str, path: str) -> int:
    """A descriptor of TARGET holding its exclusive flock (the file that holds it now)."""
    try:
        fd = acquire(EnvDir(os.path.dirname(target), -1, ""), os.path.basename(target),
                     exclusive=True, create=False, flags=os.O_RDWR | O_NOFOLLOW | O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"cannot open: {e.strerror}", path) from None
    assert fd is not None
    return fd


def _write(script: Script, lines: List[str]) -> None:
    """Replace the script's target with LINES, atomically, keeping its mode."""
    try:
        _atomic_write(script.target, "\n".join(lines), script.mode)
        if os.stat(script.target).st_mode & 0o7777 != script.mode:  # the umask took bits
            os.chmod(script.target, script.mode)
    except OSError as e:
        raise UsageError(f"cannot write: {e.strerror}", script.path,
                         code=EXIT_CANNOT_WRITE) from None


def embed_lock(path: str, text: str) -> str:
    """Write the lock TEXT into the script at PATH as a lock block behind its comment prefix,
    right after its metadata block (an earlier lock block is replaced where it is), under the
    script's lock, atomically, its mode kept; every other byte unchanged. Returns PATH."""
    fd, script, spec, block = _open_for_edit(path)
    try:
        prefix = spec.embedded.prefix if spec.embedded else \
            block.prefix if block.fmt == "conda-script" else block.prefix.rstrip() + " "
        end = _ending(script.lines, block.first - 1)
        new = [prefix + LOCK_OPENER] + [
            (prefix + t[2:] if t.startswith("# ") else prefix + t).rstrip() + end
            for t in text.splitlines()] + [prefix + LOCK_CLOSER]
        new[0] += end
        new[-1] += end
        lines = list(script.lines)
        if spec.embedded:
            lines[spec.embedded.line - 1:spec.embedded.end] = new
        else:  # after a PEP 723 block, a blank line first: a '#' line would continue it
            lines[block.last:block.last] = ([end] if block.fmt == "pep723" else []) + new
        if _spec_of(lines, path).embedded is None:
            raise UsageError("the lock block would not read back; nothing was changed", path)
        _write(script, lines)
    finally:
        os.close(fd)
    return path


def _stale_lock(path: str, spec: Spec) -> None:
    """Say so when PATH's lock (file or block) no longer matches its metadata."""
    try:
        lock = parse_lock(spec.embedded.lines, path, "") if spec.embedded else \
            read_lock(path + LOCK_SUFFIX)
    except UsageError:
        lock = None
    if lock and lock.metadata != metadata_hash(spec):
        _say(f"warning: {lock.path} was made from the old metadata and no longer applies; "
             "remake it with --lock --upgrade")


def init_script(path: str, words: List[str], fmt: str, channels: Tuple[str, ...], what: str,
                quiet: bool) -> int:
    """Write a new script with a block, or add a block to a script that has none."""
    lang = language_for(path)
    ext = os.path.splitext(path)[1]
    if fmt == "pep723" and lang.package != "python":
        raise UsageError("--format pep723 is for Python scripts (.py)", path)
    if what == "pip" and fmt != "pep723":
        raise UsageError("--pypi goes with --format pep723", path)
    if fmt != "pep723" and ext not in EXTENSION_RUNNERS:
        raise UsageError(f"conda-execute cannot tell how to run a {ext} file; write "
                         f"{'run_with' if fmt == 'conda-execute' else 'the entrypoint'} in the "
                         "block by hand", path)
    items = tuple(check_item(what, w, "--init") for w in words)
    for c in channels:
        check_channel(c)
    specs = items if what == "conda" else ()
    if not specs and fmt != "pep723" and lang.package:
        specs = (lang.package,)
    if fmt == "conda-script":
        block, want = script_block(lang.comment, specs, channels, EXTENSION_RUNNERS[ext], path)
    else:
        block = render_block(fmt, lang.comment, specs, channels, items if what == "pip" else ())
        want = Spec(specs, channels, (), path, 0, items if what == "pip" else ())
    if os.path.lexists(path):
        _init_existing(path, block, want)
    else:
        lines = ([shebang_line()] if lang.shebang else []) + block + [""]
        _check_init(lines, want)
        _init_new(path, lines, lang.shebang)
    if not quiet:
        _say(f"wrote a {fmt} block to {path}")
    return 0


def script_block(prefix: str, specs: Tuple[str, ...], channels: Tuple[str, ...], runner: str,
                 path: str) -> Tuple[List[str], Spec]:
    """A new conda-script block's lines (channels: conda-forge unless given; the entrypoint
    runs RUNNER on the script) and the Spec it must read back as."""
    channels = channels or ("conda-forge",)
    entries = [script_dependency(s, "--init") for s in specs]
    toml = [f"channels = [{', '.join(_toml_string(c) for c in channels)}]",
            f"entrypoint = {_toml_string(runner + ' ${SCRIPT}')}",
            "[dependencies]", *(entry for entry, _ in entries)]
    lines = [f"{prefix} {SCRIPT_OPENER}", *(f"{prefix} {line}" for line in toml),
             f"{prefix} {SCRIPT_CLOSER}"]
    return lines, Spec(tuple(spec for _, spec in entries), channels, (), path, 0)


def _init_new(path: str, lines: List[str], executable: bool) -> None:
    """Create PATH (never over an existing file) with LINES, mode 0755 (or 0644) less umask."""
    data = "\n".join(lines).encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o755 if executable else 0o644)
    except FileExistsError:
        raise UsageError("already exists", path) from None
    except OSError as e:
        raise UsageError(f"cannot create: {e.strerror}", path, code=EXIT_CANNOT_WRITE) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        os.unlink(path)
        raise UsageError(f"cannot write: {e.strerror}", path, code=EXIT_CANNOT_WRITE) from None


def _check_init(lines: List[str], want: Spec) -> None:
    """The reader must find in LINES the specs, channels and PyPI requirements asked for."""
    spec = _spec_of(lines, want.label)
    env = spec.env if not spec.line or lines[spec.line - 1].rstrip() != "# /// script" else \
        tuple(s for s in spec.env if s in want.env)
    if (env, spec.channels, spec.pip) != (want.env, want.channels, want.pip):
        raise UsageError("the new block does not read back as asked; nothing was written",
                         want.label)


def _init_existing(path: str, block: List[str], want: Spec) -> None:
    """Add BLOCK to an existing script that has none: after its shebang and coding lines."""
    target = _edit_target(path)
    fd = _lock_script(target, path)
    try:
        script = _read_locked(path, target, fd)
        try:
            spec = _spec_of(script.lines, path)
            raise UsageError("already has a metadata block (edit it with --add and --remove)",
                             path, spec.line)
        except UsageError as e:
            if e.message != HOW_TO:
                raise
        lines = script.lines
        at = 1 if lines[0].startswith("#!") else 0
        at += 1 if at < len(lines) and _rx(CODING_RE).match(lines[at]) else 0
        end_ = _ending(lines, at)
        gap = [end_] if at < len(lines) and lines[at].strip() else []
        new = lines[:at] + [b + end_ for b in block] + gap + lines[at:]
        _check_init(new, want)
        _write(script, new)
    finally:
        os.close(fd)


###############################################################################
# Bundles: a script that runs with no network (--bundle) #######################
###############################################################################
# `--bundle SCRIPT --output DIR [--platform SUBDIR]...` makes DIR (refused if it exists; built
# as DIR.partial-PID beside it, then renamed: nothing half-made is ever at DIR):
#     DIR/conda-execute.pyz          the running pyz (or one made from this module)
#     DIR/SCRIPT                     the script under its own name, its mode kept
#     DIR/SCRIPT.conda-lock          its lock (unless the lock is embedded in the script)
#     DIR/packages/SUBDIR/FILE       every archive the lock's lists name, hashes checked
#     DIR/packages/conda-execute-bundle.json
# A run of DIR/SCRIPT finds packages/ beside its lock and creates the env from those files
# (file:// URLs, each checked against the lock's sha256 first: a changed one is exit 74),
# with whatever manager the machine has: no channel, no network, wherever DIR has moved.


def bundle(cfg: Config, args: Args) -> int:
    """--bundle: lock the script if needed, then pack it (see above)."""
    more = parse_args(args.args)
    opts = {**args.options, **more.options}
    platforms = check_platforms(args.lists.get("--platform", []) +
                                more.lists.get("--platform", []))
    if args.script is None or more.script is not None or "--output" not in opts:
        raise UsageError("usage: --bundle SCRIPT --output DIR [--platform SUBDIR]...")
    script, output = args.script, os.path.abspath(opts["--output"])
    if os.path.lexists(output):
        raise UsageError(f"--output {output}: it exists; name a new folder")
    lock = _bundle_lock(script, [cfg.platform, *platforms], args)
    wanted = list(dict.fromkeys([cfg.platform, *platforms]))
    tarball = output.endswith((".tar.gz", ".tgz"))
    work = f"{output}.partial-{os.getpid()}"
    try:
        _fill_bundle(work, script, lock, wanted)
        if "--with-micromamba" in opts:
            _bundle_micromamba(cfg, work, wanted)
        if tarball:
            _write_tarball(work, output)
        else:
            os.rename(work, output)
    except OSError as e:  # no space left, a read-only place...: nothing is left behind
        raise UsageError(f"cannot write the bundle: {e.strerror}", output,
                         code=EXIT_ENV_DIR) from None
    finally:
        if os.path.lexists(work):
            remove_tree(work)
    top = output[:-len(".tar.gz" if output.endswith(".tar.gz") else ".tgz")] \
        if tarball else output
    how = (f"tar -xzf {output} (or python3 -m tarfile -e), then " if tarball else "") + \
        f"python3 {os.path.join(top, 'conda-execute.pyz')} " \
        f"{os.path.join(top, os.path.basename(script))}"
    _say(f"wrote {output} ({', '.join(wanted)}); on the target machine: {how}")
    return 0


def unbundle(args: Args) -> int:
    """--unbundle NAME.tar.gz [--output DIR]: extract a bundle made with --output NAME.tar.gz
    into DIR (default: NAME beside the archive), refusing any member that is not a plain file
    or folder under NAME/ (no absolute path, '..', link or device); all or nothing."""
    import tarfile

    more = parse_args(args.args)
    archive = args.script
    if archive is None or more.script is not None:
        raise UsageError("usage: --unbundle NAME.tar.gz [--output DIR]")
    base = os.path.basename(archive)
    name = base[:-len(".tar.gz")] if base.endswith(".tar.gz") else base.rsplit(".", 1)[0]
    output = os.path.abspath({**args.options, **more.options}.get(
        "--output", os.path.join(os.path.dirname(os.path.abspath(archive)), name)))
    if os.path.lexists(output):
        raise UsageError(f"--output {output}: it exists; name a new folder")
    work = f"{output}.partial-{os.getpid()}"
    try:
        with tarfile.open(archive, "r:gz") as tf:
            members = tf.getmembers()
            for m in members:
                parts = m.name.split("/")
                if m.name.startswith("/") or ".." in parts or parts[0] != name or not (
                        m.isfile() or m.isdir()):
                    raise UsageError(f"refusing to extract {m.name!r}: not a plain file or "
                                     f"folder under {name}/", archive, code=EXIT_BAD_ARCHIVE)
            os.mkdir(work, 0o755)
            for m in members:
                target = os.path.join(work, *m.name.split("/")[1:])
                if m.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tf.extractfile(m) as src, open(target, "xb") as dst:  # type: ignore
                    dst.write(src.read())
                os.chmod(target, m.mode & 0o755)
        os.rename(work, output)
    except (OSError, tarfile.TarError) as e:
        raise UsageError(f"cannot extract the bundle: {getattr(e, 'strerror', None) or e}",
                         archive, code=EXIT_BAD_ARCHIVE) from None
    finally:
        if os.path.lexists(work):
            remove_tree(work)
    _say(f"extracted {output}")
    return 0


def _write_tarball(work: str, output: str) -> None:
    """WORK as OUTPUT (NAME.tar.gz holding the folder NAME/), written to a temp file first."""
    import tarfile

    name = os.path.basename(output)
    name = name[:-len(".tar.gz")] if name.endswith(".tar.gz") else name[:-len(".tgz")]
    tmp = f"{output}.partial-{os.getpid()}.tar.gz"
    try:
        with tarfile.open(tmp, "w:gz") as tf:
            for root, dirs, files in os.walk(work):
                dirs.sort()
                for entry in sorted(files) + dirs:
                    path = os.path.join(root, entry)
                    arc = os.path.join(name, os.path.relpath(path, work))
                    tf.add(path, arc, recursive=False)
        os.rename(tmp, output)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _bundle_micromamba(cfg: Config, work: str, platforms: List[str]) -> None:
    """micromamba for each platform in WORK/micromamba/PLATFORM/, taken from the package the
    bootstrap downloads (micromamba-url, {platform} filled in; sha256 pin honoured)."""
    import tempfile

    url_of = cfg.micromamba_url or MICROMAMBA_URL
    pin = cfg.micromamba_sha256.strip().lower()
    for platform in platforms:
        url = url_of.replace("{platform}", platform)
        check_transport(url, bool(pin))
        folder = os.path.join(work, BUNDLE_MICROMAMBA, platform)
        os.makedirs(folder)
        with tempfile.TemporaryFile() as archive:
            digest = download_to(url, archive, cfg.bootstrap_timeout, bool(pin), True)
            if pin and digest != pin:
                raise _bootstrap_error(url, f"sha256 mismatch: expected {pin}, got {digest}")
            with open(os.path.join(folder, "micromamba"), "xb") as out:
                extract_micromamba(archive, out, url)
        os.chmod(os.path.join(folder, "micromamba"), 0o755)


def bundled_micromamba(script: str, platform: str) -> str:
    """The micromamba a bundle holding SCRIPT carries for PLATFORM, or ''."""
    exe = os.path.join(os.path.dirname(os.path.abspath(script)), BUNDLE_MICROMAMBA, platform,
                       "micromamba")
    return exe if is_bundled_micromamba(exe) and os.access(exe, os.X_OK) else ""


def is_bundled_micromamba(exe: str) -> bool:
    """Whether EXE is a bundle's TOP/micromamba/PLATFORM/micromamba (TOP holding packages/)."""
    top, platform_dir = os.path.split(os.path.dirname(exe))
    return os.path.basename(top) == BUNDLE_MICROMAMBA and os.path.isfile(
        os.path.join(os.path.dirname(top), BUNDLE_PACKAGES, BUNDLE_MARK)) and bool(platform_dir)


def _bundle_lock(script: str, platforms: List[str], args: Args) -> Dict[str, Lock]:
    """SCRIPT's lock, one Lock a platform; made first (--lock, embedded if the script keeps
    one) when there is none, it is stale, or it lacks one of PLATFORMS."""
    def locks() -> Dict[str, Lock]:
        spec = load_spec(Source(script, script))
        found = {}
        for p in platforms:
            try:
                lock = apply_lock(spec, script, True, p).lock
            except UsageError:
                return {}
            if lock is not None:
                found[p] = lock
        return found

    found = locks()
    if len(found) < len(set(platforms)):
        embedded = load_spec(Source(script, script)).embedded is not None
        argv = ["--lock", *(["--embed"] if embedded else []),
                *[a for p in platforms[1:] for a in ("--platform", p)], script]
        passed = {k: v for k, v in args.options.items() if k in ("--env-dir", "--conda")}
        code = _main([*[a for k, v in passed.items() for a in (k, v)], *argv])
        found = locks() if code == 0 else {}
        if len(found) < len(set(platforms)):
            raise UsageError("could not lock the script for every platform asked", script)
    return found


def _fill_bundle(work: str, script: str, locks: Dict[str, Lock], platforms: List[str]) -> None:
    """Write the bundle's files into the new folder WORK."""
    import json
    import shutil

    os.mkdir(work, 0o755)
    _bundle_pyz(os.path.join(work, "conda-execute.pyz"))
    shutil.copy2(script, os.path.join(work, os.path.basename(script)))
    if os.path.exists(script + LOCK_SUFFIX):
        shutil.copy2(script + LOCK_SUFFIX, os.path.join(work, os.path.basename(script) +
                                                        LOCK_SUFFIX))
    packages = os.path.join(work, BUNDLE_PACKAGES)
    os.mkdir(packages)
    for platform in platforms:
        lock = locks[platform]
        for url, sha in zip(lock.urls, lock.sha256):
            _bundle_archive(packages, url, sha, script)
    conda_names = {u.split("#")[0].rsplit("/", 1)[-1].rsplit("-", 2)[0].replace("_", "-")
                   for lock in locks.values() for u in lock.urls}  # pip sees these installed
    pins = sorted({pin for lock in locks.values() for pin in lock.pip
                   if pin.split("==")[0].lower().replace("_", "-") not in conda_names})
    for platform in platforms if pins else ():
        _bundle_wheels(os.path.join(work, BUNDLE_WHEELS), pins, platform, script)
    with open(os.path.join(packages, BUNDLE_MARK), "w") as f:
        json.dump({"conda-execute": __version__, "platforms": platforms,
                   "script": os.path.basename(script)}, f)
        f.write("\n")


PIP_PLATFORMS = {"linux-64": "manylinux2014_x86_64", "linux-aarch64": "manylinux2014_aarch64",
                 "linux-ppc64le": "manylinux2014_ppc64le", "osx-64": "macosx_10_13_x86_64",
                 "osx-arm64": "macosx_11_0_arm64", "win-64": "win_amd64"}


def _bundle_wheels(wheels: str, pins: List[str], platform: str, label: str) -> None:
    """`pip download` the lock's PyPI pins into WHEELS (binary wheels for PLATFORM when it is
    not this machine's), with the pip of the Python running conda-execute and its settings."""
    import subprocess

    here = platform == conda_platform()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "--dest", wheels, *([] if here else
                                            ["--only-binary=:all:", "--platform",
                                             PIP_PLATFORMS.get(platform, "any")]), "--", *pins]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"cannot bundle the PyPI pins for {platform}: pip download exited "
                         f"with {proc.returncode}: {reason}", label, code=EXIT_BAD_ARCHIVE)


def _bundle_archive(packages: str, url: str, sha256: str, label: str) -> None:
    """Copy or download URL's archive into PACKAGES/SUBDIR/FILE, checking its hash."""
    import shutil
    from urllib.parse import unquote, urlsplit

    bare, md5, place = archive_place(url)
    target = os.path.join(packages, place)
    if os.path.exists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as out:
        if bare.startswith("file://"):
            try:
                with open(unquote(urlsplit(bare).path), "rb") as f:
                    shutil.copyfileobj(f, out)
            except OSError as e:
                raise UsageError(f"cannot bundle {bare}: {e.strerror}", label,
                                 code=EXIT_BAD_ARCHIVE) from None
        else:
            download(bare, out, "package", MAX_BOOTSTRAP_BYTES, BOOTSTRAP_TIMEOUT,
                     10 * BOOTSTRAP_TIMEOUT, lambda new: check_transport(new, True),
                     lambda reason: UsageError(f"cannot bundle {bare}: {reason}", label,
                                               code=EXIT_BAD_ARCHIVE))
    if not archive_matches(target, sha256, md5):
        raise UsageError(f"cannot bundle {bare}: it does not match the lock's "
                         f"{'sha256' if sha256 else 'md5'}", label, code=EXIT_BAD_ARCHIVE)


def _bundle_pyz(path: str) -> None:
    """The running pyz copied to PATH; from a checkout or a pip install, a source-only pyz
    made from this module."""
    import shutil
    import zipfile

    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isfile(here):
        shutil.copy2(here, path)
        return
    with open(path, "wb") as f:
        f.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("__main__.py", "import conda_execute\n"
                       "raise SystemExit(conda_execute.console_main())\n")
            with open(os.path.abspath(__file__), "rb") as src:
                z.writestr("conda_execute.py", src.read(), zipfile.ZIP_DEFLATED)
    os.chmod(path, 0o755)


###############################################################################
# Command line #################################################################
###############################################################################

USAGE = """\
usage: conda-execute [OPTIONS] SCRIPT [ARGS...]
       conda-execute [OPTIONS] -c CODE [ARGS...]
       conda-execute [OPTIONS] - [ARGS...]          (script read from stdin)
       conda-execute [OPTIONS] -s SPEC [-s SPEC...] [--channel CH...] [--] [CMD ARGS...]
       conda-execute --init [--format FORMAT] [--channel CH...] [--pypi] SCRIPT [SPEC...]
       conda-execute --add [--pypi] SPEC... SCRIPT | --remove [--pypi] NAME... SCRIPT
       conda-execute --list [--json] | --gc [--older-than HOURS] [--dry-run]
       conda-execute --prefix SCRIPT | --dry-run SCRIPT
       conda-execute --lock [--upgrade] [--embed] [--platform SUBDIR...] SCRIPT
       conda-execute --bundle SCRIPT --output DIR|NAME.tar.gz [--platform SUBDIR...]

Run SCRIPT in the conda environment its metadata block describes ('# conda execute' behind
any comment prefix, PEP 723 '# /// script' or conda-script), creating it on first use.
For example, hello.py:

    # conda execute
    # env: [python >=3.8, numpy]
    import numpy; print(numpy.arange(3))

    $ conda-execute hello.py ARGS...    # creates the env once; later runs start at once

No conda, mamba or micromamba on this machine? Then micromamba is downloaded once into
~/.cache/conda-execute, announced in one line (--no-bootstrap refuses: exit 69).
SCRIPT may be a file, '-' for stdin, or an http(s):// URL. Everything after SCRIPT is passed
to it unchanged.

options:
  -f, --force-env          remove and recreate the script's environment
  -c CODE                  run CODE (with its own metadata block) instead of a file;
                           passed with -c, or -e for perl, ruby, node, julia, Rscript
  -s, --spec SPEC          tool mode: run CMD (default: the first SPEC's name) in a cached
                           environment of the -s specs (repeatable)
    --channel CH           with -s: the channels (repeatable; none: your configured ones)
  --with SPEC              add SPEC to the script's environment for this run (repeatable;
                           another cached environment; not with --lock or --locked)
  --init SCRIPT [SPEC...]  write SCRIPT with a metadata block (or add one to a file that has
                           none), a shebang for this install, mode 0755
    --format FORMAT        with --init: conda-execute (default), pep723 or conda-script
  --add SPEC... SCRIPT     add specs to SCRIPT's block (or replace those of the same name)
  --remove NAME... SCRIPT  remove packages from SCRIPT's block
    --pypi                 PyPI requirements (PEP 723 'dependencies') instead of conda specs
  --prefix SCRIPT          create the environment if needed and print its prefix
  --dry-run SCRIPT         print what would run, as JSON; create nothing
  --lock SCRIPT            create the environment if needed and write SCRIPT.conda-lock
    --upgrade              with --lock: solve afresh (newest builds) and rewrite the lock;
                           recreates the environment (exit 75 while a script uses it)
    --platform SUBDIR      with --lock or --bundle (repeatable): also lock for SUBDIR
                           (osx-arm64, linux-aarch64...), solved without installing
    --embed                with --lock: write the lock into the script (a block after its
                           metadata), not beside it
  --locked                 fail unless the script's lock exists, matches the metadata and
                           has this platform's list
  --bundle SCRIPT          pack SCRIPT, its lock, every package it pins and this pyz into
    --output DIR           a new folder (or NAME.tar.gz) that runs the script offline
    --with-micromamba      with --bundle: add micromamba for each platform
  --unbundle NAME.tar.gz   extract such an archive safely (into NAME, or --output DIR)
  --list                   list environments: name, last use, size, specs, script
    --json                 with --list: one JSON object per environment and line
  --gc                     remove environments unused for remove-if-unused-for hours
    --older-than HOURS     with --gc: this many hours instead
    --dry-run              with --gc: only say what would be removed
  --env-dir DIR            where environments live (also CONDA_EXECUTE_ENV_DIR, condarc)
  --conda EXE              the conda, mamba or micromamba to create with
  --no-bootstrap           if no conda, mamba or micromamba is found, stop (exit 69) instead
                           of downloading micromamba (also CONDA_EXECUTE_BOOTSTRAP=0 or
                           'bootstrap: false' in a condarc)
  --bootstrap              download it even if CONDA_EXECUTE_BOOTSTRAP or a condarc refuses
  --allow-shared-env-dir   accept an env dir that other users can write to
  --allow-http             fetch an http:// SCRIPT URL from another host (plain http can be
                           altered on the way; also CONDA_EXECUTE_ALLOW_HTTP=1)
  -q, --quiet              print nothing while creating (unless it fails)
  -v, --verbose            say what is done; show conda's and pip's output as it comes
  -h, --help               show this help
  --version                show the version

exit codes: the script's own; 2 usage or metadata error; 69 no conda found (and the
download refused); 70 environment creation failed; 73 env dir unusable; 74 micromamba
download failed; 73 also: --init/--add/--remove cannot write the script;
75 environment busy; 126/127 run_with not executable/not found;
130/143 interrupted while creating.
"""

VALUE_OPTIONS = {"--env-dir", "--conda", "--older-than", "-c", "--format", "--output"}
LIST_OPTIONS = {"--spec", "--channel", "--with", "--platform"}  # repeatable: every value is kept, in order
FLAG_OPTIONS = {"-f", "--force-env", "--prefix", "--dry-run", "--list", "--gc", "-q", "--quiet",
                "-v", "--verbose", "-h", "--help", "--version", "--allow-shared-env-dir",
                "--lock", "--locked", "--upgrade", "--bootstrap", "--no-bootstrap", "--json",
                "--init", "--add", "--remove", "--pypi", "--embed", "--bundle",
                "--with-micromamba", "--unbundle",
                "--allow-http"}
ALIASES = {"-f": "--force-env", "-q": "--quiet", "-v": "--verbose", "-h": "--help",
           "-s": "--spec"}


class Args(NamedTuple):
    """The parsed command line: options (long names) and the script with its arguments."""

    options: Dict[str, str]  # a repeatable option maps to its last value
    script: Optional[str]
    args: List[str]
    lists: Dict[str, List[str]]  # every value of each repeatable option (LIST_OPTIONS)


def parse_args(argv: List[str]) -> Args:
    """Options come first; the first other word is the script, and the rest is its own."""
    options: Dict[str, str] = {}
    lists: Dict[str, List[str]] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word == "-" or not word.startswith("-"):
            break
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        name = ALIASES.get(name, name)
        if name in VALUE_OPTIONS or name in LIST_OPTIONS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                value = argv[i]
            options[name] = value
            lists.setdefault(name, []).append(value)
            if name == "-c":
                return Args(options, None, argv[i + 1:], lists)
        elif name in FLAG_OPTIONS and not eq:
            options[name] = ""
        else:
            raise UsageError(f"unknown option {word!r} (see --help)")
        i += 1
    script = argv[i] if i < len(argv) else None
    return Args(options, script, argv[i + 1:], lists)


def make_source(args: Args, allow_http: bool = False) -> Source:
    if "-c" in args.options:
        return Source("<-c>", "", inline=args.options["-c"])
    script = args.script or ""
    if script == "-":
        return source_from_stdin()
    scheme, sep, _ = script.partition("://")
    if sep and scheme.isalpha():
        return source_from_url(script, allow_http)
    return Source(script, script)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return an exit code (when a script runs, we exec and never return)."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        sys.stdout.flush()
        sys.stderr.write(f"{e}\n" if e.path else f"conda-execute: error: {e}\n")
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


def console_main() -> int:
    """The entry point of the console script and the zipapp."""
    return main()


def _main(argv: List[str]) -> int:
    args = parse_args(argv)
    opts = args.options
    if "--help" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "--version" in opts:
        sys.stdout.write(f"conda-execute {__version__}\n")
        return 0
    if any(op in opts for op in AUTHORING):
        return author(args)
    quiet = "--quiet" in opts
    cfg = _config(opts)
    if "--list" in opts or "--gc" in opts:
        return _manage(cfg, args)
    tool = check_ad_hoc(args)
    if "--bundle" in opts:
        return bundle(cfg, args)
    if "--unbundle" in opts:
        return unbundle(args)
    if args.script is None and "-c" not in opts and not tool:
        raise UsageError("no script given (see --help)")
    for flag, other, refused_with, message in RUN_FLAG_RULES:
        if flag in opts and (other in opts) == refused_with:
            raise UsageError(message)
    if "--platform" in opts:
        check_platforms(args.lists["--platform"])
    source = tool_source(args) if tool else make_source(args, cfg.allow_http)
    spec, is_file = _run_spec(args, cfg, source, tool, quiet)
    script_path = os.path.abspath(source.path) if is_file else source.label
    check_relaunch(script_path, spec.label)
    env = env_for(spec, cfg)
    if spec.entrypoint and source.inline:
        raise UsageError("a conda-script block needs a script file (its entrypoint runs "
                         "${SCRIPT}), not -c", source.label, spec.line)
    argv_ = tool_argv(spec, args) if tool else script_argv(spec, source, args.args)
    if spec.entrypoint:  # the command exec'd last, as --dry-run and --verbose show it
        argv_ = shown_command(spec.entrypoint.commands[-1], entry_variables(env, source))
        argv_ += args.args
    return _run(cfg, args, source, spec, env, argv_, script_path)


def _run(cfg: Config, args: Args, source: Source, spec: Spec, env: Env, argv_: List[str],
         script_path: str) -> int:
    """The run once its spec is known: check, create once, record, then exec (or --dry-run,
    --lock, --prefix)."""
    opts, quiet, verbose = args.options, "--quiet" in args.options, "--verbose" in args.options
    force = "--force-env" in opts or "--upgrade" in opts
    if "--dry-run" in opts or force or not is_complete(env):  # a warm run's specs were checked
        check_specs(spec, source, args.lists)  # when its env was made: its name carries them
    if "--dry-run" in opts:
        return _print_dry_run(spec, env, argv_, source, args.args)
    if spec.lock and not (cfg.conda or cfg.manager):  # none here: a bundle's own, if any
        cfg = cfg._replace(manager=bundled_micromamba(spec.lock.path, cfg.platform))
    if (cfg.conda or not (cfg.manager or cfg.bootstrap)) and (force or not is_complete(env)):
        manager_exe(cfg)  # no (usable) package manager: fail (exit 69) before creating anything
    d = open_env_dir(cfg)
    assert d is not None
    fd = ensure_env(d, env, spec, cfg, force=force, quiet=quiet, verbose=verbose)
    record_use(d, env, script_path)
    if "--lock" in opts:
        platforms = list(dict.fromkeys(args.lists.get("--platform", [])))  # checked by _main
        write_lock(cfg, env, spec, source.path, platforms, "--embed" in opts)
        return 0
    if "--prefix" in opts:
        sys.stdout.write(env.prefix + "\n")
        return 0
    maybe_collect_in_background(d, cfg.unused_hours, (fd,))
    if verbose:
        for note in spec.notes:
            _say(note)
        _say(f"environment {env.name} at {env.prefix}")
        _say("running: " + " ".join(argv_))
    if spec.entrypoint:
        return run_entrypoint(env, spec, source, args.args, fd, script_path)
    if os.name == "nt":
        return run_windows(cfg, env, argv_)
    exec_in_env(env, spec, argv_, fd, script_path)
    return 0  # not reached


# Flags of a run that need another (False: refused without it) or refuse one (True).
RUN_FLAG_RULES = (
    ("--embed", "--lock", False, "--embed goes with --lock"),
    ("--platform", "--lock", False, "--platform goes with --lock or --bundle"),
    ("--output", "--bundle", False, "--output goes with --bundle"),
    ("--older-than", "--gc", False, "--older-than goes with --gc"),
    ("--upgrade", "--lock", False, "--upgrade goes with --lock"),
    ("--upgrade", "--locked", True,
     "--locked does not go with --lock --upgrade (which rewrites the lock)"),
)


def _config(opts: Dict[str, str]) -> Config:
    """The configuration, with the command line's options over the environment and condarc."""
    if "--bootstrap" in opts and "--no-bootstrap" in opts:
        raise UsageError("use --bootstrap or --no-bootstrap, not both")
    bootstrap = True if "--bootstrap" in opts else False if "--no-bootstrap" in opts else None
    return load_config(opts.get("--env-dir", ""), opts.get("--conda", ""),
                       "--allow-shared-env-dir" in opts, bootstrap, "--allow-http" in opts)


def _run_spec(args: Args, cfg: Config, source: Source, tool: bool, quiet: bool
              ) -> Tuple[Spec, bool]:
    """The spec a run uses (its block, the lock beside the script, --with) and whether the
    source is a script file (the only kind a lock file goes with)."""
    opts = args.options
    spec = tool_spec(args, source) if tool else load_spec(source)
    is_file = not (tool or source.inline or source.fd >= 0)
    if "--embed" in opts and os.path.lexists(source.path + LOCK_SUFFIX):
        raise UsageError(f"--embed: there is a lock file {source.path + LOCK_SUFFIX}; remove "
                         "it first (a script keeps its lock in one place)", source.label)
    if is_file and not ("--lock" in opts and "--upgrade" in opts):
        spec = apply_lock(spec, source.path, "--locked" in opts, cfg.platform) \
            if not args.lists.get("--with") else _skip_lock(spec, source.path, quiet)
    elif "--locked" in opts or ("--lock" in opts and not is_file):
        raise UsageError("lock files need a script file (not -c, - or a URL)", source.label)
    return with_specs(spec, args.lists.get("--with", [])), is_file


def _print_dry_run(spec: Spec, env: Env, argv: List[str], source: Source, args: List[str]
                   ) -> int:
    """The JSON of --dry-run; "entrypoint": a conda-script's commands as they would run (each
    $(...) as written, the arguments after the last), else null."""
    import json

    entry = None
    if spec.entrypoint:
        variables = entry_variables(env, source)
        entry = [shown_command(words, variables) for words in spec.entrypoint.commands]
        entry[-1] += args
    json.dump({"env": list(spec.env), "channels": list(spec.channels),
               "run_with": list(spec.run_with), "name": env.name, "prefix": env.prefix,
               "command": argv, "pip": list(spec.pip),
               "lock": spec.lock.path if spec.lock else None, "entrypoint": entry,
               "format": spec.form, "notes": list(spec.notes)}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _manage(cfg: Config, args: Args) -> int:
    """--list [--json] and --gc [--older-than HOURS] [--dry-run]."""
    import time

    opts = args.options
    if args.script is not None or "-c" in opts:
        raise UsageError("--list and --gc take no script")
    if "--list" in opts and "--gc" in opts:
        raise UsageError("use --list or --gc, not both")
    for flag in ("--upgrade", "--locked", "--force-env", "--prefix", "--lock") + AD_HOC + (
            ("--older-than", "--dry-run") if "--list" in opts else ("--json",)):
        if flag in opts:
            raise UsageError(f"{flag} does not go with {'--list' if '--list' in opts else '--gc'}")
    legacy = env_dir_itself(cfg)
    if "--list" in opts:
        infos = [with_size(info, d) for d in platform_dirs(cfg) + ([legacy] if legacy else [])
                 for info in scan_envs(d)]
        sys.stdout.write(list_json(infos) if "--json" in opts else format_list(infos, time.time()))
        return 0
    hours = _number(opts["--older-than"], "--older-than", "hours") if "--older-than" in opts \
        else cfg.unused_hours
    d = open_env_dir(cfg, create=False)  # GC: this platform's envs (CONDA_SUBDIR: another's)
    for each in [x for x in (d, legacy) if x]:  # and those of the earlier layout (ENV_DIR/NAME)
        try:
            collect_garbage(each, hours, dry_run="--dry-run" in opts, out=sys.stdout)
        except OSError as e:  # a read-only file system, no write permission, ...
            raise UsageError(f"cannot collect garbage in the env dir: {e.strerror}",
                             each.path, code=EXIT_ENV_DIR) from None
    return 0


###############################################################################
# `conda execute`: a conda plugin ##############################################
###############################################################################
# conda < 26.3 ran any `conda-NAME` executable on PATH as `conda NAME`; the console script
# `conda-execute` is that. conda 26.3 removed the lookup (conda/conda#15791): subcommands now
# come only from plugins. pyproject.toml registers this module in the `conda` entry-point group;
# conda's plugin manager (conda/plugins/manager.py, `load_entrypoints`) imports it and pluggy
# registers every function carrying a `conda_impl` dict, which is exactly what
# `@conda.plugins.hookimpl` (pluggy.HookimplMarker("conda").__call__) sets. Setting it by hand
# keeps this module free of conda imports: conda is imported only inside the hook, in conda.

def conda_subcommands() -> Iterator[object]:
    """The `conda_subcommands` hook: `conda execute ARGS...` runs `conda-execute ARGS...`."""
    import importlib

    types = importlib.import_module("conda.plugins.types")
    yield types.CondaSubcommand(  # type: ignore[attr-defined]
        name="execute", action=_conda_execute,
        summary="Run a script in the environment its '# conda execute' block describes.")


conda_subcommands.conda_impl = {  # type: ignore[attr-defined]
    "wrapper": False, "hookwrapper": False, "optionalhook": False, "tryfirst": False,
    "trylast": False, "specname": None}


def _conda_execute(args: Iterable[str]) -> int:
    """The action: conda passes the words after `execute` (no configure_parser: unparsed)."""
    return main(list(args))


if __name__ == "__main__":
    sys.exit(main())
