"""The architectures qa-export supports, and what ONNX Runtime's transformer optimizer is expected to fuse in each.

Only encoder families that were exported, fused, quantized and parity-checked with tiny random configs
(tests/export/test_export_families.py) are listed; anything else is refused up front rather than exported untested.
ORT's optimizer is run with its "bert" model type for all of them (as Optimum's ORTOptimizer does for encoders).

`attention_in_every_layer` says whether the optimizer is supposed to fuse every self-attention block into one
Attention node. Where it is, an export whose attention count is short of the layer count fails loudly
(fusion can fail silently when the exported graph's shape differs from the optimizer's patterns,
onnxruntime#10359). ALBERT shares one layer's weights across all layers, and ORT fuses only some of the repeated
blocks (measured: 2 of 3); it is exported with whatever fuses, and the counts are recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PretrainedConfig

from spanqa.export.options import ExportError


class UnsupportedArchitecture(ExportError):
    """A checkpoint whose architecture qa-export does not export."""


@dataclass(frozen=True)
class Family:
    model_type: str
    attention_in_every_layer: bool


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("bert", attention_in_every_layer=True),
        Family("distilbert", attention_in_every_layer=True),
        Family("roberta", attention_in_every_layer=True),
        Family("xlm-roberta", attention_in_every_layer=True),  # RoBERTa's modelling code under another name
        Family("camembert", attention_in_every_layer=True),  # likewise
        Family("electra", attention_in_every_layer=True),
        Family("albert", attention_in_every_layer=False),
    )
}


def family_of(config: PretrainedConfig, where: str) -> Family:
    """The supported family of a checkpoint's config; `where` names the checkpoint in the error."""
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise UnsupportedArchitecture(
            f"{where}: model_type {config.model_type!r} is not supported by qa-export "
            f"(supported: {', '.join(sorted(FAMILIES))}); "
            "only encoder families whose ONNX export, fusion and quantization are tested are accepted"
        )
    return family


def attention_heads_and_width(config: PretrainedConfig) -> tuple[int, int]:
    """(num_attention_heads, hidden_size); DistilBERT's n_heads/dim answer to these names via attribute_map."""
    return int(config.num_attention_heads), int(config.hidden_size)


