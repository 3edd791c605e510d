from crowd.aggregation.majority_vote import MajorityVote, NaiveSoft, WeightedMajorityVote
from crowd.aggregation.fast_ds import FastDawidSkene
from crowd.aggregation.wds import WDS
from crowd.aggregation.worker_scores import rank_workers, spammer_score, trace_score
from crowd.aggregation.dawid_skene import DawidSkene
from crowd.aggregation.one_coin import HomogeneousDawidSkene, OneCoinDawidSkene
from crowd.aggregation.glad import GLAD
