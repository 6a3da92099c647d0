"""Fault injection into the product's own processes, for tests: put this directory on PYTHONPATH.

Python imports ``sitecustomize`` at start-up, in every process, before anything else. This one does
nothing unless ``SENTISTREAM_TEST_FAULT`` is set (``tests.fault_injection.environment`` builds the
variables). Then, once the real module it targets is imported, it wraps one function of it:

- ``crash:<point>``: the worker SIGKILLs itself at ``<point>`` of its ``SENTISTREAM_TEST_FAULT_AT``-th
  checkpoint that gets there, once per test (a marker file records that it fired). Points:
  ``before_flush`` (posts gathered, nothing scored), ``after_produce`` (results delivered to the broker in
  the open transaction), ``in_send_offsets`` (offsets added to the transaction, not committed),
  ``before_commit``, ``after_commit``.
- ``model_raises:<text>`` / ``model_crashes:<text>``: the real model's forward pass raises a RuntimeError
  (or the process dies at once, as a native crash would) on any batch holding a post that contains ``<text>``.

Only processes whose command line names ``SENTISTREAM_TEST_FAULT_ROLE`` (default ``classify``) are touched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_faults import die, failing_encoder  # this directory is on sys.path

FAULT = os.environ.get("SENTISTREAM_TEST_FAULT", "")
ROLE = os.environ.get("SENTISTREAM_TEST_FAULT_ROLE", "classify")
AT = int(os.environ.get("SENTISTREAM_TEST_FAULT_AT", "3"))
FIRED = Path(os.environ.get("SENTISTREAM_TEST_FAULT_FIRED", "/nonexistent/fired"))


class _Trigger:
    """Counts the calls that reach the point; kills at the AT-th, once per test."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == AT and not FIRED.exists():
            FIRED.touch()
            die(f"{FAULT} fired")


def _wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    setattr(owner, name, make(getattr(owner, name)))


def _crash_points(module_name: str, module: Any, point: str) -> None:
    """The checkpoint's steps in order: the sink scores and writes (ClassifierSink.flush), the producer delivers
    (InternalProducer.flush), then the transaction takes the offsets and commits (Producer methods)."""
    trigger = _Trigger()
    before, after = {
        ("pipeline.classifier_sink", "before_flush"): ((module, "ClassifierSink", "flush"), None),
        ("quixstreams.internal_producer", "after_produce"): (None, (module, "InternalProducer", "flush")),
        ("quixstreams.kafka.producer", "in_send_offsets"): (None, (module, "Producer", "send_offsets_to_transaction")),
        ("quixstreams.kafka.producer", "before_commit"): ((module, "Producer", "commit_transaction"), None),
        ("quixstreams.kafka.producer", "after_commit"): (None, (module, "Producer", "commit_transaction")),
    }.get((module_name, point), (None, None))
    target = before or after
    if target is None:
        return
    _, owner, method = target

    def make(call: Callable[..., Any]) -> Callable[..., Any]:
        def call_with_fault(self: Any, *args: Any, **kwargs: Any) -> Any:
            if before is not None and getattr(self, "_pending", True):  # the sink: only a flush with posts counts
                trigger()
            result = call(self, *args, **kwargs)
            if after is not None:
                trigger()
            return result

        return call_with_fault

    _wrap(getattr(module, owner), method, make)


def _patch(module_name: str, module: Any) -> None:
    kind, _, argument = FAULT.partition(":")
    if kind == "crash":
        _crash_points(module_name, module, argument)
    elif kind in ("model_raises", "model_crashes") and module_name == "flair.nn.model":
        _wrap(
            module.DefaultClassifier,
            "_encode_data_points",
            lambda encode: failing_encoder(encode, argument, crash=kind == "model_crashes"),
        )


_TARGETS = {"pipeline.classifier_sink", "quixstreams.internal_producer", "quixstreams.kafka.producer", "flair.nn.model"}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            _patch(name, module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if FAULT and ROLE in sys.argv:
    sys.meta_path.insert(0, _PatchAfterImport())
