"""Command line: ``python -m retinanet_lite {data,train,evaluate,detect} --help``."""
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
    """``["lr=0.001", "steps=200"]`` → ``{"lr": 0.001, "steps": 200}``; a key given twice is refused."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        if key in overrides:
            raise ValueError(f"--set gives {key} twice ({overrides[key]!r} and {parse_value(value)!r}); give it once")
        overrides[key] = parse_value(value)
    return overrides


def cmd_data(args: argparse.Namespace) -> None:
    from .data import write_shapes_splits, write_tree_splits

    if args.fetch_only:
        if args.kind != "trees":
            raise ValueError("--fetch-only is for `data trees` (the shapes are generated, not fetched)")
        from .data.trees import deepforest_data
        print(f"the tree-crown images are in {deepforest_data(args.cache)}")
        return
    out = args.out or f"data/{args.kind}"
    if args.kind == "trees":
        for split, path in write_tree_splits(out, args.cache).items():
            print(f"wrote the {split} split to {path.parent}")
        return
    write_shapes_splits(out, args.num_train, args.num_val, args.image_size, args.seed)
    print(f"wrote {args.num_train} training and {args.num_val} validation images to {out}/{{train,val}}")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import train

    overrides = parse_overrides(args.set)
    if args.steps is not None:
        if "steps" in overrides:
            raise ValueError("give the number of steps once: --steps or --set steps=…, not both")
        overrides["steps"] = args.steps
    train_set = val_set = None
    if args.data:
        train_set = coco_dataset(args.data, args.images, args.drop_degenerate)
        overrides.setdefault("num_classes", train_set.num_classes)
        if args.val_data:
            val_set = coco_dataset(args.val_data, args.val_images, args.drop_degenerate)
    model, history = train(args.preset, seed=args.seed, out=args.out, device=args.device, train_set=train_set,
                           val_set=val_set, resume=args.resume, pretrained_backbone=args.pretrained_backbone,
                           **overrides)
    if history["eval"]:
        print(format_metrics(history["eval"][-1]))
    elif args.data:
        print("no --val-data given: skipped evaluation")


def coco_dataset(annotation_file: str, image_dir: str | None, drop_degenerate: bool):
    """A :class:`~retinanet_lite.data.CocoDetection` from command-line arguments."""
    from .data import CocoDetection

    return CocoDetection(annotation_file, image_dir, drop_degenerate=drop_degenerate)


def cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from .data import ShapesDataset, VAL_SEED_OFFSET
    from .metrics import evaluate, to_coco_results
    from .train import load_checkpoint, run_inference

    model = load_checkpoint(args.checkpoint)
    if args.data:
        dataset = coco_dataset(args.data, args.images, args.drop_degenerate)
        image_ids = [entry["id"] for entry in dataset.images]
    else:
        dataset = ShapesDataset(args.num_images, args.image_size, seed=args.seed + VAL_SEED_OFFSET)
        image_ids = None
    predictions, targets = run_inference(model, dataset)
    print(format_metrics(evaluate(predictions, targets, model.config.num_classes,
                                  class_names=model.class_names or getattr(dataset, "class_names", None))))
    if args.results:
        category_ids = model.category_ids or getattr(dataset, "category_ids", None)
        Path(args.results).write_text(json.dumps(to_coco_results(predictions, category_ids, image_ids)))
        print(f"wrote COCO-format results to {args.results}")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def cmd_detect(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from .data import CLASS_NAMES
    from .train import load_checkpoint
    from .viz import show_detections

    source = Path(args.image)
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not inputs:
            raise ValueError(f"{source} contains no images ({', '.join(IMAGE_SUFFIXES)})")
        out_dir = Path(args.out or source / "detections")
        outputs = [out_dir / f"{p.stem}.detections.png" for p in inputs]
    elif source.is_file():
        inputs, outputs = [source], [Path(args.out or source.with_suffix(".detections.png"))]
    else:
        raise ValueError(f"{source} is neither an image file nor a folder")
    model = load_checkpoint(args.checkpoint)
    names = model.class_names or CLASS_NAMES
    for image_path, out in zip(inputs, outputs):
        image = pil_to_tensor(Image.open(image_path).convert("RGB")).float() / 255
        with torch.no_grad():
            prediction = model([image])[0]
        keep = prediction["scores"] >= args.min_score
        prediction = {k: v[keep] for k, v in prediction.items()}
        ax = show_detections(image, prediction=prediction, class_names=names)
        ax.axis("off")
        out.parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(out, dpi=150, bbox_inches="tight")
        plt.close(ax.figure)
        print(f"{image_path}: {len(prediction['boxes'])} objects → {out}")
        for box, score, label in zip(prediction["boxes"].tolist(), prediction["scores"].tolist(),
                                     prediction["labels"].tolist()):
            print(f"  {names[label]:>12} {score:.2f} [{', '.join(f'{v:.1f}' for v in box)}]")


def format_metrics(metrics: dict[str, Any]) -> str:
    """A small text table of the headline metrics and per-class AP."""
    lines = [f"{name:>10}: {metrics[name]:.3f}" for name in ("map", "map_50", "map_75") if name in metrics]
    lines += [f"{'AP ' + str(name):>10}: {value:.3f}" for name, value in metrics.get("per_class", {}).items()]
    return "\n".join(lines)


def add_coco_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--data``, ``--images`` and ``--drop-degenerate`` for a COCO-format dataset."""
    parser.add_argument("--data", default=None, metavar="JSON",
                        help=f"COCO-format annotation file for {purpose} (default: the shapes dataset)")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="the images of --data (default: an 'images' folder next to the JSON)")
    parser.add_argument("--drop-degenerate", action="store_true",
                        help="drop boxes with zero width or height (with a warning) instead of stopping")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    from .config import PRESETS

    parser = argparse.ArgumentParser(prog="python -m retinanet_lite", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="generate a dataset on disk (COCO format)")
    data.add_argument("kind", choices=["shapes", "trees"],
                      help="shapes: the procedural shapes; trees: the NEON tree crowns (fetches the DeepForest "
                           "wheel from the package registry on first use)")
    data.add_argument("--out", default=None,
                      help="output folder (default data/KIND; gets train/ and val/, and test/ for trees)")
    data.add_argument("--cache", default=None,
                      help="trees: folder for the downloaded wheel and extracted images (default data/deepforest)")
    data.add_argument("--fetch-only", action="store_true",
                      help="trees: only fetch the images into the cache (what the set-up step runs)")
    data.add_argument("--num-train", type=int, default=2000)
    data.add_argument("--num-val", type=int, default=500)
    data.add_argument("--image-size", type=int, default=128)
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(run=cmd_data)

    train = commands.add_parser("train", help="train a model from a preset (shapes or your own COCO data)")
    train.add_argument("--preset", default="shapes-cpu", choices=list(PRESETS),
                       help="; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items()))
    train.add_argument("--out", default=None, help="folder for model.pt")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    add_coco_arguments(train, "training")
    train.add_argument("--val-data", default=None, help="COCO-format annotation JSON for validation")
    train.add_argument("--val-images", default=None, help="image folder of --val-data")
    train.add_argument("--pretrained-backbone", default=None, metavar="PATH",
                       help="a local torchvision ResNet state-dict file to start the backbone from")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT",
                       help="continue a run from its model.pt (same step, optimizer and schedule)")
    train.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="override any TrainConfig / RetinaNetConfig field, e.g. --set lr=1e-3 focal_gamma=0 "
                            "(may be given several times; each key once)")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="COCO mAP of a checkpoint (held-out shapes or your COCO data)")
    evaluate.add_argument("--checkpoint", required=True)
    add_coco_arguments(evaluate, "evaluation")
    evaluate.add_argument("--results", default=None, metavar="JSON",
                          help="also write the detections as a COCO-format result file")
    evaluate.add_argument("--num-images", type=int, default=500, help="shapes images (without --data)")
    evaluate.add_argument("--image-size", type=int, default=128)
    evaluate.add_argument("--seed", type=int, default=0, help="data seed (validation uses seed + offset)")
    evaluate.set_defaults(run=cmd_evaluate)

    detect = commands.add_parser("detect", help="detect objects in an image and write an annotated PNG")
    detect.add_argument("image", help="an image file or a folder of images")
    detect.add_argument("--checkpoint", required=True)
    detect.add_argument("--out", default=None,
                        help="output PNG, or folder for a folder of images (default: next to the input)")
    detect.add_argument("--min-score", type=float, default=0.3)
    detect.set_defaults(run=cmd_detect)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:  # bad input: a clear message, not a traceback
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
