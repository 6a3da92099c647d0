"""The message contract published as JSON Schema files, generated from the pydantic models in ``common.contract``.

``python -m common.contract_schema`` (``make schema``) writes them into ``docs/contract/``; a unit test fails when
a checked-in file differs from what the models generate. A post is described as the pipeline reads it (what a
producer may send: absent fields have defaults); a result and a dead letter as the pipeline writes them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from common.contract import DeadLetter, Post, SentimentResult
from common.logs import configure_logging
from common.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

SCHEMA_DIR = PROJECT_ROOT / "docs" / "contract"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# File name -> the model, and whether the schema describes what the pipeline reads or what it writes.
SCHEMAS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "post.schema.json": (Post, "validation"),
    "sentiment-result.schema.json": (SentimentResult, "serialization"),
    "dead-letter.schema.json": (DeadLetter, "serialization"),
}


def render(name: str) -> str:
    """The text of one schema file."""
    model, mode = SCHEMAS[name]
    schema = {"$schema": DIALECT, **model.model_json_schema(mode=mode)}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    configure_logging()
    for path in write():
        logger.info("Wrote %s", path.relative_to(PROJECT_ROOT))


if __name__ == "__main__":
    main()
