"""A Flair transformer encoder in ONNX Runtime: exporting it to a file, and running a file in its place.

Flair 0.15 exports with ``TransformerEmbeddings.export_onnx``, which calls ``torch.onnx.export`` without saying
which exporter; torch 2.15's default, the dynamo-based one, fails on this encoder
(``PendingUnbackedSymbolNotFound``), while the TorchScript exporter (``dynamo=False``) works, so the export runs
with that one. At run time Flair's ``TransformerOnnxDocumentEmbeddings`` prepares the same tensors as the torch
encoder and hands them to an ONNX Runtime session; the session here is made with this project's thread settings.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import onnxruntime
import torch
from flair.data import Sentence
from flair.embeddings import TransformerDocumentEmbeddings
from flair.embeddings.transformer import TransformerOnnxDocumentEmbeddings

logger = logging.getLogger(__name__)

PROVIDERS = ["CPUExecutionProvider"]
# Whether ONNX Runtime's idle intra-op threads spin for the next parallel region, as torch's OpenMP threads do
# by default. Off for the same reason as OMP_WAIT_POLICY=PASSIVE: between passes Flair's Python and between batches
# the worker's Kafka work need the cores (spinning cost int8 a quarter of its rate: docs/benchmarks/tuning.md, 5).
SPIN = False


class OnnxEncoder(TransformerOnnxDocumentEmbeddings):
    """Flair's ONNX document embeddings on a session with ``threads`` intra-op threads and no spinning."""

    def __init__(self, onnx_model: str, threads: int, **kwargs: Any) -> None:
        self.threads = threads  # before Flair's __init__, which makes the session
        super().__init__(onnx_model=onnx_model, providers=PROVIDERS, **kwargs)

    def create_session(self) -> None:
        self.session = new_session(self.onnx_model, self.threads)


def new_session(onnx_file: str, threads: int, spin: bool = SPIN) -> onnxruntime.InferenceSession:
    """A session as a worker runs it: ``threads`` intra-op threads, one inter-op thread, idle threads ``spin``."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is a chain: nothing to run side by side
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return onnxruntime.InferenceSession(onnx_file, sess_options=options, providers=PROVIDERS)


def is_exportable(embeddings: Any) -> bool:
    """Whether a model's embeddings are a transformer encoder Flair can run in ONNX Runtime."""
    return isinstance(embeddings, TransformerDocumentEmbeddings)


def run_in_onnx(embeddings: TransformerDocumentEmbeddings, onnx_file: Path, threads: int) -> OnnxEncoder:
    """An encoder that runs ``onnx_file`` (an export of ``embeddings``) and prepares its input as they do."""
    return OnnxEncoder(str(onnx_file), threads, **embeddings.to_args())


@contextlib.contextmanager
def _torchscript_exporter() -> Iterator[None]:
    export = torch.onnx.export
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        yield
    finally:
        torch.onnx.export = export


def export(embeddings: TransformerDocumentEmbeddings, path: Path, example_texts: Sequence[str]) -> None:
    """Write ``embeddings`` (in eval mode) as an ONNX graph to ``path``, traced on ``example_texts``.

    Batch size and sequence length stay dynamic; the examples should differ in length.
    """
    with _torchscript_exporter(), torch.no_grad(), warnings.catch_warnings():
        # The tracer warns of every constant it records (the attention mask's 1.0 among them) and of TorchScript's
        # deprecation; whether the graph computes what torch does is what the export's check measures.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        encoder = embeddings.export_onnx(path, [Sentence(text) for text in example_texts], providers=PROVIDERS)
    encoder.remove_session()
    logger.info("exported the encoder to %s (%.0f MB)", path, path.stat().st_size / 1e6)
