from .majority_vote import MajorityVote, NaiveSoft, WeightedMajorityVote
from .fast_ds import FastDawidSkene
from .wds import WDS
from .worker_scores import rank_workers, spammer_score, trace_score
from .dawid_skene import DawidSkene
from .one_coin import HomogeneousDawidSkene, OneCoinDawidSkene
from .glad import GLAD
