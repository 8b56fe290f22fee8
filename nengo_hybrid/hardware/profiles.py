"""Hardware profiles: the limits of a neuromorphic target, as data.

Built-in profiles are JSON files in ``nengo_hybrid/hardware/profiles/`` (shipped
as package data). Every number in a profile carries a ``source`` saying where it
comes from: the Loihi 1 numbers are those nengo-loihi itself enforces or
discretizes to; the Loihi 2 numbers are from published material.
"""

import json
import os

from nengo.exceptions import ValidationError

PROFILE_DIR = os.path.join(os.path.dirname(__file__), "profiles")


class Profile:
    """Limits of one hardware target.

    Parameters
    ----------
    data : dict
        The parsed profile (see the built-in JSON files for the schema).

    Attributes
    ----------
    name : str
    limits : dict of {str: value}
        Plain values (``None`` means "not published, not checked").
    sources : dict of {str: str}
        Where each limit comes from.
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

    def __init__(self, data):
        self.data = data
        self.name = data.get("name", "custom")
        limits = data.get("limits", {})
        missing = [key for key in self.REQUIRED if key not in limits]
        if missing:
            raise ValidationError(
                f"Hardware profile {self.name!r} lacks the limits {missing}",
                attr="profile",
            )
        self.limits = {}
        self.sources = {}
        for key, entry in limits.items():
            if not isinstance(entry, dict) or "value" not in entry:
                raise ValidationError(
                    f"Profile {self.name!r}: limit {key!r} must be "
                    "{'value': ..., 'source': ...}",
                    attr="profile",
                )
            if not entry.get("source"):
                raise ValidationError(
                    f"Profile {self.name!r}: limit {key!r} does not cite a source",
                    attr="profile",
                )
            self.limits[key] = entry["value"]
            self.sources[key] = entry["source"]
        self.energy = {k: v["value"] for k, v in data.get("energy", {}).items()}

    def __getitem__(self, key):
        return self.limits[key]

    def __repr__(self):
        return f"Profile({self.name!r})"

    @property
    def subtractive_reset(self):
        """True if compartments can keep the residual voltage after a spike."""
        return self.limits["reset"] in ("subtract", "programmable")

    def to_dict(self):
        return {"name": self.name, "limits": dict(self.limits)}


def available_profiles():
    """Names of the built-in profiles."""
    return sorted(
        os.path.splitext(f)[0] for f in os.listdir(PROFILE_DIR) if f.endswith(".json")
    )


def load_profile(profile):
    """Return a `.Profile` from a built-in name, a JSON path, a dict or a Profile."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, dict):
        return Profile(profile)
    if isinstance(profile, str):
        path = profile
        if not os.path.exists(path):
            path = os.path.join(PROFILE_DIR, f"{profile}.json")
        if not os.path.exists(path):
            raise ValidationError(
                f"Unknown hardware profile {profile!r}; built-in profiles are "
                f"{available_profiles()}, or pass a path to a JSON file",
                attr="profile",
            )
        with open(path) as fh:
            return Profile(json.load(fh))
    raise ValidationError(
        f"profile must be a name, path, dict or Profile, got {type(profile).__name__}",
        attr="profile",
    )
