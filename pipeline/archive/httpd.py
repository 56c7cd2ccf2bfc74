"""Loopback server processes of the embedded archive: the COG range server and the process plumbing.

The COG server is Starlette's ``StaticFiles`` (HTTP Range -> 206, multi-range, HEAD, ETag) under uvicorn, with
an optional delay before every response to mimic a remote archive. It and the STAC API run in child processes
started with ``python -m pipeline.archive.httpd cog|stac`` (``guard`` wraps servers, like PostgreSQL, that cannot
watch their parent themselves). The parent binds the listening socket on
127.0.0.1 itself and hands the file descriptor to the child, so "port 0" is race-free and the port is known
before the child has even started. Every child gets its own process group (stopped as a whole) and exits on
its own when its parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ArchiveError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------------------------------
# Parent side: sockets, child processes, deadlines.


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (port 0: any free port), inheritable by a child process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as e:
        sock.close()
        raise ArchiveError(
            f"cannot listen on {LOOPBACK}:{port} ({e.strerror}); set archive.http_port to a free port or 0"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A port that was free a moment ago (for servers that must bind themselves, like PostgreSQL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def one_line_tail(path: Path, max_chars: int = 900) -> str:
    """The end of a log file on one line (lines joined by ' | '), for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-12:])
    if len(tail) > max_chars:
        tail = "..." + tail[-max_chars:]
    return tail or "(empty log)"


TIMEOUT_FIX = "the machine may be overloaded: raise deadline_s (serve_archive) and retry"


class Deadline:
    """One overall startup deadline shared by every wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


class Child:
    """A server child process in its own process group, with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        with open(log_path, "ab") as logf:
            try:
                self.proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    pass_fds=tuple(pass_fds),
                    start_new_session=True,
                    user=user,
                    group=user,
                    extra_groups=[] if user else None,
                )
            except OSError as e:
                raise ArchiveError(f"cannot start the {name} ({argv[0]}: {e.strerror}); run make system-deps") from None
        self.pgid = self.proc.pid  # a session leader's pid is its process group id
        self.stopped = False
        log.debug("started %s (pid %d): %s", name, self.proc.pid, " ".join(argv))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return one_line_tail(self.log_path)

    def fail(self, what: str, fix: str) -> ArchiveError:
        return ArchiveError(f"{self.name} {what}; {fix}; log {self.log_path.name}: {self.tail()}")

    def signal_stop(self) -> None:
        """Send the stop signal to the whole process group (returns at once)."""
        if self.stopped or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, self.stop_signal)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Signal the whole process group, wait, then kill whatever is left. Safe to call twice."""
        if self.stopped:
            return
        self.signal_stop()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %g s; killing it", self.name, timeout_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5.0)
        # The leader is gone; its group may still hold children (e.g. PostgreSQL backends).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.stopped = True
        log.debug("stopped %s (pid %d, rc %s)", self.name, self.proc.pid, self.proc.returncode)


def stop_all(children: Sequence[Child], timeout_s: float = 10.0) -> None:
    """Stop several children at once: signal all, then wait for each (and kill the stragglers)."""
    for child in children:
        child.signal_stop()
    for child in children:
        child.stop(timeout_s)


def run_step(
    name: str, argv: Sequence[str], log_path: Path, deadline: Deadline, fix: str, **kw: Any
) -> None:
    """Run a command to completion within the deadline; ArchiveError (with its log tail) when it fails."""
    child = Child(name, argv, log_path, **kw)
    try:
        rc = child.proc.wait(deadline.left())
    except subprocess.TimeoutExpired:
        child.stop(1.0)
        raise child.fail(f"did not finish within the {deadline.seconds:g} s startup deadline", TIMEOUT_FIX) from None
    finally:
        child.stop(1.0)
    if rc != 0:
        raise child.fail(f"failed (exit code {rc})", fix)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float, method: str = "GET") -> tuple[int, bytes]:
    """One request straight to a loopback server (never through a proxy)."""
    req = urllib.request.Request(url, method=method)
    try:
        with _NO_PROXY.open(req, timeout=max(timeout, 0.05)) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def wait_http(
    child: Child, url: str, deadline: Deadline, fix: str, ready: Callable[[int, bytes], bool] | None = None
) -> None:
    """Poll ``url`` until ``ready(status, body)`` (default: status 200), the child dies, or the deadline passes."""
    ready = ready or (lambda status, _body: status == 200)
    last = "no answer"
    while True:
        if not child.alive():
            raise child.fail(f"exited (code {child.proc.returncode}) before answering {url}", fix)
        if deadline.expired():
            raise child.fail(f"did not answer {url} within the {deadline.seconds:g} s startup deadline ({last})",
                             TIMEOUT_FIX)
        try:
            status, body = http_get(url, timeout=min(5.0, deadline.left()))
        except (OSError, urllib.error.URLError) as e:
            last = str(getattr(e, "reason", e))
        else:
            if ready(status, body):
                return
            last = f"HTTP {status}: {body[:200]!r}"
        time.sleep(0.05)


def python_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.archive.httpd", *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server child: ours, with this package importable and no stray PG* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_cog_server(root: Path, sock: socket.socket, latency_ms: float, log_path: Path, cwd: Path) -> Child:
    port = sock.getsockname()[1]
    argv = python_argv("cog", "--fd", str(sock.fileno()), "--root", str(root), "--latency-ms", str(latency_ms))
    return Child(f"COG server on {LOOPBACK}:{port}", argv, log_path, env=child_env(), cwd=cwd,
                 pass_fds=[sock.fileno()])


def start_stac_api(sock: socket.socket, pg_env: dict[str, str], log_path: Path, cwd: Path) -> Child:
    port = sock.getsockname()[1]
    env = child_env({
        **pg_env,
        "STAC_FASTAPI_TITLE": "ssl4eo-curate embedded archive",
        "STAC_FASTAPI_DESCRIPTION": "The embedded local archive of ssl4eo-curate (stac-fastapi-pgstac on loopback).",
        "STAC_FASTAPI_VERSION": "1",
        "STAC_FASTAPI_LANDING_ID": "ssl4eo-embedded",
    })
    argv = python_argv("stac", "--fd", str(sock.fileno()))
    return Child(f"STAC API (stac-fastapi-pgstac) on {LOOPBACK}:{port}", argv, log_path, env=env, cwd=cwd,
                 pass_fds=[sock.fileno()])


def json_ok(status: int, body: bytes) -> dict[str, Any] | None:
    if status != 200:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# ---------------------------------------------------------------------------------------------------------------
# Child side: the ASGI apps and the entry point.


class DelayEveryRequest:
    """ASGI wrapper: sleep ``delay_s`` before handling each HTTP request (mimics a remote archive's latency)."""

    def __init__(self, app: Any, delay_s: float) -> None:
        self.app = app
        self.delay_s = delay_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


def cog_app(root: Path, latency_ms: float = 0.0) -> Any:
    """The COG server app: the archive folder as static files (Range, HEAD, ETag), plus the injected delay."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    files = Starlette(routes=[Mount("/", app=StaticFiles(directory=root, check_dir=True))])  # 404s, not 500s
    return DelayEveryRequest(files, latency_ms / 1000.0)


def _exit_with_parent() -> None:
    """Leave when the parent dies (it would otherwise leave this server running forever)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _guard(argv: list[str], user: str | None, sig: int) -> int:
    """Run ``argv`` (as ``user``), pass stop signals on as ``sig``, and stop it when our parent dies.

    PostgreSQL cannot watch its parent itself; without this guard a killed client would leave it running.
    """
    proc = subprocess.Popen(argv, user=user, group=user, extra_groups=[] if user else None)

    def forward(_signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    parent = os.getppid()
    while True:
        try:
            return proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            forward(sig, None)
            try:
                return proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()


def guard_argv(argv: Sequence[str], user: str | None, sig: int) -> list[str]:
    return python_argv("guard", "--signal", str(int(sig)), *(["--user", user] if user else []), "--", *argv)


def _serve(app: Any, fd: int, lifespan: str) -> None:
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.archive.httpd")
    sub = ap.add_subparsers(dest="server", required=True)
    c = sub.add_parser("cog", help="serve an archive folder with range requests")
    c.add_argument("--fd", type=int, required=True)
    c.add_argument("--root", type=Path, required=True)
    c.add_argument("--latency-ms", type=float, default=0.0)
    s = sub.add_parser("stac", help="serve stac-fastapi-pgstac (database from the PG* environment)")
    s.add_argument("--fd", type=int, required=True)
    g = sub.add_parser("guard", help="run a command; stop it when this process's parent dies")
    g.add_argument("--signal", type=int, default=int(signal.SIGTERM))
    g.add_argument("--user", default=None)
    g.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.server == "guard":
        cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        return _guard(cmd, args.user, args.signal)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _exit_with_parent()
    if args.server == "cog":
        _serve(cog_app(args.root, args.latency_ms), args.fd, lifespan="off")
    else:
        from stac_fastapi.pgstac.app import create_app

        _serve(create_app(), args.fd, lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
