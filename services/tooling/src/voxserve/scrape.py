"""Reading a service's Prometheus endpoint, for benchmarks, fault scripts and tests: no service does."""

from __future__ import annotations

import urllib.request


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """A Prometheus text endpoint as {'name{labels}': value}."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
