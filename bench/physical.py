"""How close the model runs to the machine's limit: FLOPs per post against measured matrix-multiply throughput.

The encoder's work per post, from its shape and the mean token count of the benchmark's posts (no padding): per
layer, the Q, K, V and output projections (4 matrices of hidden x hidden), the attention scores and their
weighted sum (2 products of tokens x tokens x hidden) and the feed-forward block (2 matrices of hidden x
intermediate), 2 FLOPs per multiply-add. Everything else (layer norms, softmax, pooling, the head) is under 2 %.

The machine's throughput is measured, not taken from a data sheet: matrix products of the encoder's own shapes
(a batch of tokens by hidden, times hidden by intermediate) in fp32 (torch) and in int8 (ONNX Runtime's
``MatMulInteger``, what ``onnx-int8`` runs), the best of short slices, on one core and on the worker's threads.
Posts/s at one core's throughput times the threads is the ceiling a runtime could reach if every FLOP ran at
matrix-multiply speed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

# The products of one measurement: this many tokens (a batch of 16 posts of 32 tokens) through a
# hidden x intermediate matrix.
TOKENS = 512
SECONDS = 4.0
SLICES = 20


def encoder_shape(config: Any) -> dict[str, int]:
    return {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "intermediate": config.intermediate_size,
        "heads": config.num_attention_heads,
    }


def flops_per_post(shape: dict[str, int], tokens: float) -> float:
    hidden, intermediate = shape["hidden"], shape["intermediate"]
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * tokens * tokens * hidden
    return shape["layers"] * per_layer


def mean_tokens(tokenizer: Any, texts: list[str], max_length: int) -> float:
    """Sub-word tokens per post as the encoder sees them: special tokens included, truncated at ``max_length``."""
    return fmean(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])


def _rate(run: Any, flops: float) -> float:
    """The best rate over short slices of ``SECONDS``: the machine's peak, even when others share it at times."""
    run()  # warm-up
    best, slice_seconds = 0.0, SECONDS / SLICES
    for _ in range(SLICES):
        runs, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < slice_seconds:
            run()
            runs += 1
        best = max(best, runs * flops / elapsed)
    return best


def fp32_matmul_flops(hidden: int, intermediate: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(TOKENS, hidden), torch.randn(hidden, intermediate)
    with torch.inference_mode():
        return _rate(lambda: torch.matmul(a, b), 2 * TOKENS * hidden * intermediate)


def int8_matmul_ops(hidden: int, intermediate: int, threads: int) -> float:
    """Multiply-adds x 2 per second of ONNX Runtime's uint8 x int8 ``MatMulInteger`` (dynamic quantisation's)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weights = helper.make_tensor(
        "b", TensorProto.INT8, [hidden, intermediate], rng.integers(-127, 127, (hidden, intermediate)).flatten()
    )
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [TOKENS, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [TOKENS, intermediate])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "matmul.onnx"
        onnx.save(model, path)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 255, (TOKENS, hidden), dtype=np.uint8)
    return _rate(lambda: session.run(None, {"a": a}), 2 * TOKENS * hidden * intermediate)


def measure(model: str, texts: list[str], threads: int) -> dict[str, object]:
    """The estimate for ``threads`` threads. The peak is one core's throughput times the threads: measured on
    ``threads`` threads at once, a product waits for its slowest thread, and on a shared machine that is the one
    whose core something else uses (both are recorded)."""
    from sentiment_model.classifier import SentimentClassifier

    encoder = SentimentClassifier.load(model, threads).encoder
    shape = encoder_shape(encoder.model.config)
    tokens = mean_tokens(encoder.tokenizer, texts, encoder.tokenizer.model_max_length)
    flops = flops_per_post(shape, tokens)
    hidden, intermediate = shape["hidden"], shape["intermediate"]
    per_core = {"fp32": fp32_matmul_flops(hidden, intermediate, 1), "int8": int8_matmul_ops(hidden, intermediate, 1)}
    threaded = {
        "fp32": fp32_matmul_flops(hidden, intermediate, threads),
        "int8": int8_matmul_ops(hidden, intermediate, threads),
    }
    ceilings = {kind: per_core[kind] * threads / flops for kind in per_core}
    print(
        f"  encoder {shape}, {tokens:.1f} tokens per post: {flops / 1e6:.0f} MFLOP per post; matrix products per "
        f"core: fp32 {per_core['fp32'] / 1e9:.1f} GFLOP/s, int8 {per_core['int8'] / 1e9:.1f} GOP/s; on {threads} "
        f"threads: {threaded['fp32'] / 1e9:.1f}, {threaded['int8'] / 1e9:.1f}; ceiling on {threads} cores: fp32 "
        f"{ceilings['fp32']:.0f}, int8 {ceilings['int8']:.0f} posts/s",
        flush=True,
    )
    return {
        "shape": shape,
        "threads": threads,
        "mean_tokens": tokens,
        "flops_per_post": flops,
        "per_core_ops_per_second": per_core,
        "threaded_ops_per_second": threaded,
        "fp32_ceiling_posts_per_second": ceilings["fp32"],
        "int8_ceiling_posts_per_second": ceilings["int8"],
    }
