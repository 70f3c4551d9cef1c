"""The validate stage: embedding vectors must have the right shape, finite values and unit norm.

OpenAI's text-embedding-3 and ada-002 vectors are L2-normalised
(https://platform.openai.com/docs/guides/embeddings), and so are HashEmbedder's; a vector that is
not is a sign of a malformed response (a base64 string stored as text, a truncated body, a NaN).
"""

from tvdb.vectors import validate_vectors

__all__ = ["validate_vectors"]
