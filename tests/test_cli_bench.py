"""`workbench bench`: lists the benchmarks, runs the chosen ones each in its own process, and
says clearly what is missing before minutes of work."""

from __future__ import annotations

from pathlib import Path


from workbench import cli
from workbench.cli import bench as cli_bench
from workbench.cli.bench import BENCHMARKS, Benchmark


def test_every_listed_benchmark_script_exists_and_no_name_lists_them(capsys) -> None:
    for b in BENCHMARKS:
        assert b.script is None or (cli_bench.BENCH_DIR / b.script).is_file(), b
    assert cli.main(["bench"]) == 0
    out = capsys.readouterr().out
    assert all(b.name in out for b in BENCHMARKS) and "bench/results" in out


def test_unknown_names_and_missing_extras_are_one_line_errors(monkeypatch, capsys) -> None:
    assert cli.main(["bench", "train", "nope"]) == cli.EXIT_USER_ERROR
    assert "no benchmark named 'nope'" in capsys.readouterr().err
    monkeypatch.setattr(cli_bench.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["bench", "train"]) == cli.EXIT_USER_ERROR
    assert 'pip install -e ".[bench]"' in capsys.readouterr().err
    monkeypatch.setattr(cli_bench, "BENCH_DIR", Path("/nonexistent/bench"))
    assert cli.main(["bench", "compare"]) == cli.EXIT_USER_ERROR
    assert "clone of the repository" in capsys.readouterr().err


def test_runs_the_chosen_scripts_and_names_the_ones_that_failed(tmp_path, monkeypatch,
                                                                capsys) -> None:
    (tmp_path / "ok.py").write_text("print('measured')\n")
    (tmp_path / "bad.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(cli_bench, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(cli_bench, "BENCHMARKS", (Benchmark("ok", "ok.py", "fine", 1),
                                                  Benchmark("bad", "bad.py", "fails", 1)))
    assert cli.main(["bench", "ok"]) == 0
    assert cli.main(["bench", "all"]) == cli.EXIT_USER_ERROR
    assert "benchmark bad failed" in capsys.readouterr().err
