"""
Training on a Dask cluster
==========================

Rows spread over the workers of a ``dask.distributed`` cluster can train an skfm model in two
ways:

* :class:`skfm.dask.DataParallel` trains on every worker at once: each epoch every shard of
  the rows trains one epoch from the same model on the worker that holds it, and the client
  averages the shards' models (parameter mixing);
* dask-ml's ``Incremental`` calls the estimator's ``partial_fit`` on one block after the other:
  the data can be spread, the work is sequential.

Both need the ``dask`` extra: ``pip install ".[dask]"`` from a checkout.  Here a local cluster of
two worker processes stands in for a real one; with a real cluster,
``Client("scheduler-address:8786")``.

The worker processes start by importing this script (Python's "spawn" start method), so the code
that starts and uses the cluster sits under ``if __name__ == "__main__":``; in a notebook that
guard is not needed.
"""

# %%
# Data as a dask array of CSR blocks
# ----------------------------------
# Each block of 5,000 rows is a ``scipy.sparse`` CSR matrix; ``asarray=False`` keeps the blocks
# sparse.  (With data on disk, build the blocks with ``dask.delayed`` around
# :func:`skfm.datasets.load_libfm` of one file each and ``da.from_delayed``.)
import warnings

import dask.array as da
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from skfm import SMFMClassifier
from skfm.dask import DataParallel
from skfm.datasets import make_unseen_pairs

warnings.simplefilter("ignore", ConvergenceWarning)
if __name__ == "__main__":
    X_train, X_test, y_train, y_test = make_unseen_pairs(n_train=20_000, n_test=5_000,
                                                         random_state=0)
    dX = da.from_array(X_train, chunks=(5_000, X_train.shape[1]), asarray=False)
    dy = da.from_array(y_train, chunks=5_000)
    print(dX)

# %%
# Data-parallel training
# ----------------------
# Two worker processes with one thread each.  ``max_iter`` epochs always run (early stopping
# does not apply); ``batch_size`` is the global minibatch, split over the shards.
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)

    params = dict(n_factors=32, max_iter=10, early_stopping=False, random_state=0)
    model = DataParallel(SMFMClassifier(**params)).fit(dX, dy)
    auc_dp = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])


# %%
# The same estimator fitted in memory, for the same epochs:
if __name__ == "__main__":
    in_memory = SMFMClassifier(**params).fit(X_train, y_train)
    auc_mem = roc_auc_score(y_test, in_memory.predict_proba(X_test)[:, 1])
    print(f"test AUC: DataParallel {auc_dp:.4f} ({model.n_shards_} shards), "
          f"in memory {auc_mem:.4f}")


# %%
# Where an epoch's time goes and what it sends: the model to each worker and one model back
# per shard; the rows never move.
if __name__ == "__main__":
    last = model.epoch_stats_[-1]
    print(f"last epoch: {last['seconds']:.3f} s, of which the slowest shard trained "
          f"{last['train_seconds']:.3f} s and mixing took {last['mix_seconds']:.3f} s; "
          f"{(last['bytes_out'] + last['bytes_in']) / 2**20:.1f} MiB moved")


# %%
# ``estimator_`` is an ordinary fitted estimator (pickle it, predict in memory); on dask input
# the predictions are computed block by block on the workers:
if __name__ == "__main__":
    proba = model.predict_proba(da.from_array(X_test, chunks=(2_500, X_test.shape[1]),
                                              asarray=False))
    print(proba)
    print(proba.compute()[:3])


# %%
# dask-ml's Incremental
# ---------------------
# ``Incremental`` passes the blocks one after the other to ``partial_fit`` (one epoch of
# each block per call).  Three passes over the four blocks:
if __name__ == "__main__":
    from dask_ml.wrappers import Incremental  # noqa: E402

    inc = Incremental(SMFMClassifier(n_factors=32, random_state=0))
    for _ in range(3):
        inc.partial_fit(dX, dy, classes=[0, 1])
    print(f"Incremental, 3 passes: test AUC "
          f"{roc_auc_score(y_test, inc.predict_proba(X_test)[:, 1]):.4f}")

    client.close()
    cluster.close()
