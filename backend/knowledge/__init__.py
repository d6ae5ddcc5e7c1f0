"""Collections of a person's documents, indexed for retrieval: see docs/knowledge.md."""
