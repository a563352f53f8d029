"""Every setting, read from the environment (and an optional `.env` file).

The defaults are the embedded mode: SQLite under `data/`, jobs in-process, Tencent's real API hosts (``make run``
points them at the simulator). A missing or malformed value raises ``ConfigError`` naming the variable, and the
CLI turns that into one clear line before exiting.
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

    @property
    def configured(self) -> bool:
        return bool(self.app_id and str(self.token))


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    debug: bool = False
    data_dir: Path = Path("data")
    database_url: str = "sqlite://data/gongdan.sqlite3"
    db_pool_size: int = 64
    redis_url: str | None = None
    secret_key: Secret = field(default_factory=lambda: Secret("dev-insecure-secret-key"))
    #: Fernet keys for fields encrypted at rest; the first encrypts, all decrypt (rotation)
    field_keys: tuple[str, ...] = ()
    public_url: str = "http://127.0.0.1:8000"
    wechat_api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    wecom_api_base: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    wechat: WeChatMPSettings = field(default_factory=WeChatMPSettings)
    #: callbacks whose timestamp is further than this from our clock are refused (replay protection)
    callback_window_seconds: int = 300
    outbox_max_attempts: int = 8
    inprocess_workers: int = 4
    log_format: str = "console"
    log_level: str = "INFO"
    timezone: str = "Asia/Shanghai"
    ticket_prefix: str = "GD"
    #: the WeChat/WeCom platform is our simulator (enables the development login, demo helpers)
    simulator: bool = False

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


def load_settings(environ: Mapping[str, str] | None = None, *, env_file: str | None = ".env") -> Settings:
    """Build settings from an environment mapping (os.environ by default) and an optional .env file."""
    source = Environ(dict(os.environ if environ is None else environ))
    file = env_file if env_file and Path(env_file).exists() and environ is None else None
    config = Config(env_file=file, environ=source)

    env = config("GONGDAN_ENV", default="development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"GONGDAN_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    data_dir = Path(config("DATA_DIR", default="data"))

    database_url = config("DATABASE_URL", default=f"sqlite://{data_dir}/gongdan.sqlite3")
    if not database_url.startswith(("sqlite://", "mysql://")):
        raise ConfigError("DATABASE_URL must start with sqlite:// or mysql://")
    redis_url = config("REDIS_URL", default=None) or None
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")

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
        app_secret=config("WECHAT_APP_SECRET", cast=Secret, default=""),
        token=config("WECHAT_TOKEN", cast=Secret, default=""),
        aes_key=config("WECHAT_AES_KEY", cast=Secret, default=""),
        previous_aes_key=config("WECHAT_PREVIOUS_AES_KEY", cast=Secret, default=""),
        template_id=config("WECHAT_TEMPLATE_ID", default=""),
    )
    for name, value in (("WECHAT_AES_KEY", wechat.aes_key), ("WECHAT_PREVIOUS_AES_KEY", wechat.previous_aes_key)):
        if str(value) and not _AES_KEY.match(str(value)):
            raise ConfigError(f"{name} must be the 43-character EncodingAESKey")
    if wechat.app_id and not str(wechat.token):
        raise ConfigError("WECHAT_TOKEN is required when WECHAT_APP_ID is set")

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
        secret_key=Secret(secret),
        field_keys=field_keys,
        public_url=config("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/"),
        wechat_api_base=config("WECHAT_API_BASE", default="https://api.weixin.qq.com/cgi-bin/"),
        wecom_api_base=config("WECOM_API_BASE", default="https://qyapi.weixin.qq.com/cgi-bin/"),
        wechat=wechat,
        callback_window_seconds=_int(config, "CALLBACK_WINDOW_SECONDS", 300, minimum=1),
        outbox_max_attempts=_int(config, "OUTBOX_MAX_ATTEMPTS", 8, minimum=1),
        inprocess_workers=_int(config, "INPROCESS_WORKERS", 4, minimum=1),
        log_format=log_format,
        log_level=config("LOG_LEVEL", default="INFO").upper(),
        timezone=config("TIMEZONE", default="Asia/Shanghai"),
        ticket_prefix=config("TICKET_PREFIX", default="GD"),
        simulator=_bool(config, "GONGDAN_SIMULATOR", False),
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
