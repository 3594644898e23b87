"""APR companion library."""
