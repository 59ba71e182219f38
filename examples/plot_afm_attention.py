"""
AFM's attention: which field pairs the model attends to
========================================================

The attentional FM (:class:`~skfm.AFMClassifier`, Xiao et al. 2017) weighs each pair of a row's
nonzero features with a softmax attention score ``a_ij`` (the scores of a row sum to 1).  We
plant interactions between two known pairs of fields, fit AFM, and average the scores of
:meth:`~skfm.AFMClassifier.attention_scores` over the rows, field pair by field pair.
"""
# %%
# Data with planted field interactions
# ------------------------------------
# Six categorical fields of 12 values each, one-hot encoded as consecutive column blocks.  The
# label depends only on the pairs (field 0, field 1) and (field 2, field 3), through random
# +-1 tables; fields 4 and 5 are noise.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skfm import AFMClassifier, FMClassifier

rng = np.random.default_rng(0)
n_samples, n_fields, size = 8000, 6, 12
values = rng.integers(0, size, (n_samples, n_fields))
A, B = rng.choice([-1.0, 1.0], (2, size, size))
logit = 2.0 * A[values[:, 0], values[:, 1]] + 2.0 * B[values[:, 2], values[:, 3]]
y = (rng.random(n_samples) < 1 / (1 + np.exp(-logit))).astype(int)
cols = values + size * np.arange(n_fields)  # field f owns columns f*size .. (f+1)*size-1
X = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, n_fields)),
                  shape=(n_samples, n_fields * size))
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

# %%
# Fit AFM (and FM for comparison)
# -------------------------------
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    afm = AFMClassifier(n_factors=8, attention_factor=8, max_iter=30, random_state=0)
    afm.fit(X_train, y_train)
    fm = FMClassifier(n_factors=8, max_iter=30, random_state=0).fit(X_train, y_train)
print(f"test accuracy: AFM {afm.score(X_test, y_test):.3f}, FM {fm.score(X_test, y_test):.3f} "
      f"(epochs: AFM {afm.n_iter_}, FM {fm.n_iter_})")

# %%
# Average attention per field pair
# --------------------------------
# ``attention_scores`` returns, for every row, its pairs of feature ids and their weights.
# Each row here has 6 nonzeros, so 15 pairs; a uniform attention would give every pair 1/15.
indptr, pairs, weights = afm.attention_scores(X_test)
field_of = np.repeat(np.arange(n_fields), size)
fi, fj = field_of[pairs[:, 0]], field_of[pairs[:, 1]]
total = np.zeros((n_fields, n_fields))
count = np.zeros((n_fields, n_fields))
np.add.at(total, (fi, fj), weights)
np.add.at(count, (fi, fj), 1)
mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
mean = np.fmax(mean, mean.T)  # pairs are stored with i < j: mirror to a symmetric table

iu = np.triu_indices(n_fields, 1)
planted = [(0, 1), (2, 3)]
print(f"uniform attention: {1 / 15:.4f}")
for i, j in planted:
    print(f"planted pair, fields ({i}, {j}): mean attention {mean[i, j]:.4f}")
others = [mean[i, j] for i, j in zip(*iu) if (i, j) not in planted]
print(f"the other {len(others)} field pairs: mean {np.mean(others):.4f}, "
      f"max {np.max(others):.4f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5))
shown = np.where(np.eye(n_fields, dtype=bool), np.nan, mean)
im = ax.imshow(shown, cmap="viridis")
for i in range(n_fields):
    for j in range(n_fields):
        if i != j:
            ax.text(j, i, f"{shown[i, j]:.3f}", ha="center", va="center", fontsize=8,
                    color="w" if shown[i, j] < np.nanmean(shown) else "k")
ax.set_xticks(range(n_fields))
ax.set_yticks(range(n_fields))
ax.set_xlabel("field")
ax.set_ylabel("field")
ax.set_title("AFM: mean attention per field pair\n(planted: fields 0-1 and 2-3)")
fig.colorbar(im, ax=ax, label="mean attention weight")
fig.tight_layout()
plt.show()
