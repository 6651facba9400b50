"""A PostgreSQL cluster of `gouache up --backend postgres`, and where PostgreSQL is installed.

The cluster lives in `<state>/postgres/data` (initdb on the first run), listens on
127.0.0.1 only (no Unix socket) and holds one database, `gouache`, which the services
share, each with its own Alembic version table. Connections need a password (SCRAM),
generated once and kept in `<state>/secrets.json`: other users of the machine can reach
127.0.0.1, and trust would hand each of them the superuser. PostgreSQL refuses to run as
root; under root the server runs as the `postgres` account (or `nobody`). The test
fixtures (`tests/fixtures/postgres.py`) find the binaries with the same functions.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POSTGRES_LIB = Path("/usr/lib/postgresql")
RUN_AS_CANDIDATES = ("postgres", "nobody")
SUPERUSER = "gouache"
DATABASE = "gouache"
HOST = "127.0.0.1"
INSTALL_HINT = "run `bash scripts/ensure-postgres.sh` (Debian's postgresql package)"
TOOL_TIMEOUT_S = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here; the message says what to install or change."""


def find_postgres_bin(lib: Path = POSTGRES_LIB) -> Path | None:
    """The folder holding initdb and postgres: the newest `<lib>/N/bin`, else from PATH."""
    versions = [
        path
        for path in lib.glob("*/bin")
        if path.parent.name.isdigit() and (path / "initdb").exists()
    ]
    if versions:
        return max(versions, key=lambda path: int(path.parent.name))
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass(frozen=True)
class Account:
    """The unprivileged account PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        """subprocess options that drop to this account in the child before exec."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def unprivileged_account() -> Account | None:
    """None unless we are root; then the first account of RUN_AS_CANDIDATES that exists.

    Raises PostgresUnavailable when root has none of them to run PostgreSQL as."""
    if os.geteuid() != 0:
        return None
    for name in RUN_AS_CANDIDATES:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(name, entry.pw_uid, entry.pw_gid)
    raise PostgresUnavailable(
        "running as root and no 'postgres' or 'nobody' account to run PostgreSQL as "
        "(PostgreSQL refuses root)"
    )


class LocalPostgres:
    """One cluster in `root/data`: initialise it, the server's command, readiness, database."""

    def __init__(
        self, root: Path, port: int, password: str, bin_dir: Path, account: Account | None
    ) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.password = password
        self.bin_dir = bin_dir
        self.account = account

    @classmethod
    def locate(cls, root: Path, port: int, password: str) -> LocalPostgres:
        """Finds the binaries and the account to run them as; PostgresUnavailable if none."""
        bin_dir = find_postgres_bin()
        if bin_dir is None or not (bin_dir / "postgres").exists():
            raise PostgresUnavailable(
                f"PostgreSQL is not installed (no initdb and postgres in {POSTGRES_LIB}/N/bin "
                f"or on PATH): {INSTALL_HINT}"
            )
        return cls(root, port, password, bin_dir, unprivileged_account())

    @property
    def address(self) -> str:
        """Where the database is, without the password (shown in gouache up's list)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    def url(self) -> str:
        """The services' GOUACHE_<SVC>_DATABASE_URL (asyncpg driver, password included)."""
        return f"postgresql+asyncpg://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{DATABASE}"

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def initialize(self) -> None:
        """initdb on the first run (a superuser with the password, SCRAM on every line)."""
        if self.initialized:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if self.account is not None:
            os.chown(self.root, self.account.uid, self.account.gid)
            self._check_reachable()
        password_file = self.root / "initdb-password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(self.password + "\n")
        if self.account is not None:
            os.chown(password_file, self.account.uid, self.account.gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            )
        finally:
            password_file.unlink(missing_ok=True)

    def argv(self) -> list[str]:
        """The server in the foreground, so the mesh supervises the postmaster itself."""
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "unix_socket_directories=",
        ]

    def popen_options(self) -> dict[str, Any]:
        """Where and as whom the server runs (the unprivileged account under root)."""
        options: dict[str, Any] = {"cwd": self.root}
        if self.account is not None:
            options.update(self.account.popen_options())
        return options

    def running_pid(self) -> int | None:
        """The pid in postmaster.pid if that process still runs (an earlier gouache up's)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def ready(self) -> bool:
        """The server accepts connections (pg_isready: no login needed)."""
        done = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-t", "1"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    def ensure_database(self) -> None:
        """Creates the `gouache` database unless it exists (the first run)."""
        exists = self._client(
            "psql",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        )
        if exists.strip() != "1":
            self._client("createdb", DATABASE)

    def _client(self, tool: str, *args: str) -> str:
        env = {
            **os.environ,
            "PGPASSWORD": self.password,
            "PGCONNECT_TIMEOUT": "5",
            "PGHOST": HOST,
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
        }
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            said = done.stderr.strip()
            if "password authentication failed" in said:
                raise PostgresUnavailable(
                    f"PostgreSQL in {self.data} refused the password in secrets.json: the "
                    "cluster was initialised with another one (was secrets.json replaced?); "
                    f"restore that file or remove {self.root} to start with an empty database"
                )
            raise RuntimeError(f"{tool} failed ({done.returncode}): {said}")
        return done.stdout

    def _run(self, tool: str, *args: str) -> None:
        options: dict[str, Any] = {"cwd": self.root}
        if self.account is not None:
            options.update(self.account.popen_options())
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
            **options,
        )
        if done.returncode != 0:
            who = f" as '{self.account.name}'" if self.account is not None else ""
            raise RuntimeError(
                f"{tool} failed{who} ({done.returncode}): {done.stderr.strip() or done.stdout}"
            )

    def _check_reachable(self) -> None:
        """Under root the server's account must reach its directory through every parent."""
        assert self.account is not None
        done = subprocess.run(
            ["test", "-w", str(self.root)],
            check=False,
            timeout=10,
            **self.account.popen_options(),
        )
        if done.returncode != 0:
            name = self.account.name
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root, so it runs as '{name}', which cannot reach "
                f"{self.root}: allow '{name}' through every parent directory (chmod o+x) or "
                "choose a --state-dir it can reach"
            )
