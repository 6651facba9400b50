"""The CLI's console: progress, ticks and errors go to stderr, results (JSON) to stdout."""

from rich.console import Console

console = Console(stderr=True)
