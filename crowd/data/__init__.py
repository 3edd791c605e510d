"""Data: the flat (task, worker, label) representation, the real datasets and verified file lookup.

- :mod:`crowd.data.crowd_data`: :class:`CrowdData`, converters from crowd-kit DataFrames and peerannot ``answers.json``.
- :mod:`crowd.data.datasets`: LabelMe, Music, Text, CIFAR-10H (``datasets.load(name)``).
- :mod:`crowd.data.registry`: every file the project reads, with its sha256 (mirror, cache, download).
"""

from crowd.data.crowd_data import CrowdData, Split, as_crowd_data

__all__ = ["CrowdData", "Split", "as_crowd_data"]
