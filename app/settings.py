"""Every setting, read from the environment (and an optional `.env` file).

The defaults are the embedded mode: SQLite under `data/`, jobs in-process, Tencent's real API hosts (``make run``
points them at the simulator). A missing or malformed value raises ``ConfigError`` naming the variable, and the
CLI turns that into one clear line before exiting.

Precedence: the process environment, then `.env`, then (development only) ``DATA_DIR/dev.env``: the settings
``gongdan run`` made up for its simulator (URLs, the demo corp and its secrets), so that other ``gongdan`` commands
started in the same folder while it runs talk to the same simulator. Production and tests never read that file.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.config import Config, Environ
from starlette.datastructures import Secret

from app.errors import ConfigError

_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
ENVIRONMENTS = ("development", "test", "production")
#: the file under DATA_DIR where `gongdan run` leaves its embedded settings for the other commands (development)
DEV_ENV_NAME = "dev.env"
_DEV_ENV_VALUE = re.compile(r"^[^\s'\"#\\]*$")


@dataclass(frozen=True)
class WeChatMPSettings:
    """The env-configured default Official Account (more are added with `gongdan channel add`)."""

    app_id: str = ""
    app_secret: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))
    aes_key: Secret = field(default_factory=lambda: Secret(""))
    previous_aes_key: Secret = field(default_factory=lambda: Secret(""))
    #: template used for updates outside the 48-hour customer-service window
    template_id: str = ""
    #: also accept plain-mode callbacks although an AES key is set (only while switching modes; forgeable)
    accept_plain: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.app_id and str(self.token))


@dataclass(frozen=True)
class WeComSettings:
    """The WeCom corp: the self-built app (messages, OAuth, callbacks) and the secrets of contacts and customers."""

    corp_id: str = ""
    agent_id: str = ""
    agent_secret: Secret = field(default_factory=lambda: Secret(""))
    #: callback URL token and EncodingAESKey of the self-built app (/callbacks/wecom/app)
    token: Secret = field(default_factory=lambda: Secret(""))
    aes_key: Secret = field(default_factory=lambda: Secret(""))
    #: 通讯录同步 secret and its callback (/callbacks/wecom/contacts)
    contact_secret: Secret = field(default_factory=lambda: Secret(""))
    contact_token: Secret = field(default_factory=lambda: Secret(""))
    contact_aes_key: Secret = field(default_factory=lambda: Secret(""))
    #: 客户联系 secret; empty means the self-built app's secret (the app is in 「可调用接口的应用」)
    customer_secret: Secret = field(default_factory=lambda: Secret(""))
    #: external-contact tag name -> customer VIP level ("VIP=1,SVIP=2")
    vip_tags: tuple[tuple[str, int], ...] = (("VIP", 1), ("SVIP", 2))
    #: our own ceiling per corp and API, below WeCom's 10,000/min and 150,000/h (path/90454)
    rate_per_minute: int = 9000
    rate_per_hour: int = 140000

    @property
    def configured(self) -> bool:
        return bool(self.corp_id and str(self.agent_secret))


@dataclass(frozen=True)
class SmsSettings:
    """Tencent Cloud SMS (腾讯云短信) for the web chat's phone verification; unset means no SMS."""

    secret_id: str = ""
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    #: the SMS application (短信应用 SdkAppId), the approved signature (签名) and verification-code template
    sdk_app_id: str = ""
    sign_name: str = ""
    template_id: str = ""
    region: str = "ap-guangzhou"
    #: where SendSms goes (scheme and host, no path); the simulator in `make run` and tests
    endpoint: str = "https://sms.tencentcloudapi.com"

    @property
    def configured(self) -> bool:
        return bool(self.secret_id and str(self.secret_key) and self.sdk_app_id and self.sign_name
                    and self.template_id)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    debug: bool = False
    data_dir: Path = Path("data")
    database_url: str = "sqlite://data/gongdan.sqlite3"
    db_pool_size: int = 64
    redis_url: str | None = None
    #: a read replica for list and report queries (None: they read the primary)
    database_replica_url: str | None = None
    secret_key: Secret = field(default_factory=lambda: Secret("dev-insecure-secret-key"))
    #: Fernet keys for fields encrypted at rest; the first encrypts, all decrypt (rotation)
    field_keys: tuple[str, ...] = ()
    public_url: str = "http://127.0.0.1:8000"
    wechat_api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    wecom_api_base: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    #: host of the OAuth2 authorize pages (MP snsapi_base and WeCom login); the simulator in `make run`
    wechat_oauth_base: str = "https://open.weixin.qq.com"
    #: host of WeCom's desktop QR-code login page (wwlogin/sso/login, the /console login); the simulator in `make run`
    wecom_login_base: str = "https://login.work.weixin.qq.com"
    #: lifetime of an H5 (mobile workbench) login session
    h5_session_hours: int = 12
    #: sensitive H5 actions (reveal, export, erase) need a WeCom login at most this many minutes old
    sensitive_reauth_minutes: int = 10
    wechat: WeChatMPSettings = field(default_factory=WeChatMPSettings)
    wecom: WeComSettings = field(default_factory=WeComSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    #: callbacks whose timestamp is further than this from our clock are refused (replay protection)
    callback_window_seconds: int = 300
    outbox_max_attempts: int = 8
    inprocess_workers: int = 4
    #: `gongdan worker` lowers its CPU priority by this (0-19; 0 keeps it): callbacks must be answered within
    #: WeChat's 5 s whatever the backlog, and the backlog drains as fast once the burst of callbacks is over
    worker_nice: int = 19
    #: and runs in Linux's idle scheduling class (SCHED_IDLE): a process that wakes takes the core from it at once
    worker_sched_idle: bool = True
    log_format: str = "console"
    log_level: str = "INFO"
    timezone: str = "Asia/Shanghai"
    ticket_prefix: str = "GD"
    #: the WeChat/WeCom platform is our simulator (enables the development login, demo helpers)
    simulator: bool = False
    #: closing with confirmation and escalation approvals (issue 6)
    workflow: WorkflowSettings = field(default_factory=lambda: WorkflowSettings())
    #: retention of personal data (issue 11): raw callbacks, message texts and media, closed tickets (days)
    retention_raw_callback_days: int = 30
    retention_message_days: int = 365
    retention_closed_ticket_days: int = 3 * 365

    @property
    def is_mysql(self) -> bool:
        return self.database_url.startswith("mysql://")

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _bool(config: Config, name: str, default: bool) -> bool:
    try:
        return config(name, cast=bool, default=default)
    except ValueError as exc:
        raise ConfigError(f"{name} must be true/false/1/0, got an invalid value") from exc


def _int(config: Config, name: str, default: int, *, minimum: int = 0) -> int:
    try:
        value = config(name, cast=int, default=default)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _nice(config: Config) -> int:
    value = _int(config, "WORKER_NICE", 19)
    if value > 19:
        raise ConfigError("WORKER_NICE must be between 0 and 19")
    return value


def _dev_secret(data_dir: Path) -> str:
    """Keep one random dev key under data/ so sessions and encrypted fields survive restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _vip_tags(raw: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, level = item.partition("=")
        if not sep or not name.strip() or not level.strip().isdigit():
            raise ConfigError("WECOM_VIP_TAGS must look like VIP=1,SVIP=2")
        out.append((name.strip(), int(level)))
    return tuple(out)


def _wecom(config: Config) -> WeComSettings:
    wecom = WeComSettings(
        corp_id=config("WECOM_CORP_ID", default=""),
        agent_id=config("WECOM_AGENT_ID", default=""),
        agent_secret=Secret(config("WECOM_AGENT_SECRET", default="")),
        token=Secret(config("WECOM_TOKEN", default="")),
        aes_key=Secret(config("WECOM_AES_KEY", default="")),
        contact_secret=Secret(config("WECOM_CONTACT_SECRET", default="")),
        contact_token=Secret(config("WECOM_CONTACT_TOKEN", default="")),
        contact_aes_key=Secret(config("WECOM_CONTACT_AES_KEY", default="")),
        customer_secret=Secret(config("WECOM_CUSTOMER_SECRET", default="")),
        vip_tags=_vip_tags(config("WECOM_VIP_TAGS", default="VIP=1,SVIP=2")),
        rate_per_minute=_int(config, "WECOM_RATE_PER_MINUTE", 9000, minimum=1),
        rate_per_hour=_int(config, "WECOM_RATE_PER_HOUR", 140000, minimum=1),
    )
    for name, value in (("WECOM_AES_KEY", wecom.aes_key), ("WECOM_CONTACT_AES_KEY", wecom.contact_aes_key)):
        if str(value) and not _AES_KEY.match(str(value)):
            raise ConfigError(f"{name} must be the 43-character EncodingAESKey")
    if wecom.agent_id and not wecom.agent_id.isdigit():
        raise ConfigError("WECOM_AGENT_ID must be the numeric AgentId")
    return wecom


def _sms(config: Config) -> SmsSettings:
    sms = SmsSettings(
        secret_id=config("TENCENT_SMS_SECRET_ID", default=""),
        secret_key=Secret(config("TENCENT_SMS_SECRET_KEY", default="")),
        sdk_app_id=config("TENCENT_SMS_SDK_APP_ID", default=""),
        sign_name=config("TENCENT_SMS_SIGN_NAME", default=""),
        template_id=config("TENCENT_SMS_TEMPLATE_ID", default=""),
        region=config("TENCENT_SMS_REGION", default="ap-guangzhou"),
        endpoint=config("TENCENT_SMS_ENDPOINT", default="https://sms.tencentcloudapi.com").rstrip("/"),
    )
    # the SDK posts to "/" on a bare host: a path would be silently dropped
    if not re.match(r"^https?://[A-Za-z0-9.\-]+(:\d+)?$", sms.endpoint):
        raise ConfigError("TENCENT_SMS_ENDPOINT must be a scheme and host, like https://sms.tencentcloudapi.com")
    if sms.secret_id and not str(sms.secret_key):
        raise ConfigError("TENCENT_SMS_SECRET_KEY is required when TENCENT_SMS_SECRET_ID is set")
    if sms.sdk_app_id and not sms.sdk_app_id.isdigit():
        raise ConfigError("TENCENT_SMS_SDK_APP_ID must be the numeric SdkAppId")
    return sms


@dataclass(frozen=True)
class WorkflowSettings:
    """Closing with confirmation and escalation approvals."""

    #: a resolved ticket the customer does not answer is closed after this many days
    auto_close_days: int = 3
    #: refunds and compensation above this amount (yuan) need approval
    approval_threshold: float = 200.0
    #: (minimum amount, approver levels): the chain climbs the org chart further for larger amounts
    approval_levels: tuple[tuple[float, int], ...] = ((0.0, 1), (1000.0, 2), (5000.0, 3))
    #: an approver who has not decided after this many minutes is passed over to the next level up
    approval_timeout_minutes: int = 240
    #: approval kind -> WeCom approval template id: those kinds go through WeCom's own approval app
    approval_oa_templates: tuple[tuple[str, str], ...] = ()
    #: WeCom userids of the fallback approvers: they take approval levels the org chart cannot fill and SLA
    #: escalations with nobody above; empty means every active admin
    approval_fallback: tuple[str, ...] = ()


def _pairs(raw: str, name: str) -> list[tuple[str, str]]:
    out = []
    for item in raw.split(","):
        if item.strip():
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"{name} must look like key=value,key=value")
            out.append((key.strip(), value.strip()))
    return out


def _workflow(config: Config) -> WorkflowSettings:
    try:
        threshold = float(config("APPROVAL_THRESHOLD", default="200"))
        levels = tuple(sorted((float(k), int(v)) for k, v in _pairs(
            config("APPROVAL_LEVELS", default="0=1,1000=2,5000=3"), "APPROVAL_LEVELS")))
    except ValueError as exc:
        raise ConfigError("APPROVAL_THRESHOLD must be a number and APPROVAL_LEVELS look like 0=1,1000=2") from exc
    if any(n < 1 for _, n in levels):
        raise ConfigError("APPROVAL_LEVELS: every level count must be at least 1")
    return WorkflowSettings(
        auto_close_days=_int(config, "AUTO_CLOSE_DAYS", 3, minimum=1),
        approval_threshold=threshold,
        approval_levels=levels or ((0.0, 1),),
        approval_timeout_minutes=_int(config, "APPROVAL_TIMEOUT_MINUTES", 240, minimum=1),
        approval_oa_templates=tuple(_pairs(config("APPROVAL_OA_TEMPLATES", default=""), "APPROVAL_OA_TEMPLATES")),
        approval_fallback=tuple(u.strip() for u in config("APPROVAL_FALLBACK", default="").split(",") if u.strip()),
    )


def dev_env_path(data_dir: Path) -> Path:
    """Where `gongdan run` writes its embedded settings (read back by other commands in development)."""
    return data_dir / DEV_ENV_NAME


def write_dev_env(*, data_dir: Path, values: Mapping[str, str]) -> Path:
    """Write `gongdan run`'s embedded settings to DATA_DIR/dev.env (owner-only: it holds demo secrets)."""
    path = dev_env_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `gongdan run` (make run): the settings it made up for the WeChat/WeCom simulator.",
             "# Read by other gongdan commands in this folder in development only (never in production or tests).",
             "# The secrets below are demo credentials of the simulator. Delete this file to stop using them."]
    for key, value in sorted(values.items()):
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or not _DEV_ENV_VALUE.match(value):
            raise ConfigError(f"{key}: cannot be written to {DEV_ENV_NAME} (unexpected characters)")
        lines.append(f"{key}={value}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def _dev_env_values(data_dir: Path) -> dict[str, str]:
    path = dev_env_path(data_dir)
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None and k not in ("GONGDAN_ENV", "DATA_DIR")}


def load_settings(environ: Mapping[str, str] | None = None, *, env_file: str | None = ".env",
                  dev_env: bool = True) -> Settings:
    """Build settings from an environment mapping (os.environ by default), an optional .env file and, in
    development and reading os.environ only, the DATA_DIR/dev.env that `gongdan run` wrote."""
    raw = dict(os.environ if environ is None else environ)
    file = env_file if env_file and Path(env_file).exists() and environ is None else None
    config = Config(env_file=file, environ=Environ(raw))

    env = config("GONGDAN_ENV", default="development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"GONGDAN_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    data_dir = Path(config("DATA_DIR", default="data"))
    if dev_env and environ is None and env == "development":
        embedded = _dev_env_values(data_dir)
        if embedded:  # lowest precedence: the environment and .env still win
            config = Config(environ=Environ({**embedded, **config.file_values, **raw}))

    database_url = config("DATABASE_URL", default=f"sqlite://{data_dir}/gongdan.sqlite3")
    if not database_url.startswith(("sqlite://", "mysql://")):
        raise ConfigError("DATABASE_URL must start with sqlite:// or mysql://")
    database_replica_url = config("DATABASE_REPLICA_URL", default=None) or None
    if database_replica_url is not None and not database_replica_url.startswith(("sqlite://", "mysql://")):
        raise ConfigError("DATABASE_REPLICA_URL must start with sqlite:// or mysql://")
    redis_url = config("REDIS_URL", default=None) or None
    if redis_url is not None:
        from app.redisconn import validate as validate_redis_url

        validate_redis_url(redis_url)

    secret = config("SECRET_KEY", default=None)
    if not secret:
        if env == "production":
            raise ConfigError("SECRET_KEY is required when GONGDAN_ENV=production")
        secret = "test-secret-key-not-for-production" if env == "test" else _dev_secret(data_dir)
    elif len(secret) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters")

    field_keys = tuple(k.strip() for k in config("FIELD_ENCRYPTION_KEYS", default="").split(",") if k.strip())
    for key in field_keys:
        if len(key) != 44:
            raise ConfigError("FIELD_ENCRYPTION_KEYS must be comma-separated Fernet keys (44 characters each)")

    wechat = WeChatMPSettings(
        app_id=config("WECHAT_APP_ID", default=""),
        app_secret=Secret(config("WECHAT_APP_SECRET", default="")),
        token=Secret(config("WECHAT_TOKEN", default="")),
        aes_key=Secret(config("WECHAT_AES_KEY", default="")),
        previous_aes_key=Secret(config("WECHAT_PREVIOUS_AES_KEY", default="")),
        template_id=config("WECHAT_TEMPLATE_ID", default=""),
        accept_plain=_bool(config, "WECHAT_ACCEPT_PLAIN", False),
    )
    for name, value in (("WECHAT_AES_KEY", wechat.aes_key), ("WECHAT_PREVIOUS_AES_KEY", wechat.previous_aes_key)):
        if str(value) and not _AES_KEY.match(str(value)):
            raise ConfigError(f"{name} must be the 43-character EncodingAESKey")
    if wechat.app_id and not str(wechat.token):
        raise ConfigError("WECHAT_TOKEN is required when WECHAT_APP_ID is set")

    wecom = _wecom(config)

    log_format = config("LOG_FORMAT", default="json" if env == "production" else "console")
    if log_format not in ("json", "console"):
        raise ConfigError("LOG_FORMAT must be json or console")

    return Settings(
        env=env,
        debug=_bool(config, "DEBUG", False),
        data_dir=data_dir,
        database_url=database_url,
        db_pool_size=_int(config, "DB_POOL_SIZE", 64, minimum=1),
        redis_url=redis_url,
        database_replica_url=database_replica_url,
        secret_key=Secret(secret),
        field_keys=field_keys,
        public_url=config("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/"),
        wechat_api_base=config("WECHAT_API_BASE", default="https://api.weixin.qq.com/cgi-bin/"),
        wecom_api_base=config("WECOM_API_BASE", default="https://qyapi.weixin.qq.com/cgi-bin/"),
        wechat_oauth_base=config("WECHAT_OAUTH_BASE", default="https://open.weixin.qq.com").rstrip("/"),
        wecom_login_base=config("WECOM_LOGIN_BASE", default="https://login.work.weixin.qq.com").rstrip("/"),
        h5_session_hours=_int(config, "H5_SESSION_HOURS", 12, minimum=1),
        sensitive_reauth_minutes=_int(config, "SENSITIVE_REAUTH_MINUTES", 10, minimum=1),
        wechat=wechat,
        wecom=wecom,
        sms=_sms(config),
        callback_window_seconds=_int(config, "CALLBACK_WINDOW_SECONDS", 300, minimum=1),
        outbox_max_attempts=_int(config, "OUTBOX_MAX_ATTEMPTS", 8, minimum=1),
        inprocess_workers=_int(config, "INPROCESS_WORKERS", 4, minimum=1),
        worker_nice=_nice(config),
        worker_sched_idle=_bool(config, "WORKER_SCHED_IDLE", True),
        log_format=log_format,
        log_level=config("LOG_LEVEL", default="INFO").upper(),
        timezone=config("TIMEZONE", default="Asia/Shanghai"),
        ticket_prefix=config("TICKET_PREFIX", default="GD"),
        simulator=_bool(config, "GONGDAN_SIMULATOR", False),
        workflow=_workflow(config),
        retention_raw_callback_days=_int(config, "RETENTION_RAW_CALLBACK_DAYS", 30, minimum=1),
        retention_message_days=_int(config, "RETENTION_MESSAGE_DAYS", 365, minimum=1),
        retention_closed_ticket_days=_int(config, "RETENTION_CLOSED_TICKET_DAYS", 3 * 365, minimum=1),
    )


_current: Settings | None = None


def get_settings() -> Settings:
    """Return the process-wide settings, loading them from the environment on first use."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (CLI start-up and tests)."""
    global _current
    _current = settings
