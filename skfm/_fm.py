"""Factorization machine estimators: FM, and FM trained with Mixup (MixFM) or saliency-guided
Mixup (SMFM)."""
from ._cores import FMCore
from ._platform import Model, make_estimator

__all__ = ["FMClassifier", "FMRegressor", "MixFMClassifier", "MixFMRegressor", "SMFMClassifier",
           "SMFMRegressor"]

FM = Model(
    name="FM",
    module=__name__,
    title="Factorization machine {task}",
    summary="""
        The model (Rendle 2010) for a row x with nonzeros x_i is

            f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

        computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
        sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.
    """,
    core=lambda estimator, fields: FMCore(),
    presets=("mix", "saliency"),
    related=("NFM", "AFM"),
    references="""
        S. Rendle. Factorization Machines. ICDM 2010.
        C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.
    """,
    example={"n_factors": 4, "max_iter": 20},
    fast={"n_factors": 3, "max_iter": 3, "batch_size": 32},
)

FMClassifier = make_estimator(FM, "classifier")
FMRegressor = make_estimator(FM, "regressor")
MixFMClassifier = make_estimator(FM, "classifier", "mix")
MixFMRegressor = make_estimator(FM, "regressor", "mix")
SMFMClassifier = make_estimator(FM, "classifier", "saliency")
SMFMRegressor = make_estimator(FM, "regressor", "saliency")
