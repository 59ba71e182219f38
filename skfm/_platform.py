"""One model platform: hyperparameters declared once, estimators generated from a model's
declaration, and the registry of every public estimator.

A hyperparameter is a :class:`Param`: its name, default, scikit-learn constraint, numpydoc type
and one-paragraph doc, and whether it is *structural* (it fixes the form of the fitted model, so
a warm-started fit or a later ``partial_fit`` must keep it).  :data:`SHARED_PARAMS` are those of
every model.  A model is a :class:`Model`: its own parameters, a summary paragraph, a core
factory ``core(estimator, fields)`` (``fields``: the fitted ``fields_``, None when the model was
fitted without fields) and a mixin of its own methods.  :func:`make_estimator` derives a
model's Classifier, Regressor and augmentation presets (``MixFM*``: ``augmentation="mix"``,
``SMFM*``: ``"saliency"``) from it: an ``__init__`` with an explicit signature (its source is
generated and executed, so ``inspect.signature`` and ``get_params`` see real keyword
parameters), ``_parameter_constraints`` and a full numpydoc docstring.  Adding a model::

    MYFM = Model(name="MyFM", module=__name__, title="My factorization machine {task}",
                 summary=..., core=lambda est, fields: MyCore(est.width, fields),
                 params=(Param("width", 16, [Interval(Integral, 1, None, closed="left")],
                               "int", "Width of ...", structural=True),),
                 field_aware=True, example={"n_factors": 4, "max_iter": 10},
                 fast={"n_factors": 3, "width": 4, "max_iter": 3, "batch_size": 32})
    MyFMClassifier = make_estimator(MYFM, "classifier")
    MyFMRegressor = make_estimator(MYFM, "regressor")

and exporting the classes from ``skfm``; the registry (:func:`all_estimators`) then hands them
to the shared tests (scikit-learn's checks, determinism, pickling, bad input, docstrings) and to
the benchmarks.
"""
import ast
import dataclasses
import linecache
import textwrap
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseFactorizationMachine, FMClassifierMixin, FMRegressorMixin

__all__ = ["Param", "Model", "Entry", "SHARED_PARAMS", "REGISTRY", "make_estimator",
           "all_estimators", "get_estimator"]

TASKS = {"classifier": FMClassifierMixin, "regressor": FMRegressorMixin}


@dataclasses.dataclass(frozen=True)
class Param:
    """One hyperparameter, declared once.

    ``doc`` is one paragraph (wrapped when rendered), or a dict of one per task
    ("classifier", "regressor").  ``normalise`` maps a structural value to the form compared
    between fits (e.g. an int of hidden units to a tuple)."""

    name: str
    default: object
    constraints: list
    type: str
    doc: object
    structural: bool = False
    normalise: object = None

    def doc_for(self, task):
        return self.doc[task] if isinstance(self.doc, dict) else self.doc


def _positive(kind):
    return [Interval(kind, 0, None, closed="neither")]


def _non_negative(kind):
    return [Interval(kind, 0, None, closed="left")]


def _at_least_one():
    return [Interval(Integral, 1, None, closed="left")]


def _fields_kind(fields):
    """The structural form of ``fields``: None, "auto" or an array of labels (the labels
    themselves are compared with the fitted ``fields_``, see BaseFactorizationMachine)."""
    return fields if fields is None or isinstance(fields, str) else "array-like"


#: the parameters of every model, in the order of the signatures
SHARED_PARAMS = (
    Param("n_factors", 64, _non_negative(Integral), "int",
          "Embedding size d (columns of ``factors_``); 0 gives a linear model.",
          structural=True),
    Param("solver", "adam", [StrOptions({"adam", "adagrad", "sgd"})], '{"adam", "adagrad", "sgd"}',
          "Lazy optimizer: only the parameter rows of the features present in a minibatch are "
          "updated.  Adam's bias correction uses the global step count (as ``SparseAdam``)."),
    Param("learning_rate_init", 1e-3, _positive(Real), "float", "Step size."),
    Param("batch_size", "auto", [StrOptions({"auto"}), *_at_least_one()], 'int or "auto"',
          'Rows per minibatch; "auto" is ``min(2048, n_samples)``.'),
    Param("max_iter", 100, _at_least_one(), "int",
          "Maximum number of epochs (passes over the original rows plus the augmented rows)."),
    Param("tol", 1e-4, _non_negative(Real), "float",
          "Training stops when the training loss (or the validation score with "
          "``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change`` "
          "consecutive epochs."),
    Param("alpha", 1e-4, _non_negative(Real), "float",
          "L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j, "
          "v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's "
          "SGD).  The intercept is not penalised."),
    Param("init_std", 0.01, _non_negative(Real), "float",
          {"classifier": "Standard deviation of the normal initialisation of the factors of "
                         "the features present in the rows of the first ``fit`` (the others "
                         "start at 0, as w does; ``partial_fit`` draws them all).  w0 starts "
                         "at 0, or at a class's weighted log-odds where the class is rarer "
                         "than 10% or more frequent than 90% in the training rows.",
           "regressor": "Standard deviation of the normal initialisation of the factors of "
                        "the features present in the rows of the first ``fit`` (the others "
                        "start at 0, as w does; ``partial_fit`` draws them all).  w0 starts at "
                        "the weighted mean of the training targets."}),
    Param("shuffle", True, ["boolean"], "bool",
          "Shuffle the rows (originals and augmented) every epoch."),
    Param("random_state", None, ["random_state"], "int, RandomState instance or None",
          "Seeds initialisation, shuffling, the validation split and augmentation.  The same "
          "value gives the same model, whatever ``n_jobs``."),
    Param("early_stopping", "auto", [StrOptions({"auto"}), "boolean"], '"auto" or bool', {
        "classifier":
            "True: hold out ``validation_fraction`` of the rows (stratified when every class "
            "has at least 2 rows and both parts can hold every class), stop when the "
            "validation score (``scoring``) has not improved by ``tol`` for "
            "``n_iter_no_change`` epochs, restore the parameters of the best epoch, then train "
            "``final_epochs`` epochs over all the rows.  \"auto\": on for fits on more than "
            "1,000 rows (100 held out), or when ``fit`` is given validation rows (``X_val``, "
            "which replace the held-out ones): without it, training to ``max_iter`` overfits "
            "the log-loss on every set of the suite above 1,000 rows (user guide, "
            "\"Defaults\").  Never in ``partial_fit``.",
        "regressor":
            "True: hold out ``validation_fraction`` of the rows, stop when the validation "
            "score (``scoring``) has not improved by ``tol`` for ``n_iter_no_change`` epochs, "
            "restore the parameters of the best epoch, then train ``final_epochs`` epochs over "
            "all the rows.  \"auto\": on for fits on more than 1,000 rows (100 held out), "
            "or when ``fit`` is given validation rows (``X_val``, which replace the held-out "
            "ones), as for the classifiers (user guide, \"Defaults\").  Never in "
            "``partial_fit``."}),
    Param("scoring", "loss", [str, callable, None], 'str, callable or None', {
        "classifier":
            "Validation score of early stopping.  \"loss\": the negative (sample-weighted) "
            "mean log-loss; for multiclass, of the sum of the one-vs-rest binary log-losses "
            "(not the multiclass log-loss of ``predict_proba``).  A scorer name (e.g. "
            "\"roc_auc\", \"average_precision\", see ``sklearn.metrics.get_scorer_names``) or a "
            "callable ``scorer(estimator, X, y)``: stop on the score the model will be judged "
            "by.  None: the estimator's ``score`` (accuracy).  A scorer costs one "
            "``predict_proba`` of the validation rows per epoch.",
        "regressor":
            "Validation score of early stopping.  \"loss\": the negative (sample-weighted) "
            "mean half squared error.  A scorer name (e.g. \"neg_mean_absolute_error\", see "
            "``sklearn.metrics.get_scorer_names``) or a callable ``scorer(estimator, X, y)``: "
            "stop on the score the model will be judged by.  None: the estimator's ``score`` "
            "(R^2).  A scorer costs one ``predict`` of the validation rows per epoch."}),
    Param("validation_fraction", 0.1, [Interval(Real, 0, 1, closed="neither")], "float",
          "Fraction of rows held out with early stopping; unused when ``fit`` is given "
          "``X_val``."),
    Param("n_iter_no_change", 10, _at_least_one(), "int",
          "Epochs without improvement before stopping."),
    Param("final_epochs", 2, _non_negative(Integral), "int",
          "With early stopping, the epochs over all the rows (the held-out ones included) "
          "after the best epoch's parameters are restored, so that no row is lost to "
          "validation: features seen only in held-out rows are learnt too.  0 returns the "
          "best epoch's model.  Not with ``warm_start=True``, whose fits keep the validation "
          "rows held out for the fits after them."),
    Param("warm_start", False, ["boolean"], "bool",
          "Continue from the previous fit (parameters and optimizer state) instead of starting "
          "anew."),
    Param("verbose", 0, ["verbose"], "int",
          "Print one line per epoch (epoch, training loss, validation score, seconds)."),
    Param("n_jobs", None, [None, Interval(Integral, None, -1, closed="right"), *_at_least_one()],
          "int or None",
          "Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it."),
    Param("beta_1", 0.9, [Interval(Real, 0, 1, closed="left")], "float",
          "Adam's decay rate of the first moment (the running mean of the gradients)."),
    Param("beta_2", 0.999, [Interval(Real, 0, 1, closed="left")], "float",
          "Adam's decay rate of the second moment (the running mean of the squared "
          "gradients)."),
    Param("epsilon", 1e-8, _positive(Real), "float",
          "Offset of Adam's and Adagrad's denominators."),
    Param("augmentation", None, [None, StrOptions({"copy", "mix", "saliency", "max"})],
          '{None, "copy", "mix", "saliency", "max"}',
          "Training-set augmentation regenerated every epoch (SMFM paper): \"copy\" adds ``n' = "
          "mix_ratio * n`` random original rows (CopyFM), \"mix\" adds n' mixed rows ``lam x + "
          "(1 - lam) r`` (MixFM, Alg. 1), \"saliency\" keeps for each first parent the most "
          "salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).  "
          "\"max\" (Maxup, Gong et al. 2021; the paper's MaxFM) *replaces* every training row "
          "by the one of its ``n_candidates`` mixed neighbours ``lam x + (1 - lam) r`` (partners "
          "uniform, lam as for \"mix\") with the largest loss under the current model: an epoch "
          "has n rows, all of them mixed (``mix_ratio`` does not apply)."),
    Param("mix_alpha", 0.5, _positive(Real), "float",
          "First parameter of ``lam' ~ Beta(mix_alpha, mix_beta)``; a row is mixed with weight "
          "``lam = max(lam', 1 - lam')``."),
    Param("mix_beta", 0.5, _positive(Real), "float",
          "Second parameter of ``lam' ~ Beta(mix_alpha, mix_beta)``."),
    Param("mix_ratio", 1.0, _positive(Real), "float",
          "n'/n, the number of augmented rows per original row and epoch (\"copy\", \"mix\", "
          "\"saliency\")."),
    Param("n_candidates", 10, _at_least_one(), "int",
          "p, the candidates per first parent with ``augmentation=\"saliency\"``; the mixed "
          "neighbours per row with ``augmentation=\"max\"`` (Maxup's m; its paper uses 4)."),
    Param("fields", None, [None, StrOptions({"auto"}), "array-like"],
          '{None, "auto"} or array-like of int of shape (n_features,)',
          "The field of each column of X (e.g. the columns that one ``OneHotEncoder`` column "
          "produces form one field), as non-negative integer labels, relabelled to "
          "``0..n_fields_-1`` in sorted order.  \"auto\" infers them from the training matrix "
          "in O(nnz) as consecutive column blocks: a new field starts at the first column that "
          "shares a row with a column of the current field.  This recovers the layout of "
          "``OneHotEncoder`` / ``ColumnTransformer`` output whenever each row has at most one "
          "nonzero per block and consecutive blocks co-occur; a multi-hot group is split where "
          "two of its columns meet in a row, a numeric column (nonzero in most rows) becomes a "
          "field of its own, and blocks that never share a row are merged.  The fields are "
          "fixed by the first fit (or ``partial_fit`` call): a warm-started fit or a later "
          "``partial_fit`` with other fields raises ValueError, and \"auto\" is not inferred "
          "again.  {role}",
          structural=True, normalise=_fields_kind),
)

_FIELDS_ROLE = {
    False: "This model does not use the fields (its math has none), but validates them and "
           "records them in ``fields_``; with None, ``fields_`` and ``n_fields_`` are None.",
    True: "This model needs the fields: None raises ValueError.",
}

_DEFAULTS_DOC = ("  The defaults were chosen on the real and synthetic sets of "
                 "``benchmarks/defaults.py``; the user guide's \"Defaults\" gives the figure "
                 "behind each.")
_LOSS_DOC = {
    "classifier": "Trained by minibatch {Adam, Adagrad, SGD} on the logistic loss; binary "
                  "labels train one model, more classes one model per class (one-vs-rest).",
    "regressor": "Trained by minibatch {Adam, Adagrad, SGD} on the squared loss.",
}

#: fitted attributes of every estimator: (name, type, doc, tasks that have it)
_ATTRIBUTES = (
    ("intercept_", "float", "Bias w0.", TASKS),
    ("coef_", "ndarray of shape (n_features,)", "Linear weights w.", TASKS),
    ("factors_", "ndarray of shape (n_features, n_factors)",
     "Factor vectors (embeddings) v_i, one row per feature.", TASKS),
    ("classes_", "ndarray of shape (n_classes,)",
     "Class labels.  For more than two classes, ``intercept_``, ``coef_`` and ``factors_`` "
     "gain a leading class axis (one-vs-rest models).", ("classifier",)),
    ("n_features_in_", "int", "Number of features seen during fit.", TASKS),
    ("fields_", "ndarray of shape (n_features,) or None",
     "Field of each column, ``0..n_fields_-1``, from ``fields`` (given or inferred); None when "
     "``fields=None``.", TASKS),
    ("n_fields_", "int or None", "Number of fields; None when ``fields=None``.", TASKS),
    ("n_iter_", "int", "Number of epochs run (with early stopping, the final epochs over all "
                       "the rows included).", TASKS),
    ("t_", "int", "Number of optimizer steps (minibatches) taken.", TASKS),
    ("loss_curve_", "list of float",
     "Mean training loss per epoch, over the epoch's original and augmented rows.", TASKS),
    ("best_loss_", "float", "Lowest training loss seen.", TASKS),
    ("validation_scores_", "list of float or None",
     "Validation score (``scoring``; by default the negative mean validation loss) per epoch "
     "with early stopping; a warm-started fit appends to it (None after a fit without early "
     "stopping or a partial_fit) and validates on the rows the model's first early-stopping "
     "fit held out.", TASKS),
    ("best_validation_score_", "float or None",
     "Best validation score with early stopping: the score of the restored epoch, before the "
     "``final_epochs``.", TASKS),
)

#: augmentation presets: augmentation -> (class-name prefix, title after "<model> <task>")
PRESETS = {
    "mix": ("Mix", "trained with Mixup (Mix{model}, SMFM paper Alg. 1)"),
    "saliency": ("SM", "trained with saliency-guided Mixup (SM{model}, SMFM paper Alg. 2)"),
}

#: the defaults an augmentation preset changes, and why (the figures are in the user guide's
#: "Defaults" section): Mixup regularises, so no L2 penalty (the SMFM paper's setting), and an
#: augmented epoch takes twice the optimizer steps of a plain one (n original + n augmented
#: rows), so half the patience waits as many steps
PRESET_DEFAULTS = {"alpha": 0.0, "n_iter_no_change": 5}

_SMFM_REFERENCE = ("C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. "
                   "arXiv:2206.08661.")


@dataclasses.dataclass(frozen=True)
class Model:
    """A model declaration: everything :func:`make_estimator` needs to build its estimators.

    name : class-name stem ("FM" gives FMClassifier, MixFMClassifier, ...).
    module : the module whose attributes the estimator classes become (``__name__``).
    title : the docstring's first line, with ``{task}`` for "classifier" / "regressor", e.g.
        "Factorization machine {task}".
    summary : the model paragraph(s) of the docstring (the equation), as plain text.
    core : ``core(estimator, fields) -> model core`` (see skfm._cores); ``fields`` is the
        fitted ``fields_`` (None when fitted with ``fields=None``).
    params : the model's own :class:`Param` declarations.
    after : the shared parameter the model's own parameters follow in the signature.
    methods : a mixin class with the model's own public or private methods, or None.
    field_aware : the model needs fields: ``fields`` defaults to "auto" and None raises.
    presets : augmentation presets that get classes of their own ("mix", "saliency").
    related : other models named under See Also.
    notes, references : docstring sections (plain text).
    example : constructor arguments of the docstring's example.
    fast : small, fast constructor arguments for tests.
    defaults : the model's own defaults of shared parameters (e.g. a learning rate), justified
        in the user guide's "Defaults" by the figures of ``benchmarks/defaults.py``.
    param_docs : the model's own docs of shared parameters (name -> paragraph), e.g. to say
        why its default differs or what the parameter means for this model.
    attributes : the model's own docs of shared fitted attributes (name -> (type, doc)), for
        an attribute of another shape (FFM's ``factors_``), and of its own fitted attributes
        (listed after the shared ones; IFM's ``field_importances_``).
    defaults_doc : the docstring's sentence on where the defaults come from, for a model whose
        defaults have not been chosen on ``benchmarks/defaults.py`` (None: they have).
    """

    name: str
    module: str
    title: str
    summary: str
    core: object
    params: tuple = ()
    after: str = "n_candidates"
    methods: type = None
    field_aware: bool = False
    presets: tuple = ()
    related: tuple = ()
    notes: str = ""
    references: str = ""
    example: dict = dataclasses.field(default_factory=dict)
    fast: dict = dataclasses.field(default_factory=dict)
    defaults: dict = dataclasses.field(default_factory=dict)
    defaults_doc: str = None
    param_docs: dict = dataclasses.field(default_factory=dict)
    attributes: dict = dataclasses.field(default_factory=dict)

    def signature_params(self, augmentation=None):
        """Every parameter of the model's estimators, in signature order, with the model's
        and the preset's defaults."""
        shared = list(SHARED_PARAMS)
        at = [p.name for p in shared].index(self.after) + 1
        params = shared[:at] + list(self.params) + shared[at:]
        changes = {name: {"default": value} for name, value in self.defaults.items()}
        for name, doc in self.param_docs.items():
            changes[name] = {**changes.get(name, {}), "doc": doc}
        changes = {**changes,
                   "augmentation": {"default": augmentation},
                   **{name: {"default": value} for name, value in
                      (PRESET_DEFAULTS.items() if augmentation else ())},
                   "fields": {"default": "auto" if self.field_aware else None,
                              "doc": SHARED_FIELDS.doc.replace(
                                  "{role}", _FIELDS_ROLE[self.field_aware])}}
        return tuple(dataclasses.replace(p, **changes[p.name]) if p.name in changes else p
                     for p in params)


SHARED_FIELDS = SHARED_PARAMS[-1]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered public estimator: its class, model name, task ("classifier" or
    "regressor"), augmentation preset (None for the model's base class), whether it is
    field-aware, and small fast constructor arguments for tests."""

    cls: type
    model: str
    task: str
    augmentation: object
    field_aware: bool
    fast: dict

    @property
    def name(self):
        return self.cls.__name__


#: every public estimator, in the order its module declared it
REGISTRY = []


def all_estimators(model=None, task=None):
    """The registered estimators (:class:`Entry`), optionally of one model and / or task."""
    return [e for e in REGISTRY if model in (None, e.model) and task in (None, e.task)]


def get_estimator(model, task="classifier", augmentation=None):
    """The registered class of ``model`` ("FM", "NFM", ...) and ``task``; ``augmentation``
    picks a preset class (MixFM*, SMFM*) where the model has one."""
    for e in all_estimators(model, task):
        if e.augmentation == augmentation:
            return e.cls
    raise KeyError(f"no registered {model} {task} with augmentation={augmentation!r}; "
                   f"registered: {[e.name for e in REGISTRY]}")


def class_name(model, task, augmentation=None):
    prefix = PRESETS[augmentation][0] if augmentation else ""
    return f"{prefix}{model}{task.capitalize()}"


def make_estimator(model, task, augmentation=None, register=True):
    """The estimator class of ``model`` for ``task`` ("classifier" or "regressor"), with
    ``augmentation`` preset (None, "mix" or "saliency").  Assign it to a module attribute of
    ``model.module`` under its name (pickle finds classes by module and name)."""
    name = class_name(model.name, task, augmentation)
    params = model.signature_params(augmentation)
    namespace = {
        "__module__": model.module,
        "__qualname__": name,
        "__doc__": _docstring(model, task, augmentation, params),
        "__init__": _make_init(name, model.module, params),
        "_model": model,
        "_parameter_constraints": {p.name: p.constraints for p in params},
        "_structural": {p.name: p.normalise for p in params if p.structural},
    }
    bases = (model.methods,) if model.methods is not None else ()
    cls = type(name, bases + (TASKS[task], BaseFactorizationMachine), namespace)
    if register:
        REGISTRY.append(Entry(cls, model.name, task, augmentation, model.field_aware,
                              dict(model.fast)))
    return cls


# ------------------------------------------------------------------------------ generation
def _make_init(name, module, params):
    """``__init__(self, <first>, *, <others>)`` storing each parameter unchanged (scikit-learn
    convention), from generated source; the source is registered with linecache, so
    tracebacks and inspect.getsource show it."""
    for p in params:
        if ast.literal_eval(repr(p.default)) != p.default:
            raise TypeError(f"the default of {p.name} must be a literal; got {p.default!r}")
    args = [f"{p.name}={p.default!r}" for p in params]
    lines = [f"def __init__(self, {args[0]}, *,"]
    lines += textwrap.wrap(", ".join(args[1:]) + "):", 91, initial_indent=" " * 13,
                           subsequent_indent=" " * 13, break_long_words=False)
    lines += [f"    self.{p.name} = {p.name}" for p in params]
    source = "\n".join(lines) + "\n"
    filename = f"<skfm generated {module}.{name}.__init__>"
    namespace = {}
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    init = namespace["__init__"]
    init.__module__ = module
    init.__qualname__ = f"{name}.__init__"
    return init


def _default_text(value):
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value and abs(value) < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-")
    return repr(value)


def _wrap(text, indent=""):
    return "\n".join(textwrap.fill(par, 92, initial_indent=indent, subsequent_indent=indent)
                     for par in text.split("\n\n"))


def _docstring(model, task, augmentation, params):
    """The numpydoc docstring of one generated class."""
    base = class_name(model.name, task)
    if augmentation:
        title = f"{model.name} {task} {PRESETS[augmentation][1].format(model=model.name)}."
        changed = ", ".join(f"``{k}={_default_text(v)}``" for k, v in PRESET_DEFAULTS.items())
        preset = (f"\n\nIt is :class:`{base}` with ``augmentation=\"{augmentation}\"`` preset, "
                  f"and {changed}: Mixup regularises (the SMFM paper trains without L2), and "
                  f"an augmented epoch takes twice the optimizer steps, so half the patience "
                  f"waits as long (see the user guide's \"Defaults\").")
    else:
        title, preset = model.title.format(task=task) + ".", ""
    defaults = _DEFAULTS_DOC if model.defaults_doc is None else "  " + model.defaults_doc
    parts = [title, textwrap.dedent(model.summary).strip(),
             _wrap(_LOSS_DOC[task] + defaults + preset)]

    lines = ["Parameters", "----------"]
    for p in params:
        lines.append(f"{p.name} : {p.type}, default={_default_text(p.default)}")
        lines.append(_wrap(p.doc_for(task), " " * 4))
    lines += ["", "Attributes", "----------"]
    for attr, kind, doc, tasks in _ATTRIBUTES:
        if task in tasks:
            kind, doc = model.attributes.get(attr, (kind, doc))
            lines += [f"{attr} : {kind}", _wrap(doc, " " * 4)]
    shared = {a[0] for a in _ATTRIBUTES}
    for attr, (kind, doc) in model.attributes.items():  # the model's own attributes
        if attr not in shared:
            lines += [f"{attr} : {kind}", _wrap(doc, " " * 4)]
    names = [class_name(model.name, task, a) for a in (None, *model.presets)]
    names += [class_name(other, task) for other in model.related]
    lines += ["", "See Also", "--------",
              ", ".join(n for n in names if n != class_name(model.name, task, augmentation))]
    if model.notes:
        lines += ["", "Notes", "-----", _wrap(textwrap.dedent(model.notes).strip())]
    references = textwrap.dedent(model.references).strip()
    if augmentation and _SMFM_REFERENCE not in references:
        references = "\n".join(r for r in (references, _SMFM_REFERENCE) if r)
    if references:
        lines += ["", "References", "----------", references]
    lines += ["", "Examples", "--------", _example(model, task, augmentation)]
    parts.append("\n".join(lines))
    text = "\n\n".join(parts)
    return textwrap.indent(text, " " * 4).lstrip() + "\n"


def _example(model, task, augmentation):
    name = class_name(model.name, task, augmentation)
    source = "skfm" if model.module.startswith("skfm.") else model.module
    args = ", ".join(f"{k}={v!r}" for k, v in {**model.example, "random_state": 0}.items())
    var, make = ("clf", "make_fm_classification") if task == "classifier" else (
        "reg", "make_fm_regression")
    lines = [f">>> from {source} import {name}",
             f">>> from skfm.datasets import {make}",
             f">>> X, y = {make}(n_samples=2000, random_state=0)",
             f">>> {var} = {name}({args}).fit(X, y)"]
    if task == "classifier":
        lines += [f">>> {var}.predict_proba(X[:2]).shape", "(2, 2)"]
    else:
        lines += [f">>> {var}.predict(X[:3]).shape", "(3,)"]
    if model.field_aware:  # make_fm_*'s 8 one-hot fields, inferred by fields="auto"
        lines += [f">>> {var}.n_fields_", "8"]
    return "\n".join(lines)
