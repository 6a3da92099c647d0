"""The published JSON Schema files: up to date with the models, and agreeing with the pipeline's decoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from common.contract import InvalidPost, decode_post
from common.contract_schema import SCHEMA_DIR, SCHEMAS, render, write

LIMIT = 5000


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_checked_in_schema_is_what_the_models_generate(name: str) -> None:
    checked_in = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert checked_in == render(name), f"docs/contract/{name} is out of date with common/contract.py: run make schema"


def test_the_command_writes_every_schema(tmp_path: Path) -> None:
    assert [path.name for path in write(tmp_path)] == list(SCHEMAS)
    for name in SCHEMAS:
        Draft202012Validator.check_schema(json.loads((tmp_path / name).read_text(encoding="utf-8")))


POST = {"author": "ada", "source": "kcat", "text": "What a lovely morning"}


@pytest.mark.parametrize(
    "document",
    [
        POST,
        {**POST, "id": "p-1", "created_at": 1_700_000_000.5, "schema_version": 1},
        {**POST, "lang": "en-GB"},
        {**POST, "lang": None},
        {**POST, "lang": "de"},  # a valid post; the pipeline dead-letters it only when its model does not read German
        {**POST, "unknown": {"fields": "are ignored"}},
        {"source": "kcat", "text": "no author"},
        {**POST, "author": ""},
        {**POST, "text": 5},
        {**POST, "created_at": -1},
        {**POST, "created_at": "yesterday"},
        {**POST, "lang": "en_US"},
        {**POST, "lang": 5},
        {**POST, "schema_version": 2},
    ],
)
def test_the_post_schema_accepts_what_the_pipeline_decodes(document: dict) -> None:
    """Within what JSON Schema can say (it cannot see that a text has a visible character, for one)."""
    schema = json.loads((SCHEMA_DIR / "post.schema.json").read_text(encoding="utf-8"))
    valid_by_schema = Draft202012Validator(schema).is_valid(document)
    try:
        decode_post(json.dumps(document).encode(), LIMIT)
    except InvalidPost:
        decoded = False
    else:
        decoded = True
    assert valid_by_schema == decoded
