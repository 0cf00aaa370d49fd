"""schema.graphql is the printed schema: it must not drift from the code."""
from pathlib import Path

from graphql_schema.schema import schema

PRINTED = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_printed_schema_matches_code() -> None:
    assert PRINTED.read_text() == schema.as_str() + "\n", (
        "schema.graphql drifted: run `settlegraph schema -o schema.graphql`"
    )
