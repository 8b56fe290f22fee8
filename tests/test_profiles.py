"""Hardware profiles are validated when loaded, with messages naming the file."""

import copy
import json
import re

import pytest
from nengo.exceptions import ValidationError

from nengo_hybrid.hardware.profiles import (
    PROFILE_DIR,
    Profile,
    ProfileError,
    available_profiles,
    load_profile,
)


@pytest.fixture
def loihi1_data():
    with open(f"{PROFILE_DIR}/loihi1.json") as fh:
        return json.load(fh)


def write(tmp_path, data, name="custom.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def with_limit(data, key, value):
    data = copy.deepcopy(data)
    data["limits"][key] = {"value": value, "source": "test"}
    return data


def test_built_in_profiles_load():
    assert {"loihi1", "loihi2"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert isinstance(profile["compartments_per_core"], int)
    assert load_profile("loihi2")["input_axons_per_core"] is None  # not published


def test_copy_of_built_in_loads_from_file(tmp_path, loihi1_data):
    # control for the tests below: the unmodified data is valid
    profile = load_profile(write(tmp_path, loihi1_data))
    assert profile.limits == load_profile("loihi1").limits
    assert profile.energy["neuron_update_pj"] == 81
    # a path given as a str works as well as a pathlib.Path
    assert load_profile(str(write(tmp_path, loihi1_data))).name == "loihi1"


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("cores_per_chip", 0, r"'cores_per_chip' must be a whole number > 0, got 0"),
        ("compartments_per_core", -5, r"whole number > 0, got -5"),
        ("compartments_per_core", "1024", r"got str '1024'"),
        ("compartments_per_core", 10.5, r"got float 10.5"),
        ("compartments_per_core", True, r"got bool True"),
        ("compartments_per_core", None, r"is null, but the checks need it"),
        ("input_axons_per_core", 0, r"\(or null if it is not published"),
        ("synapse_bits_per_core", [1], r"got list"),
        ("spike_payload_bits", -1, r"whole number >= 0, got -1"),
        ("max_spikes_per_step", 0, r"'max_spikes_per_step' must be"),
        ("reset", "soft", r"'reset' must be one of \['zero', 'subtract'"),
        ("weight_exp_min", 1.5, r"'weight_exp_min' must be a whole number"),
        ("weight_magnitude_bits", 9, r"exceeds weight_bits \(8\)"),
        ("weight_exp_min", 8, r"weight_exp_min \(8\) is above weight_exp_max"),
    ],
)
def test_bad_limit_names_file_and_fix(tmp_path, loihi1_data, key, value, match):
    path = write(tmp_path, with_limit(loihi1_data, key, value))
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"hardware profile file {path}")
    assert re.search(r"; (set|lower|swap|start)", message)  # says what to do


def test_profile_error_is_a_value_error(tmp_path, loihi1_data):
    path = write(tmp_path, with_limit(loihi1_data, "cores_per_chip", 0))
    with pytest.raises(ValueError):
        load_profile(path)
    with pytest.raises(ValidationError):  # what callers caught before
        load_profile(path)


def test_integral_float_is_accepted(tmp_path, loihi1_data):
    # control for the float case above: 1024.0 is a whole number
    data = with_limit(loihi1_data, "compartments_per_core", 1024.0)
    assert load_profile(write(tmp_path, data))["compartments_per_core"] == 1024


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"name": "x", "limits": {', r"is not valid JSON: .* at line 1 column"),
        ("[1, 2]", r"must be a JSON object"),
        ('{"name": "x"}', r'needs a "limits" object'),
        ("\xff\xfe", r"cannot be read|not valid JSON"),
    ],
)
def test_broken_file_names_the_file(tmp_path, text, match):
    path = tmp_path / "broken.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_missing_limit_and_source(tmp_path, loihi1_data):
    data = copy.deepcopy(loihi1_data)
    del data["limits"]["cores_per_chip"]
    with pytest.raises(ProfileError, match=r"lacks the limits \['cores_per_chip'\]"):
        load_profile(write(tmp_path, data))
    data = copy.deepcopy(loihi1_data)
    data["limits"]["cores_per_chip"]["source"] = ""
    with pytest.raises(ProfileError, match="'cores_per_chip' does not cite a source"):
        load_profile(write(tmp_path, data))


@pytest.mark.parametrize("value", [-1, "cheap", None, float("nan")])
def test_bad_energy(tmp_path, loihi1_data, value):
    data = copy.deepcopy(loihi1_data)
    data["energy"]["neuron_update_pj"]["value"] = value
    with pytest.raises(ProfileError, match="energy cost 'neuron_update_pj'"):
        load_profile(write(tmp_path, data))


def test_dict_profile_is_named_by_its_name(loihi1_data):
    data = with_limit(loihi1_data, "cores_per_chip", 0)
    data["name"] = "my-chip"
    with pytest.raises(ProfileError, match=r"^hardware profile 'my-chip': limit"):
        load_profile(data)
    with pytest.raises(ProfileError, match=r"^built-in profile 'x'"):
        Profile(data, origin="built-in profile 'x'")


def test_unknown_name_lists_built_ins():
    with pytest.raises(
        ProfileError, match=r"Unknown hardware profile 'loihi9'.*loihi1"
    ):
        load_profile("loihi9")
    with pytest.raises(ProfileError, match="name, path, dict or Profile"):
        load_profile(3)
