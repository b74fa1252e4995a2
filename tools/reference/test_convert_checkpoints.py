"""Tests of tools/convert_checkpoints.py on fake checkpoints with the authors' nesting.

The ViT and Point-MAE fakes use reduced widths and depths (the module's size
constants are patched) to stay small; `test_vit_layout_matches_timm` checks the
full-size layout against timm itself.

Run with: /usr/bin/python3 -m pytest tools/reference
"""

import argparse
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fake_checkpoints import cc, pointmae_checkpoint, random_state

SMALL_OPTIMIZER = {"state": {0: {"exp_avg": torch.zeros(3)}},
                   "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}


@pytest.fixture
def small(monkeypatch):
    """Shrink the ViT and Point-MAE transformers to 2 blocks of width 16/32."""
    monkeypatch.setattr(cc, "VIT_DIM", 16)
    monkeypatch.setattr(cc, "VIT_DEPTH", 2)
    monkeypatch.setattr(cc, "PM_DIM", 32)
    monkeypatch.setattr(cc, "PM_DEPTH", 2)


def run(capsys, *argv):
    """Run the CLI; return (exit status, stdout, stderr)."""
    status = cc.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_converted(path, expected, kind):
    """The file holds exactly `expected` (float32, equal values) and names its kind."""
    got = load_file(str(path))
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == torch.float32
        assert torch.equal(got[key], value.float()), key
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["kind"] == kind


def test_vit_layout_matches_timm():
    model = timm.create_model("vit_base_patch8_224.dino", pretrained=False)
    timm_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert timm_shapes == cc.vit_shapes()


def test_vit_dino_plain(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    torch.save(state, tmp_path / "dino_vitbase8_pretrain.pth")
    status, out, _ = run(capsys, tmp_path / "dino_vitbase8_pretrain.pth",
                         "--out", tmp_path / "vit.safetensors")
    assert status == 0 and "vit" in out
    assert_converted(tmp_path / "vit.safetensors", state, "vit")


def test_vit_dino_full_checkpoint_uses_teacher(small, tmp_path, capsys):
    teacher = random_state(cc.vit_shapes(), seed=1)
    student = random_state(cc.vit_shapes(), seed=2)
    head = {"head.mlp.0.weight": torch.randn(8, 16), "head.last_layer.weight_g": torch.randn(8, 1)}
    ckpt = {"teacher": {**{"backbone." + k: v for k, v in teacher.items()}, **head},
            "student": {"module.backbone." + k: v for k, v in student.items()},
            "epoch": 100, "args": argparse.Namespace(arch="vit_base")}
    torch.save(ckpt, tmp_path / "full.pth")
    status, out, _ = run(capsys, tmp_path / "full.pth", "--out", tmp_path / "vit.safetensors")
    assert status == 0 and "2 dropped" in out
    assert_converted(tmp_path / "vit.safetensors", teacher, "vit")


def test_untrusted_pickle_needs_flag(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    torch.save({"model": state, "path": Path("/etc")}, tmp_path / "odd.pth")
    status, _, err = run(capsys, tmp_path / "odd.pth", "--out", tmp_path / "a.safetensors")
    assert status == 1 and "refusing to unpickle pathlib.PosixPath" in err
    assert "--trust-pickle" in err and err.count("\n") == 1
    status, _, _ = run(capsys, tmp_path / "odd.pth", "--out", tmp_path / "b.safetensors",
                       "--trust-pickle")
    assert status == 0
    assert_converted(tmp_path / "b.safetensors", state, "vit")


def test_legacy_format_needs_flag(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    status, _, err = run(capsys, tmp_path / "old.pth", "--out", tmp_path / "a.safetensors")
    assert status == 1 and "not a zip-format" in err
    status, _, _ = run(capsys, tmp_path / "old.pth", "--out", tmp_path / "b.safetensors",
                       "--trust-pickle")
    assert status == 0
    assert_converted(tmp_path / "b.safetensors", state, "vit")


def test_vit_timm_safetensors_with_head(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    extra = {"head.weight": torch.randn(10, 16), "head.bias": torch.randn(10)}
    save_file({**state, **extra}, str(tmp_path / "model.safetensors"))
    status, _, _ = run(capsys, tmp_path / "model.safetensors", "--kind", "vit",
                       "--out", tmp_path / "vit.safetensors")
    assert status == 0
    assert_converted(tmp_path / "vit.safetensors", state, "vit")


def test_vit_half_precision_becomes_float32(small, tmp_path, capsys):
    state = {k: v.half() for k, v in random_state(cc.vit_shapes()).items()}
    torch.save({"model": state}, tmp_path / "half.pth")
    assert run(capsys, tmp_path / "half.pth", "--out", tmp_path / "vit.safetensors")[0] == 0
    assert_converted(tmp_path / "vit.safetensors", state, "vit")


def test_pointmae(small, tmp_path, capsys):
    encoder = random_state(cc.pointmae_shapes())
    torch.save(pointmae_checkpoint(encoder, SMALL_OPTIMIZER), tmp_path / "pretrain.pth")
    status, out, _ = run(capsys, tmp_path / "pretrain.pth", "--out", tmp_path / "pm.safetensors")
    assert status == 0 and "pointmae" in out and "7 dropped" in out
    assert_converted(tmp_path / "pm.safetensors", encoder, "pointmae")


def test_pointmae_full_size_layout():
    shapes = cc.pointmae_shapes()
    assert shapes["encoder.first_conv.0.weight"] == (128, 3, 1)
    assert shapes["encoder.first_conv.3.weight"] == (256, 128, 1)
    assert shapes["encoder.second_conv.0.weight"] == (512, 512, 1)
    assert shapes["encoder.second_conv.1.running_var"] == (512,)
    assert shapes["encoder.second_conv.3.weight"] == (384, 512, 1)
    assert shapes["pos_embed.2.weight"] == (384, 128)
    assert shapes["blocks.blocks.11.attn.qkv.weight"] == (1152, 384)
    assert "blocks.blocks.0.attn.qkv.bias" not in shapes
    assert shapes["blocks.blocks.11.mlp.fc1.weight"] == (1536, 384)
    assert len(shapes) == 8 + 8 + 4 + 2 + 12 * 11


@pytest.mark.parametrize("d_in,d_out", [(768, 1152), (1152, 768), (768, 384), (384, 768)])
def test_mapper(tmp_path, capsys, d_in, d_out):
    h = (d_in + d_out) // 2
    state = random_state({"input.weight": (h, d_in), "input.bias": (h,),
                          "projection.weight": (h, h), "projection.bias": (h,),
                          "output.weight": (d_out, h), "output.bias": (d_out,)})
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "CFM.pth")
    direction = "2d_to_3d" if d_in == 768 else "3d_to_2d"
    out_path = tmp_path / f"mapper_{direction}.safetensors"
    status, out, _ = run(capsys, tmp_path / "CFM.pth", "--out", out_path)
    assert status == 0 and f"mapper {direction}" in out
    assert_converted(out_path, state, "mapper")
    with safe_open(str(out_path), "pt") as f:
        assert f.metadata()["direction"] == direction


def test_mapper_direction_mismatch_fails(tmp_path, capsys):
    state = random_state({"input.weight": (960, 1152), "input.bias": (960,),
                          "projection.weight": (960, 960), "projection.bias": (960,),
                          "output.weight": (768, 960), "output.bias": (768,)})
    torch.save(state, tmp_path / "CFM_3Dto2D.pth")
    status, _, err = run(capsys, tmp_path / "CFM_3Dto2D.pth",
                         "--out", tmp_path / "mapper_2d_to_3d.safetensors")
    assert status == 1 and "3d_to_2d mapper but the output is named" in err


def failure(capsys, tmp_path, state, kind="auto"):
    """Convert `state` and return the stderr of the failed run."""
    torch.save(state, tmp_path / "bad.pth")
    status, out, err = run(capsys, tmp_path / "bad.pth", "--kind", kind,
                           "--out", tmp_path / "bad.safetensors")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert not (tmp_path / "bad.safetensors").exists()
    return err


def test_missing_key_fails(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    del state["blocks.1.mlp.fc2.bias"]
    assert "missing key blocks.1.mlp.fc2.bias" in failure(capsys, tmp_path, state)


def test_wrong_shape_fails(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    state["pos_embed"] = torch.randn(1, 197, 16)
    err = failure(capsys, tmp_path, state)
    assert "pos_embed has shape [1, 197, 16], expected [1, 785, 16]" in err


def test_extra_block_fails(small, tmp_path, capsys):
    state = random_state(cc.vit_shapes())
    state["blocks.2.norm1.weight"] = torch.randn(16)
    assert "unexpected key blocks.2.norm1.weight" in failure(capsys, tmp_path, state)


def test_unexpected_qkv_bias_fails(small, tmp_path, capsys):
    encoder = random_state(cc.pointmae_shapes())
    encoder["blocks.blocks.0.attn.qkv.bias"] = torch.randn(96)
    err = failure(capsys, tmp_path, pointmae_checkpoint(encoder, SMALL_OPTIMIZER))
    assert "unexpected key blocks.blocks.0.attn.qkv.bias" in err


def test_mapper_wrong_dims_fails(tmp_path, capsys):
    state = random_state({"input.weight": (6, 4), "input.bias": (6,),
                          "projection.weight": (6, 6), "projection.bias": (6,),
                          "output.weight": (8, 6), "output.bias": (8,)})
    assert "mapper 4->8 is not one of" in failure(capsys, tmp_path, state)


def test_unknown_kind_fails(tmp_path, capsys):
    assert "--kind" in failure(capsys, tmp_path, {"foo.weight": torch.randn(2)})


def test_corrupt_file_fails(tmp_path, capsys):
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    status, _, err = run(capsys, tmp_path / "junk.safetensors", "--out", tmp_path / "x.safetensors")
    assert status == 1 and "cannot read checkpoint" in err and err.count("\n") == 1


def test_missing_file_fails(tmp_path, capsys):
    status, _, err = run(capsys, tmp_path / "nope.pth", "--out", tmp_path / "x.safetensors")
    assert status == 1 and "nope.pth: no such file" in err
