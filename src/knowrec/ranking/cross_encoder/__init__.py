"""The multitask cross-encoder of Explore Further (stage 2a, "MT RecoLM", in docs/explore.md).

A MiniLM body (default: the packaged all-MiniLM-L6-v2) reads ``trigger text [SEP]
candidate text``, truncated longest-first to ``max_tokens``; the pooled pair (the mean
of all tokens plus ``û ⊙ v̂`` and ``|û − v̂|`` of the two sides' means, see
:class:`MultitaskCrossEncoder`) feeds two heads:

- **click head** — one logit. Trained on clicks with a pairwise softmax over the clicked
  and not-clicked candidates of the same group (trigger, or impression)::

      −log(e^{s+} / (e^{s+} + e^{s−})) = softplus(s− − s+),   weighted by log(1 + clicks+)

- **quality head** — five logits for the quality classes 0–4. Trained on (judge) labels
  with cross-entropy or symmetric cross-entropy (SCE = α·CE + β·RCE, Wang et al., ICCV
  2019); a fractional label ``2.3`` becomes the soft target ``p2 = 0.7, p3 = 0.3``
  (:func:`soft_labels`), and a full label distribution may be given instead.

Two training modes, so a pipeline can compare them (the paper: distillation wins):

- ``mode="distill"``: the student learns its teachers' outputs with MSE — the click logit
  learns the ``click_teacher`` column (any model's score, e.g. stage-1 LightGBM or log
  co-click counts) z-scored within each group (``teacher_norm="group"``: the head ranks
  the candidates of one trigger, so the trigger's overall traffic level is not its
  business; ``"global"`` z-scores over all rows); the quality head's five probabilities
  learn the teacher's label distribution — the ``quality_teacher`` score (the judge's
  expected score, 0–4) split between its two nearest classes, or the ``quality_probs_*``
  columns when there is no teacher score. (MSE on the probabilities rather than on the
  expected label: the latter's gradient vanishes as the softmax sharpens, and it learned
  several times slower in our runs.) ``label_weight > 0`` adds the label losses on top.
- ``mode="direct"``: the heads are fine-tuned on the labels only (clicks and quality
  labels), teachers ignored.

``head_weights`` weigh the two heads (default click 1.0, quality 0.5: the paper puts the
larger weight on the click head so click quality is kept). Input columns of the pairs
frame (``trigger_id`` and ``item_id`` name the pair; rows with a null target simply do
not enter that loss term):

=====================  ===============================================================
``click_count``        clicks of the pair (``clicked`` 0/1 is used when there is no
                       count); > 0 = clicked, 0 = shown and not clicked
``group_col``          optional (a parameter naming e.g. the ``group`` column of
                       :func:`~knowrec.explore.data.click_impressions`): pairs are
                       formed within an impression; default: within a trigger
``click_teacher``      the click teacher's score (distill)
``quality_label``      a label in [0, 4] (may be fractional)
``quality_probs_0..4`` a label distribution (takes precedence over ``quality_label``)
``quality_teacher``    the quality teacher's expected score in [0, 4] (distill; the
                       ``quality_probs_*`` distribution is the teacher when absent)
=====================  ===============================================================

Usage::

    ce = CrossEncoderRanker(mode="distill", epochs=1, threads=2).fit(train_pairs, items)
    scored = ce.predict(candidates, items)          # + click_score, quality_score
    click, quality = ce.score_pairs(triggers, cands, items)   # offline fast path
    ce.save("runs/x/cross_encoder"); CrossEncoderRanker.load("runs/x/cross_encoder")

CPU cost: ``train_layers`` limits fine-tuning to the top layers; with ``train_layers=0``
the body is frozen, each pair is encoded once and every epoch trains only the heads.

``click_score`` (the click logit) and ``quality_score`` (expected quality label, 0–4) are
the stage-2b LightGBM features (:data:`CROSS_ENCODER_FEATURES`,
:class:`CrossEncoderFeatures`) and ``quality_score`` is the quality term of the final
λ combination (:func:`knowrec.ranking.combine.final_score`).

Modules: :mod:`.losses` (the loss terms and their weighting), :mod:`.module` (the
network), :mod:`.tokenizer` (pair inputs), :mod:`.targets` (training targets) and
:mod:`.ranker` (fit, score, save/load; training runs on :class:`knowrec.train.Trainer`).
"""

from knowrec.ranking.cross_encoder.losses import (
    N_CLASSES,
    MultitaskLoss,
    expected_label,
    pairwise_click_loss,
    quality_label_loss,
    soft_labels,
)
from knowrec.ranking.cross_encoder.module import MultitaskCrossEncoder
from knowrec.ranking.cross_encoder.ranker import (
    CLICK_SCORE,
    CROSS_ENCODER_FEATURES,
    QUALITY_SCORE,
    CrossEncoderFeatures,
    CrossEncoderRanker,
)
from knowrec.ranking.cross_encoder.targets import PROB_COLUMNS, _zscore_within, quality_targets
from knowrec.ranking.cross_encoder.tokenizer import PairTokenizer, text_map

__all__ = [
    "CLICK_SCORE",
    "CROSS_ENCODER_FEATURES",
    "N_CLASSES",
    "PROB_COLUMNS",
    "QUALITY_SCORE",
    "CrossEncoderFeatures",
    "CrossEncoderRanker",
    "MultitaskCrossEncoder",
    "MultitaskLoss",
    "PairTokenizer",
    "_zscore_within",
    "expected_label",
    "pairwise_click_loss",
    "quality_label_loss",
    "quality_targets",
    "soft_labels",
    "text_map",
]
