"""Tasks: what a model-zoo recipe trains on and how its network is built.

A recipe (`nengo_hybrid.zoo`) names its task; the task validates the recipe's
settings, loads the data and builds the network. Every task builds a
*classifier network* that the pipeline stages use through one contract:

``inp`` : nengo.Node
    The input node.
``probe`` : nengo.Probe
    Class scores (NengoDL's training target).
``layers`` : list of nengo.Ensemble
    The `.HybridSpiking` (or `.SigmaDelta`) layers whose spikes (or messages)
    are measured and deployed, first the one shown in the raster.
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

Nengo GUI opens a recipe file through `gui_model`: the task's `Task.build_gui`
network plays embedded test digits and carries the controls and displays that
the file's layout (``models/*.py.cfg``) shows; with a trained run it takes the
run's frozen parameters, and on a nengo-loihi backend it is placed as
``nengo-hybrid deploy`` places the network.
"""

import importlib
import math
import numbers
import os
import pathlib
import sys

from nengo_hybrid.zoo import RecipeError

#: environment variable naming a trained run folder for Nengo GUI (`gui_model`)
RUN_ENV = "NENGO_HYBRID_RUN"


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

    def build_gui(self, settings, trained=None, latency=0):
        """The network for Nengo GUI (``mode="gui"``), with its `ClassifierGui`.

        ``trained``: a deploy-mode network with trained parameters (e.g.
        ``FrozenNetwork.build``) that the GUI network takes; ``latency``: steps
        by which the class scores arrive late (read from a chip).
        """
        raise NotImplementedError

    def schedule(self, settings):
        """The precision schedule (a ``Schedule.to_dict`` dict)."""
        return settings["schedule"]

    def deploy_thresholds(self, settings, trained):
        """``{layer label: threshold}`` the `.SigmaDelta` layers deploy at.

        ``trained``: ``{label: threshold}`` where training ended. Default: that.
        """
        return dict(trained)

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

    With ``neuron="sigma_delta"`` the hidden layer is
    ``SigmaDelta(nengo.RectifiedLinear())`` (Lava's sigma-delta neuron) instead
    of `.HybridSpiking`: the ``schedule`` then anneals its threshold, from 0
    (every change sent: the rate network) up to the deployment threshold, and
    the optional ``threshold`` overrides where it ends (``precision`` is for
    hybrid layers only).
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
    optional = ("n_steps", "n_samples", "precision", "neuron", "threshold")
    precisions = ("precision",)
    schedule_setting = "schedule"
    #: hidden neuron kinds a recipe may name
    neurons = ("hybrid", "sigma_delta")

    def sigma_delta(self, settings):
        """Whether the recipe's hidden layer is `.SigmaDelta`."""
        return settings.get("neuron", "hybrid") == "sigma_delta"

    def load_data(self, settings, source="embedded", path=None):
        from nengo_hybrid import data

        kwargs = dict(settings["data"], source=source)
        if path is not None:
            kwargs["path"] = path
        return data.psmnist(**kwargs)

    def validate(self, settings, path):
        settings = super().validate(settings, path)
        self._validate_neuron(settings, path)
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

    def _validate_neuron(self, settings, path):
        """The hidden neuron kind, its threshold and the schedule's values."""
        from nengo.exceptions import ValidationError

        from nengo_hybrid.schedules import Schedule

        neuron = settings.get("neuron", "hybrid")
        if neuron not in self.neurons:
            raise RecipeError(
                f"{path}: RECIPE neuron={neuron!r} is not a hidden neuron kind",
                hint=f"set neuron to one of {', '.join(map(repr, self.neurons))}",
            )
        sigma_delta = self.sigma_delta(settings)
        wrong = "precision" if sigma_delta else "threshold"
        if wrong in settings:
            right = "threshold" if sigma_delta else "precision"
            raise RecipeError(
                f"{path}: RECIPE sets {wrong}, but its neuron={neuron!r} hidden "
                f"layer has a {right}, not a {wrong}",
                hint=f"remove {wrong} (or set {right} instead)",
            )
        if sigma_delta and "threshold" in settings:
            check_threshold(settings["threshold"], "threshold", path)
        neuron_type = self._neuron_type(settings)
        try:
            Schedule.from_dict(settings["schedule"]).check_values(neuron_type)
        except ValidationError as err:
            what = "threshold" if sigma_delta else "precision"
            raise RecipeError(
                f"{path}: RECIPE schedule={settings['schedule']!r} is not a valid "
                f"{what} schedule for its neuron={neuron!r} hidden layer: {err}",
                hint="anneal the threshold from 0 up, e.g. schedule=dict(type="
                "'Linear', start=0.0, end=0.1)"
                if sigma_delta
                else "give precisions > 0, e.g. schedule=dict(type='Geometric', "
                "start=64.0, end=2.0)",
            ) from err

    def _neuron_type(self, settings):
        import nengo

        from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

        if self.sigma_delta(settings):
            return SigmaDelta(nengo.RectifiedLinear())
        return HybridSpiking(nengo.RectifiedLinear())

    def deploy_thresholds(self, settings, trained):
        """The recipe's ``threshold``, else where training ended.

        NengoDL holds the threshold in float32: it is rounded to 7 significant
        digits (a schedule ending at 0.1 deploys at 0.1, not 0.100000001).
        """
        if "threshold" in settings:
            return {label: float(settings["threshold"]) for label in trained}
        return {label: float(f"{value:.7g}") for label, value in trained.items()}

    def build(self, settings, mode="deploy", precision=None, memory=None, spiking=True):
        from nengo_hybrid.networks import build_classifier

        if mode == "gui":
            return self.build_gui(settings)
        return build_classifier(settings, precision, memory, spiking)

    def build_gui(self, settings, trained=None, latency=0):
        from nengo_hybrid.networks import build_classifier

        return build_classifier(settings, gui=True, trained=trained, latency=latency)


class StaticClassification(Task):
    """Static MNIST digits: each image held for some steps (a dense network).

    Settings: ``data`` (keyword arguments of `nengo_hybrid.data.mnist_images`
    but ``source``), ``network`` (of `nengo_hybrid.networks.DenseClassifier`,
    at deployment), ``train_precision`` (rate-like precision while training,
    one step per image, no synapse), ``input_precision`` and ``precision``
    (deployment precisions of the input and hidden layers), ``epochs``,
    ``minibatch_size``, ``learning_rate``, ``seed``; optionally ``n_samples``,
    and ``neuron="sigma_delta"`` with ``threshold`` and ``input_threshold``
    (deployment thresholds; trained at threshold 0, the rate network) for
    `.SigmaDelta` layers, which export to lava-dl netx.
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
    optional = ("n_samples", "neuron", "threshold", "input_threshold")
    precisions = ("train_precision", "input_precision", "precision")
    thresholds = ("threshold", "input_threshold")

    def validate(self, settings, path):
        from nengo_hybrid.networks import DENSE_NEURONS

        settings = super().validate(settings, path)
        neuron = settings.get("neuron", "hybrid")
        if neuron not in DENSE_NEURONS:
            raise RecipeError(
                f"{path}: RECIPE neuron={neuron!r} is not a neuron kind",
                hint=f"set neuron to one of {', '.join(DENSE_NEURONS)}",
            )
        for key in self.thresholds:
            if key in settings:
                check_threshold(settings[key], key, path)
        return settings

    def sigma_delta(self, settings):
        """Whether the recipe's layers are `.SigmaDelta` neurons."""
        return settings.get("neuron", "hybrid") == "sigma_delta"

    def load_data(self, settings, source="embedded", path=None):
        from nengo_hybrid import data

        options = dict(settings["data"], source=source, path=path)
        options.setdefault("seed", settings["seed"])
        return data.mnist_images(**options)

    def build(self, settings, mode="deploy"):
        from nengo_hybrid.networks import DenseClassifier

        if mode == "gui":
            return self.build_gui(settings)
        network = dict(settings["network"], seed=settings["seed"])
        if self.sigma_delta(settings):
            exact = mode == "train"  # threshold 0: the rate network
            network.update(
                neuron="sigma_delta",
                threshold=0.0 if exact else settings.get("threshold", 0.0),
                input_threshold=0.0 if exact else settings.get("input_threshold", 0.0),
            )
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
        return DenseClassifier(**network)

    def build_gui(self, settings, trained=None, latency=0):
        from nengo_hybrid.networks import ClassifierGui

        net = self.build(settings) if trained is None else trained
        data = self.load_data(settings, "embedded")
        ClassifierGui(net, data.x_test, data.y_test, data.x_test, latency=latency)
        return net

    def schedule(self, settings):
        value = 0.0 if self.sigma_delta(settings) else settings["train_precision"]
        return {"type": "Constant", "precision": value}

    def deploy_precisions(self, settings, trained):
        precisions = {label: float(settings["precision"]) for label in trained}
        precisions["input"] = float(settings["input_precision"])
        return precisions

    def deploy_thresholds(self, settings, trained):
        if not self.sigma_delta(settings):
            return {}
        thresholds = {label: float(settings.get("threshold", 0.0)) for label in trained}
        thresholds["input"] = float(settings.get("input_threshold", 0.0))
        return thresholds


def _is_number(value, low, low_open):
    """Whether ``value`` is a finite real number above ``low`` (or at it)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
    )


def check_precision(value, key, path):
    """A neuron precision setting: a finite real number > 0 (a `RecipeError`)."""
    if not _is_number(value, 0, low_open=True):
        raise RecipeError(
            f"{path}: RECIPE {key}={value!r} is not a valid neuron precision: it must "
            "be a finite number > 0",
            hint=f"set {key} to a number > 0 (e.g. {key}=2.0; 1 gives 1-bit spikes "
            "at up to 1 kHz, larger values more bits per step)",
        )


def check_threshold(value, key, path):
    """A `.SigmaDelta` threshold setting: a finite real number >= 0 (a `RecipeError`)."""
    if not _is_number(value, 0, low_open=False):
        raise RecipeError(
            f"{path}: RECIPE {key}={value!r} is not a valid sigma-delta threshold: it "
            "must be a finite number >= 0",
            hint=f"set {key} to a number >= 0 (0 sends every change: the rate network)",
        )


def check_schedule(value, path):
    """A schedule setting (precisions or thresholds), or a `RecipeError`."""
    from nengo.exceptions import ValidationError

    from nengo_hybrid.schedules import Schedule

    try:
        Schedule.from_dict(value)
    except (ValidationError, TypeError, ValueError, AttributeError) as err:
        raise RecipeError(
            f"{path}: RECIPE schedule={value!r} is not a valid schedule: {err}",
            hint="give a dict such as schedule=dict(type='Geometric', start=16.0, "
            "end=2.0), with precisions > 0 (or, for sigma-delta layers, "
            "schedule=dict(type='Linear', start=0.0, end=0.1): thresholds >= 0)",
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


def gui_model(settings, run=None, backend=None):
    """The network a recipe file shows in Nengo GUI: it plays test digits.

    Model files call ``model = gui_model(RECIPE)``. The network plays the
    embedded test digits one after another, one sequence (or presentation)
    each, and carries a slider choosing the digit and the displays that the
    file's layout ``MODEL.py.cfg`` shows (`nengo_hybrid.networks.ClassifierGui`).

    Parameters
    ----------
    settings : dict
        The recipe's ``RECIPE``.
    run : str or pathlib.Path, optional
        A trained run folder (default: ``$NENGO_HYBRID_RUN``, else none). The
        network then has the trained parameters of the run's ``frozen.npz``,
        rebuilt from the recipe the run recorded (`Task.build_gui`).
    backend : str, optional
        The Nengo backend that runs it (a module with a ``Simulator``).
        Default: the backend of the Nengo GUI page executing the calling file
        (``nengo -b BACKEND``, read from the page nengo_gui puts in the file's
        globals as ``__page__``), else ``"nengo"``. On a backend built on
        nengo-loihi (``nengo_hybrid``) the network is placed as ``nengo-hybrid
        deploy`` places it (`place_on_chip`).
    """
    caller = sys._getframe(1).f_globals
    page = caller.get("__page__")
    if page is not None:
        open_expanded_networks()
    if backend is None:
        page_settings = getattr(page, "settings", None)
        backend = getattr(page_settings, "backend", None) or "nengo"
    if run is None:
        run = os.environ.get(RUN_ENV)
    run = run or None  # "" (an unset variable in a shell) is no run
    path = pathlib.Path(caller.get("__file__") or "model.py")
    chip = loihi_backend(backend)
    latency = _host_latency() if chip else 0
    if run is None:
        from nengo_hybrid import zoo

        recipe = zoo.Recipe(path, settings)
        frozen = None
        net = recipe.task.build_gui(recipe.settings, latency=latency)
    else:
        recipe, frozen = trained_recipe(run, settings, path)
        net = recipe.task.build_gui(
            recipe.settings, trained=frozen.build(recipe), latency=latency
        )
    if chip:
        place_on_chip(net, recipe, frozen=frozen, run=run)
    return net


def open_expanded_networks():
    """Make Nengo GUI 0.6 open the subnetworks its layout file marks expanded.

    nengo_gui 0.6's ``NetGraph.create_object`` means to tell the page that a
    network is expanded, but tests the builtin ``type`` instead of its
    ``obj_type`` argument, so only the top-level network opens expanded (the
    LMU would open as a grey box). After a network is created on the page,
    this sends the page the ``expand`` message that its own expand action
    handles (the page then asks for the network's contents). Applied once,
    in the process running Nengo GUI.
    """
    import json

    import nengo
    from nengo_gui.components.netgraph import NetGraph

    if getattr(NetGraph, "_nengo_hybrid_opens_expanded", False):
        return
    create_object = NetGraph.create_object

    def create_and_expand(self, client, obj, obj_type, parent):
        uid = self.page.get_uid(obj)
        new = uid not in self.uids
        create_object(self, client, obj, obj_type, parent)
        if new and isinstance(obj, nengo.Network) and self.page.config[obj].expanded:
            client.write_text(json.dumps({"type": "expand", "uid": uid}))

    NetGraph.create_object = create_and_expand
    NetGraph._nengo_hybrid_opens_expanded = True


def _host_latency():
    from nengo_hybrid.pipeline.deploy import HOST_LATENCY

    return HOST_LATENCY


def loihi_backend(backend):
    """Whether the Nengo backend ``backend`` (a module name) runs on nengo-loihi."""
    if backend in (None, "nengo"):
        return False
    try:
        module = importlib.import_module(backend)
    except ImportError:
        return False
    simulator = getattr(module, "Simulator", None)
    return any(
        cls.__module__.split(".")[0] == "nengo_loihi"
        for cls in getattr(simulator, "__mro__", ())
    )


def trained_recipe(run, settings=None, path=None):
    """The recipe a run was trained with and its frozen network, for Nengo GUI.

    ``settings`` (the ``RECIPE`` of the file being opened, from ``path``) must
    describe the same network and data as the run's recipe.

    Returns
    -------
    recipe : nengo_hybrid.zoo.Recipe
    frozen : nengo_hybrid.frozen.FrozenNetwork
    """
    from nengo_hybrid.pipeline.runs import read_frozen, recipe_of, run_path

    run = run_path(run)
    recipe = recipe_of(run)
    if settings is not None:
        differ = [
            key
            for key in ("task", "data", "n_steps", "network")
            if recipe.get(key) != settings.get(key)
        ]
        if differ:
            where = f"{path}" if path is not None else "this recipe"
            raise RecipeError(
                f"run {run} was trained from {recipe.path}, whose {', '.join(differ)} "
                f"differ from those of {where}",
                hint=f"open {recipe.path} with this run, or open {where} without "
                f"a run (unset ${RUN_ENV}, or leave out --run)",
            )
    return recipe, read_frozen(run)


def place_on_chip(net, recipe, frozen=None, run=None):
    """Place a Nengo GUI network as ``nengo-hybrid deploy`` places the recipe's.

    The recipe's deployment plan for Loihi 1 (`nengo_hybrid.hardware.plans`)
    decides what runs on the host. The multi-bit strategy of each hybrid
    ensemble on the chip is the one ``check`` chose for the run (its
    ``check.json``), else ``auto`` from the spike counts ``evaluate`` measured,
    as ``nengo-hybrid check`` chooses it; with nothing measured (an untrained
    model) ``auto`` is `OneBit`, at most one spike per neuron and step, unless
    the plan names a strategy. The strategies go into the network config
    (`nengo_hybrid.hardware.add_params`), where `nengo_hybrid.Simulator` reads
    them. For a trained run, host signals feeding the chip every step (the
    LMU's memory and input) are sent as exact host encoder spikes at the full
    scale recorded at freezing, as deployed
    (`nengo_hybrid.hardware.encode_node_inputs`); untrained, they go through
    nengo-loihi's own encoder, as ``nengo-hybrid check --model`` places them.
    Display ensembles stay on the host.
    """
    import warnings

    import numpy as np

    from nengo_hybrid import hardware
    from nengo_hybrid import report as reporting
    from nengo_hybrid.hardware.plans import set_on_chip
    from nengo_hybrid.hardware.strategies import Substeps
    from nengo_hybrid.pipeline import check as checking
    from nengo_hybrid.pipeline.specs import parse_strategy

    set_on_chip(net, net.gui.host_ensembles)
    plan = checking.find_plan(recipe.name, "loihi1")
    counts = (checking.measured_counts(run) if run is not None else None) or {}
    strategies, _ = checking.deployable(net, plan=plan, max_counts=counts)
    checked = reporting.read_stage(run, "check", required=False) if run else None
    if checked and checked.get("ok") and checked.get("strategies"):
        for ens in strategies:
            spec = checked["strategies"].get(str(ens.label))
            if spec is not None:
                strategies[ens] = parse_strategy(spec)
    hardware.add_params(net)
    for ens, strategy in strategies.items():
        if isinstance(strategy, Substeps):
            warnings.warn(
                f"{ens.label}: {strategy!r} changes the step of the whole network and "
                "cannot be set per ensemble in Nengo GUI; using auto instead",
                stacklevel=2,
            )
            strategy = checking.auto_strategy(counts.get(str(ens.label)))
        net.config[ens].strategy = strategy

    lmu = getattr(net, "lmu", None)
    scales = (frozen.meta.get("input_scales") if frozen is not None else None) or {}
    if lmu is not None and lmu.memory_mode == "linear" and "memory" in scales:
        from nengo_hybrid.pipeline.freeze import INPUT_LEVELS

        scale = np.asarray(scales["memory"], dtype=np.float64)
        d = lmu.memory_d
        done = hardware.encode_node_inputs(
            net,
            {lmu.memory: scale[:d], lmu.input: scale[d:]},
            levels=frozen.meta.get("input_levels", INPUT_LEVELS),
        )
        net.gui.encoders = [item["ensemble"] for item in done]
    return net
