"""agents/sim."""
