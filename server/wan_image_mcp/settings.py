"""Settings: explicit arguments first, the environment as fallback, fail early with the variable's name.

Environment names follow the official SDK (``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``); our own
settings start with ``WAN_MCP_``. ``Settings`` declares each setting once; ``Settings.from_env`` has
pydantic-settings' environment source read the variables, the declaration check them (its validators say what a
variable's text means, its bounds are the only bounds), and says any wrong value in our words (``_refusal``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, cast, get_args
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    Field,
    JsonValue,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

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
PRESIGN_MAX_SECONDS: Final = 7 * 24 * 3600
"""S3's limit for a presigned URL's life, 7 days."""
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


def _text_folder(folder: Path) -> Path:
    """``folder``, the output folder, if its name is text. Raises ValueError naming WAN_MCP_OUTPUT_DIR for one
    holding bytes that are not UTF-8: every saved image's path is given to the model (which passes it back to edit
    it again) and written in the journal and sidecars, all of them text."""
    if has_lone_surrogate(str(folder)):
        raise ValueError(
            f"the output folder {without_lone_surrogates(str(folder))} (WAN_MCP_OUTPUT_DIR) has a name that is not "
            "UTF-8 (\ufffd marks each byte that is not): the paths of saved images could not be given to the model "
            "or written in the journal. Choose a folder whose name is UTF-8, or rename it"
        )
    return folder


_OFF: Final = ("0", "false", "no", "off")
"""A flag's values that turn it off; any other is on."""

_AWS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "AWS_ENDPOINT_URL": "endpoint",
        "AWS_REGION": "region",
        "AWS_ACCESS_KEY_ID": "access_key_id",
        "AWS_SECRET_ACCESS_KEY": "secret_access_key",
        "AWS_SESSION_TOKEN": "session_token",
    }
)
"""The standard AWS variables the S3 client takes, and its names for them."""


def _level(name: str) -> str:
    """A log level's name as logging knows it; WARNING for one it does not know."""
    import logging

    level = name.strip().upper()
    return level if level in logging.getLevelNamesMapping() else "WARNING"


def _setting(
    default: Any, env: str, description: str, *, shown: str | None = None, unit: str | None = None, **more: Any
) -> Any:
    """One setting's declaration: its default (a function: called for each Settings), the environment variable(s)
    it is read from (``", "``-separated when several), the README's words for it and, when the default is no plain
    value, the README's words for that; ``unit`` names what a number counts in a refusal ("images", "seconds")."""
    extra: dict[str, JsonValue] = {"env": env}
    if shown is not None:
        extra["shown"] = shown
    if unit is not None:
        extra["unit"] = unit
    given: dict[str, Any] = {"default_factory": default} if callable(default) else {"default": default}
    return Field(**given, description=description, json_schema_extra=extra, **more)


class Settings(BaseSettings):
    """Every setting of the server, each declared once: default, type, bounds, environment variable and the
    README's line (``settings_table`` makes the README's Configuration table from them). ``from_env`` has
    pydantic-settings read the environment and says a wrong value in our words, naming its variable and its limit;
    ``Settings(...)`` takes keyword arguments only (the same validators, never the environment)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", enable_decoding=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: the environment is read by ``from_env`` (``_Environment``)."""
        return (init_settings,)

    api_key: SecretStr | None = _setting(
        None,
        "DASHSCOPE_API_KEY",
        "your Model Studio key; keys are per region",
        shown="— (required for real calls)",
        repr=False,
    )
    base_url: str = _setting(
        REGIONS[DEFAULT_REGION],
        "DASHSCOPE_HTTP_BASE_URL",
        "the official SDK's variable; wins over the region (workspace hosts, the emulator)",
        shown="from the region",
    )
    region: str = _setting(
        DEFAULT_REGION,
        "WAN_MCP_REGION",
        "`singapore`, `beijing`, `virginia`, `hongkong`, `frankfurt`, `tokyo`, or the official SDK's codes for them "
        "(`ap-southeast-1`, `cn-beijing`, `us-east-1`, `cn-hongkong`, `eu-central-1`, `ap-northeast-1`); Frankfurt "
        "and Tokyo have only workspace hosts, so they need `WAN_MCP_WORKSPACE`",
    )
    workspace: str | None = _setting(
        None,
        "WAN_MCP_WORKSPACE",
        "your Model Studio workspace id: requests go to its dedicated host "
        "`https://{workspace}.{region code}.maas.aliyuncs.com/api/v1` and carry `X-DashScope-WorkSpace` (a "
        "`DASHSCOPE_HTTP_BASE_URL` still wins, the header is still sent); an id that is not a host-name label is "
        "refused at start",
        shown="—",
    )
    output_dir: Path = _setting(
        default_output_dir,
        "WAN_MCP_OUTPUT_DIR",
        "where results and sidecars go; a relative path is taken from your home directory, not the host's working "
        "directory; with `WAN_MCP_OUTPUT_URL`, only downloads in progress; a folder whose name is not UTF-8 stops "
        "the server at start (saved paths are given to the model)",
        shown="the platform's user data dir + `/images` (e.g. `~/.local/share/wan-image-mcp/images`)",
    )
    output_url: str | None = _setting(
        None,
        "WAN_MCP_OUTPUT_URL",
        "`s3://bucket` or `s3://bucket/prefix`: result images and sidecars in S3-compatible storage (AWS S3, Alibaba "
        "Cloud OSS's S3-compatible endpoint, MinIO), each with a presigned `download_url`; configured by "
        "`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (see Run it for a team; "
        "needs the `s3` extra)",
        shown="unset (results in `WAN_MCP_OUTPUT_DIR`)",
    )
    download_url_seconds: float = _setting(
        3600.0,
        "WAN_MCP_DOWNLOAD_URL_SECONDS",
        "with `WAN_MCP_OUTPUT_URL`: how long each result's presigned `download_url` is valid, more than 0 and at "
        "most 604800 (7 days)",
        unit="seconds",
        gt=0,
        le=PRESIGN_MAX_SECONDS,
    )
    object_store: tuple[tuple[str, str], ...] = _setting(
        (),
        ", ".join(_AWS),
        "with `WAN_MCP_OUTPUT_URL`: the bucket's endpoint (leave unset for AWS), region and credentials; an "
        "`http://` endpoint is allowed (MinIO on a private network, a test server)",
        shown="the S3 client's own defaults",
        repr=False,
    )
    previews: bool = _setting(True, "WAN_MCP_PREVIEWS", "`0` stops returning preview images with results")
    poll_interval: float = _setting(
        1.0,
        "WAN_MCP_POLL_INTERVAL",
        "the shortest time between two queries of one task (whoever asks); a new task is queried at once, then after "
        "this, growing ×1.5 per query",
        unit="seconds",
        ge=0,
    )
    poll_interval_max: float = _setting(
        5.0, "WAN_MCP_POLL_INTERVAL_MAX", "the longest wait between two queries of one task", unit="seconds", ge=0
    )
    journal_path: Path = _setting(
        default_journal,
        "WAN_MCP_DB",
        "the task journal: a SQLite file (relative paths from your home), or `postgresql://user:password@host/db` "
        "for a team's server (see Run it for a team; needs the `postgres` extra)",
        shown="the platform's user data dir + `/journal.sqlite3`",
    )
    journal_url: str | None = _setting(
        None,
        "WAN_MCP_DB",
        "a PostgreSQL database for the journal in place of the SQLite file at `journal_path`; it may hold a "
        "password, so it is never shown (`journal_location` is what is opened)",
        repr=False,
    )
    allowed_dirs: tuple[Path, ...] = _setting(
        (),
        "WAN_MCP_ALLOWED_DIRS",
        "folders local input images may come from, separated by `:` (`;` on Windows); relative paths from your home; "
        "set, it replaces the default (the output folder and the client's roots are always allowed)",
        shown="over stdio, your home folder without its hidden folders (no name starting with `.`: `~/.ssh`, `~/.aws` "
        "stay out); over `--transport http`, none (the output folder and the client's roots only)",
    )
    inline_max_bytes: int = _setting(
        1_000_000,
        "WAN_MCP_INLINE_MAX_BYTES",
        "local images larger than this (after conforming) are uploaded once instead of sent inline",
        unit="bytes",
        ge=1,
    )
    max_images_per_call: int = _setting(
        4, "WAN_MCP_MAX_IMAGES_PER_CALL", "most paid images one call may request", unit="images", ge=1
    )
    max_images_per_day: int | None = _setting(
        None,
        "WAN_MCP_MAX_IMAGES_PER_DAY",
        "most paid images requested in any 24 h",
        shown="no limit",
        unit="images",
        ge=1,
    )
    confirm_above_images: int | None = _setting(
        None,
        "WAN_MCP_CONFIRM_ABOVE_IMAGES",
        "a call requesting more paid images than this asks the user first (form elicitation); `0` asks before every "
        "paid call. A client that cannot be asked is refused, never spent for silently (see Confirmation before "
        "spending)",
        shown="unset (never asks)",
        unit="images",
        ge=0,
    )
    log_level: str = _setting(
        "WARNING", "WAN_MCP_LOG_LEVEL", "stderr log level (`DEBUG`, `INFO`, …); stdout is never used for logs"
    )
    http_token: SecretStr | None = _setting(
        None,
        "WAN_MCP_HTTP_TOKEN",
        "bearer token for `serve --transport http`; required for any non-loopback `--host`",
        shown="unset",
        repr=False,
    )
    http_allowed_hosts: tuple[str, ...] = _setting(
        (),
        "WAN_MCP_HTTP_ALLOWED_HOSTS",
        "extra Host names (comma-separated) a non-loopback HTTP bind answers to",
        shown="unset",
    )
    auth_issuer: str | None = _setting(
        None,
        "WAN_MCP_AUTH_ISSUER",
        "OAuth for `serve --transport http`: the authorization server whose JWT access tokens are accepted (its keys "
        "found through its RFC 8414 metadata, else its OpenID configuration); https (http only on loopback); not "
        "with `WAN_MCP_HTTP_TOKEN`",
        shown="unset",
    )
    public_url: str | None = _setting(
        None,
        "WAN_MCP_PUBLIC_URL",
        "with `WAN_MCP_AUTH_ISSUER`: the server's public URL (e.g. `https://mcp.example.com/mcp`), its RFC 9728 "
        "resource identifier and the audience tokens must carry",
        shown="unset",
    )
    harvest: bool = _setting(
        True,
        "WAN_MCP_HARVEST",
        "`0` stops the background harvester (tasks then finish only through `check_task`)",
    )

    @classmethod
    def default(cls, name: str) -> Any:
        """The declared default of the setting ``name``."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    @staticmethod
    def log_level_of(environ: Mapping[str, str] | None = None) -> str:
        """WAN_MCP_LOG_LEVEL as a logging level name (WARNING when unset or not a level), readable before the
        other settings, so that a command can log while they are checked."""
        return _level((os.environ if environ is None else environ).get("WAN_MCP_LOG_LEVEL", ""))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` (the process's environment by default) gives, read by pydantic-settings and
        checked by the declaration. Raises ConfigurationError naming each wrong value's variable and its limit."""
        given = _Environment(cls, os.environ if environ is None else environ)()
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise ConfigurationError("; ".join(_refusal(error) for error in exc.errors())) from None

    # What a variable's text means; the bounds are the declaration's (ge, gt, le), checked by pydantic.

    @model_validator(mode="before")
    @classmethod
    def _choose_endpoint(cls, data: Any) -> Any:
        """The region (our name), the workspace and the base URL, chosen together (``_endpoint``)."""
        if not isinstance(data, dict):
            return data
        given = cast(dict[str, Any], data)
        region, workspace, base_url = _endpoint(given.get("region"), given.get("workspace"), given.get("base_url"))
        return {**given, "region": region, "workspace": workspace, "base_url": base_url}

    @field_validator("output_dir", "journal_path", mode="before")
    @classmethod
    def _from_home(cls, value: Any, info: ValidationInfo) -> Any:
        """A path given as text is taken from the user's home; WAN_MCP_DB's PostgreSQL URL is no path."""
        if not isinstance(value, str):
            return value
        if info.field_name == "journal_path" and value.startswith(SCHEMES):
            return default_journal()
        return _home_relative(value)

    @field_validator("output_dir")
    @classmethod
    def _utf8_folder(cls, folder: Path) -> Path:
        return _text_folder(folder)

    @field_validator("journal_url", mode="before")
    @classmethod
    def _postgres_only(cls, value: Any) -> Any:
        """WAN_MCP_DB is a PostgreSQL database only when it is a ``postgresql://`` URL."""
        return value if not isinstance(value, str) or value.startswith(SCHEMES) else None

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _folders(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return tuple(_home_relative(part) for part in value.split(os.pathsep) if part.strip())

    @field_validator("http_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        return tuple(host.strip() for host in value.split(",") if host.strip()) if isinstance(value, str) else value

    @field_validator("object_store", mode="before")
    @classmethod
    def _aws(cls, value: Any) -> Any:
        """The AWS variables set (``_Environment`` gives them by name) as the S3 client's options, in order."""
        if not isinstance(value, Mapping):
            return value
        given = cast(Mapping[str, str], value)
        return tuple((key, given[name]) for name, key in _AWS.items() if name in given)

    @field_validator("previews", "harvest", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return value.strip().lower() not in _OFF if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return _level(value) if isinstance(value, str) else value

    @field_validator("poll_interval_max")
    @classmethod
    def _at_least_the_interval(cls, value: float, info: ValidationInfo) -> float:
        """The longest wait is never shorter than the shortest."""
        return max(value, info.data.get("poll_interval", value))

    @field_validator("output_url")
    @classmethod
    def _bucket(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", url):
            raise ValueError(f"WAN_MCP_OUTPUT_URL must be s3://bucket or s3://bucket/prefix, got {url!r}")
        return url

    @field_validator("auth_issuer", "public_url")
    @classmethod
    def _https(cls, url: str | None, info: ValidationInfo) -> str | None:
        """An https URL (http only on a loopback host)."""
        if url is None:
            return url
        parts = urlsplit(url)
        local = parts.hostname is not None and is_loopback_host(parts.hostname)
        if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
            name = _variable(cls.model_fields[str(info.field_name)])
            raise ValueError(f"{name} must be an https URL (http only on a loopback host), got {url!r}")
        return url

    @model_validator(mode="after")
    def _oauth_pair(self) -> Settings:
        """WAN_MCP_AUTH_ISSUER and WAN_MCP_PUBLIC_URL are given together or not at all."""
        if (self.auth_issuer is None) != (self.public_url is None):
            given, missing = (
                ("WAN_MCP_AUTH_ISSUER", "WAN_MCP_PUBLIC_URL")
                if self.auth_issuer
                else ("WAN_MCP_PUBLIC_URL", "WAN_MCP_AUTH_ISSUER")
            )
            raise ValueError(f"{given} is set but {missing} is not: OAuth needs both (see Run it for a team)")
        return self

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


def _endpoint(raw_region: Any, workspace: Any, base_url: Any) -> tuple[str, str | None, str]:
    """The region (our name), the workspace id and the API base URL WAN_MCP_REGION, WAN_MCP_WORKSPACE and
    DASHSCOPE_HTTP_BASE_URL choose: the SDK's base URL wins, then the workspace-dedicated host of the workspace in
    the region, then the region's legacy host. Raises ValueError naming the variable."""
    raw_region = raw_region.strip().lower() if isinstance(raw_region, str) and raw_region.strip() else DEFAULT_REGION
    region = REGION_ALIASES.get(raw_region, raw_region)
    if workspace is not None and not (isinstance(workspace, str) and _WORKSPACE.fullmatch(workspace)):
        raise ValueError(
            "WAN_MCP_WORKSPACE must be a workspace id (letters, digits and inner hyphens, at most 63), "
            "as Model Studio shows it"
        )
    if base_url is not None:
        http = isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
        if not http or has_lone_surrogate(str(base_url)):  # (bytes not UTF-8)
            raise ValueError(f"DASHSCOPE_HTTP_BASE_URL must be an http(s) URL, got {base_url!r}")
        return region, workspace, base_url.rstrip("/")
    if region not in REGION_CODES:
        raise ValueError(
            f"WAN_MCP_REGION={raw_region!r} is not a known region; use one of {', '.join(REGION_CODES)} (or its "
            f"code: {', '.join(REGION_CODES.values())}), or set DASHSCOPE_HTTP_BASE_URL"
        )
    if workspace is not None:
        return region, workspace, workspace_url(region, workspace)
    if region not in REGIONS:
        raise ValueError(
            f"WAN_MCP_REGION={raw_region!r} has only workspace-dedicated hosts: set WAN_MCP_WORKSPACE to your "
            "workspace id (Model Studio shows it), or DASHSCOPE_HTTP_BASE_URL"
        )
    return region, workspace, REGIONS[region]


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over ``environ``, each setting looked up by its declared variable
    (WAN_MCP_DB feeds two), values as a person writes them: stripped, a blank one unset. A setting read from
    several variables (``object_store``) gets those set, by variable."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value.strip() for name, value in self._environ.items() if value.strip()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        names = _declared(field)[0].split(", ")
        if len(names) == 1:
            return self.env_vars.get(names[0]), field_name, False
        given = {name: value for name in names if (value := self.env_vars.get(name)) is not None}
        return given or None, field_name, False


def _refusal(error: ErrorDetails) -> str:
    """One wrong value in our words, naming its variable: a validator's own words as they are, and pydantic's
    refusal of a number (not one, out of the declared bounds) said from the declaration."""
    if error["type"] == "value_error":
        return str(error.get("ctx", {})["error"])
    info = _field_at(error["loc"])
    name, raw = _variable(info), error["input"]
    unit = _extra(info).get("unit")
    bounds = {
        kind: value
        for constraint in info.metadata
        for kind in ("gt", "ge", "le")
        if (value := getattr(constraint, kind, None)) is not None
    }
    if info.annotation is int or int in get_args(info.annotation):  # a count
        return f"{name}={raw!r} must be a whole number of {unit}, at least {bounds['ge']}"
    if error["type"] in ("float_parsing", "float_type"):
        return f"{name}={raw!r} is not a number of {unit}"
    if error["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        return f"{name} {_limits(bounds)}"
    return f"{name}={raw!r}: {error['msg']}"


def _limits(bounds: Mapping[str, Any]) -> str:
    """The declared bounds of a number of seconds, in words."""
    if dict(bounds) == {"ge": 0}:
        return "must not be negative"
    said = {"gt": "more than {}", "ge": "at least {}", "le": "at most {}"}
    parts = [said[kind].format(value) for kind, value in bounds.items()]
    if (most := bounds.get("le")) is not None and most % 86400 == 0:
        parts[-1] += f" ({most // 86400} days)"
    return "must be " + " and ".join(parts)


def _field_at(loc: tuple[int | str, ...]) -> FieldInfo:
    """The setting a validation error's location names."""
    return Settings.model_fields[str(loc[0])]


def _variable(info: FieldInfo) -> str:
    """The first environment variable a setting is read from."""
    return _declared(info)[0].split(", ")[0]


def _shown(value: object) -> str:
    """A plain default as the README shows it: a flag as ``1``/``0``, a whole number of seconds without ``.0``."""
    if isinstance(value, bool):
        return f"`{int(value)}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _extra(info: FieldInfo) -> Mapping[str, JsonValue]:
    """What ``_setting`` declared beside pydantic's own: the variable(s), the README's words, the unit."""
    extra = info.json_schema_extra
    assert extra is not None and not callable(extra)
    return extra


def _declared(info: FieldInfo) -> tuple[str, str | None]:
    """A field's environment variable(s) and the README's words for its default (None: the default itself)."""
    extra = _extra(info)
    env, shown = extra["env"], extra.get("shown")
    assert isinstance(env, str) and (shown is None or isinstance(shown, str))
    return env, shown


def settings_table() -> str:
    """The README's Configuration table, made from the declaration: one row per environment variable (a field
    that shares its variable with an earlier one, as ``journal_url`` shares WAN_MCP_DB, adds no row)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    seen: set[str] = set()
    for info in Settings.model_fields.values():
        env, shown = _declared(info)
        if env in seen:
            continue
        seen.add(env)
        shown = _shown(info.default) if shown is None else shown
        names = ", ".join(f"`{part}`" for part in env.split(", "))
        lines.append(f"| {names} | {shown} | {info.description} |")
    return "\n".join(lines)


def declared_variables() -> frozenset[str]:
    """Every environment variable a setting is read from."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        names.update(_declared(info)[0].split(", "))
    return frozenset(names)


SETTINGS_MARKERS: Final = ("<!-- settings:start -->\n", "\n<!-- settings:end -->")
"""The README holds ``settings_table()`` between these."""


def main(argv: Sequence[str]) -> int:
    """Print the settings table; with ``--write FILE...``, rewrite it between the markers in each file."""
    if argv[:1] != ["--write"]:
        print(settings_table())
        return 0
    start, end = SETTINGS_MARKERS
    for name in argv[1:]:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        old = text.split(start, 1)[1].split(end, 1)[0]
        path.write_text(text.replace(start + old + end, start + settings_table() + end), encoding="utf-8")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
