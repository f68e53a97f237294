"""TRAWL knowledge generation: key-factor guided prompts → knowledge text per item/user.

Key-factor sets are TOML files (``domains/``), prompts are template files (``prompts/``),
and every method of docs/trawl.md (``none``, ``raw``, ``summary``, ``topic_summary``,
``kar``, ``trawl``) produces the same table (:data:`KNOWLEDGE_SCHEMA`).
"""

from __future__ import annotations

from knowrec.knowledge.factors import Domain, Factor, builtin_domains, load_domain
from knowrec.knowledge.generate import (
    KNOWLEDGE_SCHEMA,
    METHODS,
    GenerationStats,
    KnowledgeConfig,
    KnowledgeGenerator,
    empty_knowledge,
    generate_knowledge,
    item_ids,
    knowledge_texts,
    read_knowledge_texts,
    user_ids,
)
from knowrec.knowledge.inputs import item_raw_texts, render_profile, user_histories
from knowrec.knowledge.templates import PromptTemplate, builtin_template

__all__ = [
    "KNOWLEDGE_SCHEMA",
    "METHODS",
    "Domain",
    "Factor",
    "GenerationStats",
    "KnowledgeConfig",
    "KnowledgeGenerator",
    "PromptTemplate",
    "builtin_domains",
    "builtin_template",
    "empty_knowledge",
    "generate_knowledge",
    "item_ids",
    "item_raw_texts",
    "knowledge_texts",
    "load_domain",
    "read_knowledge_texts",
    "render_profile",
    "user_histories",
    "user_ids",
]
