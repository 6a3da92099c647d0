"""Which model the classifier workers serve: the app's latest choice on the control topic, else the settings.

The supervisor asks :class:`ModelSelector` on every tick; it never blocks (the control topic is read without
waiting, and a model is found by looking at the models folder). Whatever anyone writes to the control topic,
only a valid :class:`~common.contract.ModelChoice` under its key counts; anything else is logged and ignored.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from common.contract import MODEL_CHOICE_KEY, ModelChoice
from common.settings import Settings
from sentiment_model import registry, runtimes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What to serve: ``model`` (a path or pretrained name; None while there is none yet) and its version, or why
    there is nothing to serve. ``export``: when the checked ONNX export beside the model was written (None: there
    is none, or the workers run torch anyway), so that workers load an export made after they started."""

    spec: str
    model: str | None
    version: str | None
    waiting_for: str | None
    export: str | None = None


class ChoiceReader:
    """The latest valid model choice on the control topic, read as it arrives (no consumer group, no commits)."""

    def __init__(self, settings: Settings):
        self._topic = settings.topic_pipeline_control
        self._consumer = Consumer(
            {
                **settings.kafka_client_config(),
                "group.id": f"sentistream-control-{uuid.uuid4().hex}",  # never joined: partitions are assigned
                "enable.auto.commit": False,
                "client.id": "sentistream-supervisor-control",
                "error_cb": lambda error: logger.debug("Control topic reader: %s", error.str()),
            }
        )
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        self.latest: ModelChoice | None = None

    def poll(self) -> ModelChoice | None:
        """Take in what has arrived since the last call; the latest valid choice (None: none made)."""
        try:
            messages = self._consumer.consume(num_messages=100, timeout=0)
        except KafkaException as exc:
            logger.debug("Control topic not read: %s", exc)
            return self.latest
        for message in messages:
            if message.error() is not None or message.key() != MODEL_CHOICE_KEY:
                continue
            value = message.value()
            if value is None:  # a tombstone: the choice is withdrawn, the settings decide again
                self.latest = None
                continue
            try:
                self.latest = ModelChoice.model_validate_json(value)
            except ValidationError as exc:
                logger.warning("Ignoring an invalid model choice at offset %d: %s", message.offset(), exc)
        return self.latest

    def close(self) -> None:
        self._consumer.close()


def _export_version(model_file: Path, runtime: str) -> str | None:
    if runtime == runtimes.TORCH:
        return None
    try:
        return registry.model_version(runtimes.validation_path(model_file))
    except OSError:
        return None


def target_for(spec: str, models_dir: Path, runtime: str = runtimes.TORCH) -> Target:
    """What ``spec`` (a registry spec) means now, with the folder's models as they are; ``runtime``: what the
    workers ask to run its encoder on (``SENTISTREAM_MODEL_RUNTIME``)."""
    model = registry.resolve(spec, models_dir)
    if model is None:
        if spec == registry.AUTO:
            why = f"no model is built in {models_dir} yet (the build makes the quick one first, in minutes)"
        else:
            why = f"model {spec!r} is not built yet"
        return Target(spec, None, None, why)
    try:
        version = registry.model_version(Path(model)) if model.endswith(".pt") else None
    except OSError:  # removed since it was found
        return Target(spec, None, None, f"model {spec!r} is not there any more")
    export = _export_version(Path(model), runtime) if model.endswith(".pt") else None
    return Target(spec, model, version, None, export)


class ModelSelector:
    """The model to serve: the app's latest choice, else ``settings.model``."""

    def __init__(self, settings: Settings, reader: ChoiceReader | None):
        self._settings = settings
        self._reader = reader

    def target(self) -> Target:
        choice = self._reader.poll() if self._reader is not None else None
        spec = choice.model if choice is not None else self._settings.model
        return target_for(spec, self._settings.models_dir, self._settings.model_runtime)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
