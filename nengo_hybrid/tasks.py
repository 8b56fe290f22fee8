"""Tasks: what a model-zoo recipe trains on and how its network is built.

A recipe (`nengo_hybrid.zoo`) names its task; the task validates the recipe's
settings, loads the data and builds the network. Every task builds a
*classifier network* that the pipeline stages use through one contract:

``inp`` : nengo.Node
    The input node.
``probe`` : nengo.Probe
    Class scores (NengoDL's training target).
``layers`` : list of nengo.Ensemble
    The `.HybridSpiking` layers whose spikes are measured and deployed, first
    the one shown in the raster.
``inputs(x)``
    ``{node: (N, n_steps, d) array}`` that plays samples ``x``.
``targets(y)``
    NengoDL targets for ``probe``.
``predictions(scores)``
    Predicted classes from ``probe`` data ``(N, n_steps, n_classes)``.
``layer_probes()``
    Probes (added once) on the neurons of ``layers``.
``encoded_inputs``
    Host nodes whose per-step values drive on-chip neurons directly; the
    deployment sends them as exact host encoder spikes.
"""

from nengo_hybrid.zoo import RecipeError


class Task:
    """A kind of recipe: its settings, data and network.

    Subclasses set ``name``, ``required`` and ``optional`` (setting names)
    and implement `load_data` and `build`.
    """

    name = None
    required = ("task", "seed")
    optional = ()

    def validate(self, settings, path):
        """Check setting names; return the settings (a new dict)."""
        missing = [k for k in self.required if k not in settings]
        unknown = [k for k in settings if k not in self.required + self.optional]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(missing)}")
            if unknown:
                parts.append(f"has unknown settings {', '.join(unknown)}")
            raise RecipeError(
                f"{path}: the {self.name!r} RECIPE {' and '.join(parts)}",
                hint=f"a {self.name!r} recipe takes {', '.join(self.required)} and "
                f"optionally {', '.join(self.optional)}",
            )
        return dict(settings)

    def load_data(self, settings, source="embedded", path=None):
        raise NotImplementedError

    def build(self, settings, mode="deploy"):
        """Build the network: ``mode`` is ``"train"``, ``"deploy"`` or ``"gui"``."""
        raise NotImplementedError

    def schedule(self, settings):
        """The precision schedule (a ``Schedule.to_dict`` dict)."""
        return settings["schedule"]

    def deploy_precisions(self, settings, trained):
        """``{layer label: precision}`` the frozen network runs at.

        Default: the recipe's ``precision`` if it sets one, else where training
        ended (``trained``, the same mapping).
        """
        if "precision" in settings:
            return {label: float(settings["precision"]) for label in trained}
        return dict(trained)


class SequenceClassification(Task):
    """psMNIST: one pixel per step, the class read on the last step (an LMU).

    Settings: ``data`` (keyword arguments of `nengo_hybrid.data.psmnist`),
    ``network`` (of `nengo_hybrid.networks.LMU`), ``schedule``
    (``Schedule.to_dict``), ``epochs``, ``minibatch_size``, ``learning_rate``,
    ``seed``; optionally ``n_steps`` (checked against the data), ``n_samples``
    (test samples deployed by default) and ``precision`` (deployment
    precision, default: where the schedule ends).
    """

    name = "psmnist"
    required = Task.required + (
        "data",
        "network",
        "schedule",
        "epochs",
        "minibatch_size",
        "learning_rate",
    )
    optional = ("n_steps", "n_samples", "precision")

    def load_data(self, settings, source="embedded", path=None):
        from nengo_hybrid import data

        kwargs = dict(settings["data"], source=source)
        if path is not None:
            kwargs["path"] = path
        return data.psmnist(**kwargs)

    def build(self, settings, mode="deploy", precision=None, memory=None, spiking=True):
        from nengo_hybrid.networks import build_classifier

        gui = mode == "gui"
        return build_classifier(settings, precision, memory, spiking, gui=gui)


class StaticClassification(Task):
    """Static MNIST digits: each image held for some steps (a dense network).

    Settings: ``data`` (keyword arguments of `nengo_hybrid.data.mnist_images`
    but ``source``), ``network`` (of `nengo_hybrid.networks.DenseClassifier`,
    at deployment), ``train_precision`` (rate-like precision while training,
    one step per image, no synapse), ``input_precision`` and ``precision``
    (deployment precisions of the input and hidden layers), ``epochs``,
    ``minibatch_size``, ``learning_rate``, ``seed``; optionally ``n_samples``.
    """

    name = "mnist_static"
    required = Task.required + (
        "data",
        "network",
        "train_precision",
        "input_precision",
        "precision",
        "epochs",
        "minibatch_size",
        "learning_rate",
    )
    optional = ("n_samples",)

    def load_data(self, settings, source="embedded", path=None):
        from nengo_hybrid import data

        options = dict(settings["data"], source=source, path=path)
        options.setdefault("seed", settings["seed"])
        return data.mnist_images(**options)

    def build(self, settings, mode="deploy"):
        from nengo_hybrid.networks import DenseClassifier

        network = dict(settings["network"], seed=settings["seed"])
        if mode == "train":
            p = settings["train_precision"]
            network.update(
                precision=p, input_precision=p, synapse=None,
                presentation_steps=1, score_steps=1,
            )  # fmt: skip
        else:
            network.update(
                precision=settings["precision"],
                input_precision=settings["input_precision"],
            )
        if mode == "gui":
            network["stimulus"] = gui_images(settings, network["presentation_steps"])
        return DenseClassifier(**network)

    def schedule(self, settings):
        return {"type": "Constant", "precision": settings["train_precision"]}

    def deploy_precisions(self, settings, trained):
        precisions = {label: float(settings["precision"]) for label in trained}
        precisions["input"] = float(settings["input_precision"])
        return precisions


def gui_images(settings, presentation_steps, n_digits=10):
    """A process presenting embedded test digits for Nengo GUI."""
    import nengo

    from nengo_hybrid import data

    images = data.mnist_images(source="embedded", seed=settings["seed"]).x_test
    return nengo.processes.PresentInput(
        images[:n_digits], presentation_time=presentation_steps * 0.001
    )


TASKS = {task.name: task for task in (SequenceClassification(), StaticClassification())}


def register_task(task):
    """Add a `Task` (instance) so that recipes can name it."""
    TASKS[task.name] = task
    return task


def get_task(name, path="recipe"):
    """The task a recipe names; a `RecipeError` for an unknown one."""
    if name is None:
        raise RecipeError(
            f"{path}: RECIPE lacks task",
            hint=f"add task=..., one of {', '.join(repr(t) for t in TASKS)}",
        )
    if name not in TASKS:
        raise RecipeError(
            f"{path} names task {name!r}, which nengo-hybrid does not know",
            hint=f"use one of {', '.join(repr(t) for t in TASKS)}",
        )
    return TASKS[name]


def gui_model(settings):
    """The network a recipe file shows in Nengo GUI (it plays test digits)."""
    return get_task(settings.get("task")).build(settings, mode="gui")
