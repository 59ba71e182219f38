"""
OneHotEncoder -> SMFMClassifier in a Pipeline, tuned with GridSearchCV
======================================================================

Raw categorical columns go through scikit-learn's ``OneHotEncoder`` (which outputs a sparse CSR
matrix, exactly what skfm's kernels consume), then into an FM classifier.  ``GridSearchCV``
tunes the embedding size, the L2 penalty and the training-set augmentation together.
"""
# %%
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from skfm import SMFMClassifier
from skfm.datasets import make_fm_classification

# Categorical data: decode the one-hot matrix of the synthetic generator back to one column
# per field, as a user's raw table would look.
X_onehot, y = make_fm_classification(n_samples=6000, n_fields=6, field_size=30, random_state=0)
X_raw = (X_onehot.indices.reshape(-1, 6) % 30).astype(str)  # field values as strings
X_train, X_test, y_train, y_test = train_test_split(X_raw, y, random_state=0, stratify=y)

# %%
pipe = Pipeline([
    ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ("fm", SMFMClassifier(max_iter=20, learning_rate_init=0.01, random_state=0)),
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
print("best parameters:", search.best_params_)
print(f"cross-validated ROC AUC: {search.best_score_:.4f}")
print(f"held-out ROC AUC:        {search.score(X_test, y_test):.4f}")
ranked = np.argsort(search.cv_results_["rank_test_score"])
for i in ranked[:5]:
    print(f"  {search.cv_results_['mean_test_score'][i]:.4f}  {search.cv_results_['params'][i]}")
