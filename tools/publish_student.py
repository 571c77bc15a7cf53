"""Publish the student edition as a git branch that Binder and Colab can open: ``make publish-student``.

    python tools/publish_student.py [--branch student] [--release build/student]

Writes one commit on ``BRANCH`` (default ``student``) without touching your working tree or your current
branch: the files of ``HEAD``, with ``notebooks/`` replaced by the student edition (the lessons without
solutions, ``edition.json``, and the trained model of lesson 07 that lessons 08–12 load), each lesson's
Colab cell cloning ``BRANCH`` instead of ``main``, and the README's badges pointing at ``BRANCH``. Then
``git push origin BRANCH`` and give students the badges of that branch's README. Publishing again adds a
commit on top (students who cloned the branch can pull).

The trained model must exist (``notebooks/checkpoints/shapes-cpu.pt``: run lesson 07 or ``make test``
once); the student edition is regenerated from ``notebooks/`` unless ``--release`` names the folder you
already handed out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is a folder of scripts
import colab_cell  # noqa: E402
import make_student_edition  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = Path("checkpoints/shapes-cpu.pt")


def git(*args: str, root: Path = ROOT, env: dict | None = None, input: bytes | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=root, env={**os.environ, **(env or {})}, input=input,
                            capture_output=True, check=False)
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode().strip()}")
    return result.stdout.decode().strip()


def for_branch(text: str, branch: str) -> str:
    """A lesson's or the README's text with the course's links to ``main`` pointing at ``branch``."""
    repository = colab_cell.REPOSITORY_URL.removeprefix("https://github.com/")
    return (text.replace(f'"--branch", "{colab_cell.BRANCH}"', f'"--branch", "{branch}"')
                .replace(f"{repository}/blob/{colab_cell.BRANCH}/", f"{repository}/blob/{branch}/")
                .replace(f"gh/{repository}/HEAD", f"gh/{repository}/{branch}"))


def lesson_for_branch(data: bytes, branch: str) -> bytes:
    """A lesson (notebook JSON) whose cells' links to ``main`` point at ``branch`` (the Colab cell's clone)."""
    notebook = json.loads(data)
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = for_branch(source, branch).splitlines(keepends=True)
    return (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode()


def publish(branch: str = "student", release: Path | None = None, root: Path = ROOT) -> tuple[str, str]:
    """Commit the student edition of the repository ``root`` to its ``branch``; return (commit, release id)."""
    if not (root / "notebooks" / CHECKPOINT).is_file() and not (release and (release / CHECKPOINT).is_file()):
        raise ValueError(f"notebooks/{CHECKPOINT} is missing: run lesson 07 (or `make test`) first, so that the "
                         "published lessons 08–12 have the trained model to load")
    with tempfile.TemporaryDirectory() as scratch:
        if release is None:
            release = Path(scratch) / "student"
            make_student_edition.make_student_edition(root / "notebooks", release)
        edition = json.loads((release / make_student_edition.EDITION_FILE).read_text())
        index = Path(scratch) / "index"
        env = {"GIT_INDEX_FILE": str(index)}
        git("read-tree", "HEAD", root=root, env=env)
        git("rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "notebooks", root=root, env=env)
        files = [p for p in sorted(release.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
        if not (release / CHECKPOINT).is_file():
            files.append(root / "notebooks" / CHECKPOINT)
        for path in files:
            relative = path.relative_to(release) if path.is_relative_to(release) else CHECKPOINT
            data = path.read_bytes()
            if path.suffix == ".ipynb":
                data = lesson_for_branch(data, branch)
            blob = git("hash-object", "-w", "--stdin", root=root, input=data)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},notebooks/{relative.as_posix()}", root=root, env=env)
        readme = git("hash-object", "-w", "--stdin", root=root,
                     input=for_branch((root / "README.md").read_text(), branch).encode())
        git("update-index", "--add", "--cacheinfo", f"100644,{readme},README.md", root=root, env=env)
        tree = git("write-tree", root=root, env=env)
    parent = git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", root=root) if branch_exists(branch, root) else ""
    source = git("rev-parse", "--short", "HEAD", root=root)
    message = f"Student edition {edition['release']} (from {source})"
    commit = git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, root=root)
    git("update-ref", f"refs/heads/{branch}", commit, root=root)
    return commit, edition["release"]


def branch_exists(branch: str, root: Path = ROOT) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=root,
                          capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--branch", default="student", help="the branch to write (default: student)")
    parser.add_argument("--release", type=Path, default=None,
                        help="a student edition already handed out (default: regenerate from notebooks/)")
    args = parser.parse_args(argv)
    if args.branch in ("main", colab_cell.BRANCH, git("rev-parse", "--abbrev-ref", "HEAD")):
        print(f"publish-student: refusing to write the student edition onto {args.branch!r}", file=sys.stderr)
        return 2
    try:
        commit, release = publish(args.branch, args.release)
    except ValueError as error:
        print(f"publish-student: {error}", file=sys.stderr)
        return 2
    print(f"student edition {release} → branch {args.branch} ({commit[:10]}); now: git push origin {args.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
