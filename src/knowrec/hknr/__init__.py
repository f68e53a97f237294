"""HKNR, a hybrid knowledge-enhanced news recommender (docs/hknr.md): semantic recall
over frozen-encoder article vectors (:mod:`~knowrec.hknr.recall`), a temporal-graph user
encoder and a knowledge-augmented ranker, evaluated under the news protocol of
:mod:`~knowrec.hknr.protocol`."""
