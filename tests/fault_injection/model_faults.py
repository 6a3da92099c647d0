"""A real Flair model whose forward pass fails on marked texts: for in-process tests and ``sitecustomize``."""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any


def die(what: str, how: signal.Signals = signal.SIGKILL) -> None:
    """End this process at once: SIGKILL as the kernel's OOM killer or an operator does, SIGABRT as a native
    library's failed assertion does."""
    sys.stderr.write(f"fault injection: {what} in pid {os.getpid()}\n")
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the checkout
    os.kill(os.getpid(), how)


def failing_encoder(encode: Callable[..., Any], marker: str, crash: bool = False) -> Callable[..., Any]:
    """Wraps ``DefaultClassifier._encode_data_points`` (the forward pass): it raises a RuntimeError, or with
    ``crash`` aborts the process like a native crash, on any batch holding a text that contains ``marker``."""

    def encode_with_fault(self: Any, sentences: Any, data_points: Any) -> Any:
        if any(marker in sentence.to_original_text() for sentence in sentences):
            if crash:
                die(f"the model crashed on a text containing {marker!r}", signal.SIGABRT)
            raise RuntimeError(f"injected model failure on a text containing {marker!r}")
        return encode(self, sentences, data_points)

    return encode_with_fault
