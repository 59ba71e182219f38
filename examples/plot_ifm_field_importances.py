"""
IFM's field aspect: which field pairs matter
=============================================

The interaction-aware FM (:class:`~skfm.IFMClassifier`, Hong et al. 2019) weighs each pair of a
row's nonzero features twice: by an attention score ``T_ij`` over the row's pairs (the feature
aspect, :meth:`~skfm.IFMClassifier.interaction_scores`) and by a vector ``F_fg = D^T (U_f *
U_g)`` shared by all the pairs of fields f and g (the field aspect).  The norms ``||F_fg||``,
``field_importances_``, read the model at the field level (the IFM paper's Table 3).  We plant
interactions between two known pairs of fields, as in the AFM attention example, fit IFM and
show the norms as a heatmap with the fields' names.
"""
# %%
# Data with planted field interactions
# ------------------------------------
# Six categorical fields of 12 values each, one-hot encoded as consecutive column blocks (which
# ``fields="auto"``, IFM's default, recovers).  The label depends only on the pairs (colour,
# shape) and (city, weekday), through random +-1 tables; "noise A" and "noise B" are noise.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skfm import FMClassifier, IFMClassifier

names = ["colour", "shape", "city", "weekday", "noise A", "noise B"]
rng = np.random.default_rng(0)
n_samples, n_fields, size = 8000, len(names), 12
values = rng.integers(0, size, (n_samples, n_fields))
A, B = rng.choice([-1.0, 1.0], (2, size, size))
logit = 2.0 * A[values[:, 0], values[:, 1]] + 2.0 * B[values[:, 2], values[:, 3]]
y = (rng.random(n_samples) < 1 / (1 + np.exp(-logit))).astype(int)
cols = values + size * np.arange(n_fields)  # field f owns columns f*size .. (f+1)*size-1
X = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, n_fields)),
                  shape=(n_samples, n_fields * size))
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

# %%
# Fit IFM (and FM for comparison)
# -------------------------------
# Small sizes and a learning rate of 1e-2 (the default 1e-3 needs many more epochs here).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    ifm = IFMClassifier(n_factors=8, attention_factor=8, n_field_factors=4,
                        learning_rate_init=0.01, max_iter=30, random_state=0)
    ifm.fit(X_train, y_train)
    fm = FMClassifier(n_factors=8, learning_rate_init=0.01, max_iter=30, random_state=0)
    fm.fit(X_train, y_train)
print(f"fields found: {ifm.n_fields_}")
print(f"test accuracy: IFM {ifm.score(X_test, y_test):.3f}, FM {fm.score(X_test, y_test):.3f} "
      f"(epochs: IFM {ifm.n_iter_}, FM {fm.n_iter_})")

# %%
# Field importances
# -----------------
# ``field_importances_[f, g]`` is ``||F_fg||``; the diagonal (a field with itself) has no pair
# here, since every row has one value per field, so it is left out.  The two planted pairs come
# out on top, about twice the norm of any other pair.
imp = ifm.field_importances_
iu = np.triu_indices(n_fields, 1)
planted = [(0, 1), (2, 3)]
for i, j in planted:
    print(f"planted pair ({names[i]}, {names[j]}): ||F|| = {imp[i, j]:.3f}")
others = [imp[i, j] for i, j in zip(*iu) if (i, j) not in planted]
print(f"the other {len(others)} field pairs: mean {np.mean(others):.3f}, "
      f"max {np.max(others):.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 5))
shown = np.where(np.eye(n_fields, dtype=bool), np.nan, imp)
im = ax.imshow(shown, cmap="viridis")
for i in range(n_fields):
    for j in range(n_fields):
        if i != j:
            ax.text(j, i, f"{shown[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="w" if shown[i, j] < np.nanmean(shown) else "k")
ax.set_xticks(range(n_fields), names, rotation=45, ha="right")
ax.set_yticks(range(n_fields), names)
ax.set_title("IFM: field importances ||F_fg||\n(planted: colour-shape and city-weekday)")
fig.colorbar(im, ax=ax, label="||F_fg||")
fig.tight_layout()
plt.show()
