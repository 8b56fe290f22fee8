"""The model zoo: recipe files, found by name and read without running them.

A *recipe* is a Nengo script (Nengo GUI opens it: it defines ``model``) that
also declares how the command line trains, evaluates and deploys it, in one
literal dict ``RECIPE``::

    RECIPE = dict(
        task="psmnist",                       # a task in `nengo_hybrid.tasks.TASKS`
        data=dict(source="auto", pool=4),     # the task's data options
        network=dict(n_hidden=64, order=32, theta=49, memory="precomputed"),
        schedule=dict(type="Geometric", start=64.0, end=2.0),
        epochs=10, minibatch_size=100, learning_rate=3e-3, seed=0,
    )

    model = gui_model(RECIPE)                 # for Nengo GUI only

`read` parses ``RECIPE`` with `ast` (it must be a literal: numbers, strings,
lists, dicts or ``dict(...)`` of literals), so reading a recipe never imports
TensorFlow or builds its network; the task named in it builds the network when
a stage needs it (`Recipe.build`). Which keys a task accepts is the task's
``settings`` table; unknown keys are errors, not silently ignored.

Recipes are searched, in order, in ``./models``, in the folders listed in the
environment variable ``NENGO_HYBRID_MODELS`` (``os.pathsep``-separated), and in
the recipes shipped inside the package (`nengo_hybrid.models`, the repository's
``models/`` folder), so an installed wheel finds ``lmu_quick`` from any folder.
"""

import ast
import pathlib

from nengo_hybrid import io
from nengo_hybrid.io import UserError

ENV_MODELS = "NENGO_HYBRID_MODELS"


class RecipeError(UserError):
    """A recipe cannot be found or read (``hint`` says what to do)."""


def search_path():
    """The folders searched for recipes, in order."""
    return io.search_path("models", ENV_MODELS, "nengo_hybrid.models")


def available():
    """Names of the recipes found on `search_path` (first occurrence wins)."""
    names = set()
    for folder in search_path():
        if folder.is_dir():
            names.update(
                p.stem for p in folder.glob("*.py") if not p.name.startswith("_")
            )
    return sorted(names)


def find(model):
    """The recipe file for ``model``: a path to a ``.py`` file, or a name.

    Parameters
    ----------
    model : str or pathlib.Path
        ``"lmu_quick"``, ``"lmu_quick.py"`` or a path to a recipe file.

    Returns
    -------
    pathlib.Path
    """
    path = pathlib.Path(str(model)).expanduser()
    if path.suffix == ".py" and path.is_file():
        return path.resolve()
    name = path.name if path.suffix == ".py" else f"{path.name}.py"
    for folder in search_path():
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise RecipeError(
        f"unknown model recipe {str(model)!r}",
        hint=f"use one of {', '.join(available()) or '(none found)'}, or a path to a "
        f"recipe .py file (searched: ./models, ${ENV_MODELS}, the installed package)",
    )


def _literal(node, path):
    """Evaluate a literal expression, allowing ``dict(key=literal, ...)`` calls."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(kw.arg for kw in node.keywords)
    ):
        return {kw.arg: _literal(kw.value, path) for kw in node.keywords}
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {
            _literal(k, path): _literal(v, path) for k, v in zip(node.keys, node.values)
        }
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(v, path) for v in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise RecipeError(
            f"{path}, line {node.lineno}: RECIPE must be a literal (numbers, strings, "
            f"lists, dicts), not {ast.unparse(node)!r}",
            hint="write the value itself in RECIPE; compute things in the task",
        ) from None


def read_settings(path):
    """The ``RECIPE`` dict of a recipe file, parsed without running the file."""
    path = pathlib.Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as err:
        raise RecipeError(
            f"cannot read recipe {path}: {err}",
            hint=f"fix the file (open it in Nengo GUI: `nengo {path}`)",
        ) from err
    for node in tree.body:
        targets = getattr(node, "targets", [getattr(node, "target", None)])
        if any(isinstance(t, ast.Name) and t.id == "RECIPE" for t in targets):
            settings = _literal(node.value, path)
            if not isinstance(settings, dict):
                raise RecipeError(
                    f"{path}: RECIPE must be a dict", hint="see models/lmu_quick.py"
                )
            return settings
    raise RecipeError(
        f"{path} is not a nengo-hybrid recipe: it defines no RECIPE dict",
        hint="a recipe defines `RECIPE = dict(task=..., ...)` and `model`; see "
        "models/lmu_quick.py",
    )


class Recipe:
    """A model-zoo recipe: its file, its settings and the task that runs it.

    Parameters
    ----------
    path : pathlib.Path
        The recipe file.
    settings : dict
        Its ``RECIPE`` dict, validated by the task.

    Attributes
    ----------
    name : str
        The file's stem, e.g. ``"lmu_quick"``.
    task : nengo_hybrid.tasks.Task
    """

    def __init__(self, path, settings):
        from nengo_hybrid.tasks import get_task

        self.path = pathlib.Path(path)
        self.name = self.path.stem
        self.task = get_task(settings.get("task"), self.path)
        self.settings = self.task.validate(settings, self.path)

    def __getitem__(self, key):
        return self.settings[key]

    def get(self, key, default=None):
        return self.settings.get(key, default)

    def with_settings(self, **changes):
        """A copy with some settings replaced (e.g. ``seed``)."""
        return Recipe(self.path, {**self.settings, **changes})

    def build(self, mode="deploy", **kwargs):
        """Build the network: ``mode`` is ``"train"``, ``"deploy"`` or ``"gui"``.

        Raises
        ------
        RecipeError
            If Nengo rejects a parameter the recipe gave (its network settings).
        """
        from nengo.exceptions import ValidationError

        try:
            return self.task.build(self.settings, mode=mode, **kwargs)
        except ValidationError as err:
            raise RecipeError(
                f"{self.path}: the RECIPE's settings give an invalid network: {err}",
                hint=f"fix that parameter in the RECIPE of {self.path} (its network, "
                "schedule or precision settings)",
            ) from err

    def load_data(self, source="embedded", path=None):
        """Load the recipe's dataset (see the task's ``load_data``)."""
        return self.task.load_data(self.settings, source=source, path=path)

    def __repr__(self):
        return f"Recipe({self.name!r}, task={self.task.name!r})"


def read(model):
    """Find and read a recipe (a name or a path); see `find`.

    Returns
    -------
    Recipe
    """
    path = find(model)
    return Recipe(path, read_settings(path))
