"""agents/tools."""
