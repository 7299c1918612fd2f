"""vggish."""
