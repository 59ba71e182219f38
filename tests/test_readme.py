"""The README's Python examples run verbatim (a newcomer copies them)."""
import pathlib
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out  # the examples print their results


def test_demo_runs_and_reports_every_method(capsys):
    """``python -m skfm`` (the README's main job), on fewer epochs: it announces the one-time
    compilation, then prints one row per method."""
    from skfm.__main__ import METHODS, main
    aucs = main(["--max-iter", "2"])
    out = capsys.readouterr().out
    assert "preparing skfm's Numba kernels" in out and "ready in" in out
    assert "\nLogisticRegression() " in out
    for _, Est in METHODS:
        assert f"\n{Est.__name__}() " in out
    # the closing line is computed from the table, whichever way it comes out
    names = [name for name, _ in METHODS]
    best = names[int(np.argmax(aucs))]
    assert f"Best test AUC here: {best}." in out
    assert f"SMFM - FM = {aucs[names.index('SMFM')] - aucs[names.index('FM')]:+.4f}" in out
