"""Identification of ambiguous tasks and poor workers: AUM, AUMC, WAUM, worker-wise WAUM, pruning."""

from crowd.identification.scores import *  # noqa: F401,F403
from crowd.identification.scores import __all__  # noqa: F401
