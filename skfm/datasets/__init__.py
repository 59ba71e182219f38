"""Synthetic multi-field categorical data with planted FM interactions, and libFM / libFFM file
readers (whole-file loaders, chunk iterators for out-of-core training, one-pass scans)."""
from ._loaders import (LibFFMScan, LibFMScan, iter_libffm, iter_libfm, load_libffm, load_libfm,
                       scan_libffm, scan_libfm)
from ._synthetic import (FRAPPE_FIELD_SIZES, make_fm_classification, make_fm_regression,
                         make_frappe_like, make_unseen_pairs)

__all__ = ["FRAPPE_FIELD_SIZES", "LibFFMScan", "LibFMScan", "iter_libffm", "iter_libfm",
           "load_libffm", "load_libfm", "make_fm_classification", "make_fm_regression",
           "make_frappe_like", "make_unseen_pairs", "scan_libffm", "scan_libfm"]
