"""Hardware profiles: the limits of a neuromorphic target, as data.

Built-in profiles are JSON files in ``nengo_hybrid/hardware/profiles/`` (shipped
as package data). Every number in a profile carries a ``source`` saying where it
comes from: the Loihi 1 numbers are those nengo-loihi itself enforces or
discretizes to; the Loihi 2 numbers are from published material.
"""

import json
import math
import os

from nengo.exceptions import ValidationError

PROFILE_DIR = os.path.join(os.path.dirname(__file__), "profiles")

RESETS = ("zero", "subtract", "programmable")
"""Allowed values of the ``reset`` limit."""

EMULATORS = ("nengo_loihi", "loihi2")
"""Allowed values of a profile's ``emulator`` (its emulation semantics):
``"nengo_loihi"`` -- Loihi 1, 1-bit spikes (nengo-loihi's emulator and the
batched one, `nengo_hybrid.hardware.emulator`); ``"loihi2"`` -- graded spikes
and Lava's fixed-point models (`nengo_hybrid.hardware.loihi2`); ``null``: none."""

SPIKES = ("binary", "graded")
"""Allowed values of a profile's ``spikes``: how a neuron's spikes travel.

``"binary"``: a compartment emits at most one spike per step (Loihi 1), so a
multi-bit neuron needs a strategy (`.Expand`, `.Thermometer`, ...) and the check
runs nengo-loihi's build and core split. ``"graded"``: a spike carries an
integer payload of ``spike_payload_bits`` (Loihi 2), so a hybrid neuron is one
graded-spike neuron and the check plans the cores from the shapes
(`nengo_hybrid.hardware.graded`).
"""


class ProfileError(ValidationError):
    """A hardware profile is missing, unreadable or invalid.

    A `~nengo.exceptions.ValidationError` (hence a ``ValueError``) whose message
    names the profile file (or built-in profile) and says how to fix it; the CLI
    maps it to a usage error (exit 2).
    """

    def __init__(self, msg):
        super().__init__(msg, attr="profile")

    def __str__(self):
        return str(self.args[0])


# limit -> (kind, nullable); kinds: "count" (integer >= 1), "bits0" (integer
# >= 0), "int" (any integer), "reset" (one of RESETS). null means "not
# published, not checked" and is only allowed where the checks skip it.
LIMITS = {
    "compartments_per_core": ("count", False),
    "input_axons_per_core": ("count", True),
    "output_axons_per_core": ("count", True),
    "synapse_bits_per_core": ("count", False),
    "synapse_word_bits": ("count", False),
    "cores_per_chip": ("count", False),
    "weight_bits": ("count", False),
    "weight_magnitude_bits": ("count", False),
    "spike_payload_bits": ("bits0", False),
    "max_spikes_per_step": ("count", False),
    "reset": ("reset", False),
    "weight_exp_min": ("int", True),
    "weight_exp_max": ("int", True),
    "vth_max": ("count", True),
    "bias_max": ("count", True),
    "synapse_accumulator_bits": ("count", True),
    "current_bits": ("count", True),
    "state_bits": ("count", True),
}

_EXPECTED = {
    "count": "a whole number > 0",
    "bits0": "a whole number >= 0",
    "int": "a whole number",
}


def _check_limit(where, key, value):
    """Return the validated ``value`` of limit ``key``; raise `ProfileError`."""
    kind, nullable = LIMITS.get(key, (None, True))
    if value is None:
        if nullable:
            return None
        raise ProfileError(
            f"{where}: limit {key!r} is null, but the checks need it; set its "
            f'"value" to {_EXPECTED.get(kind, "a value")}'
        )
    if kind is None:  # a limit this version does not use: any JSON scalar
        if isinstance(value, (dict, list)):
            raise ProfileError(
                f"{where}: limit {key!r} must be a number, string or null, got "
                f"{type(value).__name__}; give a single value"
            )
        return value
    if kind == "reset":
        if value not in RESETS:
            raise ProfileError(
                f"{where}: limit 'reset' must be one of {list(RESETS)}, got "
                f'{value!r}; set its "value" to how a compartment resets after a '
                "spike"
            )
        return value
    null_hint = " (or null if it is not published: then it is not checked)"
    fix = f'set its "value" to {_EXPECTED[kind]}{null_hint if nullable else ""}'
    integral = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value == int(value)
    )
    if not integral:
        raise ProfileError(
            f"{where}: limit {key!r} must be {_EXPECTED[kind]}, got "
            f"{type(value).__name__} {value!r}; {fix}"
        )
    value = int(value)
    low = {"count": 1, "bits0": 0}.get(kind)
    if low is not None and value < low:
        raise ProfileError(
            f"{where}: limit {key!r} must be {_EXPECTED[kind]}, got {value}; {fix}"
        )
    return value


class Profile:
    """Limits of one hardware target.

    Parameters
    ----------
    data : dict
        The parsed profile (see the built-in JSON files for the schema).
    origin : str, optional
        Where ``data`` came from (``"profile file x.json"``, ``"built-in
        profile 'loihi1'"``), named in error messages.

    Raises
    ------
    ProfileError
        If a required limit is missing, a limit has the wrong type or range
        (counts must be whole numbers > 0), a limit does not cite a source, or
        an energy cost is not a number >= 0.

    Attributes
    ----------
    name : str
    limits : dict of {str: value}
        Plain values (``None`` means "not published, not checked").
    sources : dict of {str: str}
        Where each limit comes from.
    emulator : str or None
        The emulation semantics (one of `EMULATORS`), or None.
    """

    REQUIRED = (
        "compartments_per_core",
        "input_axons_per_core",
        "output_axons_per_core",
        "synapse_bits_per_core",
        "synapse_word_bits",
        "cores_per_chip",
        "weight_bits",
        "weight_magnitude_bits",
        "spike_payload_bits",
        "max_spikes_per_step",
        "reset",
    )

    def __init__(self, data, origin=None):
        if not isinstance(data, dict):
            raise ProfileError(
                f"{origin or 'hardware profile'} must be a JSON object with "
                f'"name" and "limits", got {type(data).__name__}; start from a '
                f"built-in profile in {PROFILE_DIR}"
            )
        self.data = data
        self.name = data.get("name", "custom")
        where = origin or f"hardware profile {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ProfileError(
                f'{where}: "name" must be a non-empty string, got {self.name!r}'
            )
        limits = data.get("limits")
        if not isinstance(limits, dict):
            raise ProfileError(
                f'{where} needs a "limits" object ({{"limit": {{"value": ..., '
                f'"source": ...}}}}), got {type(limits).__name__}; start from a '
                f"built-in profile in {PROFILE_DIR}"
            )
        missing = [key for key in self.REQUIRED if key not in limits]
        if missing:
            raise ProfileError(
                f"{where} lacks the limits {missing}; add them, each as "
                '{"value": ..., "source": ...} (see the built-in profiles)'
            )
        self.limits = {}
        self.sources = {}
        for key, entry in limits.items():
            if not isinstance(entry, dict) or "value" not in entry:
                raise ProfileError(
                    f"{where}: limit {key!r} must be "
                    '{"value": ..., "source": ...}, got ' + repr(entry)
                )
            if not entry.get("source") or not isinstance(entry["source"], str):
                raise ProfileError(
                    f"{where}: limit {key!r} does not cite a source; add a "
                    '"source" saying where the number comes from'
                )
            self.limits[key] = _check_limit(where, key, entry["value"])
            self.sources[key] = entry["source"]
        self.spikes = self._spikes(where, data.get("spikes"))
        self._check_consistent(where)
        self.energy = self._energy(where, data.get("energy", {}))
        self.emulator = data.get("emulator")
        if self.emulator is not None and self.emulator not in EMULATORS:
            raise ProfileError(
                f'{where}: "emulator" must be one of {list(EMULATORS)} or null, got '
                f"{self.emulator!r}; name the semantics that emulates this target"
            )

    def _spikes(self, where, entry):
        """The validated ``spikes`` mode (inferred from the payload bits if absent)."""
        if entry is None:
            return "graded" if self.limits["spike_payload_bits"] > 0 else "binary"
        if not isinstance(entry, dict) or not entry.get("source"):
            raise ProfileError(
                f'{where}: "spikes" must be {{"value": "binary" or "graded", '
                f'"source": ...}}, got {entry!r}; give the value and cite where it '
                "comes from"
            )
        value = entry.get("value")
        if value not in SPIKES:
            raise ProfileError(
                f'{where}: "spikes" must be one of {list(SPIKES)}, got {value!r}; set '
                'its "value" to "binary" (at most one spike per compartment and step, '
                'Loihi 1) or "graded" (spikes carry an integer payload, Loihi 2)'
            )
        payload = self.limits["spike_payload_bits"]
        if value == "graded" and payload < 2:
            raise ProfileError(
                f'{where}: "spikes" is "graded" but spike_payload_bits is {payload}; '
                "set spike_payload_bits to the message width (>= 2: a sign and one "
                'count bit), or "spikes" to "binary"'
            )
        if value == "binary" and payload != 0:
            raise ProfileError(
                f'{where}: "spikes" is "binary" but spike_payload_bits is {payload}; '
                'set spike_payload_bits to 0, or "spikes" to "graded"'
            )
        return value

    @property
    def graded(self):
        """True if spikes carry an integer payload (one neuron per hybrid neuron)."""
        return self.spikes == "graded"

    def _check_consistent(self, where):
        lim = self.limits
        if lim["weight_magnitude_bits"] > lim["weight_bits"]:
            raise ProfileError(
                f"{where}: weight_magnitude_bits ({lim['weight_magnitude_bits']}) "
                f"exceeds weight_bits ({lim['weight_bits']}); lower it (the magnitude "
                "bits are part of the weight bits)"
            )
        low, high = lim.get("weight_exp_min"), lim.get("weight_exp_max")
        if low is not None and high is not None and low > high:
            raise ProfileError(
                f"{where}: weight_exp_min ({low}) is above weight_exp_max ({high}); "
                "swap them"
            )

    @staticmethod
    def _energy(where, energy):
        if not isinstance(energy, dict):
            raise ProfileError(
                f'{where}: "energy" must be an object of {{"cost": {{"value": pJ, '
                f'"source": ...}}}}, got {type(energy).__name__}'
            )
        out = {}
        for key, entry in energy.items():
            value = entry.get("value") if isinstance(entry, dict) else None
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ProfileError(
                    f"{where}: energy cost {key!r} must be "
                    '{"value": picojoules >= 0, "source": ...}, got ' + repr(entry)
                )
            out[key] = value
        return out

    def __getitem__(self, key):
        return self.limits[key]

    def __repr__(self):
        return f"Profile({self.name!r})"

    @property
    def subtractive_reset(self):
        """True if compartments can keep the residual voltage after a spike."""
        return self.limits["reset"] in ("subtract", "programmable")

    def to_dict(self):
        return {"name": self.name, "spikes": self.spikes, "limits": dict(self.limits)}


def available_profiles():
    """Names of the built-in profiles."""
    return sorted(
        os.path.splitext(f)[0] for f in os.listdir(PROFILE_DIR) if f.endswith(".json")
    )


def load_profile(profile):
    """Return a `.Profile` from a built-in name, a JSON path, a dict or a Profile.

    Raises
    ------
    ProfileError
        If the profile is unknown, unreadable, not valid JSON or invalid; the
        message names the file (or built-in profile) and says what to fix.
    """
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, dict):
        return Profile(profile)
    if isinstance(profile, (str, os.PathLike)):
        path = os.fspath(profile)
        origin = f"hardware profile file {path}"
        if not os.path.exists(path):
            path = os.path.join(PROFILE_DIR, f"{path}.json")
            origin = f"built-in profile {os.fspath(profile)!r} ({path})"
        if not os.path.exists(path):
            raise ProfileError(
                f"Unknown hardware profile {os.fspath(profile)!r}; built-in profiles "
                f"are {available_profiles()}, or pass a path to a JSON file"
            )
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as err:
            raise ProfileError(
                f"{origin} is not valid JSON: {err.msg} at line {err.lineno} column "
                f"{err.colno}; fix the syntax (or start again from a built-in profile "
                f"in {PROFILE_DIR})"
            ) from err
        except (OSError, UnicodeDecodeError) as err:
            raise ProfileError(
                f"{origin} cannot be read ({err}); pass a readable UTF-8 JSON file"
            ) from err
        return Profile(data, origin=origin)
    raise ProfileError(
        f"profile must be a name, path, dict or Profile, got {type(profile).__name__}"
    )
