"""Command line: ``python -m retinanet_lite {data,train,evaluate,predict} --help``."""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any, Sequence


def parse_value(text: str) -> Any:
    """``"0.5"`` → 0.5, ``"(8, 16)"`` → (8, 16), ``"giou"`` → "giou": Python literals, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.001", "steps=200"]`` → ``{"lr": 0.001, "steps": 200}``."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = parse_value(value)
    return overrides


def cmd_data(args: argparse.Namespace) -> None:
    from .data import write_shapes_splits

    write_shapes_splits(args.out, args.num_train, args.num_val, args.image_size, args.seed)
    print(f"wrote {args.num_train} training and {args.num_val} validation images to {args.out}/{{train,val}}")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import train

    overrides = parse_overrides(args.set)
    if args.steps is not None:
        overrides["steps"] = args.steps
    _, history = train(args.preset, seed=args.seed, out=args.out, **overrides)
    print(format_metrics(history["eval"][-1]))
    if args.out:
        print(f"checkpoint: {Path(args.out) / 'model.pt'}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .data import ShapesDataset, VAL_SEED_OFFSET
    from .train import evaluate_model, load_checkpoint

    model = load_checkpoint(args.checkpoint)
    dataset = ShapesDataset(args.num_images, args.image_size, seed=args.seed + VAL_SEED_OFFSET)
    print(format_metrics(evaluate_model(model, dataset)))


def cmd_predict(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from .data import CLASS_NAMES
    from .train import load_checkpoint
    from .viz import show_detections

    model = load_checkpoint(args.checkpoint)
    image = pil_to_tensor(Image.open(args.image).convert("RGB")).float() / 255
    with torch.no_grad():
        prediction = model([image])[0]
    keep = prediction["scores"] >= args.min_score
    prediction = {k: v[keep] for k, v in prediction.items()}
    ax = show_detections(image, prediction=prediction, class_names=CLASS_NAMES)
    ax.axis("off")
    out = Path(args.out or Path(args.image).with_suffix(".detections.png"))
    ax.figure.savefig(out, dpi=150, bbox_inches="tight")
    for box, score, label in zip(prediction["boxes"].tolist(), prediction["scores"].tolist(),
                                 prediction["labels"].tolist()):
        print(f"{CLASS_NAMES[label]:>9} {score:.2f} [{', '.join(f'{v:.1f}' for v in box)}]")
    print(f"wrote {out}")


def format_metrics(metrics: dict[str, Any]) -> str:
    """A small text table of the headline metrics and per-class AP."""
    lines = [f"{name:>10}: {metrics[name]:.3f}" for name in ("map", "map_50", "map_75") if name in metrics]
    lines += [f"{'AP ' + str(name):>10}: {value:.3f}" for name, value in metrics.get("per_class", {}).items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m retinanet_lite", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="generate a dataset on disk (COCO format)")
    data.add_argument("kind", choices=["shapes"], help="which dataset")
    data.add_argument("--out", default="data/shapes", help="output folder (gets train/ and val/)")
    data.add_argument("--num-train", type=int, default=2000)
    data.add_argument("--num-val", type=int, default=500)
    data.add_argument("--image-size", type=int, default=128)
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(run=cmd_data)

    train = commands.add_parser("train", help="train a model from a preset and report mAP")
    train.add_argument("--preset", default="shapes-cpu")
    train.add_argument("--out", default=None, help="folder for model.pt")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="override any TrainConfig / RetinaNetConfig field, e.g. --set lr=1e-3 focal_gamma=0")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="COCO mAP of a checkpoint on held-out shapes images")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--num-images", type=int, default=500)
    evaluate.add_argument("--image-size", type=int, default=128)
    evaluate.add_argument("--seed", type=int, default=0, help="data seed (validation uses seed + offset)")
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="detect objects in an image and write an annotated PNG")
    predict.add_argument("image")
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("--out", default=None, help="output PNG (default: IMAGE.detections.png)")
    predict.add_argument("--min-score", type=float, default=0.3)
    predict.set_defaults(run=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:  # bad input: a clear message, not a traceback
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
