"""retinanet_lite.results: the lessons find and load the benchmark result files from wherever they run."""
import json
from pathlib import Path

import pytest

from retinanet_lite.results import bench_result, course_file


def test_course_file_is_found_from_a_folder_below_the_course(tmp_path, monkeypatch):
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "grid.json").write_text(json.dumps({"command": "python bench/grid.py"}))
    lesson_folder = tmp_path / "build" / "student"
    lesson_folder.mkdir(parents=True)
    monkeypatch.chdir(lesson_folder)
    assert course_file("bench/results/grid.json") == tmp_path / "bench" / "results" / "grid.json"
    with pytest.raises(FileNotFoundError, match=r"bench/results/other.json is not in .*student or any folder above"):
        course_file("bench/results/other.json")


def test_bench_result_prints_where_its_numbers_come_from(tmp_path, monkeypatch, capsys):
    result = {"commands": ["python bench/a.py --seeds 0,1", "python bench/a.py --rows b --add"], "date": "2026-11-30",
              "machine": {"cpu": "AMD EPYC", "cores": 2, "torch": "2.14.1"}, "provenance": "seed 2 added later",
              "runs": [1, 2]}
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "a.json").write_text(json.dumps(result))
    monkeypatch.chdir(tmp_path)
    assert bench_result("a") == result
    printed = capsys.readouterr().out
    for text in ("made by  python bench/a.py --seeds 0,1", "and  python bench/a.py --rows b --add",
                 "2026-11-30: AMD EPYC, 2 cores, torch 2.14.1", "note     seed 2 added later"):
        assert text in printed
    assert bench_result("a", quiet=True) == result and capsys.readouterr().out == ""


def test_every_committed_result_file_loads_and_names_its_command_date_and_machine():
    files = sorted(Path(__file__).resolve().parent.parent.glob("bench/results/*.json"))
    assert len(files) >= 5
    for path in files:
        result = bench_result(path.stem, quiet=True)
        assert "bench/" in result["command"] and result["date"] and result["machine"]["cores"], path.name
