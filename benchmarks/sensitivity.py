"""The SMFM paper's sensitivity studies on Frappe: the test-AUC gain of SM over the base model
against ``mix_ratio`` (the paper's Fig. 4) and against ``n_candidates`` p (Fig. 5), for FM and
NFM, with the paper protocol of reproduce_frappe.py (Adam, lr 1e-3, batch 2048, d=64, 30 epochs;
NFM as torch_ref's: one ReLU layer of 64, no dropout, no batch norm).

    pip install ".[bench]"
    python benchmarks/sensitivity.py                # FM and NFM, seed 0 (~3 min on 2 cores)
    python benchmarks/sensitivity.py --models fm --epochs 10 --ratios 0.1 1 --ps 1 10

The gain is SM's test AUC after the last epoch minus the base model's (same seed, same epochs);
with p fixed at 10 for the mix_ratio sweep and mix_ratio fixed at 1 for the p sweep (p = 1 is
Mixup: one uniform partner, no saliency).  Writes one figure per sweep (PNG, ``--out``) and, with
``--json``, every figure.  Frappe is read in place from ../shared/data/frappe (or --frappe-dir).
"""
import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["fm", "nfm"], choices=["fm", "nfm"])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--ps", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--frappe-dir", default=None)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "figures"),
                    help="folder of the figures (default: benchmarks/figures)")
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    C.use_checkout()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    import skfm
    from reproduce_frappe import fixed_epochs

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    paths = C.find_frappe(a.frappe_dir)
    if not paths:
        sys.exit("Frappe not found: this study reproduces the paper's Frappe figures "
                 "(--frappe-dir).")
    info = C.machine_info()
    for line in C.header_lines(info, skfm):
        print(line)
    Xtr, ytr, Xte, yte = C.load_frappe(paths)
    print(f"Frappe: {Xtr.shape[0]:,} training rows, {Xte.shape[0]:,} test rows; "
          f"{a.epochs} epochs; seeds {a.seeds}", flush=True)

    def run(model, aug, seed, **over):
        t0 = time.perf_counter()
        r = fixed_epochs(Xtr, ytr, Xte, yte, aug, seed, a.epochs, a.n_jobs, model=model,
                         overrides=over)
        print(f"  {model} {aug or 'base'} {over} seed {seed}: test AUC {r['auc']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return r["auc"]

    res = {"machine": info, "args": vars(a), "base": {}, "ratio": {}, "p": {}}
    for model in a.models:
        base = {s: run(model, None, s) for s in a.seeds}
        res["base"][model] = base
        res["ratio"][model] = {r: [run(model, "saliency", s, mix_ratio=r, n_candidates=10)
                                   - base[s] for s in a.seeds] for r in a.ratios}
        res["p"][model] = {p: [run(model, "saliency", s, mix_ratio=1.0, n_candidates=p)
                               - base[s] for s in a.seeds] for p in a.ps}

    os.makedirs(a.out, exist_ok=True)
    for sweep, xs, xlabel, fig_no in (("ratio", a.ratios, "mix_ratio (n'/n), p = 10", 4),
                                      ("p", a.ps, "n_candidates p, mix_ratio = 1", 5)):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        print(f"\nSM - base test AUC against {sweep} (mean over seeds):")
        for model in a.models:
            gains = [float(np.mean(res[sweep][model][x])) for x in xs]
            ax.plot(xs, gains, "o-", label=f"SM{model.upper()} - {model.upper()}")
            print(f"  {model}: " + ", ".join(f"{x}: {g:+.4f}" for x, g in zip(xs, gains)))
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test AUC gain")
        ax.set_title(f"Frappe, {a.epochs} epochs (cf. SMFM paper Fig. {fig_no})", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(a.out, f"sensitivity_{sweep}.png")
        fig.savefig(path, dpi=110)
        print(f"  figure: {path}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
