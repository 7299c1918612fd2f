"""handcrafted."""
