"""Reading a mailbox over IMAP (imapclient, run in a worker thread: it is a blocking client).

UID-based: within one UIDVALIDITY, UIDs only grow, so "everything above the last UID stored" is exactly the new
mail; nothing is read twice and nothing is missed. When UIDVALIDITY changes (the folder was rebuilt), every UID is
new: the folder is read again from a date and the Message-ID dedupe key drops what was stored before. Bodies are
fetched with BODY.PEEK[] so the mailbox's \\Seen flags stay as people left them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import date

from imapclient import IMAPClient

from app.channels.email.accounts import MailAccount

#: mail larger than this is stored as its headers only (the original stays in the mailbox)
MAX_BYTES = 25 * 1024 * 1024
BATCH = 50
TIMEOUT = 30.0


@dataclass
class Fetched:
    uidvalidity: int
    #: the UID the next mail will get (a new mailbox with no recent mail starts reading there)
    uidnext: int
    #: (uid, raw bytes, truncated) in UID order
    mails: list[tuple[int, bytes, bool]] = field(default_factory=list)
    #: more new mail is waiting beyond this batch
    more: bool = False


def connect(account: MailAccount) -> IMAPClient:
    """A logged-in client of the mailbox's IMAP server (blocking)."""
    context = ssl.create_default_context()
    client = IMAPClient(account.imap_host, port=account.imap_port, ssl=account.imap_security == "ssl",
                        ssl_context=context, timeout=TIMEOUT)
    if account.imap_security == "starttls":
        client.starttls(context)
    client.login(account.username, account.password)
    return client


#: the former private name (kept for callers written before it was public)
_connect = connect


def fetch_new(account: MailAccount, *, uidvalidity: int | None, last_uid: int, since: date,
              batch: int = BATCH) -> Fetched:
    """The mail above ``last_uid`` (or, for a new or changed UIDVALIDITY, the mail since ``since``), at most
    ``batch`` of them, oldest first. Blocking: call it in a thread."""
    client = connect(account)
    try:
        info = client.select_folder(account.folder, readonly=True)
        current = int(info[b"UIDVALIDITY"])
        if uidvalidity is None or current != uidvalidity:
            uids = sorted(int(u) for u in client.search(["SINCE", since]))
        else:
            # "N:*" always names the newest message, even when its UID is below N: keep only the new ones
            uids = sorted(int(u) for u in client.search(["UID", f"{last_uid + 1}:*"]) if int(u) > last_uid)
        result = Fetched(uidvalidity=current, uidnext=int(info.get(b"UIDNEXT") or 0), more=len(uids) > batch)
        uids = uids[:batch]
        if not uids:
            return result
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        small = [u for u in uids if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= MAX_BYTES]
        large = [u for u in uids if u not in small]
        bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        headers = client.fetch(large, ["BODY.PEEK[HEADER]"]) if large else {}
        for uid in uids:
            if uid in bodies:
                result.mails.append((uid, bytes(bodies[uid].get(b"BODY[]") or b""), False))
            elif uid in headers:
                result.mails.append((uid, bytes(headers[uid].get(b"BODY[HEADER]") or b""), True))
        return result
    finally:
        try:
            client.logout()
        except Exception:  # the connection is gone already; nothing to close
            pass
