"""crowd-replicate: learning from crowds, reproduced (WAUM, CMM, MMLC and Salmon's lecture)."""

from crowd.data import CrowdData, Split, as_crowd_data

__version__ = "0.1.0"
__all__ = ["CrowdData", "Split", "as_crowd_data", "__version__"]
