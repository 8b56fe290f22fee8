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

import math
import numbers

from nengo_hybrid.zoo import RecipeError


class Task:
    """A kind of recipe: its settings, data and network.

    Subclasses set ``name``, ``required`` and ``optional`` (setting names)
    and implement `load_data` and `build`.
    """

    name = None
    required = ("task", "seed")
    optional = ()
    #: settings that are neuron precisions (finite numbers > 0)
    precisions = ()
    #: the setting holding the precision schedule (a ``Schedule.to_dict`` dict)
    schedule_setting = None

    def validate(self, settings, path):
        """Check setting names and neuron parameters; return the settings (a new dict).

        Neuron parameters are checked here, when the recipe is read, so that a
        bad value is reported with the recipe's file before anything is
        built or trained (not, say, at freezing, after the training).
        """
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
        for key in self.precisions:
            if key in settings:
                check_precision(settings[key], key, path)
        if self.schedule_setting is not None:
            check_schedule(settings[self.schedule_setting], path)
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
    precisions = ("precision",)
    schedule_setting = "schedule"

    def load_data(self, settings, source="embedded", path=None):
        from nengo_hybrid import data

        kwargs = dict(settings["data"], source=source)
        if path is not None:
            kwargs["path"] = path
        return data.psmnist(**kwargs)

    def validate(self, settings, path):
        settings = super().validate(settings, path)
        data = settings["data"]
        pool = data.get("pool", 1) if isinstance(data, dict) else None
        if not isinstance(pool, int) or isinstance(pool, bool) or pool < 1 or 28 % pool:
            raise RecipeError(
                f"{path}: RECIPE data={data!r} needs pool, a divisor of 28, got "
                f"{pool!r}",
                hint="set data=dict(..., pool=P) with P one of 1, 2, 4, 7, 14 "
                "(784, 196, 49, 16 or 4 steps per sequence)",
            )
        steps = (28 // pool) ** 2
        n_steps = settings.get("n_steps")
        if n_steps is not None and n_steps != steps:
            raise RecipeError(
                f"{path}: RECIPE n_steps={n_steps!r}, but its data (pool={pool}) give "
                f"sequences of {steps} steps",
                hint=f"set n_steps={steps}, or a pool that gives {n_steps}-step "
                "sequences (pool P gives (28 / P)**2 steps)",
            )
        return settings

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
    precisions = ("train_precision", "input_precision", "precision")

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


def check_precision(value, key, path):
    """A neuron precision setting: a finite real number > 0 (a `RecipeError`)."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    if not ok:
        raise RecipeError(
            f"{path}: RECIPE {key}={value!r} is not a valid neuron precision: it must "
            "be a finite number > 0",
            hint=f"set {key} to a number > 0 (e.g. {key}=2.0; 1 gives 1-bit spikes "
            "at up to 1 kHz, larger values more bits per step)",
        )


def check_schedule(value, path):
    """A precision schedule setting (``Schedule.to_dict``), as a `RecipeError`."""
    from nengo.exceptions import ValidationError

    from nengo_hybrid.schedules import Schedule

    try:
        Schedule.from_dict(value)
    except (ValidationError, TypeError, ValueError, AttributeError) as err:
        raise RecipeError(
            f"{path}: RECIPE schedule={value!r} is not a valid precision schedule: "
            f"{err}",
            hint="give a dict such as schedule=dict(type='Geometric', start=16.0, "
            "end=2.0), with precisions > 0",
        ) from err


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
