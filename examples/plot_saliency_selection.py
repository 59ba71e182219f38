"""
Reading saliency: which mixed rows SMFM keeps
==============================================

SMFM (``augmentation="saliency"``, SMFM paper Alg. 2) draws ``n_candidates`` mixed rows
``x~ = lam x + (1 - lam) r`` for each first parent ``x`` and keeps the one with the largest
saliency ``S(x~, y~) = sum_i x~_i dL/dx~_i`` (Eq. 5) under the current model.  This example
replays one selection step with the public API: it fits a model, draws candidates the way the
trainer does (same distributions, not the trainer's own random stream), scores them with
:meth:`~skfm.SMFMClassifier.saliency` and looks at what the maximum picks.
"""
# %%
# A fitted model and its rows' saliency
# -------------------------------------
# ``saliency(X, y)`` returns S for every row under the fitted model.  For the logistic loss,
# ``S = (sigmoid(f) - y) * (sum_i w_i x_i + 2 sum_{i<j} <v_i, v_j> x_i x_j)``: positive when
# strengthening the row would push the prediction further from its label.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skfm import SMFMClassifier
from skfm.datasets import make_fm_classification

X, y = make_fm_classification(n_samples=4000, n_fields=6, field_size=20, random_state=0)
clf = SMFMClassifier(n_factors=8, max_iter=5, early_stopping=False, random_state=0)
with warnings.catch_warnings():  # 5 epochs on purpose: a model in the middle of training
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X, y)
S_rows = clf.saliency(X, y)
print(f"training rows: {X.shape[0]}, saliency range [{S_rows.min():.3f}, {S_rows.max():.3f}], "
      f"share > 0: {np.mean(S_rows > 0):.2f}")

# %%
# Candidate mixes, as Alg. 2 draws them
# -------------------------------------
# For each first parent, ``p = n_candidates`` partners uniform over the rows and
# ``lam = max(lam', 1 - lam')``, ``lam' ~ Beta(mix_alpha, mix_beta)``.  A mixed row is the
# sparse sum of its parents (a shared feature appears once), its label the soft label
# ``y~ = lam y + (1 - lam) y_r``.  The logistic loss's derivative ``sigmoid(f) - y~`` is affine
# in the label, so ``S(x~, y~) = lam S(x~, y) + (1 - lam) S(x~, y_r)``: two calls with hard
# labels give the saliency of the soft-labelled candidate.
rng = np.random.default_rng(0)
n_parents, p = 1000, clf.n_candidates
parents = np.repeat(rng.choice(X.shape[0], n_parents, replace=False), p)
partners = rng.integers(0, X.shape[0], n_parents * p)
lam_ = rng.beta(clf.mix_alpha, clf.mix_beta, n_parents * p)
lam = np.maximum(lam_, 1 - lam_)
X_mix = sp.diags(lam) @ X[parents] + sp.diags(1 - lam) @ X[partners]
S_mix = lam * clf.saliency(X_mix, y[parents]) + (1 - lam) * clf.saliency(X_mix, y[partners])

S_cand = S_mix.reshape(n_parents, p)
pick = S_cand.argmax(axis=1)
picked = np.zeros((n_parents, p), bool)
picked[np.arange(n_parents), pick] = True
picked = picked.ravel()

# %%
# What the maximum picks
# ----------------------
# Compare the kept candidates with all candidates: their saliency, how often the two parents
# carry different labels, and the mixing weight.
differ = y[parents] != y[partners]
for name, mask in [("all candidates", np.ones_like(picked)), ("kept (max S)", picked)]:
    print(f"{name:15s} mean S {S_mix[mask].mean():+.3f}   parents' labels differ "
          f"{differ[mask].mean():.2f}   mean lam {lam[mask].mean():.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
bins = np.linspace(min(S_rows.min(), S_mix.min()), max(S_rows.max(), S_mix.max()), 60)
axes[0].hist(S_rows, bins=bins, density=True, alpha=0.5, label="training rows")
axes[0].hist(S_mix, bins=bins, density=True, alpha=0.5, label="all candidate mixes")
axes[0].hist(S_mix[picked], bins=bins, density=True, histtype="step", lw=2, color="k",
             label="kept candidates (max per parent)")
axes[0].set_xlabel("saliency S")
axes[0].set_ylabel("density")
axes[0].legend(loc="upper left", fontsize=8)
for mask, color, label in [(~differ, "tab:blue", "same labels"),
                           (differ, "tab:orange", "different labels")]:
    axes[1].scatter(lam[mask & ~picked], S_mix[mask & ~picked], s=3, alpha=0.3, color=color,
                    label=f"candidate, parents with {label}")
    axes[1].scatter(lam[mask & picked], S_mix[mask & picked], s=12, color=color,
                    edgecolor="k", linewidth=0.5, label=f"kept, parents with {label}")
axes[1].set_xlabel("mixing weight lam of the first parent")
axes[1].set_ylabel("saliency S")
axes[1].legend(fontsize=8, markerscale=2)
fig.suptitle(f"SMFM's selection: {p} candidates per first parent, {n_parents} parents")
fig.tight_layout()
plt.show()
