"""Settings from flags and TELECONSULT_* environment variables."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from media.relay_node_server import Address, parse_address
from rooms.appointment import LOCALES, JoinWindowPolicy

WEB_ROOT = Path(__file__).resolve().parent.parent / "web_client"


ICE_TRANSPORT_POLICIES = ("all", "relay")
# "off" only for tests and diagnostics: browsers then send media unencrypted.
E2EE_MODES = ("required", "off")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


RELAY_LINK_LABEL = b"teleconsult relay link v1"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class Settings:
    token_secret: str
    webhook_secret: str
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    join_window: JoinWindowPolicy = field(default_factory=JoinWindowPolicy)
    webhook_tolerance: timedelta = timedelta(minutes=5)
    webhook_max_body: int = 64 * 1024
    # Kept after the window closes only so late webhook redeliveries stay idempotent.
    retention_after_close: timedelta = timedelta(hours=24)
    ice_servers: tuple[IceServer, ...] = ()
    # With a shared secret, each connection gets its own short-lived TURN login.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: timedelta = timedelta(hours=2)
    # "relay": browsers send media only through TURN (never from their own addresses).
    ice_transport_policy: str = "all"
    # Shared state and Socket.IO fan-out for several nodes; one process in memory when unset.
    redis_url: str | None = None
    redis_prefix: str = "teleconsult:"
    web_root: Path = WEB_ROOT
    secrets_generated: bool = False
    e2ee: str = "required"
    # Integration API (/api/v1): disabled until a key is set.
    api_key: str | None = None
    # Consultation events back to the booking system; signed with events_secret
    # (the webhook secret when unset, so one secret is shared with one integrator).
    events_url: str | None = None
    events_secret: str | None = None
    events_first_retry: timedelta = timedelta(seconds=5)
    no_show_after: timedelta = timedelta(minutes=10)
    # A disconnected patient or guest keeps their place (or call) this long.
    resume_grace: timedelta = timedelta(minutes=2)
    # Shared with relay nodes (`teleconsult relay`): with it, rooms are placed on
    # relay nodes registered in Redis instead of a relay of this process.
    relay_secret: str | None = None
    # `/metrics` (Prometheus) on its own HOST:PORT, never the public port; off when unset.
    metrics_addr: str | None = None
    # The web client's language when neither the person, the appointment nor the
    # browser's languages pick one of LOCALES.
    default_locale: str = "fr"

    def __post_init__(self) -> None:
        if len(self.token_secret.encode()) < 32:
            raise ConfigError("TELECONSULT_TOKEN_SECRET must be at least 32 bytes")
        webhook_key(self.webhook_secret)
        if self.turn_urls and not self.turn_secret:
            raise ConfigError("TELECONSULT_TURN_URLS needs TELECONSULT_TURN_SECRET")
        if self.ice_transport_policy not in ICE_TRANSPORT_POLICIES:
            raise ConfigError("TELECONSULT_ICE_TRANSPORT_POLICY must be `all` or `relay`")
        if self.ice_transport_policy == "relay" and not self.turn_urls:
            raise ConfigError("TELECONSULT_ICE_TRANSPORT_POLICY=relay needs TELECONSULT_TURN_URLS")
        if self.redis_url is not None and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ConfigError("TELECONSULT_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("TELECONSULT_PUBLIC_URL must be an http(s) URL")
        if self.e2ee not in E2EE_MODES:
            raise ConfigError("TELECONSULT_E2EE must be `required` or `off`")
        if self.default_locale not in LOCALES:
            raise ConfigError("TELECONSULT_DEFAULT_LOCALE must be `fr` or `en`")
        if self.api_key is not None and len(self.api_key) < 24:
            raise ConfigError("TELECONSULT_API_KEY must be at least 24 characters")
        if self.events_url is not None and not self.events_url.startswith(("http://", "https://")):
            raise ConfigError("TELECONSULT_EVENTS_URL must be an http(s) URL")
        if self.events_secret is not None:
            webhook_keys(self.events_secret, "TELECONSULT_EVENTS_SECRET")
        if self.turn_secret is not None and len(self.turn_secret.encode()) < 16:
            raise ConfigError("TELECONSULT_TURN_SECRET must be at least 16 bytes")
        if not 0 <= self.port <= 65535:
            raise ConfigError("TELECONSULT_PORT must be a port number (0-65535)")
        if self.relay_secret is not None:
            if len(self.relay_secret.encode()) < 32:
                raise ConfigError("TELECONSULT_RELAY_SECRET must be at least 32 bytes")
            if self.redis_url is None:
                raise ConfigError(
                    "TELECONSULT_RELAY_SECRET (relay nodes) needs TELECONSULT_REDIS_URL, "
                    "where relay nodes register"
                )

        if self.metrics_addr is not None:
            metrics = metrics_address(self.metrics_addr)
            if metrics.port == self.port and (
                metrics.host == self.host or {metrics.host, self.host} & WILDCARD_HOSTS
            ):
                raise ConfigError(
                    "TELECONSULT_METRICS_ADDR must not be the public port: metrics have "
                    "their own listener"
                )

    @property
    def relay_link_secret(self) -> str:
        """The secret of the signalling-to-relay link: the relay secret, else derived.

        Derived from the token secret (which every node shares already) for the
        relay workers of `serve --redis-url` nodes: nothing more to configure or
        store, and knowing it reveals nothing of the token secret.
        """
        if self.relay_secret:
            return self.relay_secret
        derived = hmac.new(self.token_secret.encode(), RELAY_LINK_LABEL, hashlib.sha256)
        return derived.hexdigest()

    @property
    def events_key(self) -> bytes:
        return self.events_keys[0]

    @property
    def events_keys(self) -> tuple[bytes, ...]:
        """Every key outgoing events are signed with (several while a secret rotates)."""
        if self.events_secret is None:
            return (webhook_key(self.webhook_secret),)
        return webhook_keys(self.events_secret, "TELECONSULT_EVENTS_SECRET")


# Addresses that listen on every interface, the public port's included.
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104


def metrics_address(value: str) -> Address:
    """TELECONSULT_METRICS_ADDR (`--metrics-addr`): `HOST:PORT` or `[IPv6]:PORT`."""
    try:
        return parse_address(value, "TELECONSULT_METRICS_ADDR (--metrics-addr)")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def webhook_key(secret: str, setting: str = "TELECONSULT_WEBHOOK_SECRET") -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>`."""
    if not secret.startswith("whsec_"):
        raise ConfigError(f"{setting} must look like whsec_<base64>")
    encoded = secret.removeprefix("whsec_")
    try:
        # Padding is optional, as in the Standard Webhooks reference libraries.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:
        raise ConfigError(f"{setting} is not valid base64 after whsec_") from exc
    if len(key) < 24:
        raise ConfigError(f"{setting} must hold at least 24 bytes (whsec_ + base64 of 24+)")
    return key


def webhook_keys(secrets_text: str, setting: str) -> tuple[bytes, ...]:
    """Several space-separated secrets (rotation): each one signs, any one verifies."""
    keys = tuple(webhook_key(secret, setting) for secret in secrets_text.split())
    if not keys:
        raise ConfigError(f"{setting} is empty")
    return keys


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_token_secret() -> str:
    return secrets.token_urlsafe(48)


def _whole(env: Mapping[str, str], name: str, default: timedelta, unit: str) -> timedelta:
    """A non-negative whole number of `unit` (minutes, hours); `default` when unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number of {unit}") from exc
    if value < 0:
        raise ConfigError(f"{name} cannot be negative")
    return timedelta(**{unit: value})


def _minutes(env: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    return _whole(env, name, default, "minutes")


def _hours(env: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    return _whole(env, name, default, "hours")


def relay_workers(env: Mapping[str, str], given: int | None) -> int:
    """Relay worker processes: the flag, else TELECONSULT_RELAY_WORKERS, else one per core."""
    if given is None:
        raw = env.get("TELECONSULT_RELAY_WORKERS", "").strip()
        if not raw:
            return os.cpu_count() or 1
        try:
            given = int(raw)
        except ValueError as exc:
            raise ConfigError(
                "TELECONSULT_RELAY_WORKERS must be a whole number (0 = relay in this process)"
            ) from exc
    if given < 0:
        raise ConfigError("TELECONSULT_RELAY_WORKERS cannot be negative")
    return given


RELAY_WORKER_LISTEN = "TELECONSULT_RELAY_WORKER_LISTEN"


def relay_worker_listen(
    env: Mapping[str, str], given: str | None, workers: int
) -> tuple[str, int] | None:
    """Where a serve node's relay workers listen and register: `HOST` or `HOST:FIRST_PORT`.

    None when unset (the address this machine reaches Redis from, any free port).
    Worker i listens on FIRST_PORT + i.
    """
    raw = (given if given is not None else env.get(RELAY_WORKER_LISTEN, "")).strip()
    if not raw:
        return None
    expected = f"{RELAY_WORKER_LISTEN} must be HOST or HOST:PORT (the first worker's port)"
    host, port = raw, 0
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{expected}, got {raw!r}")
        port_text = rest[1:]
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        port_text = ""  # A host name, an IPv4 address or a bare IPv6 address.
    if port_text:
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"{expected}, got {raw!r}") from None
        if not 1 <= port <= 65535 - max(workers - 1, 0):
            raise ConfigError(f"{RELAY_WORKER_LISTEN} port must leave room for {workers} workers")
    if not host:
        raise ConfigError(f"{expected}, got {raw!r}")
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        raise ConfigError(
            f"{RELAY_WORKER_LISTEN} is registered as is for other nodes to connect to: "
            "give this machine's private address, not a wildcard"
        )
    return host, port


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(url.strip() for url in env.get(name, "").split(",") if url.strip())


def _ice_servers(env: Mapping[str, str]) -> tuple[IceServer, ...]:
    urls = _urls(env, "TELECONSULT_STUN_URLS")
    return (IceServer(urls),) if urls else ()


def settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    public_url: str | None = None,
    redis_url: str | None = None,
    metrics_addr: str | None = None,
) -> Settings:
    """Read settings; generate the secrets when none are configured (demo mode)."""
    env = os.environ if env is None else env
    token_secret = env.get("TELECONSULT_TOKEN_SECRET") or ""
    webhook_secret = env.get("TELECONSULT_WEBHOOK_SECRET") or ""
    # Throwaway secrets only for a demo (neither set): with one of them set this is a
    # deployment, and a generated webhook secret would refuse every booking.
    if bool(token_secret) != bool(webhook_secret):
        missing, present = (
            ("TELECONSULT_WEBHOOK_SECRET", "TELECONSULT_TOKEN_SECRET")
            if token_secret
            else ("TELECONSULT_TOKEN_SECRET", "TELECONSULT_WEBHOOK_SECRET")
        )
        raise ConfigError(
            f"{missing} is not set while {present} is: set both (or neither, for a demo "
            "with throwaway secrets)"
        )
    generated = not token_secret
    if generated:
        token_secret, webhook_secret = new_token_secret(), new_webhook_secret()
    host = host or env.get("TELECONSULT_HOST") or "127.0.0.1"
    try:
        port = port if port is not None else int(env.get("TELECONSULT_PORT") or 8080)
    except ValueError as exc:
        raise ConfigError("TELECONSULT_PORT must be a port number (0-65535)") from exc
    public_url = public_url or env.get("TELECONSULT_PUBLIC_URL") or f"http://{host}:{port}"
    window = JoinWindowPolicy(
        opens_before=_minutes(env, "TELECONSULT_OPENS_BEFORE_MINUTES", timedelta(minutes=15)),
        closes_after=_minutes(env, "TELECONSULT_CLOSES_AFTER_MINUTES", timedelta(minutes=60)),
    )
    return Settings(
        token_secret=token_secret,
        webhook_secret=webhook_secret,
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        join_window=window,
        ice_servers=_ice_servers(env),
        turn_urls=_urls(env, "TELECONSULT_TURN_URLS"),
        turn_secret=env.get("TELECONSULT_TURN_SECRET") or None,
        ice_transport_policy=env.get("TELECONSULT_ICE_TRANSPORT_POLICY") or "all",
        redis_url=redis_url or env.get("TELECONSULT_REDIS_URL") or None,
        redis_prefix=env.get("TELECONSULT_REDIS_PREFIX") or "teleconsult:",
        secrets_generated=generated,
        e2ee=env.get("TELECONSULT_E2EE") or "required",
        api_key=env.get("TELECONSULT_API_KEY") or None,
        events_url=env.get("TELECONSULT_EVENTS_URL") or None,
        events_secret=env.get("TELECONSULT_EVENTS_SECRET") or None,
        no_show_after=_minutes(env, "TELECONSULT_NO_SHOW_AFTER_MINUTES", timedelta(minutes=10)),
        resume_grace=_minutes(env, "TELECONSULT_RESUME_GRACE_MINUTES", timedelta(minutes=2)),
        relay_secret=env.get("TELECONSULT_RELAY_SECRET") or None,
        retention_after_close=_hours(env, "TELECONSULT_RETENTION_HOURS", timedelta(hours=24)),
        metrics_addr=metrics_addr or env.get("TELECONSULT_METRICS_ADDR") or None,
        default_locale=env.get("TELECONSULT_DEFAULT_LOCALE") or "fr",
    )
