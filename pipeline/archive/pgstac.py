"""A throwaway PostgreSQL + PostGIS cluster with pgstac, for the embedded archive's STAC API.

``PgCluster`` runs ``initdb`` in a temporary folder and starts ``postgres`` on a free loopback port (unix socket
in the same folder; as the ``postgres`` user when we are root, since PostgreSQL refuses to run as root).
``load`` runs ``pypgstac migrate`` and the pypgstac loader in a child process
(``python -m pipeline.archive.pgstac load``), so a hung step is bounded by the startup deadline and its log
ends up in the error message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.archive.httpd import LOOPBACK, TIMEOUT_FIX, Child, Deadline, child_env, free_port, guard_argv, run_step
from pipeline.errors import ArchiveError

log = logging.getLogger(__name__)

PG_BIN_ENV = "SSL4EO_PG_BIN"
FIX_DEPS = "run make system-deps (Debian packages postgresql-15 and postgresql-15-postgis-3)"
DB_NAME = "postgres"
DB_USER = "postgres"


def find_pg_bin() -> Path:
    """The folder of ``initdb``/``postgres``: $SSL4EO_PG_BIN, else the newest /usr/lib/postgresql/N/bin, else PATH."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    candidates.extend(reversed(versions))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "postgres").is_file():
            return c
    raise ArchiveError(f"PostgreSQL server binaries (initdb, postgres) not found; {FIX_DEPS}, or set {PG_BIN_ENV}")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name)) or (0,)


def check_postgis(bin_dir: Path) -> None:
    """ArchiveError unless the cluster's share folder holds the PostGIS, btree_gist and unaccent extensions."""
    share: Path | None = None
    if (bin_dir / "pg_config").is_file():
        out = subprocess.run([str(bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            share = Path(out.stdout.strip())
    if share is None:
        return  # unknown layout: the migration will say what is missing
    for ext in ("postgis", "btree_gist", "unaccent"):
        if not (share / "extension" / f"{ext}.control").is_file():
            raise ArchiveError(
                f"PostgreSQL extension {ext!r} is missing ({share / 'extension'}/{ext}.control); {FIX_DEPS}"
            )


def preflight() -> Path:
    """The PostgreSQL binaries folder, after checking that the extensions pgstac needs are installed."""
    bin_dir = find_pg_bin()
    check_postgis(bin_dir)
    return bin_dir


class PgCluster:
    """A PostgreSQL cluster in ``workdir`` (data, socket and log), listening on 127.0.0.1 only."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.bin = bin_dir or preflight()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.port = 0
        self.child: Child | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@{LOOPBACK}:{self.port}/{DB_NAME}"

    def client_env(self) -> dict[str, str]:
        """PG* variables for stac-fastapi-pgstac (trust authentication: the password is ignored)."""
        return {"PGUSER": DB_USER, "PGPASSWORD": "unused", "PGHOST": LOOPBACK, "PGPORT": str(self.port),
                "PGDATABASE": DB_NAME}

    def start(self, deadline: Deadline) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user:
            try:
                pw = pwd.getpwnam(self.user)
            except KeyError:
                raise ArchiveError(f"running as root but there is no 'postgres' system user; {FIX_DEPS}") from None
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
        env = {k: v for k, v in child_env().items() if not k.startswith("LC_")}
        env["LANG"] = "C"
        data = self.workdir / "data"
        run_step(
            "initdb", [str(self.bin / "initdb"), "-D", str(data), "-U", DB_USER, "-A", "trust", "-E", "UTF8",
                       "--locale=C", "--no-sync", "--no-instructions"],
            self.workdir / "initdb.log", deadline,
            f"check that {self.workdir} is writable by {self.user or 'this user'}, else {FIX_DEPS}",
            env=env, cwd=self.workdir, user=self.user,
        )
        for attempt in range(3):
            self.port = free_port()
            postgres = [str(self.bin / "postgres"), "-D", str(data), "-k", str(self.workdir), "-h", LOOPBACK,
                        "-p", str(self.port), "-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off", "-c", "max_connections=40", "-c", "shared_buffers=32MB"]
            self.child = Child(
                f"PostgreSQL on {LOOPBACK}:{self.port}",
                guard_argv(postgres, self.user, signal.SIGINT),  # SIGINT: "fast shutdown"
                self.workdir / "postgres.log", env=env, cwd=self.workdir,
                stop_signal=signal.SIGINT,
            )
            try:
                self._wait_ready(deadline)
                return
            except ArchiveError:
                bind_race = "could not bind" in self.child.tail() or "already in use" in self.child.tail()
                self.child.stop()
                if not bind_race or attempt == 2:
                    raise

    def _wait_ready(self, deadline: Deadline) -> None:
        import psycopg

        assert self.child is not None
        last = ""
        while True:
            if not self.child.alive():
                raise self.child.fail(f"exited (code {self.child.proc.returncode}) while starting", FIX_DEPS)
            if deadline.expired():
                raise self.child.fail(
                    f"did not accept connections within the {deadline.seconds:g} s startup deadline ({last})",
                    TIMEOUT_FIX,
                )
            try:
                with psycopg.connect(self.dsn, connect_timeout=max(1, int(deadline.left()))) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as e:
                last = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            time.sleep(0.05)

    def load(self, collections: list[Path], items: Path, deadline: Deadline) -> None:
        """``pypgstac migrate`` and load the collections and items (hydrated ndjson) in a child process."""
        argv = [sys.executable, "-m", "pipeline.archive.pgstac", "load", "--dsn", self.dsn, "--items", str(items),
                *[str(c) for c in collections]]
        run_step("pypgstac (migrate + load)", argv, self.workdir.parent / "pypgstac.log", deadline,
                 f"check the archive's STAC JSON (rebuild it with 'ssl4eo archive build --force'), else {FIX_DEPS}",
                 env=child_env(), cwd=self.workdir.parent)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def numeric_queryables(items: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """JSON-schema definitions of the item properties that are numbers in every item that has them.

    pgstac reads a property it has no queryable for as text: filters still compare numbers numerically, but
    ``sortby`` on ``eo:cloud_cover`` would order 10 < 3 < 49.5. Registering these (as Planetary Computer does)
    makes pgstac read them with ``to_int``/``to_float`` and lists them under ``/queryables``.
    """
    kinds: dict[str, set[type]] = {}
    for item in items:
        for name, value in item.get("properties", {}).items():
            if value is not None:
                kinds.setdefault(name, set()).add(bool if isinstance(value, bool) else type(value))
    return {
        name: {"title": name, "type": "integer" if ts == {int} else "number"}
        for name, ts in sorted(kinds.items())
        if ts <= {int, float}
    }


def _load_main(dsn: str, collections: list[Path], items: Path) -> None:
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods
    from pypgstac.migrate import Migrate

    t0 = time.perf_counter()
    with PgstacDB(dsn=dsn) as db:
        version = Migrate(db).run_migration()
        t1 = time.perf_counter()
        loader = Loader(db=db)
        loader.load_collections(iter([json.loads(p.read_text()) for p in collections]), Methods.insert)
        with items.open() as f:
            item_dicts = [json.loads(line) for line in f if line.strip()]
        loader.load_items(iter(item_dicts), Methods.insert)
        queryables = numeric_queryables(item_dicts)
        if queryables:
            db.connect().execute(
                "SELECT upsert_queryables(%s::jsonb, NULL, NULL, false)",
                [json.dumps({"type": "object", "properties": queryables})],
            )
    print(f"pgstac {version}: migrate {t1 - t0:.2f} s, load {time.perf_counter() - t1:.2f} s, "
          f"numeric queryables: {', '.join(queryables) or 'none'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.archive.pgstac")
    sub = ap.add_subparsers(dest="action", required=True)
    ld = sub.add_parser("load", help="migrate a database to pgstac and load collections + items")
    ld.add_argument("--dsn", required=True)
    ld.add_argument("--items", type=Path, required=True, help="hydrated STAC items, one JSON per line")
    ld.add_argument("collections", type=Path, nargs="+", help="STAC Collection JSON files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _load_main(args.dsn, args.collections, args.items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
