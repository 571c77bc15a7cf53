"""Binder's environment (binder/environment.yml) is the conda one plus PyTorch's CPU wheel index, and
the pins in pyproject.toml accept those CPU wheels."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def environment(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pip_lines(env: dict) -> list[str]:
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_binder_environment_is_the_conda_one_plus_the_cpu_index():
    conda, binder = environment(ROOT / "environment.yml"), environment(ROOT / "binder" / "environment.yml")
    assert binder["channels"] == conda["channels"]
    assert [d for d in binder["dependencies"] if not isinstance(d, dict)] == \
           [d for d in conda["dependencies"] if not isinstance(d, dict)], "same Python and conda packages"
    assert pip_lines(conda) == ["-e .[dev]"]
    # pip runs in the folder of the environment file: binder/ → the project is one level up
    assert pip_lines(binder) == [CPU_INDEX, "-e ..[dev]"]


def test_the_pins_accept_pytorch_cpu_wheels():
    """``torch==X`` (no local label) is satisfied by the CPU index's ``X+cpu``; a pin written as
    ``X+cu121`` or ``X+cpu`` would break either Binder or everyone else."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in map(Requirement, dependencies):
        if requirement.name in ("torch", "torchvision"):
            (pin,) = requirement.specifier
            assert "+" not in pin.version, f"{requirement}: keep local labels (+cpu, +cu…) out of the pin"
            assert requirement.specifier.contains(f"{pin.version}+cpu"), f"{requirement} rejects the CPU wheel"
