"""Process settings, read once from the environment (RUNNING.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite://./settlegraph.db"
DEFAULT_MAX_QUERY_COST = 50_000  # SPEC §11: the static cost above which an operation is refused


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _positive(value: str | None, default: int, name: str) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


_NATS = {"nats_url": "SETTLEGRAPH_NATS_URL", "nats_stream": "SETTLEGRAPH_NATS_STREAM",
         "nats_subject": "SETTLEGRAPH_NATS_SUBJECT", "nats_durable": "SETTLEGRAPH_NATS_DURABLE",
         "nats_deadletter_subject": "SETTLEGRAPH_NATS_DEADLETTER_SUBJECT",
         "nats_deadletter_stream": "SETTLEGRAPH_NATS_DEADLETTER_STREAM",
         "nats_events_prefix": "SETTLEGRAPH_NATS_EVENTS_PREFIX", "nats_events_stream": "SETTLEGRAPH_NATS_EVENTS_STREAM"}


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    api_keys: str = ""
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None  # an OIDC provider's JWKS: tokens signed by its (rotating) keys
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the API from a browser
    four_eyes: bool = True
    log_level: str = "INFO"
    open_access: bool = False  # set by `serve` on loopback with no credentials configured
    max_query_cost: int = DEFAULT_MAX_QUERY_COST
    idempotency_hours: int = 24  # how long a mutation's first answer is kept for its idempotency key (SPEC §12)
    audit_seal_seconds: int = 10  # how often the audit log is sealed into its hash chain (SPEC §10)
    # Event streams (SPEC §13, README "Event streams"): without a NATS URL nothing is consumed or relayed.
    nats_url: str | None = None
    nats_stream: str = "SETTLEGRAPH_TRANSFERS"  # the stream of committed transfers (created if missing)
    nats_subject: str = "hub.transfers.committed"
    nats_durable: str = "settlegraph"  # the durable pull consumer every `consume` process shares
    nats_deadletter_subject: str = "settlegraph.deadletter.transfers"
    nats_deadletter_stream: str = "SETTLEGRAPH_DEADLETTER"
    nats_events_prefix: str = "settlegraph.events"  # the outbox's subjects: <prefix>.batch.<status>, ...
    nats_events_stream: str = "SETTLEGRAPH_EVENTS"
    nats_ack_wait_seconds: int = 30  # a delivered message not acknowledged within this is delivered again
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://"))

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_keys.strip() or self.jwt_secret or self.jwt_public_key or self.jwt_jwks_url)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        public_key = env.get("SETTLEGRAPH_JWT_PUBLIC_KEY")
        key_file = env.get("SETTLEGRAPH_JWT_PUBLIC_KEY_FILE")
        if not public_key and key_file:
            with open(key_file, encoding="utf-8") as handle:
                public_key = handle.read()
        values: dict[str, object] = {
            "database_url": env.get("SETTLEGRAPH_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "api_keys": env.get("SETTLEGRAPH_API_KEYS", ""),
            "jwt_secret": env.get("SETTLEGRAPH_JWT_SECRET") or None,
            "jwt_public_key": public_key or None,
            "jwt_audience": env.get("SETTLEGRAPH_JWT_AUDIENCE") or None,
            "jwt_jwks_url": env.get("SETTLEGRAPH_JWT_JWKS_URL") or None,
            "cors_origins": tuple(o.strip().rstrip("/") for o in env.get("SETTLEGRAPH_CORS_ORIGINS", "").split(",")
                                  if o.strip()),
            "four_eyes": _bool(env.get("SETTLEGRAPH_FOUR_EYES"), True),
            "log_level": env.get("SETTLEGRAPH_LOG_LEVEL", "INFO"),
            "open_access": _bool(env.get("SETTLEGRAPH_OPEN_ACCESS"), False),
            "idempotency_hours": _positive(env.get("SETTLEGRAPH_IDEMPOTENCY_HOURS"), 24,
                                           "SETTLEGRAPH_IDEMPOTENCY_HOURS"),
            "audit_seal_seconds": _positive(env.get("SETTLEGRAPH_AUDIT_SEAL_SECONDS"), 10,
                                            "SETTLEGRAPH_AUDIT_SEAL_SECONDS"),
            "max_query_cost": _positive(env.get("SETTLEGRAPH_MAX_QUERY_COST"), DEFAULT_MAX_QUERY_COST,
                                        "SETTLEGRAPH_MAX_QUERY_COST"),
        }
        values["nats_ack_wait_seconds"] = _positive(env.get("SETTLEGRAPH_NATS_ACK_WAIT_SECONDS"), 30,
                                                    "SETTLEGRAPH_NATS_ACK_WAIT_SECONDS")
        for name, variable in _NATS.items():
            if env.get(variable, "").strip():
                values[name] = env[variable].strip()
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
