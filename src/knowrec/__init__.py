"""knowrec: LLM-assisted, knowledge-enhanced recommendation (TRAWL, Explore Further, HKNR)."""

__version__ = "0.1.0"
