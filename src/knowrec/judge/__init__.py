"""LLM quality judge of Explore Further (docs/explore.md) and its human golden set.

:mod:`knowrec.judge.golden`: the golden-set file format (human Good/Bad labels of
trigger → candidate pairs), validation, the terminal labelling loop of
``knowrec judge label`` and pairwise accuracy on the golden set.
"""

from knowrec.judge.golden import (
    KINDS,
    LABELS,
    LabelFile,
    UnknownGoldenIdError,
    golden_pairwise_accuracy,
    golden_report,
    golden_scores,
    label_pairs,
    load_golden,
    load_pairs,
    pairwise_pairs,
    save_golden,
    validate_golden,
)
from knowrec.judge.judge import (
    VARIANTS,
    Judge,
    JudgeStats,
    JudgeTemplate,
    aggregate,
    builtin_personas,
    evaluate_golden,
    parse_variants,
)

__all__ = [
    "KINDS",
    "LABELS",
    "VARIANTS",
    "Judge",
    "JudgeStats",
    "JudgeTemplate",
    "LabelFile",
    "UnknownGoldenIdError",
    "aggregate",
    "builtin_personas",
    "evaluate_golden",
    "golden_pairwise_accuracy",
    "golden_report",
    "golden_scores",
    "label_pairs",
    "load_golden",
    "load_pairs",
    "pairwise_pairs",
    "parse_variants",
    "save_golden",
    "validate_golden",
]
