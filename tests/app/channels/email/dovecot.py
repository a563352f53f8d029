"""A real IMAP server for the tests: Debian's dovecot under a config of our own in a temporary directory.

Nothing of the system's dovecot is used but the binary: its own base, state and mail directories, one user from a
passwd file, plain authentication on 127.0.0.1 at a free port. Skipped when dovecot is not installed (apt-get
install dovecot-imapd) or when not running as root (dovecot drops privileges to its own users).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
# the process title names the session's user and its current command ("IDLE"): kill_sessions finds it by that
verbose_proctitle = yes
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{root}/mail/%n
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    def restart(self) -> None:
        """Stop the server (every connection drops) and start it again on the same port with the same mail."""
        if self.proc is not None:
            _stop(self.proc)
        self.proc = _start(self.root, self.port)

    def sessions(self, command: str) -> int:
        """How many IMAP sessions of the user are in ``command`` now (e.g. "IDLE"), by their process titles."""
        return len(self._session_pids(command))

    def kill_sessions(self, command: str) -> int:
        """Kill (SIGKILL: no BYE, the socket just closes) the IMAP sessions in ``command``, as a crashed server
        process or a dropped link would; how many were killed."""
        killed = 0
        for pid in self._session_pids(command):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed

    def _ours(self, pid: int) -> bool:
        """Whether ``pid`` is a process of this server: its master leads a process group of its own. Another
        dovecot for the same user (a second test run on the machine) has sessions with the same title."""
        try:
            return self.proc is not None and os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def _session_pids(self, command: str) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # the process ended meanwhile
                continue
            if title.startswith("dovecot/imap ") and f"[{self.user} " in title and f" {command}]" in title \
                    and self._ours(int(entry.name)):
                pids.append(int(entry.name))
        return pids


def unavailable() -> str | None:
    """Why the server cannot be started here, or None."""
    if shutil.which("dovecot") is None:
        return "dovecot is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "dovecot needs root to drop privileges to its users"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(user: str, password: str, *, extra: str = "") -> Iterator[Dovecot]:
    """Start dovecot in the foreground for one user; stop it and remove its directory afterwards. ``extra``:
    more configuration lines (``imap_capability = ...`` makes a server without IDLE)."""
    import pwd

    root = Path(tempfile.mkdtemp(prefix="gongdan-dovecot-"))
    os.chmod(root, 0o755)
    owner = pwd.getpwnam("dovecot")
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    for sub in ("mail", "home"):
        os.chown(root / sub, owner.pw_uid, owner.pw_gid)
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n")
    port = _free_port()
    conf = root / "dovecot.conf"
    conf.write_text(CONFIG.format(root=root, port=port, uid=owner.pw_uid, gid=owner.pw_gid) + extra)
    server = Dovecot(port=port, user=user, password=password, root=root)
    try:
        server.proc = _start(root, port)
        yield server
    finally:
        if server.proc is not None:
            _stop(server.proc)
        shutil.rmtree(root, ignore_errors=True)


def _start(root: Path, port: int) -> subprocess.Popen[bytes]:
    """Run dovecot in the foreground with the config in ``root``; returns once it accepts connections."""
    # a process group of its own: its session processes outlive the master, and _stop ends them with it
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(root / "dovecot.conf")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                _stop(proc)
                raise RuntimeError(f"dovecot did not start: {log}") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the master and every process it started: the sessions say BYE and close, as a server shutting down
    does (left to dovecot alone, they would live on with their connections after the master is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 1  # the sessions have said BYE by then; the log process may linger
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout:
        proc.stdout.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
