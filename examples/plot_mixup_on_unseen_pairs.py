"""
Mixup on unseen feature pairs: learning curves of FM, MixFM and SMFM
=====================================================================

Every test row of :func:`skfm.datasets.make_unseen_pairs` pairs a user and an item that never
appear together in the training rows.  We train FM, MixFM and SMFM with the same settings and
record the test ROC AUC after every epoch.  The augmented methods see twice as many rows per
epoch, so the second panel plots the same curves against the number of optimizer steps.

Needs matplotlib (``pip install ".[examples]"``).
"""
# %%
import warnings

import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from skfm import FMClassifier, MixFMClassifier, SMFMClassifier
from skfm.datasets import make_unseen_pairs

X_train, X_test, y_train, y_test = make_unseen_pairs(random_state=0)
EPOCHS = 40
settings = dict(n_factors=16, learning_rate_init=1e-3, batch_size=256, random_state=0,
                max_iter=1, warm_start=True, early_stopping=False)

# %%
# Train one epoch at a time (``warm_start=True, max_iter=1`` continues exactly where the last
# call stopped) and score the held-out rows after each epoch.
curves = {}
for name, cls in [("FM", FMClassifier), ("MixFM", MixFMClassifier), ("SMFM", SMFMClassifier)]:
    est = cls(**settings)
    aucs, steps = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(EPOCHS):
            est.fit(X_train, y_train)
            aucs.append(roc_auc_score(y_test, est.predict_proba(X_test)[:, 1]))
            steps.append(est.t_)
    curves[name] = (aucs, steps)
    print(f"{name:6s} test AUC after {EPOCHS} epochs: {aucs[-1]:.4f} (best {max(aucs):.4f})")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for name, (aucs, steps) in curves.items():
    axes[0].plot(range(1, EPOCHS + 1), aucs, label=name)
    axes[1].plot(steps, aucs, label=name)
axes[0].set_xlabel("epoch")
axes[1].set_xlabel("optimizer steps")
axes[0].set_ylabel("test ROC AUC (unseen user-item pairs)")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("FM vs MixFM vs SMFM on make_unseen_pairs")
fig.tight_layout()
plt.show()
