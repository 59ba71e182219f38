"""Compile every model's Numba kernels in parallel worker processes before a large test run.

On a machine whose kernel cache is cold, the tests spend most of their time compiling, one
kernel at a time.  Before a session of at least ``PRECOMPILE_FROM`` tests (the whole suite),
:func:`skfm.precompile` compiles them first with one worker per core, and the tests load them
from the on-disk cache.  A smaller selection (one test file, ``-k``) compiles only what it uses,
as it runs.  ``SKFM_PRECOMPILE=1`` or ``=0`` forces the step on or off.
"""
import os
import time

PRECOMPILE_FROM = 1000


def pytest_collection_finish(session):
    wanted = os.environ.get("SKFM_PRECOMPILE", "")
    if wanted not in ("", "0", "1"):
        raise ValueError(f"SKFM_PRECOMPILE must be 0 or 1; got {wanted!r}")
    if session.config.option.collectonly or wanted == "0" or (
            wanted != "1" and len(session.items) < PRECOMPILE_FROM):
        return
    from skfm import precompile

    t0 = time.perf_counter()
    seconds = precompile(n_jobs=-1)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"skfm.precompile: {len(seconds)} (model, dtype) tasks in "
                            f"{time.perf_counter() - t0:.0f} s")
