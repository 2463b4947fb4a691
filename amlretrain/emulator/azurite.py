"""Start and stop Azurite, Microsoft's blob storage emulator, for the local emulator.

The Makefile installs Azurite into the repository (``.tools/node_modules/.bin/``);
:func:`find_azurite` locates it and :class:`Azurite` runs it on a loopback port in its
own process group, waits until a real azure-storage-blob call succeeds, and on
:meth:`Azurite.stop` (or interpreter exit) leaves no process behind::

    with Azurite() as azurite:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)

Errors::

    RuntimeError
    └── AzuriteError            Azurite did not start (the message ends with its output)
        └── AzuriteNotFound     the azurite-blob executable is not installed
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "WELL_KNOWN_ACCOUNT",
    "WELL_KNOWN_KEY",
    "Azurite",
    "AzuriteError",
    "AzuriteNotFound",
    "find_azurite",
]

log = logging.getLogger(__name__)

WELL_KNOWN_ACCOUNT = "devstoreaccount1"
# Azurite's published development key: public, but still kept out of reprs and logs.
WELL_KNOWN_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
ENV_VAR = "AMLRETRAIN_AZURITE"
EXECUTABLE = "azurite-blob"
INSTALL_HINT = (
    "install it with `make test` (or `npm install --prefix .tools azurite@3.37.0` in the "
    f"repository root), or point {ENV_VAR} at an azurite-blob executable"
)
_RUNNING: set[Azurite] = set()  # stopped by the atexit handler


class AzuriteError(RuntimeError):
    """Azurite could not be started; the message ends with the tail of its output."""


class AzuriteNotFound(AzuriteError):
    """The ``azurite-blob`` executable was not found; the message says how to install it."""


def find_azurite() -> str:
    """The path of the ``azurite-blob`` executable.

    Looks at, in order: the ``AMLRETRAIN_AZURITE`` environment variable; a
    ``.tools/node_modules/.bin/azurite-blob`` in this file's directory or any parent
    (the Makefile's install); ``azurite-blob`` on ``PATH``.

    Raises:
        AzuriteNotFound: none of these exists (or the variable names a missing file).
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        if os.access(configured, os.X_OK) and Path(configured).is_file():
            return configured
        raise AzuriteNotFound(f"{ENV_VAR}={configured!r} is not an executable file; {INSTALL_HINT}")
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        candidate = folder / ".tools" / "node_modules" / ".bin" / EXECUTABLE
        if candidate.is_file():
            return str(candidate)
    on_path = shutil.which(EXECUTABLE)
    if on_path:
        return on_path
    raise AzuriteNotFound(f"{EXECUTABLE} not found; {INSTALL_HINT}")


class Azurite:
    """One Azurite blob service process on a loopback port.

    Args:
        host: the address to listen on.
        port: the port; 0 picks a free one.
        workdir: Azurite's data folder; ``None`` = a temporary folder removed on stop.

    Attributes:
        account_name / account_key: the well-known development account (the key is
            never shown in ``repr``).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, workdir: str | None = None):
        self.host = host
        self.account_name = WELL_KNOWN_ACCOUNT
        self.account_key = WELL_KNOWN_KEY
        self._requested_port = port
        self._port = port
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._output: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"Azurite(blob_endpoint={self.blob_endpoint!r}, {state})"

    @property
    def port(self) -> int:
        """The port Azurite listens on (the chosen one once started with port 0)."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The process id while started, else None."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._process is not None and self._process.poll() is None

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint, e.g. ``http://127.0.0.1:10000/devstoreaccount1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """An azure-storage-blob connection string for the account (holds the key)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def start(self, timeout: float = 30.0) -> Azurite:
        """Launch Azurite and wait until it serves blob requests; returns ``self``.

        Raises:
            AzuriteNotFound: Azurite is not installed.
            AzuriteError: it exited, or did not answer within ``timeout`` seconds.
        """
        if self.running:
            return self
        executable = find_azurite()
        deadline = time.monotonic() + timeout
        for attempt in range(3):  # a free port picked here can be taken before Azurite binds
            self._launch(executable)
            try:
                self._wait_ready(deadline)
            except AzuriteError as err:
                output = self._tail()
                self.stop()
                if self._requested_port == 0 and "EADDRINUSE" in output and attempt < 2:
                    log.debug("port taken before Azurite bound it; retrying")
                    continue
                raise AzuriteError(f"{err}; azurite-blob output:\n{output}") from None
            break
        _RUNNING.add(self)
        log.info("Azurite started at %s (pid %s)", self.blob_endpoint, self.pid)
        return self

    def stop(self) -> None:
        """Stop Azurite and its process group, and remove the temporary folder. Idempotent."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is not None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("Azurite (pid %s) ignored SIGTERM; killing it", process.pid)
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
            log.info("Azurite (pid %s) stopped", process.pid)
        if self._output is not None:
            self._output.close()
            self._output = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._requested_port == 0:
            self._port = 0

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, executable: str) -> None:
        self._tmp = tempfile.mkdtemp(prefix="amlretrain-azurite-")
        location = self._workdir or os.path.join(self._tmp, "data")
        os.makedirs(location, exist_ok=True)
        if self._requested_port == 0:
            self._port = _free_port(self.host)
        self._output = open(os.path.join(self._tmp, "azurite.log"), "w+b")  # noqa: SIM115
        command = [executable, "--blobHost", self.host, "--blobPort", str(self._port)]
        command += ["--location", location, "--silent", "--skipApiVersionCheck"]
        command += ["--disableTelemetry"]
        log.debug("starting %s", " ".join(command))
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches every child
            preexec_fn=_die_with_parent,
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise AzuriteError(f"azurite-blob exited with code {code} while starting")
            if self._accepts_connections() and self._serves_blobs():
                return
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite did not answer on {self.blob_endpoint} in time")
            time.sleep(0.05)

    def _accepts_connections(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self._port), 1):
            return True
        return False

    def _serves_blobs(self) -> bool:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(
            self.connection_string, retry_total=0, connection_timeout=2, read_timeout=5
        )
        try:
            with client:
                list(client.list_containers(results_per_page=1))
        except AzureError as err:
            log.debug("Azurite not ready yet: %s", type(err).__name__)
            return False
        return True

    def _tail(self, lines: int = 20) -> str:
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        text = self._output.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, sig)  # the leader's pid is the group id (new session)
        else:  # pragma: no cover - Windows has no process groups of this kind
            process.kill()


@atexit.register
def _stop_all() -> None:
    for azurite in list(_RUNNING):
        azurite.stop()


def _die_with_parent() -> None:
    """In the child: be killed when the process that started Azurite dies.

    atexit stops Azurite on a normal exit; this covers the others (SIGKILL, a crashed
    notebook kernel), on Linux. Elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
