"""
FM, MixFM and SMFM in a Pipeline, tuned with GridSearchCV
==========================================================

Raw categorical columns go through scikit-learn's ``OneHotEncoder`` (which outputs a sparse CSR
matrix, exactly what skfm's kernels consume), then into an FM classifier.  ``GridSearchCV``
tunes the embedding size, the L2 penalty and the training-set augmentation together:
``augmentation=None`` is FM, ``"mix"`` MixFM and ``"saliency"`` SMFM.
"""
# %%
# Categorical data
# ----------------
# Decode the one-hot matrix of the synthetic generator back to one column per field, as a
# user's raw table would look.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from skfm import SMFMClassifier
from skfm.datasets import make_fm_classification

X_onehot, y = make_fm_classification(n_samples=4000, n_fields=6, field_size=30, random_state=0)
X_raw = (X_onehot.indices.reshape(-1, 6) % 30).astype(str)  # field values as strings
X_train, X_test, y_train, y_test = train_test_split(X_raw, y, random_state=0, stratify=y)

# %%
# The pipeline and the grid
# -------------------------
# ``SMFMClassifier`` is ``FMClassifier`` with ``augmentation="saliency"`` preset; the grid
# overrides the augmentation, so one pipeline covers the three methods.
pipe = Pipeline([
    ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ("fm", SMFMClassifier(max_iter=15, learning_rate_init=0.01, random_state=0)),
])
grid = {
    "fm__n_factors": [4, 16],
    "fm__alpha": [1e-5, 1e-3],
    "fm__augmentation": [None, "mix", "saliency"],
}
search = GridSearchCV(pipe, grid, scoring="roc_auc", cv=3, n_jobs=1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)

# %%
# Results
# -------
print("best parameters:", search.best_params_)
print(f"cross-validated ROC AUC: {search.best_score_:.4f}")
print(f"held-out ROC AUC:        {search.score(X_test, y_test):.4f}")
ranked = np.argsort(search.cv_results_["rank_test_score"])
for i in ranked[:5]:
    print(f"  {search.cv_results_['mean_test_score'][i]:.4f}  {search.cv_results_['params'][i]}")

# %%
# Cross-validated ROC AUC of every setting (mean and standard deviation over the 3 folds).
res = search.cv_results_
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
names = {None: "FM", "mix": "MixFM", "saliency": "SMFM"}
for ax, alpha in zip(axes, grid["fm__alpha"]):
    for k, n_factors in enumerate(grid["fm__n_factors"]):
        rows = [i for i, p in enumerate(res["params"])
                if p["fm__alpha"] == alpha and p["fm__n_factors"] == n_factors]
        x = np.arange(len(rows)) + 0.35 * k
        ax.bar(x, res["mean_test_score"][rows], 0.35, yerr=res["std_test_score"][rows],
               label=f"n_factors={n_factors}")
    ax.set_xticks(np.arange(len(rows)) + 0.175,
                  [names[res["params"][i]["fm__augmentation"]] for i in rows])
    ax.set_title(f"alpha={alpha:g}")
    ax.grid(axis="y", alpha=0.3)
low = (res["mean_test_score"] - res["std_test_score"]).min()
high = (res["mean_test_score"] + res["std_test_score"]).max()
axes[0].set_ylim(low - 0.02, high + 0.02)  # the axes share y
axes[0].set_ylabel("cross-validated ROC AUC")
axes[0].legend(loc="upper left")
fig.tight_layout()
plt.show()
