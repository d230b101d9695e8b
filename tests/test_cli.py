"""The ``cnnlab`` command: the lecture job end to end and its error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnlab import cli
from cnnlab.datasets import fashion_mnist

REAL_DATA = not fashion_mnist._missing(fashion_mnist.DEBIAN_DIR)


def test_lecture_quick_on_tiny_data(tiny_data, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["lecture", "--quick", "--data", str(tiny_data), "--out", str(out), "--verbose", "0"]) == 0
    text = capsys.readouterr().out
    assert "1,149,010" in text and "14,590" in text and "0.0127" in text
    assert "lecture's test accuracy" in text and "0.8505" in text and "0.8707" in text
    assert "(60, 27, 27, 30)" in text and "(60, 1080)" in text
    results = json.loads((out / "results.json").read_text())
    assert results["net1"]["params"] == 1_149_010 and results["net2"]["params"] == 14_590
    assert 0 <= results["net2"]["test_accuracy"] <= 1
    assert [p.name for p in out.iterdir()] == ["results.json"]  # no temporary files left


@pytest.mark.skipif(not REAL_DATA, reason="the real Fashion-MNIST is not installed (dataset-fashion-mnist)")
def test_lecture_quick_on_real_data_as_a_user_runs_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_DATA"}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", "lecture", "--quick", "--out", str(tmp_path / "r"), "--verbose", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["settings"]["train_samples"] == 6000
    # one epoch on a tenth of the data already beats chance by far
    assert results["net1"]["test_accuracy"] > 0.5 and results["net2"]["test_accuracy"] > 0.5


def test_missing_data_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["lecture", "--quick", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnlab lecture: Fashion-MNIST: the folder given by path= argument")
    assert "Traceback" not in err


def test_bad_option_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["lecture", "--epochs", "0"])
    assert info.value.code == 2
    assert "expected a positive integer, received '0'" in capsys.readouterr().err
