"""yamnet."""
