"""viewer: who the caller is, so a frontend offers only the actions the caller's roles allow."""
from __future__ import annotations

import pytest

QUERY = "{ viewer { name roles participantId } }"


@pytest.mark.parametrize(("role", "expected"), [
    ("operator", {"name": "oscar-operator", "roles": ["OPERATOR"], "participantId": None}),
    ("settler", {"name": "sam-settler", "roles": ["SETTLER"], "participantId": None}),
    ("participant", {"name": "pat-participant", "roles": ["PARTICIPANT"], "participantId": "dfsp-p"}),
])
async def test_viewer_names_the_caller_and_its_roles(gql, role, expected):
    assert (await gql(QUERY, role=role))["viewer"] == expected


async def test_viewer_needs_a_valid_key(gql):
    body = await gql.raw(QUERY, role=None, headers={"Authorization": "Bearer not-a-key"})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
