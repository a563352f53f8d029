"""A real IMAP server for the tests: Debian's dovecot under a config of our own in a temporary directory.

Nothing of the system's dovecot is used but the binary: its own base, state and mail directories, one user from a
passwd file, plain authentication on 127.0.0.1 at a free port. Skipped when dovecot is not installed (apt-get
install dovecot-imapd) or when not running as root (dovecot drops privileges to its own users).
"""

from __future__ import annotations

import os
import shutil
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
def running(user: str, password: str) -> Iterator[Dovecot]:
    """Start dovecot in the foreground for one user; stop it and remove its directory afterwards."""
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
    conf.write_text(CONFIG.format(root=root, port=port, uid=owner.pw_uid, gid=owner.pw_gid))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                    out = proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
                    raise RuntimeError(f"dovecot did not start: {out}{log}") from None
                time.sleep(0.05)
        yield Dovecot(port=port, user=user, password=password, root=root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)
