"""Settings: explicit arguments first, the environment as fallback, fail early with the variable's name.

Environment names follow the official SDK (``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``); our own
settings start with ``WAN_MCP_``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import platformdirs
from pydantic import SecretStr

from .core.errors import ConfigurationError
from .core.journal.postgres import SCHEMES
from .dashscope.text import has_lone_surrogate, without_lone_surrogates
from .dashscope.transport import api_key_problem, is_loopback_host

REGIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
        "beijing": "https://dashscope.aliyuncs.com/api/v1",
        "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
        "hongkong": "https://cn-hongkong.dashscope.aliyuncs.com/api/v1",
    }
)
"""Legacy DashScope hosts per region (docs/dashscope-api.md#hosts-and-regions); Frankfurt and Tokyo have none."""

REGION_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "singapore": "ap-southeast-1",
        "beijing": "cn-beijing",
        "virginia": "us-east-1",
        "hongkong": "cn-hongkong",
        "frankfurt": "eu-central-1",
        "tokyo": "ap-northeast-1",
    }
)
"""Every region the official SDK 2.0.2 knows (``dashscope/v2/_config.py``), by our name: its code names the
workspace-dedicated host ``https://{workspace}.{code}.maas.aliyuncs.com/api/v1``."""

REGION_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{code: name for name, code in REGION_CODES.items()},
        "intl": "singapore",
        "china": "beijing",
        "us": "virginia",
        "hk": "hongkong",
        "germany": "frankfurt",
        "japan": "tokyo",
    }
)
_WORKSPACE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
"""A workspace id becomes a host name label: letters, digits and inner hyphens, at most 63."""


def workspace_url(region: str, workspace: str) -> str:
    """The workspace-dedicated API base URL of ``workspace`` in ``region`` (one of REGION_CODES)."""
    return f"https://{workspace.lower()}.{REGION_CODES[region]}.maas.aliyuncs.com/api/v1"


DEFAULT_REGION: Final = "singapore"
APP_NAME: Final = "wan-image-mcp"


def default_output_dir() -> Path:
    """The platform's user data directory for the app (e.g. ~/.local/share/wan-image-mcp/images)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "images"


def default_journal() -> Path:
    """The platform's user data directory for the app + journal.sqlite3."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "journal.sqlite3"


def _home_relative(raw: str) -> Path:
    """A configured path: ``~`` expanded, relative paths taken from the user's home, never from whatever
    directory the MCP host started the server in."""
    return Path.home() / Path(raw).expanduser()


def _output_dir(folder: Path) -> Path:
    """``folder``, the output folder, if its name is text. Raises ConfigurationError naming WAN_MCP_OUTPUT_DIR for
    one holding bytes that are not UTF-8: every saved image's path is given to the model (which passes it back to
    edit it again) and written in the journal and sidecars, all of them text."""
    if has_lone_surrogate(str(folder)):
        raise ConfigurationError(
            f"the output folder {without_lone_surrogates(str(folder))} (WAN_MCP_OUTPUT_DIR) has a name that is not "
            "UTF-8 (\ufffd marks each byte that is not): the paths of saved images could not be given to the model "
            "or written in the journal. Choose a folder whose name is UTF-8, or rename it"
        )
    return folder


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _count(env: Mapping[str, str], name: str, *, least: int = 1) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < least:
        raise ConfigurationError(f"{name}={raw!r} must be a whole number of images, at least {least}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; ``from_env`` reads them from the environment (the README's table)."""

    api_key: SecretStr | None = field(default=None, repr=False)
    base_url: str = REGIONS[DEFAULT_REGION]
    region: str = DEFAULT_REGION
    workspace: str | None = None
    """The workspace id (WAN_MCP_WORKSPACE): its dedicated host, and the ``X-DashScope-WorkSpace`` header."""
    output_dir: Path = field(default_factory=default_output_dir)
    """Where result images and their sidecars are written (with ``output_url``: where they are downloaded to
    before they are uploaded)."""
    output_url: str | None = None
    """S3-compatible storage for results (WAN_MCP_OUTPUT_URL=s3://bucket/prefix) in place of the output folder."""
    download_url_seconds: float = 3600.0
    """How long a result's presigned ``download_url`` is valid (WAN_MCP_DOWNLOAD_URL_SECONDS; S3 output only)."""
    object_store: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """The S3 client's settings from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    AWS_SESSION_TOKEN (obstore's names); the key is secret, so this is never shown."""
    previews: bool = True
    """Return a small preview image per result (WAN_MCP_PREVIEWS=0 turns it off)."""
    poll_interval: float = 1.0
    """First wait between task queries; it grows to poll_interval_max."""
    poll_interval_max: float = 5.0
    journal_path: Path = field(default_factory=default_journal)
    journal_url: str | None = field(default=None, repr=False)
    """A PostgreSQL database for the journal (WAN_MCP_DB=postgresql://…), in place of the SQLite file at
    ``journal_path``; it may hold a password, so it is never shown (``journal_location`` is what is opened)."""
    """The SQLite task journal (WAN_MCP_DB)."""
    harvest: bool = True
    """Poll unfinished tasks and download their images in the background (WAN_MCP_HARVEST=0 turns it off)."""
    allowed_dirs: tuple[Path, ...] = ()
    """Folders local input images may come from, besides the output folder and the client's roots."""
    inline_max_bytes: int = 1_000_000
    """Local images larger than this (after conforming) go through DashScope's temporary upload."""
    max_images_per_call: int = 4
    """Most paid images one call may request (n, or max_images with interleave)."""
    max_images_per_day: int | None = None
    """Most paid images requested in any 24 hours, counted from the journal; None: no limit."""
    confirm_above_images: int | None = None
    """A call requesting more paid images than this asks the user first (WAN_MCP_CONFIRM_ABOVE_IMAGES; 0: every
    paid call); None: never asks."""
    log_level: str = "WARNING"
    """stderr log level (WAN_MCP_LOG_LEVEL); stdout is never used for logs."""
    http_token: SecretStr | None = field(default=None, repr=False)
    """Bearer token every HTTP request must carry (WAN_MCP_HTTP_TOKEN); required for a non-loopback bind."""
    http_allowed_hosts: tuple[str, ...] = ()
    """Extra Host names a non-loopback HTTP bind answers to (WAN_MCP_HTTP_ALLOWED_HOSTS, comma-separated)."""
    auth_issuer: str | None = None
    """The OAuth authorization server whose JWT access tokens the HTTP server accepts (WAN_MCP_AUTH_ISSUER)."""
    public_url: str | None = None
    """The HTTP server's public URL (WAN_MCP_PUBLIC_URL): its resource identifier, the audience tokens carry."""

    @staticmethod
    def log_level_of(environ: Mapping[str, str] | None = None) -> str:
        """WAN_MCP_LOG_LEVEL as a logging level name (WARNING when unset or not a level), readable before the
        other settings, so that a command can log while they are checked."""
        import logging

        env = os.environ if environ is None else environ
        level = env.get("WAN_MCP_LOG_LEVEL", "").strip().upper()
        return level if level in logging.getLevelNamesMapping() else "WARNING"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        key = env.get("DASHSCOPE_API_KEY", "").strip()
        region, workspace, base_url = _endpoint(env)
        if not base_url.startswith(("http://", "https://")) or has_lone_surrogate(base_url):  # (bytes not UTF-8)
            raise ConfigurationError(f"DASHSCOPE_HTTP_BASE_URL must be an http(s) URL, got {base_url!r}")
        raw_dir = env.get("WAN_MCP_OUTPUT_DIR", "").strip()
        raw_db = env.get("WAN_MCP_DB", "").strip()
        postgres = raw_db.startswith(SCHEMES)
        poll = _seconds(env, "WAN_MCP_POLL_INTERVAL", 1.0)
        return cls(
            api_key=SecretStr(key) if key else None,
            base_url=base_url.rstrip("/"),
            region=region,
            workspace=workspace,
            output_dir=_output_dir(_home_relative(raw_dir) if raw_dir else default_output_dir()),
            journal_path=_home_relative(raw_db) if raw_db and not postgres else default_journal(),
            journal_url=raw_db if postgres else None,
            harvest=_flag(env.get("WAN_MCP_HARVEST"), True),
            allowed_dirs=tuple(
                _home_relative(part) for part in env.get("WAN_MCP_ALLOWED_DIRS", "").split(os.pathsep) if part.strip()
            ),
            max_images_per_call=_count(env, "WAN_MCP_MAX_IMAGES_PER_CALL") or 4,
            inline_max_bytes=_count(env, "WAN_MCP_INLINE_MAX_BYTES") or 1_000_000,
            max_images_per_day=_count(env, "WAN_MCP_MAX_IMAGES_PER_DAY"),
            confirm_above_images=_count(env, "WAN_MCP_CONFIRM_ABOVE_IMAGES", least=0),
            previews=_flag(env.get("WAN_MCP_PREVIEWS"), True),
            poll_interval=poll,
            poll_interval_max=max(poll, _seconds(env, "WAN_MCP_POLL_INTERVAL_MAX", 5.0)),
            log_level=cls.log_level_of(env),
            http_token=SecretStr(token) if (token := env.get("WAN_MCP_HTTP_TOKEN", "").strip()) else None,
            http_allowed_hosts=tuple(
                host.strip() for host in env.get("WAN_MCP_HTTP_ALLOWED_HOSTS", "").split(",") if host.strip()
            ),
            **_oauth(env),
            **_object_store(env),
        )

    @property
    def journal_location(self) -> Path | str:
        """What the journal opens: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.journal_url or self.journal_path

    def require_api_key(self) -> str:
        """The API key; raises ConfigurationError naming DASHSCOPE_API_KEY when it is missing or unusable."""
        if self.api_key is None:
            raise ConfigurationError(
                "DASHSCOPE_API_KEY is not set: create a key in Alibaba Cloud Model Studio for your region "
                f"({self.region}) and put it in the DASHSCOPE_API_KEY environment variable"
            )
        key = self.api_key.get_secret_value()
        if problem := api_key_problem(key):
            raise ConfigurationError(problem)
        return key


def _endpoint(env: Mapping[str, str]) -> tuple[str, str | None, str]:
    """The region (our name), the workspace id and the API base URL the environment chooses: the SDK's
    ``DASHSCOPE_HTTP_BASE_URL`` wins, then the workspace-dedicated host of ``WAN_MCP_WORKSPACE`` in
    ``WAN_MCP_REGION``, then the region's legacy host. Raises ConfigurationError naming the variable."""
    raw_region = env.get("WAN_MCP_REGION", "").strip().lower() or DEFAULT_REGION
    region = REGION_ALIASES.get(raw_region, raw_region)
    workspace = env.get("WAN_MCP_WORKSPACE", "").strip() or None
    if workspace is not None and not _WORKSPACE.fullmatch(workspace):
        raise ConfigurationError(
            "WAN_MCP_WORKSPACE must be a workspace id (letters, digits and inner hyphens, at most 63), "
            "as Model Studio shows it"
        )
    base_url = env.get("DASHSCOPE_HTTP_BASE_URL", "").strip()
    if base_url:
        return region, workspace, base_url
    if region not in REGION_CODES:
        raise ConfigurationError(
            f"WAN_MCP_REGION={raw_region!r} is not a known region; use one of {', '.join(REGION_CODES)} (or its "
            f"code: {', '.join(REGION_CODES.values())}), or set DASHSCOPE_HTTP_BASE_URL"
        )
    if workspace is not None:
        return region, workspace, workspace_url(region, workspace)
    if region not in REGIONS:
        raise ConfigurationError(
            f"WAN_MCP_REGION={raw_region!r} has only workspace-dedicated hosts: set WAN_MCP_WORKSPACE to your "
            "workspace id (Model Studio shows it), or DASHSCOPE_HTTP_BASE_URL"
        )
    return region, workspace, REGIONS[region]


def _oauth(env: Mapping[str, str]) -> dict[str, str | None]:
    """WAN_MCP_AUTH_ISSUER and WAN_MCP_PUBLIC_URL, given together or not at all, each an https URL (http only
    on a loopback host). Raises ConfigurationError naming the variable."""
    issuer = env.get("WAN_MCP_AUTH_ISSUER", "").strip() or None
    public = env.get("WAN_MCP_PUBLIC_URL", "").strip() or None
    if (issuer is None) != (public is None):
        given, missing = (
            ("WAN_MCP_AUTH_ISSUER", "WAN_MCP_PUBLIC_URL") if issuer else ("WAN_MCP_PUBLIC_URL", "WAN_MCP_AUTH_ISSUER")
        )
        raise ConfigurationError(f"{given} is set but {missing} is not: OAuth needs both (see Run it for a team)")
    for name, url in (("WAN_MCP_AUTH_ISSUER", issuer), ("WAN_MCP_PUBLIC_URL", public)):
        if url is None:
            continue
        parts = urlsplit(url)
        local = parts.hostname is not None and is_loopback_host(parts.hostname)
        if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
            raise ConfigurationError(f"{name} must be an https URL (http only on a loopback host), got {url!r}")
    return {"auth_issuer": issuer, "public_url": public}


_AWS = {
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_REGION": "region",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
}


def _object_store(env: Mapping[str, str]) -> dict[str, Any]:
    """WAN_MCP_OUTPUT_URL (an ``s3://bucket[/prefix]`` URL), WAN_MCP_DOWNLOAD_URL_SECONDS (more than 0, at most 7
    days: S3's limit for a presigned URL) and the standard AWS_* variables the S3 client takes. Raises
    ConfigurationError naming the variable."""
    url = env.get("WAN_MCP_OUTPUT_URL", "").strip() or None
    if url is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", url):
        raise ConfigurationError(f"WAN_MCP_OUTPUT_URL must be s3://bucket or s3://bucket/prefix, got {url!r}")
    seconds = _seconds(env, "WAN_MCP_DOWNLOAD_URL_SECONDS", 3600.0)
    if not 0 < seconds <= 7 * 24 * 3600:
        raise ConfigurationError("WAN_MCP_DOWNLOAD_URL_SECONDS must be more than 0 and at most 604800 (7 days)")
    options = tuple((key, value) for name, key in _AWS.items() if (value := env.get(name, "").strip()))
    return {"output_url": url, "download_url_seconds": seconds, "object_store": options}
