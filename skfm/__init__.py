"""skfm: factorization machines and saliency-guided Mixup (MixFM, SMFM) for scikit-learn.

Estimators take scipy CSR matrices (other sparse formats and dense arrays are converted to CSR)
and train with Numba-jitted, multithreaded, bit-reproducible CPU kernels.
"""
from ._afm import AFMClassifier, AFMRegressor
from ._base import TrainingDivergedError
from ._dcn import DCNClassifier, DCNRegressor
from ._deepfm import DeepFMClassifier, DeepFMRegressor
from ._ffm import FFMClassifier, FFMRegressor
from ._fm import (FMClassifier, FMRegressor, MixFMClassifier, MixFMRegressor, SMFMClassifier,
                  SMFMRegressor)
from ._ifm import IFMClassifier, IFMRegressor
from ._nfm import NFMClassifier, NFMRegressor
from ._precompile import precompile
from ._version import __version__

__all__ = ["AFMClassifier", "AFMRegressor", "DCNClassifier", "DCNRegressor", "DeepFMClassifier",
           "DeepFMRegressor", "FFMClassifier", "FFMRegressor", "FMClassifier", "FMRegressor",
           "IFMClassifier", "IFMRegressor", "MixFMClassifier", "MixFMRegressor", "NFMClassifier",
           "NFMRegressor", "SMFMClassifier", "SMFMRegressor", "TrainingDivergedError",
           "__version__", "precompile"]
