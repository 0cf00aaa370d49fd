"""Who is calling, and with which role (SPEC §10, RUNNING.md).

Credentials: static API keys (`SETTLEGRAPH_API_KEYS` = `key:ROLE[:name]`, comma separated) and JWTs
(HS256 secret or RS256 public key, roles in a `roles` claim, name in `sub`). The caller's name is the
actor written into change logs, batch history and the audit log.
"""
from __future__ import annotations

import asyncio
import enum
import hmac
from dataclasses import dataclass
from typing import Any

import jwt

from app.core import errors
from app.core.errors import DomainError
from app.core.settings import Settings


class Role(enum.StrEnum):
    VIEWER = "VIEWER"
    OPERATOR = "OPERATOR"
    SETTLER = "SETTLER"
    INGEST = "INGEST"
    ADMIN = "ADMIN"
    AUDITOR = "AUDITOR"  # reads everything, the audit log included; mutates nothing
    PARTICIPANT = "PARTICIPANT"  # a DFSP's own staff: reads its own figures only; mutates nothing


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[Role]
    participant_id: str | None = None  # set for a PARTICIPANT: the one participant whose figures it may read

    @property
    def scope(self) -> str | None:
        """The participant a PARTICIPANT caller is bound to; None for a caller who reads every participant."""
        return self.participant_id if Role.PARTICIPANT in self.roles and Role.ADMIN not in self.roles else None

    def has(self, role: Role) -> bool:
        """ADMIN holds every role; every authenticated role may read (VIEWER)."""
        return Role.ADMIN in self.roles or role in self.roles or role is Role.VIEWER


OPEN_ACCESS_PRINCIPAL = Principal("anonymous-admin", frozenset({Role.ADMIN}))
PARTICIPANT_CLAIM = "participant"  # the JWT claim that binds a PARTICIPANT token to its participant id


def parse_api_keys(spec: str) -> dict[str, Principal]:
    keys: dict[str, Principal] = {}
    for index, entry in enumerate(part.strip() for part in spec.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3, 4) or not parts[0]:
            raise ValueError(f"SETTLEGRAPH_API_KEYS entry {index + 1} is not key:ROLE[:name] "
                             "(key:PARTICIPANT:name:participantId)")
        key, role_name = parts[0], parts[1].strip().upper()
        try:
            role = Role(role_name)
        except ValueError:
            raise ValueError(f"SETTLEGRAPH_API_KEYS entry {index + 1}: unknown role {role_name}") from None
        participant = parts[3].strip() if len(parts) == 4 else None
        if (role is Role.PARTICIPANT) != bool(participant):
            raise ValueError(f"SETTLEGRAPH_API_KEYS entry {index + 1}: a participant id goes with role "
                             "PARTICIPANT, and PARTICIPANT needs one (key:PARTICIPANT:name:participantId)")
        name = parts[2].strip() if len(parts) >= 3 and parts[2].strip() else f"{role.value.lower()}-{index + 1}"
        keys[key] = Principal(name, frozenset({role}), participant)
    return keys


# An OIDC provider's keys (SETTLEGRAPH_JWT_JWKS_URL): fetched and cached; a token signed by a key not seen yet makes
# the set be fetched again (the provider rotated its keys), at most once per JWKS_COOLDOWN seconds; a key the provider
# no longer publishes is refused from then on (keys are looked up in the current set, never cached one by one).
JWKS_COOLDOWN = 5.0
JWKS_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = parse_api_keys(settings.api_keys)
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=False, lifespan=300, timeout=5,
                                    cooldown_duration=JWKS_COOLDOWN) if settings.jwt_jwks_url else None

    async def identify(self, authorization: str | None) -> Principal:
        """`authenticate`, with tokens of an OIDC provider checked against its published keys (fetched off the
        event loop: the first use and a rotation make an HTTP request)."""
        token = (authorization or "").strip().partition(" ")[2].strip()
        if self.jwks is None or self.open_access or token.count(".") != 2 or self._api_key(token) is not None:
            return self.authenticate(authorization)
        try:
            signing = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWTError as exc:
            if self.settings.jwt_secret or self.settings.jwt_public_key:
                return self.authenticate(authorization)  # not one of the provider's: maybe a local token
            raise DomainError(errors.UNAUTHENTICATED, f"invalid token: {exc}") from None
        return self._from_jwt(token, signing.key, JWKS_ALGORITHMS)

    def _api_key(self, token: str) -> Principal | None:
        for key, principal in self.keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                return principal
        return None

    @property
    def open_access(self) -> bool:
        return self.settings.open_access and not self.settings.has_credentials

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization` header value; DomainError(UNAUTHENTICATED) if none."""
        if self.open_access:
            return OPEN_ACCESS_PRINCIPAL
        if not authorization:
            raise DomainError(errors.UNAUTHENTICATED, "missing credentials: send Authorization: Bearer <key>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise DomainError(errors.UNAUTHENTICATED, "Authorization must be 'Bearer <key>'")
        principal = self._api_key(token)
        if principal is not None:
            return principal
        if token.count(".") == 2 and (self.settings.jwt_secret or self.settings.jwt_public_key):
            if self.settings.jwt_public_key:
                return self._from_jwt(token, self.settings.jwt_public_key, ["RS256"])
            return self._from_jwt(token, self.settings.jwt_secret or "", ["HS256"])
        raise DomainError(errors.UNAUTHENTICATED, "unknown API key or token")

    def _from_jwt(self, token: str, key: Any, algorithms: list[str]) -> Principal:
        options: jwt.types.Options = {"require": ["exp", "sub"], "verify_aud": self.settings.jwt_audience is not None}
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.settings.jwt_audience, options=options
            )
        except jwt.PyJWTError as exc:
            raise DomainError(errors.UNAUTHENTICATED, f"invalid token: {exc}") from None
        raw_roles = claims.get("roles") or []
        if isinstance(raw_roles, str):
            raw_roles = [raw_roles]
        roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__)
        if not roles:
            raise DomainError(errors.FORBIDDEN, "token carries no settlegraph role")
        participant = claims.get(PARTICIPANT_CLAIM)
        if Role.PARTICIPANT in roles:
            if not isinstance(participant, str) or not participant:
                raise DomainError(errors.FORBIDDEN, f"a PARTICIPANT token needs a {PARTICIPANT_CLAIM!r} claim")
            roles = frozenset({Role.PARTICIPANT})  # bound to one participant: no other role widens it
        return Principal(str(claims["sub"]), roles, participant if Role.PARTICIPANT in roles else None)
