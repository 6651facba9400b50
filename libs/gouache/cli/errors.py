"""One line on stderr and a non-zero exit status for whatever stops a command that calls the
API: the API's own answer, an unreachable edge, a job that did not succeed, bad local input.
Never a traceback: the user can act on the line, and nothing else is printed."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import httpx
from rich.console import Console
from rich.markup import escape

from gouache.client import ApiError
from gouache.imaging.errors import ImageRejected
from gouache.runtime.errors import GouacheError

# What the shell reports for a command ended by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


def run_reporting_errors(
    command: Callable[[argparse.Namespace], int], args: argparse.Namespace, console: Console
) -> int:
    """command(args), with every failure it meets said in one `error: ...` line (exit 1)."""
    try:
        return command(args)
    except KeyboardInterrupt:
        console.print("interrupted", highlight=False)
        return INTERRUPTED
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        message = exc.code
    except Exception as exc:
        described = describe(exc)
        if described is None:
            raise
        message = described
    console.print(f"[red]error:[/red] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    return 1


def describe(exc: BaseException) -> str | None:
    """What went wrong, for a person, or None for an error no one expected (a bug, which
    keeps its traceback)."""
    if isinstance(exc, ApiError):
        return str(exc)  # "HTTP 415: content is not an image we can read: ..."
    if isinstance(exc, httpx.ConnectError):
        return (
            f"cannot reach the gouache API at {_origin(exc)} ({_reason(exc)}); is `gouache up` "
            "running there? (--url or GOUACHE_URL names another)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"the gouache API at {_origin(exc)} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"the request to the gouache API failed: {exc or type(exc).__name__}"
    if isinstance(exc, GouacheError):
        return exc.message
    if isinstance(exc, ImageRejected):  # a local image checked before it is uploaded
        return exc.message
    if isinstance(exc, TimeoutError | OSError):
        return str(exc) or type(exc).__name__
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


def _origin(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # raised before a request existed
        return "the given URL"
    return f"{url.scheme}://{url.netloc.decode()}"


def _reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return text or "cannot connect"
