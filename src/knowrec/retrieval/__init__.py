"""Retrieval: ANN indexes, recall paths, candidate merging and the candidate store.

The two-tower path (torch) is imported on first use by name, or explicitly from
:mod:`knowrec.retrieval.twotower`.
"""

from knowrec.retrieval.ann import AnnIndex
from knowrec.retrieval.merge import candidate_frame, merge_candidates, store_candidates
from knowrec.retrieval.paths import (
    RECALL_PATHS,
    CFPath,
    CoClickPath,
    RecallPath,
    SemanticPath,
    VectorRecallPath,
    available_recall_paths,
    fit_paths,
    load_recall_path,
    make_recall_path,
    recall_all,
    recall_path_class,
    register_recall_path,
)
from knowrec.retrieval.store import Candidate, CandidateStore

__all__ = [
    "RECALL_PATHS",
    "AnnIndex",
    "CFPath",
    "Candidate",
    "CandidateStore",
    "CoClickPath",
    "RecallPath",
    "SemanticPath",
    "VectorRecallPath",
    "available_recall_paths",
    "candidate_frame",
    "fit_paths",
    "load_recall_path",
    "make_recall_path",
    "merge_candidates",
    "recall_all",
    "recall_path_class",
    "register_recall_path",
    "store_candidates",
]
