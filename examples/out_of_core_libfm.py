"""
Out-of-core training from a libFM file
======================================

A factorization machine can learn from a file larger than memory: read it in chunks with
:func:`skfm.datasets.iter_libfm` and feed each chunk to ``partial_fit``; one pass over the chunks
is one epoch.  :func:`skfm.datasets.scan_libfm` first counts the rows and the features in one
streaming pass, so that every chunk gets the same columns.

Here the "large" file is a small synthetic one written to a temporary directory, so that the
example runs in seconds; the code is the same for a file of many gigabytes (memory is that of
one chunk and of the model).
"""

# %%
# Write a libFM file
# ------------------
# 20,000 training rows of 8 one-hot fields with planted pairwise interactions, in the libFM
# (svmlight) text format, and 5,000 test rows kept in memory.
import os
import tempfile

from sklearn.datasets import dump_svmlight_file
from sklearn.metrics import roc_auc_score

from skfm import FMClassifier
from skfm.datasets import iter_libfm, make_fm_classification, scan_libfm

X, y = make_fm_classification(n_samples=25_000, random_state=0)
X_test, y_test = X[20_000:], y[20_000:]
path = os.path.join(tempfile.mkdtemp(), "train.libfm")
dump_svmlight_file(X[:20_000], y[:20_000], path, zero_based=True)
print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")

# %%
# Scan it once
# ------------
# The number of columns must be known before the first chunk.
n_samples, n_features = scan_libfm(path)
print(f"{n_samples:,} rows, {n_features:,} features")

# %%
# Train epoch by epoch over chunks
# --------------------------------
# ``partial_fit`` runs one epoch over the rows it is given and continues from the current
# state; ``classes`` is needed on the first call.  Early stopping does not apply to
# ``partial_fit``: here the test AUC after each pass shows the progress.
clf = FMClassifier(n_factors=16, learning_rate_init=0.01, random_state=0)
for epoch in range(4):
    for X_chunk, y_chunk in iter_libfm(path, chunk_rows=5_000, n_features=n_features):
        clf.partial_fit(X_chunk, y_chunk, classes=[0, 1])
    auc = roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1])
    print(f"pass {epoch + 1}: test ROC AUC {auc:.4f}")

# %%
# Remove the temporary file.
import shutil

shutil.rmtree(os.path.dirname(path))
