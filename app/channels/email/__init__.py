"""The email channel: mailboxes (腾讯企业邮, 阿里邮箱, 网易企业邮, any IMAP/SMTP server) as channel accounts.

Inbound: ``jobs.email_poll`` reads each mailbox over IMAP by UID (UIDVALIDITY and the last UID kept per mailbox in
``MailboxCursor``), stores every new mail as an ``InboundEvent`` and enqueues ``process_inbound_event``; the
processor (``inbound.process``) parses it (``parse``), recognises bounces, threads it (the ticket number in the
subject, then In-Reply-To/References against our own Message-IDs) and hands it to ``app.intake.receive``.
Where the server offers IMAP IDLE, ``idle`` wakes the same read within seconds of new mail (the poll stays as the
safety net). Outbound: ``outbound.EmailAdapter`` sends outbox rows by SMTP with the mailbox's own credentials.

Libraries: imapclient (IMAP, run in a thread), aiosmtplib (SMTP), the standard ``email`` package with
``policy.default`` (MIME, RFC 2047/2231), mail-parser-reply (quoted history and signatures), nh3 (HTML sanitising).
"""
