"""Building blocks of fake release checkpoints, shared by the converter's tests and the import
fixtures: the converter module itself (`cc`), random state dicts and the Point-MAE authors'
pretrain.pth layout."""

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location("convert_checkpoints",
                                               Path(__file__).resolve().parents[1] / "convert_checkpoints.py")
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


def random_state(shapes, seed=0):
    """A state dict of random tensors with the given key -> shape layout."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*shape, generator=gen) for k, shape in shapes.items()}


def pointmae_checkpoint(encoder, optimizer):
    """The Point-MAE authors' pretrain.pth layout around an encoder state dict: the encoder under
    module.MAE_encoder, decoder and mask-token entries the converter must drop, `optimizer`,
    epoch and metrics."""
    base = {"module.MAE_encoder." + k: v for k, v in encoder.items()}
    base.update({
        "module.MAE_encoder.encoder.first_conv.1.num_batches_tracked": torch.tensor(7),
        "module.MAE_encoder.encoder.second_conv.1.num_batches_tracked": torch.tensor(7),
        "module.mask_token": torch.randn(1, 1, 32),
        "module.decoder_pos_embed.0.weight": torch.randn(128, 3),
        "module.MAE_decoder.blocks.blocks.0.norm1.weight": torch.randn(32),
        "module.MAE_decoder.norm.weight": torch.randn(32),
        "module.increase_dim.0.weight": torch.randn(96, 32, 1),
    })
    return {"base_model": base, "optimizer": optimizer, "epoch": 300, "metrics": {"acc": 0.0}, "best_metrics": {}}
