"""Helpers shared by the benchmark scripts: paths, thread setup, timing, memory, tables.

Nothing here imports numba or skfm at module level: thread and threading-layer settings are
environment variables that numba reads once, when it is first imported, so the scripts call
:func:`configure_numba` before they import skfm.
"""
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
#: Frappe lives beside the repository, never inside it (its license forbids redistribution).
DEFAULT_FRAPPE_DIR = REPO_ROOT.parent / "shared" / "data" / "frappe"
DEFAULT_TORCH_REF = REPO_ROOT.parent / "shared" / "bench" / "torch_ref.py"
FRAPPE_TRAIN = "frappe.validation.libfm.gz"  # the public validation split, used for training
FRAPPE_TEST = "frappe.test.libfm.gz"
FRAPPE_N_FEATURES = 5382


# ------------------------------------------------------------------------------------ setup
def use_checkout():
    """Benchmark the skfm of this checkout (the repository root goes first on sys.path), so an
    older installed copy is never measured by mistake."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)


def configure_numba(max_threads, threading_layer=None, cold_jit=False):
    """Set numba's environment before numba is imported.

    - ``NUMBA_NUM_THREADS`` is raised to ``max_threads`` when that exceeds the core count (so a
      requested oversubscription is honoured instead of silently capped);
    - ``NUMBA_THREADING_LAYER`` is set when ``threading_layer`` is given;
    - ``cold_jit`` points ``NUMBA_CACHE_DIR`` at a fresh empty folder, so the JIT warm-up
      measures a full compile instead of a load from numba's on-disk cache.

    Returns the temporary cache folder (or None)."""
    if "numba" in sys.modules:
        print("warning: numba was imported before configure_numba(); thread settings may not "
              "apply", file=sys.stderr)
    if max_threads > (os.cpu_count() or 1):
        os.environ["NUMBA_NUM_THREADS"] = str(max_threads)
    if threading_layer and threading_layer != "default":
        os.environ["NUMBA_THREADING_LAYER"] = threading_layer
    if cold_jit:
        tmp = tempfile.mkdtemp(prefix="skfm-bench-numba-cache-")
        os.environ["NUMBA_CACHE_DIR"] = tmp
        return tmp
    return None


def numba_cache_files():
    """Number of numba cache index files (*.nbi) of skfm's kernels that exist now: > 0 means a
    first call loads compiled code instead of compiling it."""
    where = os.environ.get("NUMBA_CACHE_DIR")
    roots = [Path(where)] if where else [REPO_ROOT / "skfm"]
    return sum(1 for r in roots if r.exists() for _ in r.rglob("*.nbi"))


def effective_threads(n_jobs):
    """The thread count skfm really uses for ``n_jobs`` (needs numba imported)."""
    from skfm._trainer import n_threads  # private, but the one source of truth
    return n_threads(n_jobs)


# ------------------------------------------------------------------------------------ data
def find_frappe(frappe_dir=None):
    """(train_path, test_path) when both Frappe files exist, else None."""
    d = Path(frappe_dir) if frappe_dir else DEFAULT_FRAPPE_DIR
    tr, te = d / FRAPPE_TRAIN, d / FRAPPE_TEST
    return (tr, te) if tr.is_file() and te.is_file() else None


def load_frappe(paths, dtype=None):
    """Xtr, ytr, Xte, yte (CSR, labels 0/1) read in place with skfm's libFM loader."""
    import numpy as np
    from skfm.datasets import load_libfm
    return load_libfm([str(p) for p in paths], n_features=FRAPPE_N_FEATURES,
                      dtype=dtype or np.float32)


# ------------------------------------------------------------------------------------ measuring
def system_busy_s():
    """CPU seconds all processes of the machine have used since boot (from /proc/stat), or
    NaN where there is no /proc."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall and process CPU seconds (all threads) of a ``with`` block, and the cores that
    *other* processes kept busy meanwhile (``others``: machine-wide busy CPU minus this
    process's own, per wall second; ``extra_cpu`` subtracts CPU of a child the block waited
    for).  ``others`` well above 0 means the numbers of that block were measured under load."""

    def __enter__(self):
        self._b = system_busy_s()
        self._w = time.perf_counter()
        self._c = time.process_time()
        self.extra_cpu = 0.0
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c
        busy = system_busy_s() - self._b
        self._busy = busy
        self.others = max(0.0, busy - self.cpu) / self.wall if self.wall > 0 else float("nan")
        return False

    def others_excluding(self, child_cpu):
        """``others`` when a child process used ``child_cpu`` CPU seconds inside the block."""
        return max(0.0, self._busy - self.cpu - child_cpu) / self.wall


def wait_for_quiet(max_wait, threshold=0.3, window=1.0):
    """Wait until other processes use less than ``threshold`` cores over a ``window`` second
    sample, for at most ``max_wait`` seconds (0: do not wait).  Returns the seconds waited."""
    if not max_wait or max_wait <= 0:
        return 0.0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        b0, c0 = system_busy_s(), time.process_time()
        time.sleep(window)
        others = (system_busy_s() - b0 - (time.process_time() - c0)) / window
        if not others > threshold:  # also stops on NaN (no /proc)
            break
    return time.perf_counter() - t0


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def peak_rss_mib(who=resource.RUSAGE_SELF):
    """Peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(who).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mem_total_gib():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0 ** 2
    except OSError:
        pass
    return float("nan")


def machine_info():
    """Facts about the machine and the software (numba must be importable)."""
    import numba
    import numpy
    import scipy
    import sklearn
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": affinity, "cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
        "mem_gib": round(mem_total_gib(), 1), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": numpy.__version__,
        "scipy": scipy.__version__, "sklearn": sklearn.__version__, "numba": numba.__version__,
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer_requested": os.environ.get("NUMBA_THREADING_LAYER", "default"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }


def threading_layer():
    """The threading layer numba picked (known only after a parallel kernel has run)."""
    import numba
    try:
        return numba.threading_layer()
    except ValueError:
        return "(not yet chosen)"


def header_lines(info, skfm_module):
    la = loadavg()
    return [
        f"date: {info['date']}",
        f"machine: nproc={info['nproc']}  CPU: {info['cpu_model']}  memory: {info['mem_gib']} GiB"
        f"  load average (1/5/15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}",
        f"software: Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"scikit-learn {info['sklearn']}, numba {info['numba']} "
        f"(NUMBA_NUM_THREADS={info['numba_num_threads']}, threading layer requested: "
        f"{info['threading_layer_requested']}, OMP_WAIT_POLICY={info['omp_wait_policy']})",
        f"skfm {skfm_module.__version__} from {Path(skfm_module.__file__).parent}",
    ]


def start_comparison(title, max_threads, threading_layer=None):
    """Common start of the comparison scripts: numba's threads set before it is imported, this
    checkout's skfm imported, ConvergenceWarning silenced (fixed epoch counts), and the title
    and machine header printed.  Returns (skfm module, machine info)."""
    import warnings
    configure_numba(max_threads, threading_layer)
    use_checkout()
    import skfm
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)
    info = machine_info()
    print(title)
    for line in header_lines(info, skfm):
        print(line)
    return skfm, info


# ------------------------------------------------------------------------------------ output
def fmt(x, spec):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and x != x:
        return "n/a"
    return format(x, spec) if spec else str(x)


def table(columns, rows):
    """A plain-text table. ``columns``: list of (title, key, format spec); ``rows``: dicts."""
    cells = [[fmt(r.get(k), spec) for _, k, spec in columns] for r in rows]
    titles = [t for t, _, _ in columns]
    widths = [max(len(t), *(len(c[i]) for c in cells)) if cells else len(t)
              for i, t in enumerate(titles)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    out = [line(titles), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    return "\n".join(out)


def write_json(path, obj):
    def default(o):
        try:
            import numpy as np
            if isinstance(o, np.generic):
                return o.item()
        except ImportError:
            pass
        return str(o)
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=default)
        fh.write("\n")


# ------------------------------------------------------------------------------------ profiling
class CallTimes:
    """Wall time spent in calls of a few named functions, patched in place inside a ``with``
    block and restored after it.

    ``targets``: (label, owner, attribute) with owner a module or a class (staticmethods and
    plain methods both work).  A target that does not exist (skfm's internals moved) is
    skipped and listed in ``missing``; the benchmark goes on.  The wrappers cost a few
    microseconds per call, and the entry points are called a few times per epoch."""

    def __init__(self, targets):
        self.targets = targets
        self.total = {}
        self.calls = {}
        self.missing = []
        self._saved = []

    def _wrap(self, label, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] = self.total.get(label, 0.0) + time.perf_counter() - t0
                self.calls[label] = self.calls.get(label, 0) + 1
        return timed

    def __enter__(self):
        import inspect
        for label, owner, attr in self.targets:
            try:
                raw = inspect.getattr_static(owner, attr)
            except AttributeError:
                self.missing.append(label)
                continue
            if isinstance(raw, staticmethod):
                new = staticmethod(self._wrap(label, raw.__func__))
            else:
                new = self._wrap(label, raw)
            self._saved.append((owner, attr, raw))
            setattr(owner, attr, new)
            self.total.setdefault(label, 0.0)
            self.calls.setdefault(label, 0)
        return self

    def __exit__(self, *exc):
        for owner, attr, raw in reversed(self._saved):
            setattr(owner, attr, raw)
        self._saved = []
        return False


def skfm_epoch_targets():
    """The coarse entry points of skfm's training loop (needs skfm imported): one epoch, the
    augmentation of an epoch, the gather of its rows, and the compiled epoch kernel."""
    import importlib
    out = []
    for label, mod, owner, attr in [("epoch", "skfm._trainer", None, "run_epoch"),
                                    ("augment", "skfm._trainer", "Augmenter", "epoch_rows"),
                                    ("gather", "skfm._kernels.csr", None, "gather_sizes"),
                                    ("gather", "skfm._kernels.csr", None, "gather_fill"),
                                    ("train kernel", "skfm._cores", "FMCore", "train_epoch")]:
        try:
            m = importlib.import_module(mod)
            out.append((label, getattr(m, owner) if owner else m, attr))
        except (ImportError, AttributeError):
            out.append((label, object(), attr))  # reported as missing
    return out


def skfm_class(model, augmentation=None, task="classifier"):
    """The registered skfm estimator of ``model`` ("FM", "NFM", ...; needs skfm imported): the
    class with ``augmentation`` preset where the model has one (MixFMClassifier for "FM" and
    "mix"), else the model's base class (the caller passes ``augmentation`` anyway)."""
    from skfm._platform import all_estimators
    entries = all_estimators(model, task)
    if not entries:
        raise KeyError(f"skfm has no registered {model} {task}")
    presets = [e.cls for e in entries if e.augmentation == augmentation]
    return (presets or [e.cls for e in entries if e.augmentation is None])[0]


def parallel_region_cost_us(threads, reps=300):
    """Microseconds to launch one empty numba parallel region on ``threads`` threads: the fixed
    price of every parallel kernel call, paid several times per minibatch by training."""
    import numba
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def _empty_region(v):
        for i in prange(v.shape[0]):
            v[i] += 1.0

    v = np.zeros(64)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _empty_region(v)
        t0 = time.perf_counter()
        for _ in range(reps):
            _empty_region(v)
        return (time.perf_counter() - t0) / reps * 1e6
    finally:
        numba.set_num_threads(before)
