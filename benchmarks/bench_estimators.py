"""Transformers against StandardScaler (dense and sparse) and the MLP epoch and inference, from
the ``CASES`` tables of ``fastnorm._bench.preprocessing_cases`` and ``mlp_cases`` (built at fewer
rows in the quick profile)."""

from fastnorm._bench import mlp_cases, preprocessing_cases

from ._common import QUICK
from ._suites import case_table, make_time_class, make_track_class

PREPROCESSING = case_table(preprocessing_cases.build_cases(50_000 if QUICK else 1_000_000))
PRE_PARAMS = [list(PREPROCESSING)]
Preprocessing = make_time_class("Preprocessing", PREPROCESSING.get, PRE_PARAMS, ["case"])
PreprocessingTrack = make_track_class(
    "PreprocessingTrack", PREPROCESSING.get, PRE_PARAMS, ["case"], peers=("numpy", "sklearn")
)

MLP = case_table(mlp_cases.build_cases(2_000 if QUICK else mlp_cases.N_ROWS))
MLP_PARAMS = [list(MLP)]
Mlp = make_time_class("Mlp", MLP.get, MLP_PARAMS, ["case"], repeat=(2, 5, 60.0))
MlpTrack = make_track_class("MlpTrack", MLP.get, MLP_PARAMS, ["case"], peers=("torch", "sklearn"))
