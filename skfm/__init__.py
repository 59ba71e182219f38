"""skfm: factorization machines and saliency-guided Mixup (MixFM, SMFM) for scikit-learn.

Estimators take scipy CSR matrices (other sparse formats and dense arrays are converted to CSR)
and train with Numba-jitted, multithreaded, bit-reproducible CPU kernels.
"""
from ._base import TrainingDivergedError
from ._fm import (FMClassifier, FMRegressor, MixFMClassifier, MixFMRegressor, SMFMClassifier,
                  SMFMRegressor)

__version__ = "0.1.0"

__all__ = ["FMClassifier", "FMRegressor", "MixFMClassifier", "MixFMRegressor", "SMFMClassifier",
           "SMFMRegressor", "TrainingDivergedError", "__version__"]
