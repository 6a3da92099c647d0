"""The profile's split of py-spy samples into model, text preparation and the rest."""

from __future__ import annotations

from bench.profile import PARTS, breakdown

OUTER = "run (quixstreams/app.py:975);commit (quixstreams/checkpointing/checkpoint.py:286);flush (pipeline/classifier_sink.py:55)"
RAW = "\n".join(
    [
        f"{OUTER};predict (flair/nn/model.py:810);forward (transformers/models/bert/modeling_bert.py:608);linear (torch/nn/modules/linear.py:130) 80",
        f"{OUTER};predict (flair/nn/model.py:810);_forward_tensors (flair/embeddings/transformer.py:821);run (onnxruntime/capi/onnxruntime_inference_collection.py:287) 10",
        f"{OUTER};predict (flair/nn/model.py:810);__init__ (flair/data.py:1020);_sentences (segtok/segmenter.py:90) 6",
        f"{OUTER};_batch_encode_plus (transformers/tokenization_utils_fast.py:500) 2",
        "run (quixstreams/app.py:975);poll (quixstreams/kafka/consumer.py:120) 1",
        "run (quixstreams/app.py:975);decode_post (common/contract.py:170) 1",
        " 40",  # a sample py-spy could not read: left out
    ]
)


def test_samples_are_split_by_the_frames_they_hold() -> None:
    profile = breakdown(RAW)
    assert profile["samples"] == 100
    assert profile["shares"] == {PARTS[0]: 0.90, PARTS[1]: 0.08, PARTS[2]: 0.02}


def test_an_empty_profile_has_no_shares() -> None:
    assert breakdown("") == {"samples": 0, "shares": dict.fromkeys(PARTS, 0.0)}
