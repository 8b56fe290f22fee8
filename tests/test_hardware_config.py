"""nengo_hybrid.hardware as a Nengo package: light import, config options, backend.

Some tests run a fresh Python. Those marked "hardware package alone" import
``nengo_hybrid.hardware`` under a bare ``nengo_hybrid`` package (its
``__init__`` not run), so they test this package's own imports whatever the top
package imports.
"""

import importlib
import importlib.metadata
import inspect
import os
import pathlib
import subprocess
import sys
import types

import nengo
import nengo_loihi
import numpy as np
import pytest
from nengo.exceptions import BuildError, ValidationError

from nengo_hybrid import HybridSpiking, hardware
from nengo_hybrid.hardware import (
    Expand,
    OneBit,
    Simulator,
    Substeps,
    Thermometer,
    add_params,
    check,
    compare,
    findings,
    load_profile,
)
from nengo_hybrid.hardware import loihi as hw_loihi
from nengo_hybrid.hardware.config import config_strategies

ROOT = pathlib.Path(__file__).resolve().parents[1]

# a bare nengo_hybrid package: its __init__ (NengoDL, TensorFlow) is not run
BARE_PACKAGE = f"""
import sys, types
package = types.ModuleType("nengo_hybrid")
package.__path__ = [{str(ROOT / "nengo_hybrid")!r}]
sys.modules["nengo_hybrid"] = package
"""

# nengo-loihi's emulator fills int arrays with NaN when it starts (upstream)
upstream_cast = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning"
)


def run_python(code, *flags):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def relu(p=1.0, **kwargs):
    return HybridSpiking(nengo.RectifiedLinear(), precision=p, **kwargs)


def multibit_network(n=10, seed=0):
    """Bias-driven neurons needing up to 4 spikes per step at precision 1."""
    with nengo.Network(seed=seed) as net:
        ens = nengo.Ensemble(
            n,
            1,
            neuron_type=relu(),
            gain=np.ones(n),
            bias=np.linspace(500, 3500, n),
            label="multibit",
        )
        probe = nengo.Probe(ens.neurons)
    return net, ens, probe


def overflow_network(weight=1e4):
    """Weights far above the firing threshold: Loihi's integer scale cannot hold both."""
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(
            4, 1, neuron_type=relu(), gain=np.ones(4), bias=np.full(4, 100.0), label="a"
        )
        b = nengo.Ensemble(
            4, 1, neuron_type=relu(), gain=np.ones(4), bias=np.zeros(4), label="b"
        )
        nengo.Connection(a.neurons, b.neurons, transform=np.full((4, 4), weight))
    return net


# --- light import (tasks 1 and 2) ---------------------------------------------


def test_hardware_package_alone_imports_neither_nengo_loihi_nor_tensorflow():
    out = run_python(
        BARE_PACKAGE
        + """
import nengo_hybrid.hardware as hw
from nengo_hybrid.hardware import config, findings, profiles, strategies
assert hw.Expand(2) == strategies.Expand(2) and hw.Report is findings.Report
hw.load_profile("loihi2")
heavy = [m for m in ("nengo_loihi", "tensorflow", "nengo_dl") if m in sys.modules]
assert not heavy, heavy
assert set(hw.__all__) <= set(dir(hw)), set(hw.__all__) - set(dir(hw))
assert "check" in dir(hw) and "_LAZY" not in dir(hw)
print("light")
"""
    )
    assert "light" in out


def test_import_hardware_is_light():
    out = run_python(
        "import nengo_hybrid.hardware, sys\n"
        "assert 'nengo_loihi' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "print('light')"
    )
    assert "light" in out


def test_check_imports_nengo_loihi_without_tensorflow_then_enables_nengo_dl():
    out = run_python(
        BARE_PACKAGE
        + """
import nengo
from nengo_hybrid import hardware
from nengo_hybrid.neurons import HybridSpiking
with nengo.Network(seed=0) as net:
    nengo.Ensemble(10, 1, neuron_type=HybridSpiking(nengo.RectifiedLinear()))
assert "check" not in vars(hardware)  # still lazy
assert hardware.check(net).ok
assert "nengo_loihi" in sys.modules
# hidden during nengo-loihi's import, then restored exactly (never imported)
assert "tensorflow" not in sys.modules and "nengo_dl" not in sys.modules
import nengo_loihi.compat
import nengo_loihi.neurons
assert not nengo_loihi.neurons.HAS_DL and not nengo_loihi.compat.HAS_TF
import nengo_dl
hardware.loihi.enable_nengo_dl_builders()
assert nengo_loihi.neurons.HAS_DL is True and nengo_loihi.neurons.HAS_TF is True
assert nengo_loihi.compat.HAS_DL is True and nengo_loihi.neurons.nengo_dl is nengo_dl
assert nengo_loihi.neurons.tf is sys.modules["tensorflow"]
hardware.loihi.enable_nengo_dl_builders()  # idempotent
print("enabled")
"""
    )
    assert "enabled" in out


@pytest.mark.slow  # a fresh interpreter importing TensorFlow; the other order runs by default
def test_nengo_loihi_imported_normally_once_tensorflow_is_loaded():
    out = run_python(
        BARE_PACKAGE
        + """
import tensorflow
from nengo_hybrid.hardware import loihi
import nengo_loihi.neurons
assert nengo_loihi.neurons.HAS_DL and nengo_loihi.neurons.HAS_TF
print("normal")
"""
    )
    assert "normal" in out


def test_hidden_modules_restores_sys_modules_exactly(monkeypatch):
    present = types.ModuleType("nh_test_present")
    monkeypatch.setitem(sys.modules, "nh_test_present", present)
    monkeypatch.setitem(sys.modules, "nh_test_none", None)
    monkeypatch.delitem(sys.modules, "nh_test_absent", raising=False)
    names = ("nh_test_present", "nh_test_none", "nh_test_absent")
    with hw_loihi._hidden_modules(names):
        for name in names:
            assert sys.modules[name] is None
            with pytest.raises(ImportError):
                importlib.import_module(name)
    assert sys.modules["nh_test_present"] is present
    assert sys.modules["nh_test_none"] is None
    assert "nh_test_absent" not in sys.modules


def test_check_stays_the_function_when_its_module_is_imported():
    module = importlib.import_module("nengo_hybrid.hardware.check")
    assert callable(hardware.check) and hardware.check is module.check
    assert importlib.import_module("nengo_hybrid.hardware").check is check


def test_lazy_names_and_unknown_attributes():
    assert hardware.Model is hw_loihi.Model and hardware.HAS_NXSDK is hw_loihi.HAS_NXSDK
    assert hardware.encode_node_inputs.__module__ == "nengo_hybrid.hardware.inputs"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hardware.nope  # noqa: B018


# --- the report data model (task 3) -------------------------------------------


def test_report_model_lives_in_findings():
    check_module = importlib.import_module("nengo_hybrid.hardware.check")
    assert hardware.Report is findings.Report is check_module.Report
    assert hardware.Violation is findings.Violation is check_module.Violation
    report = findings.Report(load_profile("loihi1"), {"ens": Expand(2)})
    report.add(findings.Violation("cores", "x", 1, 2, "fix it"))
    data = report.to_dict()
    assert not report.ok and data["strategy"] == {"ens": "Expand(K=2)"}
    assert data["violations"][0]["fix"] == "fix it"
    assert findings.Report(load_profile("loihi1"), None).to_dict()["strategy"] == (
        "OneBit()"
    )


# --- discretization overflow (task 3) -----------------------------------------


def test_check_reports_discretization_overflow():
    report = check(overflow_network())
    assert not report.ok
    (v,) = report.violations
    assert v.kind == "discretization" and v.obj == "<Ensemble 'b'>"
    assert "threshold would round to 0" in v.detail and "Expand" in v.fix
    assert check(overflow_network(weight=1e-2)).ok


def test_simulator_raises_a_clear_error_on_overflow():
    with pytest.raises(hw_loihi.DiscretizationError) as info:
        Simulator(overflow_network(), target="sim")
    err = info.value
    assert isinstance(err, BuildError) and err.obj.label == "b"
    assert "<Ensemble 'b'>: cannot be discretized for Loihi" in str(err)
    assert "threshold would round to 0" in str(err) and "Fix:" in str(err)


def test_overflow_detected_under_python_O():
    # nengo-loihi's own checks are asserts, which python -O removes (as it
    # removes any assert in this script: the results are printed instead)
    out = run_python(
        BARE_PACKAGE
        + """
import nengo, numpy as np
from nengo_hybrid.hardware import Simulator, check, loihi
from nengo_hybrid.neurons import HybridSpiking
print("debug", __debug__)
with nengo.Network(seed=0) as net:
    kw = dict(neuron_type=HybridSpiking(nengo.RectifiedLinear()), gain=np.ones(4))
    a = nengo.Ensemble(4, 1, bias=np.full(4, 100.0), **kw)
    b = nengo.Ensemble(4, 1, bias=np.zeros(4), label="b", **kw)
    nengo.Connection(a.neurons, b.neurons, transform=np.full((4, 4), 1e4))
print("violations", [v.kind for v in check(net).violations])
try:
    Simulator(net, target="sim")
except loihi.DiscretizationError as err:
    print("caught", err.obj.label)
""",
        "-O",
    )
    assert "debug False" in out
    assert "violations ['discretization']" in out
    assert "caught b" in out


# --- strategies through nengo.Config (task 5) ----------------------------------


def test_add_params_strategy_option():
    net, ens, _ = multibit_network()
    add_params(net)
    add_params(net)  # twice is fine
    assert net.config[ens].strategy is None
    net.config[ens].strategy = Expand(4)
    assert net.config[ens].strategy == Expand(4)
    with pytest.raises(ValidationError, match="must be a Strategy"):
        net.config[ens].strategy = "expand:4"
    with pytest.raises(ValidationError, match="whole network"):
        net.config[ens].strategy = Substeps(4)
    assert config_strategies(net) == {ens: Expand(4)}


def test_config_strategies_precedence():
    with nengo.Network() as net:
        add_params(net)
        a = nengo.Ensemble(2, 1, label="a")
        with nengo.Network() as sub:
            add_params(sub)
            b = nengo.Ensemble(2, 1, label="b")
            c = nengo.Ensemble(2, 1, label="c")
            d = nengo.Ensemble(2, 1, label="d")
            sub.config[b].strategy = Expand(2)
            sub.config[c].strategy = Expand(3)
            sub.config[nengo.Ensemble].strategy = Expand(7)
        with nengo.Network():
            e = nengo.Ensemble(2, 1, label="e")
    net.config[c].strategy = Thermometer(5)
    found = config_strategies(net)
    # set on the ensemble beats defaults; the outermost setting wins
    assert found == {b: Expand(2), c: Thermometer(5), d: Expand(7)}
    net.config[nengo.Ensemble].strategy = OneBit()
    found = config_strategies(net)
    assert found[a] == OneBit() and found[e] == OneBit() and found[d] == Expand(7)


def test_check_reads_strategies_from_the_config():
    net, ens, _ = multibit_network()
    assert not check(net).ok  # needs 4 spikes per step
    add_params(net)
    net.config[ens].strategy = Expand(4)
    report = check(net)
    assert report.ok, report
    assert report.ensembles[0]["strategy"] == "Expand(K=4)"
    # the config beats the default strategy argument ...
    assert check(net, strategy=Thermometer(2)).ensembles[0]["strategy"] == (
        "Expand(K=4)"
    )
    # ... and an explicit {ensemble: strategy} beats the config
    report = check(net, strategy={ens: OneBit()})
    assert not report.ok and report.ensembles[0]["strategy"] == "OneBit()"
    assert hw_loihi.build_model(net).strategy_for(ens) == Expand(4)


@upstream_cast
def test_simulator_reads_strategies_from_the_config():
    net, ens, probe = multibit_network()
    with Simulator(net, strategy={ens: Expand(4)}, target="sim") as sim:
        sim.run_steps(50)
    explicit = sim.data[probe]
    add_params(net)
    net.config[ens].strategy = Expand(4)
    with Simulator(net, target="sim") as sim:
        sim.run_steps(50)
        assert sim.model.strategy_for(ens) == Expand(4)
    assert np.array_equal(sim.data[probe], explicit)
    assert np.round(explicit * 0.001).max() > 1  # OneBit would emit at most 1


# --- nengo-loihi's builder registry (task 7) and version (task 8) --------------


def test_supported_tables_come_from_nengo_loihis_registry(monkeypatch):
    from nengo_loihi.builder import Builder

    assert set(hw_loihi.supported_bases()) == {nengo.RectifiedLinear, nengo.LIFRate}
    assert set(hw_loihi.loihi_neuron_types()) == {
        nengo.LIF,
        nengo.SpikingRectifiedLinear,
        nengo.RegularSpiking,
    }
    monkeypatch.delitem(Builder.builders, nengo.LIF)
    assert hw_loihi.supported_bases() == (nengo.RectifiedLinear,)
    assert nengo.LIF not in hw_loihi.loihi_neuron_types()
    with nengo.Network() as net:
        nengo.Ensemble(4, 1, neuron_type=HybridSpiking(nengo.LIFRate()), label="l")
        nengo.Ensemble(4, 1, neuron_type=nengo.LIF(), label="lif")
    report = check(net)
    found = {(v.obj, v.kind) for v in report.violations}
    assert found == {
        ("<Ensemble 'l'>", "neuron_type"),
        ("<Ensemble 'lif'>", "neuron_type"),
    }
    assert "bases RectifiedLinear" == report.violations[0].limit


def test_nengo_loihi_version_guard(monkeypatch):
    hw_loihi.check_nengo_loihi_version("1.1.7")
    net, _, _ = multibit_network()
    monkeypatch.setattr(nengo_loihi, "__version__", "1.2.0")
    for build in (
        lambda: hw_loihi.build_model(net),
        lambda: check(net),
        lambda: Simulator(net, target="sim"),
    ):
        with pytest.raises(hw_loihi.NengoLoihiVersionError, match=r"1\.1\.x.*1\.2\.0"):
            build()


# --- Simulator class (task 6) --------------------------------------------------


@upstream_cast
def test_simulator_is_a_nengo_backend():
    backend = importlib.import_module("nengo_hybrid.hardware")
    assert issubclass(backend.Simulator, nengo_loihi.Simulator)
    entry_point = importlib.metadata.EntryPoint(
        name="nengo_hybrid",
        value="nengo_hybrid.hardware:Simulator",
        group="nengo.backends",
    )
    assert entry_point.load() is Simulator
    # Nengo GUI (page.py) passes progress_bar only if __init__ names it, and
    # nengo-loihi warns about progress bars: so it is not named
    assert "progress_bar" not in inspect.signature(Simulator.__init__).parameters
    net, ens, probe = multibit_network()
    add_params(net)
    net.config[ens].strategy = Expand(4)  # it needs 4 spikes per step
    with backend.Simulator(net) as sim:  # as Nengo GUI creates it
        sim.step()
    assert sim.emulator == ("batched" if not hw_loihi.HAS_NXSDK else None)
    assert len(sim.data[probe]) == 1
    # as Nengo's test suite creates backends
    with Simulator(net, dt=0.001, seed=1, progress_bar=False, target="sim") as sim:
        sim.run(0.002)
    assert sim.n_steps == 2 and sim.profile.name == "loihi1"


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_failed_simulator_is_collected_quietly():
    import gc

    if hw_loihi.HAS_NXSDK:  # pragma: no cover
        pytest.skip("NxSDK is installed")
    net, _, _ = multibit_network()
    with pytest.raises(BuildError, match="NxSDK"):
        Simulator(net, target="loihi")
    gc.collect()


def small_cores_profile():
    data = load_profile("loihi1").data
    limits = dict(data["limits"])
    limits["compartments_per_core"] = {"value": 100, "source": "test"}
    return dict(data, name="small-cores", limits=limits)


@upstream_cast
def test_the_profile_passed_is_the_one_planned_for():
    net, _, probe = multibit_network(n=250)
    with Simulator(net, profile="loihi2", target="sim") as sim:
        assert sim.model.profile.name == "loihi2" and sim.profile.name == "loihi2"
    # OneBit does not fit (4 spikes per step): run anyway, to see the plan
    with pytest.warns(UserWarning, match="allow_violations=True"):
        with Simulator(
            net, profile=small_cores_profile(), target="sim", allow_violations=True
        ) as sim:
            assert len(sim.model.blocks) == 3
    result = compare(
        net,
        5,
        probe,
        profile=small_cores_profile(),
        strategy=OneBit(),
        allow_violations=True,
    )
    assert result["profile"] == "small-cores" and result["cores"] == 3
    assert result["hardware_check"]["ran_despite_violations"]
    result = compare(net, 5, probe, strategy=Expand(4))
    assert result["profile"] == "loihi1" and result["cores"] == 1
    assert result["hardware_check"]["ok"]


# --- runnable examples (task 9) ------------------------------------------------
