"""Synthetic multi-field categorical data with planted FM interactions, and libFM / libFFM file
loaders."""
from ._loaders import load_libffm, load_libfm
from ._synthetic import (FRAPPE_FIELD_SIZES, make_fm_classification, make_fm_regression,
                         make_frappe_like, make_unseen_pairs)

__all__ = ["FRAPPE_FIELD_SIZES", "load_libffm", "load_libfm", "make_fm_classification",
           "make_fm_regression", "make_frappe_like", "make_unseen_pairs"]
