"""agents/mirothinker."""
