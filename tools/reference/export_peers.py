#!/usr/bin/python3
"""Exports cfm's 2D extractor and mapper stage to ONNX, for the side-by-side benchmark.

Run by `scripts/bench-peers.sh` with Debian's PyTorch 1.13 (`/usr/bin/python3`, timm 1.0.3);
ONNX Runtime and OpenVINO then time the files in a virtual environment (`bench_peers.py`).
Everything is built from the weights cfm itself loads, so the peers compute what cfm computes:

* `vit_TIER.onnx`: timm's `vit_base_patch8_224.dino` with `cfm init-weights`'
  `vit.safetensors`, pruned to the tier's first L blocks (embedding, L blocks, final norm,
  cls token dropped): image [1,3,224,224] -> `tokens` [784,768], what cfm's `extract2d`
  stage returns (token-major).
* `map_TIER.onnx`: the GEMMs of cfm's `map` stage for one frame, on the same rows. cfm
  applies each mapper's first layer (no bias) to its sources - the 784 patch tokens and the
  1024 Point-MAE centres - and the rest of the MLP (bias, GELU, Linear(h,h), GELU,
  Linear(h,out)) to every unmasked pixel's blended first-layer vector. Inputs `tokens`
  [784,768], `centres` [1024,D3D], `hidden_rgb` and `hidden_xyz` [P,h] (P = the frame's
  unmasked pixels, dynamic); outputs `token_hidden` [784,h], `centre_hidden` [1024,h],
  `mapped_xyz` [P,D3D], `mapped_rgb` [P,768]. Same FLOPs as cfm's analytic count of the stage;
  cfm's stage also gathers/blends the rows and computes the distances (not in the peers).

Also written to --out: `input.safetensors` (`rgb_input` [3,224,224], the normalised smooth
image of check_vit_parity.py, for `cfm extract`), `vit_TIER.reference.safetensors`
(PyTorch's tokens), `map_TIER.inputs.safetensors` (seeded inputs: the hidden rows are
first-layer rows of random sources plus the bias, as cfm's blend produces) and
`map_TIER.reference.safetensors` (PyTorch's four outputs).
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import cfm_reference as ref
import check_pipeline_parity
from check_vit_parity import ParityError, load_timm_model, reference_features, smooth_image

TIERS = ref.TIER_BLOCKS
GRID, DIM, GROUPS = 28, 768, 1024
OPSET = 17  # LayerNormalization as one op


class PrunedViT(nn.Module):
    """timm ViT forward through the first `depth` blocks -> tokens [784,768] (no cls)."""

    def __init__(self, model, depth):
        super().__init__()
        self.model, self.depth = model, depth

    def forward(self, image):
        features = reference_features(self.model, image[0], self.depth)  # [768,28,28]
        return features.reshape(DIM, GRID * GRID).transpose(0, 1)


class MapStage(nn.Module):
    """The GEMMs of cfm's `map` stage (see the module docstring)."""

    def __init__(self, rgb_to_xyz, xyz_to_rgb):
        super().__init__()
        self.rgb_to_xyz, self.xyz_to_rgb = rgb_to_xyz, xyz_to_rgb

    @staticmethod
    def finish(mapper, hidden):
        return mapper.output(F.gelu(mapper.projection(F.gelu(hidden))))

    def forward(self, tokens, centres, hidden_rgb, hidden_xyz):
        token_hidden = tokens @ self.rgb_to_xyz.input.weight.t()
        centre_hidden = centres @ self.xyz_to_rgb.input.weight.t()
        return (token_hidden, centre_hidden,
                self.finish(self.rgb_to_xyz, hidden_rgb), self.finish(self.xyz_to_rgb, hidden_xyz))


def load_mapper(path, in_features, out_features):
    """A cfm mapper file (keys input/projection/output .weight/.bias) as cfm_reference.Mapper."""
    mapper = ref.Mapper(in_features, out_features)
    try:
        mapper.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as error:
        raise ParityError(f"{path} does not fit a {in_features}->{out_features} mapper: "
                          f"{' '.join(str(error).split())[:300]}") from None
    return mapper.eval()


def map_inputs(stage, pixels, d3d, seed):
    """Seeded inputs of the map stage: sources ~ N(0,1); each pixel's hidden vector is a
    convex blend of first-layer rows of 4 random sources plus the first layer's bias."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(GRID * GRID, DIM, generator=gen)
    centres = torch.randn(GROUPS, d3d, generator=gen)

    def blended(rows, bias):
        picks = torch.randint(0, rows.shape[0], (pixels, 4), generator=gen)
        weights = torch.rand(pixels, 4, generator=gen) + 0.1
        weights = weights / weights.sum(1, keepdim=True)
        return ((rows[picks] * weights[:, :, None]).sum(1) + bias).contiguous()

    with torch.no_grad():
        token_hidden = tokens @ stage.rgb_to_xyz.input.weight.t()
        centre_hidden = centres @ stage.xyz_to_rgb.input.weight.t()
        return {"tokens": tokens, "centres": centres,
                "hidden_rgb": blended(token_hidden, stage.rgb_to_xyz.input.bias),
                "hidden_xyz": blended(centre_hidden, stage.xyz_to_rgb.input.bias)}


def export(module, inputs, names, outputs, path, dynamic=None):
    torch.onnx.export(module, tuple(inputs), str(path), input_names=names, output_names=outputs,
                      dynamic_axes=dynamic or {}, opset_version=OPSET, do_constant_folding=True)


def write_mappers(args):
    """The tier's seeded mapper pair (PyTorch's Linear init), as check_pipeline_parity.py writes it."""
    d3d = 384 if args.tier == "tiny" else 1152
    check_pipeline_parity.write_mappers(args.seed, d3d, args.out)
    print(f"export_peers: mappers 768<->{d3d} -> {args.out}")


def export_models(args):
    args.out.mkdir(parents=True, exist_ok=True)
    depth, d3d = TIERS[args.tier], 384 if args.tier == "tiny" else 1152
    image = smooth_image(args.seed)
    save_file({"rgb_input": image}, str(args.out / "input.safetensors"))

    vit = PrunedViT(load_timm_model(args.weights / "vit.safetensors"), depth).eval()
    with torch.no_grad():
        tokens = vit(image[None])
    save_file({"tokens": tokens.contiguous()}, str(args.out / f"vit_{args.tier}.reference.safetensors"))
    export(vit, [image[None]], ["image"], ["tokens"], args.out / f"vit_{args.tier}.onnx")

    stage = MapStage(load_mapper(args.mappers / "mapper_2d_to_3d.safetensors", DIM, d3d),
                     load_mapper(args.mappers / "mapper_3d_to_2d.safetensors", d3d, DIM)).eval()
    inputs = map_inputs(stage, args.pixels, d3d, args.seed)
    names = ["tokens", "centres", "hidden_rgb", "hidden_xyz"]
    outputs = ["token_hidden", "centre_hidden", "mapped_xyz", "mapped_rgb"]
    with torch.no_grad():
        results = stage(*(inputs[n] for n in names))
    save_file(inputs, str(args.out / f"map_{args.tier}.inputs.safetensors"))
    save_file({n: r.contiguous() for n, r in zip(outputs, results)},
              str(args.out / f"map_{args.tier}.reference.safetensors"))
    export(stage, [inputs[n] for n in names], names, outputs, args.out / f"map_{args.tier}.onnx",
           dynamic={"hidden_rgb": {0: "pixels"}, "hidden_xyz": {0: "pixels"},
                    "mapped_xyz": {0: "pixels"}, "mapped_rgb": {0: "pixels"}})
    print(f"export_peers: {args.tier} ({depth} block(s), D3D {d3d}, {args.pixels} pixels) -> {args.out}")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    mappers = commands.add_parser("mappers", help="write the tier's seeded mapper pair to --out")
    models = commands.add_parser("export", help="write the ONNX files, inputs and references to --out")
    for command in (mappers, models):
        command.add_argument("--tier", choices=TIERS, required=True)
        command.add_argument("--seed", type=int, default=0, help="weight, image and input seed (default 0)")
        command.add_argument("--out", type=Path, required=True, help="output directory")
    models.add_argument("--weights", type=Path, required=True,
                        help="extractor directory of `cfm init-weights` (vit.safetensors)")
    models.add_argument("--mappers", type=Path, required=True,
                        help="directory with mapper_2d_to_3d/mapper_3d_to_2d .safetensors")
    models.add_argument("--pixels", type=int, required=True,
                        help="unmasked pixels of the frame (cfm bench's valid_pixels)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        (write_mappers if args.command == "mappers" else export_models)(args)
    except ParityError as error:
        print(f"export_peers: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
