"""Local implementations used by mock mode and hybrid fallback: no network, no cost."""
