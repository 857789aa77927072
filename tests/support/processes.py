"""Processes a test starts: started with their output in a log file, waited on until ready, and
stopped (SIGTERM, then SIGKILL) however the test ends. Every failure message ends with the tail of
the process's log, so a server that did not come up says why."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]

Ready = Callable[[], Any] | str | None


class ProcessExited(AssertionError):
    """The process ended while the test was waiting for it."""


class ManagedProcess:
    """One subprocess with its stdout and stderr in ``log_path``.

    With ``process_group`` (the default) it runs in a session of its own and is stopped as a group,
    so the workers a server forks go with it."""

    def __init__(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | str = ROOT,
                 log_path: Path | str | None = None, name: str | None = None, process_group: bool = True):
        self.cmd = [str(part) for part in cmd]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name or Path(self.cmd[0]).name
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.process_group = process_group
        self.popen: subprocess.Popen | None = None
        self._log = None

    # --- life cycle ---

    def start(self) -> ManagedProcess:
        """Start (or start again after ``stop``); output is appended to the same log."""
        assert not self.alive, f"{self.name} is already running"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT, start_new_session=self.process_group)
        return self

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, up to ``timeout`` s to exit, then SIGKILL. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        elif self.process_group:
            self._signal(signal.SIGKILL, quiet=True)  # the leader is gone; workers it left behind are not
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.popen.returncode

    def _signal(self, sig: int, quiet: bool = False) -> None:
        try:
            if self.process_group:
                os.killpg(self.popen.pid, sig)
            else:
                self.popen.send_signal(sig)
        except ProcessLookupError:
            if not quiet:
                raise

    def __enter__(self) -> ManagedProcess:
        return self.start() if self.popen is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- state ---

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        state = "running" if self.alive else f"exited with {self.returncode}"
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"--- {self.name} ({state}), last {lines} lines of {self.log_path} ---\n{text}"

    def assert_alive(self) -> None:
        if not self.alive:
            raise ProcessExited(f"{self.name} exited with code {self.returncode}\n{self.tail()}")

    # --- waiting ---

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match:
        """The first log line matching ``pattern``; fails at once if the process exits first."""
        regex = re.compile(pattern)

        def found():
            for line in self.output().splitlines():
                match = regex.search(line)
                if match:
                    return match
            self.assert_alive()
            return None

        return wait_until(found, timeout, message=f"{self.name}: a line matching {pattern!r}", detail=self.tail)

    def wait_ready(self, ready: Ready, timeout: float = 60, interval: float = 0.1) -> Any:
        """Wait until ``ready`` holds: a URL answers 200 to a GET, or a callable returns something truthy
        (exceptions of ``httpx.HTTPError`` and ``OSError`` count as "not yet"). Fails at once, with the
        log, if the process exits."""
        if ready is None:
            return True
        check = _url_ready(ready) if isinstance(ready, str) else ready

        def probe():
            self.assert_alive()
            return check()

        what = ready if isinstance(ready, str) else getattr(ready, "__name__", "readiness check")
        return wait_until(probe, timeout, interval, message=f"{self.name} ready ({what})", detail=self.tail,
                          ignore=(httpx.HTTPError, OSError))


def _url_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        return httpx.get(url, timeout=2).status_code == 200

    return check


@contextmanager
def start_process(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, ready: Ready = None,
                  log_path: Path | str | None = None, timeout: float = 60, name: str | None = None,
                  cwd: Path | str = ROOT, process_group: bool = True) -> Iterator[ManagedProcess]:
    """Start ``cmd``, wait until ``ready`` (a URL or a callable, see ``ManagedProcess.wait_ready``),
    yield the process, and stop it (terminate, then kill) when the block ends, however it ends."""
    proc = ManagedProcess(cmd, env=env, cwd=cwd, log_path=log_path, name=name, process_group=process_group)
    proc.start()
    try:
        proc.wait_ready(ready, timeout)
        yield proc
    finally:
        proc.stop()
