"""Reading a metrics file the way Prometheus does: with prometheus_client's own text parser (SPEC §12.15)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, FrozenSet, Tuple

from prometheus_client.parser import text_string_to_metric_families

from tests.support.sandbox import assert_no_planted_secret

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def read_metrics(path: Path) -> Tuple[Samples, Dict[str, str]]:
    """Every sample as (name, labels) → value, and each family's type; the file must hold no planted
    secret and every name must start with os_config_agents_."""
    text = path.read_text()
    assert_no_planted_secret(text, str(path))
    samples: Samples = {}
    types: Dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("os_config_agents_"), family.name
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]
