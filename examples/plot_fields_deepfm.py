"""
Fields: ``fields="auto"`` against explicit fields, with DeepFM
==============================================================

Field-aware models (here :class:`~skfm.DeepFMClassifier`) need the *field* of each column: the
block of columns that one raw column becomes after encoding.  ``fields="auto"`` (DeepFM's
default) infers them from the training matrix as consecutive column blocks; an array gives them
explicitly.  We encode a table of four categorical columns and one numeric column with a
``ColumnTransformer`` and check that both ways give the same fields and the same model.
"""
# %%
# A raw table and its encoding
# ----------------------------
# The label depends on two interactions between categorical columns and on the numeric one.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skfm import DeepFMClassifier, FMClassifier

rng = np.random.default_rng(0)
n_samples, sizes = 6000, [20, 15, 8, 30]
codes = np.column_stack([rng.integers(0, s, n_samples) for s in sizes])
amount = rng.normal(size=n_samples)
A = rng.normal(size=(sizes[0], sizes[1]))
B = rng.normal(size=(sizes[2], sizes[3]))
logit = 1.5 * A[codes[:, 0], codes[:, 1]] + 1.5 * B[codes[:, 2], codes[:, 3]] + 0.8 * amount
y = (rng.random(n_samples) < 1 / (1 + np.exp(-logit))).astype(int)
table = np.column_stack([codes.astype(str).astype(object), amount])  # 4 text columns, 1 number
X_train, X_test, y_train, y_test = train_test_split(table, y, random_state=0, stratify=y)

encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2, 3]),
                            ("num", StandardScaler(), [4])], sparse_threshold=1.0)
Xt = encode.fit_transform(X_train)
print(f"encoded training matrix: {Xt.shape[0]} rows x {Xt.shape[1]} columns, {Xt.format}")

# %%
# Explicit fields from the encoder
# --------------------------------
# The ``OneHotEncoder`` writes one block per column (as many columns as categories), then the
# scaler's one column.
n_categories = [len(c) for c in encode.named_transformers_["cat"].categories_]
explicit = np.repeat(np.arange(len(n_categories) + 1), n_categories + [1])
print("categories per column:", n_categories)

# %%
# Fit DeepFM both ways
# --------------------
settings = dict(n_factors=8, hidden_layer_sizes=(32,), max_iter=30, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    auto = make_pipeline(clone(encode), DeepFMClassifier(fields="auto", **settings)).fit(X_train, y_train)
    given = make_pipeline(clone(encode), DeepFMClassifier(fields=explicit, **settings)).fit(X_train,
                                                                                   y_train)
    fm = make_pipeline(clone(encode), FMClassifier(n_factors=8, max_iter=30, random_state=0))
    fm.fit(X_train, y_train)

inferred = auto[-1].fields_
print(f"fields='auto' found {auto[-1].n_fields_} fields; equal to the explicit ones: "
      f"{np.array_equal(inferred, given[-1].fields_)}")
p_auto, p_given = auto.predict_proba(X_test)[:, 1], given.predict_proba(X_test)[:, 1]
print(f"same predictions: {np.array_equal(p_auto, p_given)}")
for name, model in [("DeepFM", auto), ("FM", fm)]:
    print(f"{name:6s} test ROC AUC {roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]):.4f}")

# %%
# The inferred field of every column; the numeric column, nonzero in every row, is a field of
# its own.
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.step(np.arange(len(inferred)), inferred, where="mid", lw=2, label='fields_ with "auto"')
ax.step(np.arange(len(explicit)), explicit, where="mid", ls="--", color="k",
        label="explicit (from the encoder)")
ax.set_xlabel("column of the encoded matrix")
ax.set_ylabel("field")
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()
