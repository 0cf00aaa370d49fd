import pytest

from app.auth import Authenticator, Role, parse_api_keys
from app.core.errors import DomainError
from app.core.settings import Settings


def test_api_keys_parse_roles_and_names():
    keys = parse_api_keys("k1:ADMIN:alice, k2:viewer")
    assert keys["k1"].name == "alice" and keys["k1"].roles == {Role.ADMIN}
    assert keys["k2"].roles == {Role.VIEWER} and keys["k2"].name == "viewer-2"


@pytest.mark.parametrize("spec", ["k1", "k1:KING", ":ADMIN"])
def test_bad_key_specs_are_refused(spec):
    with pytest.raises(ValueError):
        parse_api_keys(spec)


def test_admin_holds_every_role_and_everyone_reads():
    auth = Authenticator(Settings(api_keys="a:ADMIN,o:OPERATOR"))
    admin, operator = auth.authenticate("Bearer a"), auth.authenticate("Bearer o")
    assert all(admin.has(r) for r in Role)
    assert operator.has(Role.OPERATOR) and operator.has(Role.VIEWER) and not operator.has(Role.SETTLER)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic a", "Bearer nope"])
def test_missing_or_wrong_credentials(header):
    with pytest.raises(DomainError) as caught:
        Authenticator(Settings(api_keys="a:ADMIN")).authenticate(header)
    assert caught.value.code == "UNAUTHENTICATED"


def test_jwt_hs256_roles_claim():
    import time

    import jwt

    token = jwt.encode({"sub": "svc-x", "roles": ["SETTLER"], "exp": int(time.time()) + 60}, "s3cret" * 6,
                       algorithm="HS256")
    principal = Authenticator(Settings(jwt_secret="s3cret" * 6)).authenticate(f"Bearer {token}")
    assert principal.name == "svc-x" and principal.roles == {Role.SETTLER}
    expired = jwt.encode({"sub": "x", "roles": ["ADMIN"], "exp": 1}, "s3cret" * 6, algorithm="HS256")
    with pytest.raises(DomainError):
        Authenticator(Settings(jwt_secret="s3cret" * 6)).authenticate(f"Bearer {expired}")


def test_open_access_only_without_credentials():
    assert Authenticator(Settings(open_access=True)).authenticate(None).has(Role.ADMIN)
    with pytest.raises(DomainError):
        Authenticator(Settings(open_access=True, api_keys="a:ADMIN")).authenticate(None)


def test_a_participant_key_names_its_participant():
    keys = parse_api_keys("k1:PARTICIPANT:dfsp-a-staff:dfsp-a, k2:VIEWER:vera")
    assert keys["k1"].roles == {Role.PARTICIPANT} and keys["k1"].scope == "dfsp-a"
    assert keys["k2"].scope is None
    for broken in ("k:PARTICIPANT:name", "k:VIEWER:name:dfsp-a", "k:PARTICIPANT:name:"):
        with pytest.raises(ValueError, match="participant"):
            parse_api_keys(broken)


def test_a_participant_token_needs_its_claim():
    import time

    import jwt

    auth = Authenticator(Settings(jwt_secret="s" * 32))
    good = jwt.encode({"sub": "staff", "roles": ["PARTICIPANT", "ADMIN"], "participant": "dfsp-a",
                       "exp": int(time.time()) + 60}, "s" * 32, algorithm="HS256")
    principal = auth.authenticate(f"Bearer {good}")
    assert principal.roles == {Role.PARTICIPANT} and principal.scope == "dfsp-a"  # no role widens it
    missing = jwt.encode({"sub": "staff", "roles": ["PARTICIPANT"], "exp": int(time.time()) + 60}, "s" * 32,
                         algorithm="HS256")
    with pytest.raises(DomainError, match="participant"):
        auth.authenticate(f"Bearer {missing}")
